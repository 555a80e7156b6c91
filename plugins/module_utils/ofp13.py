# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flow changes over one OpenFlow 1.3 connection, no ``ovs-ofctl`` process per change.

A migration's flow changes are on its critical path; starting ``ovs-ofctl`` costs tens of ms on a busy
control node (process start, connection, version negotiation) for a switch that applies the change in
well under a millisecond. ``Connection`` opens the switch's passive OpenFlow listener (``tcp:`` or
``unix:`` target) once, off the critical path, then sends each batch of flow-mods followed by a barrier
and waits for the barrier reply (or an error). Only what the collection's flows use is encoded: matches on
in_port, dl_src/dl_dst (optionally masked), dl_type, nw_proto, nw_src/nw_dst and arp_spa/arp_tpa (optionally
prefixes), and ``output:N`` actions (or drop); ``encodable()`` says whether a flow fits, otherwise callers
use ``ovs-ofctl``. Pure standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import socket
import struct

VERSION = 4                      # OpenFlow 1.3 on the wire
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 14, 20, 21
OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 3, 4
OFPFF_RESET_COUNTS = 1 << 2      # what ovs-ofctl sets on an OpenFlow 1.3 add
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
OFPTT_ALL = 0xFF
OFPIT_APPLY_ACTIONS = 4
OFPAT_OUTPUT = 0
OXM_CLASS = 0x8000               # OFPXMC_OPENFLOW_BASIC
ALL_ONES = 0xFFFFFFFFFFFFFFFF
# match field -> (OXM field number, kind)
FIELDS = {"in_port": (0, "port"), "dl_dst": (3, "mac"), "dl_src": (4, "mac"), "dl_type": (5, "u16"),
          "nw_proto": (10, "u8"), "nw_src": (11, "ip"), "nw_dst": (12, "ip"), "arp_spa": (22, "ip"),
          "arp_tpa": (23, "ip")}
# prerequisites first (OVS wants eth_type before the fields that need it)
ORDER = ("in_port", "dl_dst", "dl_src", "dl_type", "nw_proto", "nw_src", "nw_dst", "arp_spa", "arp_tpa")


class WireError(Exception):
    """The connection failed or the switch refused a message."""


def _mac(text):
    return bytes(int(octet, 16) for octet in text.split(":"))


def _oxm(field, value, mask=None):
    return struct.pack("!I", (OXM_CLASS << 16) | (field << 9) | ((1 if mask else 0) << 8)
                       | (len(value) * (2 if mask else 1))) + value + (mask or b"")


def _field(key, value):
    number, kind = FIELDS[key]
    text = str(value)
    if kind == "port":
        return _oxm(number, struct.pack("!I", int(text)))
    if kind in ("u16", "u8"):
        number_value = int(value, 0) if isinstance(value, str) else int(value)   # "0x0800" or 2048
        return _oxm(number, struct.pack("!H" if kind == "u16" else "!B", number_value))
    if kind == "mac":
        mac, _sep, mask = text.partition("/")
        return _oxm(number, _mac(mac), _mac(mask) if mask else None)
    net = ipaddress.IPv4Network(text, strict=False)
    if net.prefixlen == 32:
        return _oxm(number, net.network_address.packed)
    return _oxm(number, net.network_address.packed, net.netmask.packed)


def encodable(flow):
    """Whether ``flow`` (an openflow.Flow) can go over the wire here (else: ovs-ofctl)."""
    if any(key not in FIELDS for key in flow.match):
        return False
    if not str(flow.match.get("in_port", "0")).isdigit():
        return False
    if flow.actions == "drop":
        return True
    return all(a.startswith("output:") and a[len("output:"):].isdigit() for a in flow.actions.split(","))


def match_bytes(match):
    oxms = b"".join(_field(key, match[key]) for key in ORDER if key in match)
    length = 4 + len(oxms)
    return struct.pack("!HH", 1, length) + oxms + b"\0" * ((8 - length % 8) % 8)


def instructions_bytes(actions):
    if actions == "drop":
        return b""
    acts = b"".join(struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, int(a.split(":", 1)[1]), 0)
                    for a in actions.split(","))
    return struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts


def header(msg_type, length, xid):
    return struct.pack("!BBHI", VERSION, msg_type, length, xid)


def flow_mod(flow, command, xid):
    """An OFPT_FLOW_MOD for ``flow``: ADD (with its actions) or DELETE_STRICT (only with its cookie)."""
    adding = command == OFPFC_ADD
    body = struct.pack("!QQBBHHHIIIH2x", flow.cookie, 0 if adding else ALL_ONES, flow.table, command, 0, 0,
                       flow.priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, OFPFF_RESET_COUNTS if adding else 0)
    body += match_bytes(flow.match)
    if adding:
        body += instructions_bytes(flow.actions)
    return header(OFPT_FLOW_MOD, 8 + len(body), xid) + body


def delete_cookie(cookie, xid):
    """OFPT_FLOW_MOD DELETE of every flow carrying ``cookie``, in every table."""
    body = struct.pack("!QQBBHHHIIIH2x", cookie, ALL_ONES, OFPTT_ALL, OFPFC_DELETE, 0, 0, 0, OFP_NO_BUFFER,
                       OFPP_ANY, OFPG_ANY, 0) + match_bytes({})
    return header(OFPT_FLOW_MOD, 8 + len(body), xid) + body


class Connection:
    """One OpenFlow 1.3 session with a switch's passive listener."""

    def __init__(self, target, timeout=5.0):
        self.target, self.timeout = target, timeout
        self.sock, self.xid, self.buffer = None, 0, b""

    @staticmethod
    def supports(target):
        return str(target).startswith(("tcp:", "unix:"))

    def connect(self):
        kind, _sep, rest = self.target.partition(":")
        try:
            if kind == "unix":
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(rest)
            elif kind == "tcp":
                host, _sep, port = rest.rpartition(":")
                self.sock = socket.create_connection((host, int(port or 6653)), self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                raise WireError("%s: only tcp: and unix: targets" % self.target)
            self.sock.sendall(header(OFPT_HELLO, 8, self._next_xid()))
            version, msg_type, _body, _xid = self._read()
            if msg_type != OFPT_HELLO:
                raise WireError("%s: expected HELLO, got message type %d" % (self.target, msg_type))
            if version < VERSION:
                raise WireError("%s: the switch speaks OpenFlow wire version %d, not 1.3" % (self.target, version))
        except (OSError, struct.error) as exc:
            self.close()
            raise WireError("%s: %s" % (self.target, exc))
        return self

    def _next_xid(self):
        self.xid += 1
        return self.xid

    def _read(self):
        while len(self.buffer) < 8 or len(self.buffer) < struct.unpack("!H", self.buffer[2:4])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WireError("%s: the switch closed the connection" % self.target)
            self.buffer += chunk
        version, msg_type, length, xid = struct.unpack("!BBHI", self.buffer[:8])
        body, self.buffer = self.buffer[8:length], self.buffer[length:]
        return version, msg_type, body, xid

    def send(self, messages):
        """Send encoded messages (built with xids from next_xids) and a barrier; wait for its reply."""
        barrier = self._next_xid()
        try:
            self.sock.sendall(b"".join(messages) + header(OFPT_BARRIER_REQUEST, 8, barrier))
            while True:
                _version, msg_type, body, xid = self._read()
                if msg_type == OFPT_ERROR:
                    err_type, code = struct.unpack("!HH", body[:4])
                    raise WireError("%s refused message %d: OpenFlow error type %d code %d"
                                    % (self.target, xid, err_type, code))
                if msg_type == OFPT_ECHO_REQUEST:
                    self.sock.sendall(header(OFPT_ECHO_REPLY, 8 + len(body), xid) + body)
                elif msg_type == OFPT_BARRIER_REPLY and xid == barrier:
                    return
        except (OSError, struct.error) as exc:
            raise WireError("%s: %s" % (self.target, exc))

    def apply(self, to_add, to_delete):
        """The flows of one batch: adds first, then strict deletes (as openflow.batch_command)."""
        messages = [flow_mod(f, OFPFC_ADD, self._next_xid()) for f in to_add]
        messages += [flow_mod(f, OFPFC_DELETE_STRICT, self._next_xid()) for f in to_delete]
        self.send(messages)

    def delete_cookies(self, cookies):
        self.send([delete_cookie(c, self._next_xid()) for c in cookies])

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
