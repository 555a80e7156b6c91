"""The packet holder (module_utils/packet_hold.py): its netlink messages, and the whole hold and replay for real in
network namespaces of its own (an edge with a bridge, a frozen source and a restored copy with the same address)."""
import json
import os
import select
import struct
import subprocess
import sys
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu
from ansible_collections.arnab.testbed.plugins.module_utils import packet_hold as ph

HOLDER = ph.__file__.replace(".pyc", ".py")


def _packet_message(payload):
    attrs = [ph._attr(ph.NFULA_PACKET_HDR, struct.pack("!HBx", 0x0800, 1)), ph._attr(ph.NFULA_PAYLOAD, payload)]
    return ph.log_message(ph.NFULNL_MSG_PACKET, criu.HOLD_GROUP, attrs)


def _ipv4(payload):
    return struct.pack("!BBH", 0x45, 0, 20 + len(payload)) + b"\0" * 16 + payload


def test_the_bind_message():
    bind = ph.bind_message(7)
    size, kind, flags = struct.unpack_from("=IHH", bind)
    assert size == len(bind) and kind == (4 << 8) | 1 and flags == ph.NLM_F_REQUEST | ph.NLM_F_ACK
    assert bind[16:20] == b"\x00\x00\x00\x07"               # nfgenmsg: AF_UNSPEC, version 0, group 7 (big endian)
    assert ph.parse_attrs(bind[20:]) == {ph.NFULA_CFG_CMD: b"\x01",
                                         ph.NFULA_CFG_MODE: b"\x00\x00\xff\xff\x02\x00",    # 65535 bytes, whole packets
                                         ph.NFULA_CFG_QTHRESH: b"\x00\x00\x00\x01"}         # each packet at once


def test_packets_acks_and_errors_in_one_datagram():
    ack = struct.pack("=IHHII", 36, ph.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", 0) + b"\0" * 16
    one, two = _ipv4(b"abc"), _ipv4(b"x" * 71)     # odd sizes: the attributes' padding
    assert ph.parse_messages(ack + _packet_message(one) + _packet_message(two)) == [one, two]
    error = struct.pack("=IHHII", 36, ph.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -16) + b"\0" * 16
    with pytest.raises(OSError, match="busy"):
        ph.parse_messages(error)


def test_only_whole_ip_packets_are_kept():
    assert ph.whole(_ipv4(b"data")) and not ph.whole(_ipv4(b"data")[:-1])
    v6 = struct.pack("!IHBB", 0x60000000, 4, 17, 64) + b"\0" * 32 + b"data"
    assert ph.whole(v6) and not ph.whole(v6[:-1])
    assert not ph.whole(b"") and not ph.whole(b"\x45") and not ph.whole(b"\x10" * 40)


def test_frame_by_ip_version():
    dst, src = b"\x02" * 6, b"\x04" * 6
    assert ph.frame(dst, src, b"\x45rest") == dst + src + b"\x08\x00\x45rest"
    assert ph.frame(dst, src, b"\x60rest")[12:14] == b"\x86\xdd"
    assert ph.frame(dst, src, b"\x10junk") is None and ph.frame(dst, src, b"") is None


# ---- for real -------------------------------------------------------------------------------------------------
MAC = "02:ab:00:00:00:50"
ADDRESS = "192.0.2.50"
PORT = 9999
# a UDP listener: each datagram on a line of stdout
LISTENER = r"""
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
os.write(1, b"ready\n")
while True:
    os.write(1, s.recv(2048) + b"\n")
"""


class Lab(object):
    """Namespaces EDGE (bridge br-data 192.0.2.1, ports va and vc), SRC (the frozen source, the inbound-only lock
    loaded) and DST (the restored copy), SRC and DST with the same MAC and address, each with a UDP listener."""

    def __init__(self):
        tag = "arnab-ut-hold-%d" % os.getpid()
        self.edge, self.src, self.dst = tag + "-edge", tag + "-src", tag + "-dst"
        self.procs = []

    def start(self):
        for ns in (self.edge, self.src, self.dst):
            self.sh("ip", "netns", "add", ns)
            # no IPv6: its neighbour discovery would reach the lock too, and the tests count packets
            self.sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1")
        self.sh("ip", "-n", self.edge, "link", "add", "br-data", "type", "bridge")
        for ns, port in ((self.src, "va"), (self.dst, "vc")):
            self.sh("ip", "-n", self.edge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.sh("ip", "-n", self.edge, "link", "set", port, "master", "br-data", "up")
            self.sh("ip", "-n", ns, "link", "set", "eth0", "address", MAC, "up")
            self.sh("ip", "-n", ns, "addr", "add", ADDRESS + "/24", "dev", "eth0")
        self.sh("ip", "-n", self.edge, "addr", "add", "192.0.2.1/24", "dev", "br-data")
        self.sh("ip", "-n", self.edge, "link", "set", "br-data", "up")
        # the copies go out as they came in: this sender's checksums must be whole, as a NIC's are (with TX offload a
        # local sender leaves them to the hardware)
        self.sh("ip", "netns", "exec", self.edge, "ethtool", "-K", "br-data", "tx", "off")
        self.sh("ip", "-n", self.edge, "neigh", "replace", ADDRESS, "lladdr", MAC, "dev", "br-data")
        self.move_to("va")
        self.sh("ip", "netns", "exec", self.src, "nft", "-f", "-", data=criu.INBOUND_LOCK_RULES)
        self.src_listener = self.listen(self.src)
        self.dst_listener = self.listen(self.dst)

    @staticmethod
    def sh(*argv, **kw):
        proc = subprocess.run(list(argv), input=kw.get("data"), text=True, capture_output=True, check=False)
        assert proc.returncode == 0, (argv, proc.stderr)

    def move_to(self, port):
        """What the restore's gratuitous ARP does to the bridge: the container's MAC is behind ``port`` now."""
        self.sh("bridge", "-n", self.edge, "fdb", "replace", MAC, "dev", port, "master", "static")

    def listen(self, ns):
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, str(PORT)],
                                stdout=subprocess.PIPE)
        self.procs.append(proc)
        assert os.read(proc.stdout.fileno(), 6) == b"ready\n"
        return proc

    def send(self, *words):
        script = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "for w in sys.argv[1:]: s.sendto(w.encode(), (%r, %d))\n" % (ADDRESS, PORT))
        self.sh("ip", "netns", "exec", self.edge, sys.executable, "-c", script, *words)

    @staticmethod
    def heard(listener, wait=0.5):
        """What ``listener`` received within ``wait`` seconds (and before)."""
        time.sleep(wait)
        data = b""
        while select.select([listener.stdout], [], [], 0)[0]:
            chunk = os.read(listener.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        return data.decode().split()

    def hold(self):
        """The holder, started in the edge's namespace as the engine starts it on the source edge: its first line
        says it is bound."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.edge, sys.executable, "-I", "-S", HOLDER,
                                 str(self.src_listener.pid), "eth0", "br-data", str(criu.HOLD_GROUP)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout.readline() == ph.READY + "\n"
        return proc

    def close(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for ns in (self.edge, self.src, self.dst):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("network namespaces, nftables and NFQUEUE need root")
    lab = Lab()
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def test_what_the_frozen_source_is_sent_reaches_the_restored_copy_in_order(lab):
    holder = lab.hold()
    lab.send("one", "two", "three")
    assert lab.heard(lab.src_listener) == [] and lab.heard(lab.dst_listener, 0) == []     # held, not delivered
    lab.move_to("vc")
    out, _err = holder.communicate(ph.REPLAY + "\n", timeout=10)
    assert holder.returncode == 0
    res = json.loads(out)
    assert res["outcome"] == "replayed" and res["held"] == 3 and res["sent"] == 3 and res["cut"] == 0
    assert lab.heard(lab.dst_listener) == ["one", "two", "three"] and lab.heard(lab.src_listener, 0) == []


def test_the_end_of_its_input_drops_what_was_held(lab):
    """An abort, or the engine gone: the engine's pipe closes."""
    holder = lab.hold()
    lab.send("lost")
    assert lab.heard(lab.src_listener) == []
    out, _err = holder.communicate("", timeout=10)
    res = json.loads(out)
    assert res["outcome"] == "dropped" and res["held"] == 1 and res["sent"] == 0
    lab.move_to("vc")
    assert lab.heard(lab.dst_listener) == [] and lab.heard(lab.src_listener, 0) == []


def test_without_a_holder_the_lock_drops_as_before(lab):
    lab.send("nobody")
    assert (lab.heard(lab.src_listener), lab.heard(lab.dst_listener, 0)) == ([], [])


def test_a_holder_that_cannot_start_says_why():
    if os.geteuid() != 0:
        pytest.skip("AF_PACKET needs root")
    proc = subprocess.run([sys.executable, "-I", "-S", HOLDER, str(2 ** 22 + 1), "eth0", "lo", str(criu.HOLD_GROUP)],
                          capture_output=True, text=True, timeout=30, check=False)
    res = json.loads(proc.stdout)
    assert proc.returncode == 1 and res["outcome"] == "failed" and "No such file" in res["error"]
