# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hold what a frozen container is sent, and hand it to the restored copy (network_lock "inbound").

While the source is frozen, its network lock drops what the client sends to the container. A request sent during the
freeze (an HLS segment's GET: a SYN, or data on a kept-alive connection) then waits for the client's own
retransmission timer (a SYN's: 1 s, then 3 s more), which can outlast the player's buffer (docs/benchmarks.md). So
the inbound-only lock sends a copy of each packet it drops to a netlink log group (nftables ``log group``
criu.HOLD_GROUP, nfnetlink_log: a copy, so with nobody listening it drops as before; ``queue`` would need nft_queue,
which kernels such as this lab's leave out), and this holder, started before the freeze in the container's network
namespace, keeps the copies. Once the destination has confirmed the restore (the engine writes ``replay`` to this
holder's stdin), it sends the copies in their order of arrival as Ethernet frames from this edge's bridge to the
container's MAC address: the restore's gratuitous ARP has moved that address to the destination's port, on the data
switch and on this bridge. When its stdin ends instead (an abort, or the engine is gone) or after HOLD_MAX_S, the
copies are dropped, which is what the lock did before.

Runs as a script from the migration's work dir (the engine writes it there, as it does the guard): standard library
only, Linux only. It talks on its stdin and stdout: ``holding`` once bound (the freeze may start), then after
``replay`` (or the end of stdin) one line of JSON, what it did. Nothing polls: it sleeps in select().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import fcntl
import json
import os
import select
import socket
import struct
import sys
import time

READY = "holding"               # this holder's first line: bound, the freeze may start
REPLAY = "replay"               # the engine's word once the destination runs the container
HOLD_MAX_S = 300                # no replay by then: the migration is long over one way or the other
HOLD_MAX_PACKETS = 4096         # a bound on memory: of a flood during the freeze, the first ones are kept
RCVBUF = 4 << 20

# netlink / nfnetlink_log (linux/netfilter/nfnetlink_log.h)
NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET, NFULNL_MSG_CONFIG = 0, 1
NFULA_PACKET_HDR, NFULA_PAYLOAD = 1, 9
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_QTHRESH = 1, 2, 5
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
COPY_RANGE = 0xffff
NLA_TYPE_MASK = 0x3fff
CLONE_NEWNET = 0x40000000
SIOCGIFHWADDR = 0x8927
ETHERTYPES = {4: 0x0800, 6: 0x86DD}


def _attr(kind, data):
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def log_message(msg_type, group, attrs, flags=NLM_F_REQUEST, seq=0):
    """One nfnetlink_log message: nlmsghdr, nfgenmsg (the group number in network order), attributes."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, group) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_ULOG << 8) | msg_type, flags, seq, 0) + body


def bind_message(group):
    """Bind ``group`` to this socket: whole packets copied, each sent at once (the kernel batches by default, up to
    1 s), acknowledged."""
    return log_message(NFULNL_MSG_CONFIG, group, [_attr(NFULA_CFG_CMD, struct.pack("B", NFULNL_CFG_CMD_BIND)),
                                                  _attr(NFULA_CFG_MODE, struct.pack("!IBx", COPY_RANGE,
                                                                                    NFULNL_COPY_PACKET)),
                                                  _attr(NFULA_CFG_QTHRESH, struct.pack("!I", 1))],
                       flags=NLM_F_REQUEST | NLM_F_ACK, seq=1)


def whole(packet):
    """Whether ``packet`` is a whole IPv4 or IPv6 packet (not one cut to the copy range)."""
    version = ord(packet[:1]) >> 4 if packet else None
    if version == 4 and len(packet) >= 20:
        return len(packet) >= struct.unpack_from("!H", packet, 2)[0]
    if version == 6 and len(packet) >= 40:
        return len(packet) >= 40 + struct.unpack_from("!H", packet, 4)[0]
    return False


def parse_attrs(data):
    attrs, offset = {}, 0
    while offset + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, offset)
        if size < 4:
            break
        attrs[kind & NLA_TYPE_MASK] = data[offset + 4:offset + size]
        offset += size + (-size % 4)
    return attrs


def parse_messages(data):
    """The packets logged in one netlink datagram; acknowledgements pass; OSError on a netlink error."""
    packets, offset = [], 0
    while offset + 16 <= len(data):
        size, kind = struct.unpack_from("=IH", data, offset)
        if size < 16:
            break
        if kind == NLMSG_ERROR:
            err = struct.unpack_from("=i", data, offset + 16)[0]
            if err:
                raise OSError(-err, "nfnetlink_log: %s" % os.strerror(-err))
        elif kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
            packets.append(parse_attrs(data[offset + 20:offset + size]).get(NFULA_PAYLOAD, b""))
        offset += size + (-size % 4)
    return packets


def frame(dst_mac, src_mac, packet):
    """The Ethernet frame that carries an IP packet (v4 or v6, from its first nibble); None for anything else."""
    ethertype = ETHERTYPES.get(ord(packet[:1]) >> 4) if packet else None
    if ethertype is None:
        return None
    return dst_mac + src_mac + struct.pack("!H", ethertype) + packet


def enter_netns(pid):
    fd = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the network namespace of %d" % pid)
    finally:
        os.close(fd)


def hw_address(ifname):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))[18:24]
    finally:
        s.close()


class Holder(object):
    """Bound to log ``group`` in the network namespace of ``pid``; replays to ``ifname``'s MAC through ``bridge`` (a
    device of the namespace this holder starts in)."""

    def __init__(self, pid, ifname, bridge, group, clock=time.monotonic):
        self.clock = clock
        self.out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)     # this edge's namespace: before setns
        self.out.bind((bridge, 0))
        self.src_mac = self.out.getsockname()[4]
        enter_netns(pid)
        self.dst_mac = hw_address(ifname)
        self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.nl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.nl.bind((0, 0))
        self.nl.send(bind_message(group))
        parse_messages(self.nl.recv(4096))
        self.held, self.cut, self.dropped = [], 0, 0

    def take(self):
        """Every copy the kernel has logged by now."""
        while select.select([self.nl], [], [], 0)[0]:
            for packet in parse_messages(self.nl.recv(1 << 17)):
                if not whole(packet):
                    self.cut += 1
                elif len(self.held) < HOLD_MAX_PACKETS:
                    self.held.append((self.clock(), packet))
                else:
                    self.dropped += 1

    def replay(self):
        sent = 0
        for _t, packet in self.held:
            data = frame(self.dst_mac, self.src_mac, packet)
            if data is not None:
                self.out.send(data)
                sent += 1
        return sent

    def run(self, word):
        """Hold until ``word`` (a file descriptor: the engine's pipe) says ``replay`` or ends; what it did."""
        start = self.clock()
        outcome = "timeout"
        while self.clock() - start < HOLD_MAX_S:
            ready = select.select([self.nl, word], [], [], 1.0)[0]
            self.take()
            if word in ready:
                outcome = "replayed" if os.read(word, 64).strip() == REPLAY.encode() else "dropped"
                break
        sent = self.replay() if outcome == "replayed" else 0
        return {"outcome": outcome, "held": len(self.held), "sent": sent, "cut": self.cut, "over_limit": self.dropped,
                "first_s": round(self.held[0][0] - start, 4) if self.held else None,
                "last_s": round(self.held[-1][0] - start, 4) if self.held else None}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4:
        sys.stderr.write("usage: packet_hold.py PID IFNAME BRIDGE GROUP\n")
        return 2
    try:
        holder = Holder(int(argv[0]), argv[1], argv[2], int(argv[3]))
        sys.stdout.write(READY + "\n")
        sys.stdout.flush()
        res, rc = holder.run(sys.stdin.fileno()), 0
    except (OSError, ValueError, KeyError, struct.error) as e:
        res, rc = {"outcome": "failed", "error": "%s: %s" % (type(e).__name__, e)}, 1
    sys.stdout.write(json.dumps(res) + "\n")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
