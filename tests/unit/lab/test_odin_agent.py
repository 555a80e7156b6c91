"""The emulated agent on 127.0.0.1, driven by the real ControlSocket client, with a real emulated radio."""
import socket
import threading
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlClient, ClickControlError
from arnab_lab import odin_agent, radio

from test_radio import C1, INVENTORY  # noqa: E402  (same lab description)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A radio (no OVS) and the agent of ap1 reporting to a UDP 'master' we listen on."""
    state, model = radio.state_from_inventory(INVENTORY)
    the_radio = radio.Radio(state, model, radio.AirSwitch(None))
    sock_path = str(tmp_path / "radio.sock")
    radio_server = radio.serve(the_radio, sock_path)
    threading.Thread(target=radio_server.serve_forever, daemon=True).start()

    master = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    master.bind(("127.0.0.1", 0))
    master.settimeout(5)
    config = tmp_path / "agent.cli"
    config.write_text(odin.render_agent_config(dict(
        ap_mac="02:a0:00:00:00:01", master_ip="127.0.0.1", master_port=master.getsockname()[1],
        agent_ip="127.0.0.1", control_port=free_port(), ping_interval=0.2, ssid="arnab")))
    agent, server = odin_agent.start(str(config), "127.0.0.1", sock_path, name="ap1")
    yield agent, server, master, the_radio
    odin_agent.stop(server)
    radio_server.shutdown()
    radio_server.server_close()
    master.close()


def client_for(server):
    return ClickControlClient("127.0.0.1", server.server_address[1], timeout=3)


def receive_until(master, prefix, limit=5.0):
    deadline = time.monotonic() + limit
    seen = []
    while time.monotonic() < deadline:
        text = master.recv(2048).decode()
        seen.append(text)
        if text.startswith(prefix):
            return text, seen
    raise AssertionError("no %r from the agent; got %r" % (prefix, seen))


def test_banner_version_and_handlers(lab):
    _agent, server, _master, _radio = lab
    with client_for(server) as agent:
        assert agent.banner == "Click::ControlSocket/1.3"
        assert agent.read("version") == agent.read(".version") == agent.read("0.version") == "2.1"
        assert agent.read("odinagent.channel") == "6\n"      # scalar reads end with a newline, as Click's
        assert agent.read("odinagent.interval") == "100\n"
        assert agent.read("odinagent.report_mean") == "0 0 -0\n"
        assert (agent.read("odinagent.name"), agent.read("odinagent.class")) == ("odinagent", "OdinAgent")
        assert agent.check_read("odinagent.table") and not agent.check_write("odinagent.table")
        assert agent.check_write("odinagent.add_vap") and not agent.check_read("odinagent.nope")
        with pytest.raises(ClickControlError) as info:
            agent.read("odinagent.channel", "extra")
        assert info.value.code == 590 and "does not take parameters" in info.value.message
        with pytest.raises(ClickControlError) as info:
            agent._command("CHECKREAD odinagent.add_vap")
        assert info.value.code == 511 and info.value.message == "Handler 'odinagent.add_vap' not readable"


def test_vap_lifecycle_and_errors(lab):
    agent_state, server, _master, the_radio = lab
    vap = odin.Vap.build(C1, "10.78.0.100", ["arnab"])
    with client_for(server) as agent:
        assert agent.read("odinagent.table") == ""
        agent.write("odinagent.add_vap", vap.to_line())
        assert agent.read("odinagent.table") == vap.to_line().upper().replace("ARNAB", "arnab") + "\n"
        assert odin.parse_table(agent.read("odinagent.table")) == {C1: vap}
        assert the_radio.state.vaps[C1] == {"ap1"}
        assert agent.read("odinagent.sta_rssi") == ""            # empty until an AP scan has run
        with pytest.raises(ClickControlError) as info:
            agent.write("odinagent.add_vap", vap.to_line())      # a duplicate is refused
        assert info.value.code == 520 and info.value.message == "Write handler 'odinagent.add_vap' error"
        with pytest.raises(ClickControlError) as info:
            agent.write("odinagent.add_vap", "not-a-mac 1.2.3.4 x arnab")
        assert info.value.code == 520 and info.value.message.splitlines()[1:] == [
            "STA_MAC: parse error", "VAP_BSSID: parse error"]
        agent.write("odinagent.remove_vap", C1)
        with pytest.raises(ClickControlError) as info:
            agent.write("odinagent.remove_vap", C1)
        assert info.value.code == 520 and info.value.message == "Write handler 'odinagent.remove_vap' error"
        for handler, code in (("nosuch.table", 510), ("odinagent.nosuch", 511), ("odinagent.table", 530)):
            with pytest.raises(ClickControlError) as info:
                agent.write(handler, "x")
            assert info.value.code == code
        with pytest.raises(ClickControlError) as info:
            agent.llrpc("odinagent#1")
        assert info.value.code == 501


def test_subscriptions_scan_and_stats(lab):
    _agent, server, master, _radio = lab
    with client_for(server) as agent:
        agent.write("odinagent.subscriptions", "1 7 00:00:00:00:00:00 signal 1 -90")
        assert agent.read("odinagent.subscriptions") == "sub_id 7 addr 00:00:00:00:00:00 stat signal rel 1 val -90\n"
        agent.write("odinagent.scan_client", C1 + " 6")
        assert agent.read("odinagent.scanning_flags") == "1 0 0\n"
        assert odin.parse_scan_client(agent.read("odinagent.scan_client")) == -41
        assert agent.read("odinagent.scanning_flags") == "0 0 0\n"
        agent.write("odinagent.scan_APs", "* 6")                 # the AP scan fills sta_rssi
        assert odin.parse_sta_rssi(agent.read("odinagent.sta_rssi")) == {C1: -41}
        agent.write("odinagent.add_vap", odin.Vap.build(C1, "10.78.0.100", "arnab").to_line())
        text, dummy = receive_until(master, "publish")
        assert text.startswith("publish %s 1 7:-41" % C1)
        stats = odin.parse_station_stats(agent.read("odinagent.rxstats"))
        assert stats[C1]["packets"] >= 1


def test_ping_probe_association_to_master(lab):
    _agent, server, master, _radio = lab
    assert receive_until(master, "ping")[0] == "ping\n"
    assert receive_until(master, "probe %s" % C1)[0].strip() == "probe %s" % C1
    with client_for(server) as agent:
        agent.write("odinagent.add_vap", odin.Vap.build(C1, "10.78.0.100", "arnab").to_line())
    assert receive_until(master, "association")[0].strip() == "association %s" % C1


def test_csa_reaches_the_radio(lab):
    _agent, server, _master, the_radio = lab
    with client_for(server) as agent:
        vap = odin.Vap.build(C1, "10.78.0.100", "arnab")
        agent.write("odinagent.add_vap", vap.to_line())
        agent.write("odinagent.channel_switch_announcement", odin.csa_args(vap, 1))
    events = [e["event"] for e in the_radio.state.events]
    assert "csa_received" in events
    deadline = time.monotonic() + 3
    while the_radio.state.clients[C1].channel != 1 and time.monotonic() < deadline:
        the_radio.sync()
        time.sleep(0.05)
    assert the_radio.state.clients[C1].channel == 1


def test_raw_protocol_framing(lab):
    """Speak the wire protocol by hand: WRITEDATA, CR-only line ends, escaped bytes, QUIT, HELP."""
    _agent, server, _master, _radio = lab
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=3) as sock:
        f = sock.makefile("rwb")
        assert f.readline() == b"Click::ControlSocket/1.3\r\n"
        f.write(b"WRITEDATA odinagent.debug 1\r\n1FROB\rREAD odinagent.\x01\xff\r\nQUIT\r\n")
        f.flush()
        assert f.readline() == b"200 Write handler 'odinagent.debug' OK\r\n"
        assert f.readline() == b"501 Command 'FROB' unimplemented\r\n"      # CR alone ends a line
        assert f.readline() == b"511 No handler named 'odinagent.^A\\377'\r\n"
        assert f.readline() == b"200 Goodbye!\r\n"
        assert f.readline() == b""                                            # QUIT closes
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=3) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(b"HELP\r\n")
        f.flush()
        lines = [f.readline() for _ in range(11)]
        assert lines[0] == b"200-Commands supported:\r\n" and lines[-1].startswith(b"200 QUIT")
