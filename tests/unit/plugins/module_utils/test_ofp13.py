"""OpenFlow 1.3 flow-mods on the wire: encoding, and a session against a minimal switch on loopback."""
import socket
import struct
import threading

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import ofp13, openflow


def test_flow_mod_add_encoding():
    flow = openflow.Flow("in_port=2,dl_type=0x0800,nw_src=10.78.0.100", "output:1", 0x0D1A02C000000001, 200)
    msg = ofp13.flow_mod(flow, ofp13.OFPFC_ADD, 7)
    version, msg_type, length, xid = struct.unpack("!BBHI", msg[:8])
    assert (version, msg_type, length, xid) == (4, 14, len(msg), 7)
    cookie, mask, table, command, dummy, dummy2, priority = struct.unpack("!QQBBHHH", msg[8:32])
    assert (cookie, mask, table, command, priority) == (0x0D1A02C000000001, 0, 0, 0, 200)
    match_type, match_len = struct.unpack("!HH", msg[48:52])
    assert match_type == 1 and match_len == 4 + 8 + 6 + 8   # in_port, eth_type, ipv4_src
    oxm = msg[52:52 + match_len - 4]
    assert oxm[:8] == struct.pack("!II", 0x80000004, 2)                     # in_port=2
    assert oxm[8:14] == struct.pack("!IH", 0x80000A02, 0x0800)              # eth_type
    assert oxm[14:] == struct.pack("!I", 0x80001604) + bytes([10, 78, 0, 100])
    instructions = msg[48 + 32:]                                            # match padded to 32 bytes
    assert instructions == struct.pack("!HH4xHHIH6x", 4, 24, 0, 16, 1, 0)
    assert len(msg) % 8 == 0


def test_masks_and_delete_strict_and_cookie_delete():
    flow = openflow.Flow("in_port=3,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "output:1,output:2", 0xA1A1, 90)
    msg = ofp13.flow_mod(flow, ofp13.OFPFC_DELETE_STRICT, 1)
    assert struct.unpack("!QQBB", msg[8:26])[1:] == (ofp13.ALL_ONES, 0, 4)
    assert struct.pack("!I", 0x8000070C) + bytes([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]) in msg   # masked eth_dst
    assert msg.endswith(b"\0" * 4) or len(msg) == 8 + 40 + 32     # no instructions on a delete
    prefix = openflow.Flow("dl_type=0x0806,arp_tpa=10.78.0.0/24", "drop", 1, 1)
    assert struct.pack("!I", 0x80002F08) + bytes([10, 78, 0, 0, 255, 255, 255, 0]) in ofp13.flow_mod(prefix, 0, 1)
    delete = ofp13.delete_cookie(0x7E57, 3)
    assert struct.unpack("!QQBB", delete[8:26]) == (0x7E57, ofp13.ALL_ONES, 0xFF, 3)


def test_encodable():
    assert ofp13.encodable(openflow.Flow("in_port=1,dl_type=0x0806,arp_spa=10.0.0.1", "output:2"))
    assert ofp13.encodable(openflow.Flow("", "drop"))
    assert not ofp13.encodable(openflow.Flow("in_port=ap,ip", "output:2"))          # port names: resolve first
    assert not ofp13.encodable(openflow.Flow("ip", "NORMAL"))
    assert not ofp13.encodable(openflow.Flow("tcp,tp_dst=80", "output:2"))


class MiniSwitch:
    """HELLO, then answers barriers; refuses flow-mods with priority 666 with an OFPT_ERROR."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, dummy = self.server.accept()
        conn.sendall(ofp13.header(ofp13.OFPT_HELLO, 8, 1))
        buffer = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 8 and len(buffer) >= struct.unpack("!H", buffer[2:4])[0]:
                length = struct.unpack("!H", buffer[2:4])[0]
                msg, buffer = buffer[:length], buffer[length:]
                msg_type, xid = msg[1], struct.unpack("!I", msg[4:8])[0]
                self.received.append(msg_type)
                if msg_type == ofp13.OFPT_FLOW_MOD and struct.unpack("!H", msg[30:32])[0] == 666:
                    conn.sendall(ofp13.header(ofp13.OFPT_ERROR, 12, xid) + struct.pack("!HH", 5, 6))
                elif msg_type == ofp13.OFPT_BARRIER_REQUEST:
                    conn.sendall(ofp13.header(ofp13.OFPT_ECHO_REQUEST, 8, 99) + ofp13.header(21, 8, xid))


def test_session_sends_changes_then_a_barrier_and_reports_refusals():
    switch = MiniSwitch()
    conn = ofp13.Connection("tcp:127.0.0.1:%d" % switch.port).connect()
    conn.apply([openflow.Flow("in_port=1", "output:2", 5, 100)], [openflow.Flow("in_port=2", "output:1", 5, 100)])
    assert switch.received[:4] == [ofp13.OFPT_HELLO, 14, 14, 20]
    with pytest.raises(ofp13.WireError, match="error type 5 code 6"):
        conn.apply([openflow.Flow("in_port=1", "output:2", 5, 666)], [])
    conn.close()


def test_flow_table_uses_the_wire_and_falls_back_to_ovs_ofctl():
    ran = []

    def run(argv, stdin=None):
        ran.append(argv)
        return 0, "", ""

    switch = MiniSwitch()
    target = "tcp:127.0.0.1:%d" % switch.port
    table = openflow.FlowTable(run, target, "1.3", wire=ofp13)
    assert table.connect()
    flows = [openflow.Flow("in_port=1,dl_type=0x0800,nw_dst=10.0.0.1", "output:2", 5, 100)]
    table.apply([openflow.batch_command(target, flows, [], "1.3")])
    assert ran == []                                                   # went over the wire
    table.apply([openflow.batch_command(target, [openflow.Flow("tcp,tp_dst=80", "output:2", 5, 1)], [], "1.3")])
    assert len(ran) == 1 and "add-flows" in ran[0]                     # not encodable: ovs-ofctl
    table.apply([openflow.delete_cookie_command(target, 5, "1.3")])
    assert len(ran) == 1
    table.apply([openflow.batch_command(target, [openflow.Flow("in_port=1", "output:2", 5, 666)], [], "1.3")])
    assert len(ran) == 2 and table.connection is None                  # refused: closed, ovs-ofctl instead
    assert not openflow.FlowTable(run, target, "1.0", wire=ofp13).connect()   # 1.0: always ovs-ofctl
