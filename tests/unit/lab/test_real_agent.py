"""lab.agent: real: the AP configuration made runnable on a lab node, the CSA beacons read from real OdinAgent's
frames, the radio's state from a real agent's table, the option in the topology and the lab's click shim."""
import copy
import json

import pytest

from arnab_lab import collection_utils, lab as lab_mod, radio, real_agent, topology
from test_topology import inventory   # the unit tests' lab inventory

odin = collection_utils.load("odin")

C1, C2 = "02:c0:00:00:00:01", "02:c0:00:00:00:99"
# Frames real Click + OdinAgent (Wi-5 b7791948) sent on its serving radio's transmit path (RadiotapEncap -> to_dev)
# after `add_vap 02:c0:00:00:00:01 ... arnab` and `channel_switch_announcement 02:c0:00:00:00:01 00:1b:b3:00:00:01
# 1 arnab`: the first CSA beacon of the countdown (count 4), and a periodic beacon without CSA.
CSA_BEACON = bytes.fromhex(
    "00000e00048402006c0000000b008000000002c000000001001bb3000001001bb3000001000000000000000000000a000100000561726e"
    "6162010882040b0c12161824030106050400010000250300010432043048606c")
PLAIN_BEACON = bytes.fromhex(
    "00000e00048402006c0000000b008000000002c000000001001bb3000001001bb30000010000000000000000000064000100000561726e"
    "6162010882040b0c1216182403010605040001000032043048606c")


def rendered():
    return odin.render_agent_config(dict(ap_mac="02:a0:00:00:00:01", master_ip="10.77.0.10", agent_ip="10.77.0.11",
                                         channel=6))


def test_lab_config_idles_the_radios_and_sends_the_serving_radio_to_the_emulated_radio():
    text = real_agent.lab_config(rendered(), "10.77.0.1", 2899, "/run/x-lab/nodes/ap1/bssid_extra")
    assert "to_dev :: Socket(UDP, 10.77.0.1, 2899, CLIENT true);" in text
    assert "to_dev2 :: Discard;" in text and "to_host :: Discard;" in text
    assert "FromDevice" not in text and "FromHost" not in text and "ToDevice" not in text and "ToHost" not in text
    assert "from_dev :: Idle -> RadiotapDecap()" in text
    assert "$DEBUGFS /run/x-lab/nodes/ap1/bssid_extra," in text
    # what the tier-1 control path talks to is the configuration's own
    for kept in ('control :: ControlSocket("TCP", $CONTROL_PORT);', 'chatter :: ChatterSocket("TCP", $CHATTER_PORT);',
                 "odinsocket :: Socket(UDP, $MASTER_IP, $MASTER_PORT, CLIENT true);", "$MASTER_IP 10.77.0.10,",
                 "odinagent :: OdinAgent(HWADDR $HW_ADDR"):
        assert kept in text
    # and only the radio side changed: the parameters read back the same (the emulation's parser takes the first
    # UDP Socket for the master's: here that is the radio's, which the lab's file has in addition)
    lab_params, params = odin.parse_agent_config(text), odin.parse_agent_config(rendered())
    for key in ("master_ip", "master_port"):
        del lab_params[key], params[key]
    assert lab_params == dict(params, debugfs_path="/run/x-lab/nodes/ap1/bssid_extra")


def test_lab_config_refuses_a_graph_without_one_serving_radio():
    with pytest.raises(real_agent.RealAgentError, match="serving radio"):
        real_agent.lab_config(rendered().replace("to_dev ::", "tx ::"), "10.77.0.1", 2899, "/tmp/b")
    with pytest.raises(real_agent.RealAgentError, match="DEBUGFS"):
        real_agent.lab_config(rendered().replace("$DEBUGFS /sys", "$NOPE /sys"), "10.77.0.1", 2899, "/tmp/b")


def test_csa_beacon_of_real_odinagent():
    assert real_agent.parse_csa_beacon(CSA_BEACON) == {"sta_mac": C1, "bssid": "00:1b:b3:00:00:01", "channel": 1,
                                                       "count": 4}
    assert real_agent.parse_csa_beacon(PLAIN_BEACON) is None


@pytest.mark.parametrize("frame", [b"", b"\x00\x00", CSA_BEACON[:40], b"\x01" + CSA_BEACON[1:],
                                   CSA_BEACON[:14] + b"\x50" + CSA_BEACON[15:],     # a probe response
                                   CSA_BEACON[:-20] + b"\x25\x09\x00"])             # an element past the end
def test_other_frames_are_not_csa_beacons(frame):
    assert real_agent.parse_csa_beacon(frame) is None


INVENTORY = {
    "_meta": {"hostvars": {
        "ap1": {"ansible_host": "10.77.0.11", "ap_mac": "02:a0:00:00:00:01", "ap_channel": 6,
                "ap_position": [0, 0], "lab": {"agent": "real", "control": {"cidr": "10.77.0.0/24"}}},
        "ap2": {"ansible_host": "10.77.0.12", "ap_mac": "02:a0:00:00:00:02", "ap_channel": 1,
                "ap_position": [40, 0], "ap_agent_port": 7777},
        "client1": {"client_mac": C1, "client_position": [5, 0], "client_ap": "ap1"},
    }},
    "aps": {"hosts": ["ap1", "ap2"]},
    "clients": {"hosts": ["client1"]},
}


def test_real_agents_only_when_the_lab_says_so():
    assert radio.real_agents(INVENTORY) == {"ap1": ("10.77.0.11", 6777), "ap2": ("10.77.0.12", 7777)}
    emulated = copy.deepcopy(INVENTORY)
    emulated["_meta"]["hostvars"]["ap1"]["lab"]["agent"] = "emulated"
    assert radio.real_agents(emulated) == {}
    del emulated["_meta"]["hostvars"]["ap1"]["lab"]
    assert radio.real_agents(emulated) == {}


def vap(mac):
    return {mac: odin.Vap.build(mac, "10.78.0.100", ["arnab"])}


def test_the_radio_follows_a_real_agents_table():
    state, model = radio.state_from_inventory(INVENTORY)
    assert radio.link_ap(state, model, state.clients[C1]) == "ap1"      # plain WiFi before any agent
    assert radio.apply_agent_table(state, "ap2", {}, 1, 1.0) is True    # the agent answers: it runs
    assert state.agents == {"ap2"} and state.vaps[C1] == set()
    assert radio.apply_agent_table(state, "ap2", {}, 1, 1.1) is False
    # upper-case MACs as real OdinAgent prints them; an unknown station is not the radio's business
    table = dict((m.upper(), v) for m, v in dict(vap(C1), **vap(C2)).items())
    assert radio.apply_agent_table(state, "ap1", table, 6, 1.2) is True
    assert state.vaps[C1] == {"ap1"} and C2 not in state.vaps
    assert radio.link_ap(state, model, state.clients[C1]) == "ap1"
    assert radio.apply_agent_table(state, "ap1", {}, 6, 1.3) is True
    assert state.vaps[C1] == set() and radio.link_ap(state, model, state.clients[C1]) is None
    assert radio.apply_agent_table(state, "ap1", {}, 11, 1.4) is True and state.aps["ap1"].channel == 11
    assert radio.apply_agent_table(state, "ap1", {}, 0, 1.5) is False and state.aps["ap1"].channel == 11
    assert [(e["event"], e.get("ap")) for e in state.events] == [
        ("agent_seen", "ap2"), ("agent_seen", "ap1"), ("vap_add", "ap1"), ("vap_remove", "ap1"),
        ("ap_channel", "ap1")]


def test_a_real_agents_csa_beacons_schedule_one_switch():
    state, model = radio.state_from_inventory(INVENTORY)
    radio.apply_agent_table(state, "ap1", vap(C1), 6, 0.0)
    countdown = [dict(real_agent.parse_csa_beacon(CSA_BEACON), count=c) for c in (4, 3, 2, 1, 0)]
    ok, reason = radio.agent_csa(state, model, "ap1", countdown[0], 100, 10.0)
    assert ok, reason
    client = state.clients[C1]
    assert client.switch_at == pytest.approx(10.4) and client.switch_channel == 1   # 4 x the agent's interval
    for beacon in countdown[1:]:                                                    # the rest of the burst
        assert radio.agent_csa(state, model, "ap1", beacon, 100, 10.0)[0] is False
    assert client.switch_at == pytest.approx(10.4)
    radio.advance(state, model, 10.6)
    assert client.channel == 1 and client.switch_at is None
    assert radio.agent_csa(state, model, "ap1", dict(countdown[0], sta_mac=C2), 100, 11.0)[0] is False


def test_lab_agent_option_in_the_topology():
    emulated = topology.from_inventory(inventory())
    assert emulated.agent == "emulated"
    real = inventory()
    for hv in real["_meta"]["hostvars"].values():
        hv["lab"]["agent"] = "real"
    assert topology.from_inventory(real).agent == "real"
    # an emulated lab's fingerprint is what it was before the option existed; real mode is another lab
    assert "agent" not in json.loads(emulated.fingerprint())
    assert topology.from_inventory(real).fingerprint() != emulated.fingerprint()
    for hv in real["_meta"]["hostvars"].values():
        hv["lab"]["agent"] = "Click"
    with pytest.raises(topology.TopologyError, match="lab.agent 'Click'"):
        topology.from_inventory(real)


def test_real_mode_without_click_is_refused(tmp_path, monkeypatch):
    inv = inventory()
    for hv in inv["_meta"]["hostvars"].values():
        hv["lab"]["agent"] = "real"
        hv["lab"]["click"] = str(tmp_path / "no-click")
    with pytest.raises(lab_mod.LabError, match="make click"):
        lab_mod.real_click(topology.from_inventory(inv))
    click = tmp_path / "click"
    click.write_text("#!/bin/sh\n")
    click.chmod(0o755)
    for hv in inv["_meta"]["hostvars"].values():
        hv["lab"]["click"] = str(click)
    assert lab_mod.real_click(topology.from_inventory(inv)) == str(click)


def test_the_real_click_shim(tmp_path, monkeypatch):
    inv = inventory()
    click = tmp_path / "click"
    click.write_text("#!/bin/sh\n")
    click.chmod(0o755)
    for hv in inv["_meta"]["hostvars"].values():
        hv["lab"].update(agent="real", click=str(click))
    topo = topology.from_inventory(inv)
    monkeypatch.setattr(lab_mod, "node_dirs", lambda t, n: {"run": str(tmp_path / n), "state": str(tmp_path)})
    (tmp_path / "ap1" / "bin").mkdir(parents=True)
    lab_mod._install_click_shim(topo, topo.nodes["ap1"])
    shim = (tmp_path / "ap1" / "bin" / "click").read_text()
    assert "exec %s -q" % click in shim
    assert ("-m arnab_lab.real_agent --click %s --config \"$1\" --radio 10.77.0.1:2899 \\\n    --node-dir %s "
            "--name ap1" % (click, tmp_path / "ap1")) in shim
    assert "hostapd_cli.log" in (tmp_path / "ap1" / "bin" / "hostapd_cli").read_text()
