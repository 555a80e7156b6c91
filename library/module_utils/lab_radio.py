# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab-only modules' side of the emulated radio's protocol (lab/arnab_lab/radio.py `serve`/`ask`): one JSON
request per line on its UNIX socket, one JSON reply per line. Standard library only (AnsiballZ ships this file)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import socket

DEFAULT_SOCKET = "/run/arnab-lab/radio.sock"   # arnab_lab.radio.DEFAULT_SOCKET
SOCKET_ARGS = dict(socket=dict(type="path", default=DEFAULT_SOCKET), timeout=dict(type="float", default=5.0))


class RadioError(Exception):
    pass


def ask(path, request, timeout=5.0):
    """One request -> the radio's reply (a dict); RadioError when there is no radio or it does not answer."""
    if not os.path.exists(path):
        raise RadioError("no emulated radio socket at %s (is the lab up? make lab-up)" % path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            handle = sock.makefile("rwb")
            handle.write((json.dumps(request, default=str) + "\n").encode())
            handle.flush()
            line = handle.readline()
    except socket.timeout:
        raise RadioError("the emulated radio at %s did not answer within %g s" % (path, timeout))
    except OSError as exc:
        raise RadioError("cannot talk to the emulated radio at %s: %s" % (path, exc))
    if not line:
        raise RadioError("the emulated radio at %s closed the connection without an answer" % path)
    try:
        reply = json.loads(line.decode())
    except ValueError as exc:
        raise RadioError("the emulated radio at %s answered no JSON: %s" % (path, exc))
    if not isinstance(reply, dict):
        raise RadioError("the emulated radio at %s answered %r" % (path, reply))
    return reply


def call(path, request, timeout=5.0):
    """ask(), and RadioError with the radio's reason when it refuses."""
    reply = ask(path, request, timeout)
    if not reply.get("ok"):
        raise RadioError("the emulated radio refused %s: %s" % (request.get("op"), reply.get("error")))
    return reply


def state(path, timeout=5.0):
    return call(path, {"op": "state"}, timeout)["state"]


def client_name(radio_state, ref):
    """A client of the radio by inventory name or MAC -> its name; RadioError naming the radio's clients."""
    clients = radio_state.get("clients", {})
    for name, info in clients.items():
        if ref == name or str(ref).lower() == str(info.get("mac", "")).lower():
            return name
    raise RadioError("unknown client %s: the radio has %s" % (ref, ", ".join(sorted(clients)) or "none"))


def position(value):
    """[x, y] of finite numbers -> [x, y] floats; RadioError otherwise."""
    try:
        x, y = [float(v) for v in value]
    except (TypeError, ValueError):
        raise RadioError("position must be [x, y] (two numbers), not %r" % (value,))
    if not all(math.isfinite(v) for v in (x, y)):
        raise RadioError("position must be finite, not %r" % (value,))
    return [x, y]
