# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validators for values that reach an argv, a configuration file, an ovs-ofctl flow text or a remote shell.

The one place where the collection decides what a container name, an interface name, a MAC, a path, a host or a
user may look like. Every check returns the value (normalized where that is documented) or raises
:class:`ValidationError` whose message names the option, shows the value with ``repr`` (so a control character
is visible) and says what to write instead. Modules call them before anything is touched::

    from ansible_collections.arnab.testbed.plugins.module_utils import validate
    try:
        name = validate.container_name(p["name"], "name")
        validate.strings(p)              # no control character in any string option
    except validate.ValidationError as e:
        module.fail_json(msg=str(e))

All patterns are matched in full (``re.fullmatch``, ASCII only): ``$`` in a ``re.match`` pattern accepts a trailing
newline, which is exactly what must not pass. Pure standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re


class ValidationError(ValueError):
    """A value that must not reach a command, a file or a flow text as it is."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_IFNAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}", re.ASCII)
_MAC = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}", re.ASCII)
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", re.ASCII)
_COMMAND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", re.ASCII)
_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+:=-]*", re.ASCII)

CONTAINER_NAME_MAX = 64
PATH_MAX = 4095
HOST_MAX = 253


def _label(what):
    return what or "value"


def _text(value, what):
    if value is None:
        raise ValidationError("%s is missing" % _label(what))
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("%s %r is not UTF-8 text" % (_label(what), value))
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError("%s %r must be a string" % (_label(what), value))
    return str(value)


def control_char(value):
    """The first control character (< 0x20 or 0x7f) in ``value`` as ``(position, char)``, or None."""
    m = _CONTROL.search(value)
    return (m.start(), m.group(0)) if m else None


def no_control_chars(value, what="value"):
    """``value`` as text, refused if it holds a newline, CR, NUL, tab or any other control character."""
    text = _text(value, what)
    found = control_char(text)
    if found:
        raise ValidationError("%s %r holds a control character (%r at position %d); control characters (newline, "
                              "CR, NUL, tab, anything below 0x20, 0x7f) are not allowed here"
                              % (_label(what), text, found[1], found[0]))
    return text


def container_name(value, what="container name"):
    """An LXC container name: letters, digits, ``-``, ``_``, ``.``; starting with a letter or digit; at most 64."""
    text = no_control_chars(value, what)
    if not text or len(text) > CONTAINER_NAME_MAX or not _CONTAINER.fullmatch(text):
        raise ValidationError("%s %r is not a container name: use 1 to %d letters, digits, '-', '_' or '.', "
                              "starting with a letter or digit" % (_label(what), text, CONTAINER_NAME_MAX))
    return text


def ifname(value, what="interface name"):
    """A Linux interface (or OVS port) name: 1 to 15 of ``[A-Za-z0-9_.-]``, not starting with ``-`` (an argv
    element starting with ``-`` is read as an option), not ``.`` or ``..`` (the kernel refuses them)."""
    text = no_control_chars(value, what)
    if not _IFNAME.fullmatch(text) or text in (".", ".."):
        raise ValidationError("%s %r is not an interface name: use 1 to 15 letters, digits, '_', '.' or '-', not "
                              "starting with '-'" % (_label(what), text))
    return text


def mac(value, what="MAC address"):
    """A MAC address (``:`` or ``-`` separated, one separator throughout) -> lower case with ``:``."""
    text = no_control_chars(value, what)
    if not _MAC.fullmatch(text):
        raise ValidationError("%s %r is not a MAC address like 02:c0:00:00:00:01" % (_label(what), text))
    return text.replace("-", ":").lower()


def abs_path(value, what="path"):
    """An absolute path without control characters (spaces and quotes are data: only argv carries it)."""
    text = no_control_chars(value, what)
    if not text.startswith("/"):
        raise ValidationError("%s %r must be an absolute path (starting with '/')" % (_label(what), text))
    if len(text) > PATH_MAX:
        raise ValidationError("%s is longer than %d characters" % (_label(what), PATH_MAX))
    return text


def rel_or_abs_path(value, what="path"):
    """A path, absolute or relative, without control characters and not starting with ``-``."""
    text = no_control_chars(value, what)
    if not text or text.startswith("-"):
        raise ValidationError("%s %r must be a path (not empty, not starting with '-')" % (_label(what), text))
    if len(text) > PATH_MAX:
        raise ValidationError("%s is longer than %d characters" % (_label(what), PATH_MAX))
    return text


def command(value, what="command"):
    """A program to run: a bare name looked up on PATH (letters, digits, ``_.+-``, not starting with ``-``
    or ``.``) or an absolute path. Never a command line: arguments go in their own argv elements."""
    text = no_control_chars(value, what)
    if text.startswith("/"):
        return abs_path(text, what)
    if not _COMMAND.fullmatch(text):
        raise ValidationError("%s %r must be a program name (letters, digits, '_', '.', '+', '-') or an absolute "
                              "path, without arguments" % (_label(what), text))
    return text


def host(value, what="host"):
    """An IPv4/IPv6 address or a host name (labels of letters, digits, ``-``, ``_``, separated by dots; not
    starting with ``-``, so ssh cannot read it as an option)."""
    text = no_control_chars(value, what)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if not text or len(text) > HOST_MAX or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValidationError("%s %r is neither an IP address nor a host name (letters, digits, '-', '_' in "
                              "dot-separated labels, not starting with '-')" % (_label(what), text))
    return text


def user(value, what="user"):
    """A login name: 1 to 32 letters, digits, ``_``, ``.``, ``-``; not starting with ``-`` or ``.``; no ``@``."""
    text = no_control_chars(value, what)
    if not _USER.fullmatch(text):
        raise ValidationError("%s %r is not a user name: use 1 to 32 letters, digits, '_', '.' or '-', not "
                              "starting with '-' or '.'" % (_label(what), text))
    return text


def port(value, what="port"):
    """A TCP/UDP port number 1..65535 -> int."""
    try:
        number = int(_text(value, what), 10)
    except ValueError:
        raise ValidationError("%s %r is not a port number" % (_label(what), value))
    if not 0 < number < 65536:
        raise ValidationError("%s %d is not a port number (1-65535)" % (_label(what), number))
    return number


def word(value, what="value", pattern=_WORD, hint="letters, digits and '_.+:=-', not starting with '-'"):
    """A single token (no spaces, no shell or ovs-ofctl separators) matching ``pattern`` in full."""
    text = no_control_chars(value, what)
    if isinstance(pattern, str):
        pattern = re.compile(pattern, re.ASCII)
    if not pattern.fullmatch(text):
        raise ValidationError("%s %r: use %s" % (_label(what), text, hint))
    return text


def one_of(value, choices, what="value"):
    text = no_control_chars(value, what)
    if text not in choices:
        raise ValidationError("%s %r: use one of %s" % (_label(what), text, ", ".join(choices)))
    return text


def strings(params, what=None, skip=()):
    """Refuse a control character in every string found in ``params`` (a module's params: dicts, lists and
    scalars, walked recursively). ``skip``: top-level keys to leave out (e.g. a free-form text option whose
    documentation allows newlines). Returns ``params``."""
    def walk(value, path):
        if isinstance(value, dict):
            for key in value:
                if path is None and key in skip:
                    continue
                walk(value[key], "%s.%s" % (path, key) if path else str(key))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, "%s[%d]" % (path, i))
        elif isinstance(value, (str, bytes)):
            no_control_chars(value, "option %s" % path if path else _label(what))
    walk(params, what)
    return params
