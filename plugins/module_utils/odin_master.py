# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Odin master's side of the agent -> master UDP protocol (port 2819), pure and standard library only.

Agents send one message per datagram, lower-case words separated by spaces, usually ended by a newline:

  ``ping``                                          every 2 s; an agent is dropped after 6 s without one
  ``probe <sta_mac> [<ssid>]``                      a client the agent hears but does not serve (no SSID = broadcast)
  ``publish <sta_mac> <count> <sub_id>:<value>...`` subscription matches (``signal`` values)
  ``association <sta_mac>``                         a client associated to the agent's vAP
  ``deauthentication <sta_mac>``                    a client left
  ``detectedflow ...``                              Wi-5's flow detector (a separate element): recognised, ignored

``parse_datagram`` turns bytes into a ``Message`` or raises ``ProtocolError`` with one ``reason`` from
``ERROR_REASONS``: the caller counts it and goes on (a datagram never stops the master). ``AgentTracker`` keeps
which agents are alive. The event source plugin (extensions/eda/plugins/event_source/odin_master.py) and the tests
import this file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
from collections import namedtuple

MASTER_PORT = 2819
AGENT_TIMEOUT_S = 6.0          # the master drops an agent after this long without a ping
MAX_DATAGRAM = 1024            # bytes; a real agent's longest message (a publish) is far shorter
MAX_PUBLISH_COUNT = 32         # matches in one publish (an agent holds a handful of subscriptions)
MAX_SSID_BYTES = 32
MAX_ABS_VALUE = 1e9            # a statistic beyond this is not a measurement

KINDS = ("ping", "probe", "publish", "association", "deauthentication")
IGNORED_KINDS = ("detectedflow",)

ERROR_REASONS = (
    "empty",          # no bytes, or only whitespace
    "oversized",      # longer than MAX_DATAGRAM
    "binary",         # not printable ASCII words (NUL, control characters, bytes >= 0x80)
    "unknown_kind",   # first word is not a message kind
    "bad_arity",      # wrong number of words for the kind
    "bad_mac",        # not a MAC, or a group (multicast/broadcast) or all-zero MAC
    "bad_number",     # count, subscription id or value that is not a finite number in range
    "truncated",      # a publish with fewer matches than its count
    "bad_count",      # a publish with more matches than its count, or a count out of range
    "bad_ssid",       # an SSID longer than 32 bytes
)

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_INT = re.compile(r"^[0-9]{1,10}$")
_NUMBER = re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$")


class ProtocolError(ValueError):
    """A datagram the master cannot take; ``reason`` is one of ERROR_REASONS."""

    def __init__(self, reason, detail=""):
        self.reason = reason
        self.detail = detail
        super(ProtocolError, self).__init__("%s: %s" % (reason, detail) if detail else reason)


class Message(namedtuple("Message", "kind sta_mac ssid values")):
    """One agent message. ``values``: ((sub_id, value), ...) of a publish; ``ssid``: a probe's ('' = broadcast)."""

    __slots__ = ()

    def to_dict(self):
        return {"kind": self.kind, "sta_mac": self.sta_mac, "ssid": self.ssid,
                "values": [[sid, value] for sid, value in self.values]}


def station_mac(word):
    """A client's MAC as the agent wrote it -> lower case; ProtocolError('bad_mac') for anything else, for a
    group address (multicast/broadcast bit) and for 00:00:00:00:00:00."""
    if not _MAC.match(word):
        raise ProtocolError("bad_mac", "%r is not a MAC address" % _short(word))
    mac = word.lower()
    if int(mac[:2], 16) & 1:
        raise ProtocolError("bad_mac", "%s is a group address, not a station" % mac)
    if mac == "00:00:00:00:00:00":
        raise ProtocolError("bad_mac", "all-zero MAC")
    return mac


def _number(word, what):
    if not _NUMBER.match(word):
        raise ProtocolError("bad_number", "%s %r is not a number" % (what, _short(word)))
    value = float(word)
    if math.isnan(value) or math.isinf(value) or abs(value) > MAX_ABS_VALUE:
        raise ProtocolError("bad_number", "%s %r is out of range" % (what, _short(word)))
    return int(value) if value.is_integer() and "." not in word and "e" not in word.lower() else value


def _integer(word, what, maximum):
    if not _INT.match(word) or int(word) > maximum:
        raise ProtocolError("bad_number", "%s %r is not an integer in 0..%d" % (what, _short(word), maximum))
    return int(word)


def _short(text, size=40):
    return text if len(text) <= size else text[:size] + "..."


def _text(data):
    """Bytes -> the message's text, or ProtocolError (empty, oversized, binary)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError("oversized", "%d bytes > %d" % (len(data), MAX_DATAGRAM))
    # One message, optionally ended by CR/LF (Click's TimedSource sends "ping\n"); spaces separate words.
    body = data.rstrip(b"\r\n")
    if any((b < 32 and b != 9) or b > 126 for b in bytearray(body)):
        raise ProtocolError("binary", "%d bytes that are not printable ASCII" % len(data))
    text = body.decode("ascii")
    if not text.strip():
        raise ProtocolError("empty")
    return text


def parse_datagram(data):
    """One datagram (bytes) -> Message; ProtocolError (never anything else) for every malformed form."""
    text = _text(data)
    words = text.split()
    kind = words[0]
    if kind not in KINDS:
        if kind in IGNORED_KINDS:
            return Message(kind, None, None, ())
        raise ProtocolError("unknown_kind", "%r" % _short(kind))
    if kind == "ping":
        if len(words) != 1:
            raise ProtocolError("bad_arity", "ping takes no argument")
        return Message("ping", None, None, ())
    if len(words) < 2:
        raise ProtocolError("truncated" if kind == "publish" else "bad_arity", "%s needs a station MAC" % kind)
    if kind in ("association", "deauthentication"):
        if len(words) != 2:
            raise ProtocolError("bad_arity", "%s takes one station MAC" % kind)
        return Message(kind, station_mac(words[1]), None, ())
    if kind == "probe":
        mac = station_mac(words[1])
        # The SSID is the rest of the line (a real SSID may hold spaces); none = broadcast probe.
        rest = text.lstrip().split(None, 2)
        ssid = rest[2].strip() if len(rest) > 2 else ""
        if len(ssid.encode("ascii")) > MAX_SSID_BYTES:
            raise ProtocolError("bad_ssid", "SSID of %d bytes" % len(ssid))
        return Message("probe", mac, ssid, ())
    # publish <sta_mac> <count> <sub_id>:<value> ...
    mac = station_mac(words[1])
    if len(words) < 3:
        raise ProtocolError("truncated", "publish without a count")
    count = _integer(words[2], "publish count", 10 ** 6)
    if not 1 <= count <= MAX_PUBLISH_COUNT:
        raise ProtocolError("bad_count", "publish count %d not in 1..%d" % (count, MAX_PUBLISH_COUNT))
    pairs = words[3:]
    if len(pairs) < count:
        raise ProtocolError("truncated", "publish count %d with %d matches" % (count, len(pairs)))
    if len(pairs) > count:
        raise ProtocolError("bad_count", "publish count %d with %d matches" % (count, len(pairs)))
    values = []
    for pair in pairs:
        sid, sep, value = pair.partition(":")
        if not sep:
            raise ProtocolError("truncated" if pair is pairs[-1] else "bad_number",
                                "match %r is not <sub_id>:<value>" % _short(pair))
        values.append((_integer(sid, "subscription id", 2 ** 31 - 1), _number(value, "value")))
    return Message("publish", mac, None, tuple(values))


def format_message(kind, sta_mac=None, ssid=None, values=()):
    """Inverse of parse_datagram (what an agent sends): text with its newline."""
    if kind == "ping":
        return "ping\n"
    if kind == "probe":
        return "probe %s %s\n" % (sta_mac, ssid or "")
    if kind == "publish":
        return "publish %s %d %s\n" % (sta_mac, len(values), " ".join("%d:%s" % (sid, _fmt(v)) for sid, v in values))
    return "%s %s\n" % (kind, sta_mac)


def _fmt(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


class Counters(dict):
    """Named counts (a dict, so it goes into events and JSON as is)."""

    def add(self, name, n=1):
        self[name] = self.get(name, 0) + n
        return self[name]


class AgentTracker:
    """Which agents are alive: up at their first ping, down after ``timeout`` seconds without one.
    Keys are whatever identifies an agent (its IP, or ``ip:port``); times are the caller's clock."""

    def __init__(self, timeout=AGENT_TIMEOUT_S):
        self.timeout = float(timeout)
        self.last_ping = {}
        self.up_since = {}

    def ping(self, key, now):
        """Record a ping; True if the agent just came up."""
        new = key not in self.last_ping
        self.last_ping[key] = now
        if new:
            self.up_since[key] = now
        return new

    def alive(self, key):
        return key in self.last_ping

    def expire(self, now):
        """Drop agents silent for longer than the timeout; returns [(key, silent_s)]."""
        gone = [(key, now - last) for key, last in self.last_ping.items() if now - last > self.timeout]
        for key, dummy in gone:
            del self.last_ping[key]
            self.up_since.pop(key, None)
        return sorted(gone)

    def agents(self):
        return sorted(self.last_ping)
