"""The emulated radio's pure logic: path loss, traces, links, CSA timing, air flows, requests."""
import pytest

from arnab_lab import radio

C1 = "02:c0:00:00:00:01"
INVENTORY = {
    "_meta": {"hostvars": {
        "ap1": {"ap_mac": "02:a0:00:00:00:01", "ap_channel": 6, "ap_position": [0, 0]},
        "ap2": {"ap_mac": "02:a0:00:00:00:02", "ap_channel": 1, "ap_position": [40, 0]},
        "client1": {"client_mac": C1, "client_position": [5, 0], "client_ap": "ap1",
                    "lab": {"radio": {"channel_switch_delay_ms": 100}}},
    }},
    "aps": {"hosts": ["ap1", "ap2"]},
    "clients": {"hosts": ["client1"]},
}


@pytest.fixture
def lab():
    return radio.state_from_inventory(INVENTORY)


def ap_mac(n):
    return "02:a0:00:00:00:0%d" % n


def test_inventory_and_path_loss(lab):
    state, model = lab
    assert state.clients[C1].channel == 6   # tuned to its inventory AP's channel
    assert radio.rssi(model, (0, 0), (5, 0)) == pytest.approx(-41.0, abs=0.1)
    assert radio.rssi(model, (0, 0), (0, 0.2)) == radio.rssi(model, (0, 0), (1, 0))  # clamped at 1 m
    assert radio.rssi(model, (0, 0), (35, 0)) < radio.rssi(model, (0, 0), (5, 0))


def test_position_along_trace():
    trace = [(0, 0, 0), (10, 40, 0), (20, 40, 20)]
    assert radio.position_at(trace, 5, None) == (20, 0)
    assert radio.position_at(trace, 15, None) == (40, 10)
    assert radio.position_at(trace, 99, None) == (40, 20)
    assert radio.position_at([], 3, (1, 2)) == (1, 2)


def test_link_needs_vap_and_channel(lab):
    state, model = lab
    assert radio.links(state, model) == {C1: "ap1"}         # before Odin: plain WiFi to its inventory AP
    radio.handle(state, model, {"op": "hello", "ap_mac": ap_mac(1)}, 0)
    assert radio.links(state, model) == {C1: None}          # ap1 runs an Odin agent now: it needs a vAP
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(2), "sta_mac": C1}, 0)
    assert radio.links(state, model) == {C1: None}          # Odin manages it: ap2 holds it, but on channel 1
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    assert radio.links(state, model) == {C1: "ap1"}
    radio.handle(state, model, {"op": "vap_remove", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    assert radio.links(state, model) == {C1: None}


def test_a_client_without_inventory_ap_has_no_link_before_odin():
    inventory = {"_meta": {"hostvars": dict(INVENTORY["_meta"]["hostvars"])}, "aps": INVENTORY["aps"],
                 "clients": INVENTORY["clients"]}
    inventory["_meta"]["hostvars"]["client1"] = {"client_mac": C1, "client_position": [5, 0], "client_channel": 6}
    state, model = radio.state_from_inventory(inventory)
    assert radio.links(state, model) == {C1: None}


def test_out_of_range_means_no_link(lab):
    state, model = lab
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    radio.handle(state, model, {"op": "move", "client": "client1", "position": [2000, 0]}, 0)
    assert radio.links(state, model) == {C1: None}


def _switch_to_ap2(state, model):
    for n in (1, 2):
        radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(n), "sta_mac": C1}, 0)
    reply = radio.handle(state, model, {"op": "csa", "ap_mac": ap_mac(1), "sta_mac": C1, "channel": 1,
                                        "count": 4, "beacon_interval_ms": 100}, 10.0)
    assert reply["ok"]
    radio.advance(state, model, 10.39)
    assert radio.links(state, model) == {C1: "ap1"}          # countdown: still on channel 6
    assert radio.held(state, model) == []


def test_csa_countdown_then_switch_delay_without_link_when_frames_are_dropped(lab):
    state, model = lab
    model.hold_during_switch = False
    _switch_to_ap2(state, model)
    radio.advance(state, model, 10.41)
    assert radio.links(state, model) == {C1: None}           # switching: link down
    assert radio.held(state, model) == []
    assert radio.air_flows(state, model) == [radio.openflow.Flow("", "drop", radio.AIR_COOKIE, 0)]
    radio.advance(state, model, 10.51)
    assert state.clients[C1].channel == 1
    assert radio.links(state, model) == {C1: "ap2"}
    events = [e["event"] for e in state.events]
    assert events[-3:] == ["csa_received", "channel_switch_start", "channel_switch_done"]


def test_csa_countdown_then_switch_delay_with_frames_held(lab):
    """By default a switching client's frames wait (its TX queue stopped, the AP buffering) and the air
    already leads to the AP of the new channel, where they go when the switch ends."""
    state, model = lab
    _switch_to_ap2(state, model)
    radio.advance(state, model, 10.41)
    assert state.clients[C1].channel is None
    assert radio.links(state, model) == {C1: "ap2"}
    assert radio.held(state, model) == [C1]
    assert radio.snapshot(state, model)["clients"]["client1"]["held"] is True
    assert any(f.match == {"in_port": "client1"} and f.actions == "output:ap2" for f in radio.air_flows(state, model))
    radio.advance(state, model, 10.51)
    assert state.clients[C1].channel == 1
    assert radio.held(state, model) == [] and radio.links(state, model) == {C1: "ap2"}


def test_a_switch_toward_a_channel_without_the_vap_holds_frames_without_a_link(lab):
    state, model = lab
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    radio.handle(state, model, {"op": "csa", "ap_mac": ap_mac(1), "sta_mac": C1, "channel": 1, "count": 1,
                                "beacon_interval_ms": 100}, 0)
    radio.advance(state, model, 0.15)
    assert radio.links(state, model) == {C1: None} and radio.held(state, model) == [C1]


def test_csa_from_an_ap_the_client_does_not_hear_is_refused(lab):
    state, model = lab
    reply = radio.handle(state, model, {"op": "csa", "ap_mac": ap_mac(2), "sta_mac": C1, "channel": 6}, 0)
    assert not reply["ok"] and "does not hear" in reply["error"]


def test_air_flows_and_gapless_changes(lab):
    state, model = lab
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    flows = radio.air_flows(state, model)
    specs = sorted(f.spec() for f in flows)
    assert "cookie=0xa1a1,table=0,priority=100,in_port=client1,actions=output:ap1" in specs
    assert "cookie=0xa1a1,table=0,priority=100,in_port=ap1,dl_dst=02:c0:00:00:00:01,actions=output:client1" in specs
    assert any("dl_dst=01:00:00:00:00:00/01:00:00:00:00:00" in s and "output:client1" in s for s in specs)
    # moving the link from ap1 to ap2: the client's uplink flow is replaced by an add, never deleted
    radio.handle(state, model, {"op": "tune", "client": "client1", "channel": 1}, 0)
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(2), "sta_mac": C1}, 0)
    to_add, to_delete = radio.flow_changes(flows, radio.air_flows(state, model))
    assert any(f.match == {"in_port": "client1"} and f.actions == "output:ap2" for f in to_add)
    assert not any(f.match == {"in_port": "client1"} for f in to_delete)
    assert any(f.match.get("in_port") == "ap1" for f in to_delete)


def test_rssi_poll_and_scan_requests(lab):
    state, model = lab
    radio.handle(state, model, {"op": "hello", "ap_mac": ap_mac(1)}, 0)
    r = radio.handle(state, model, {"op": "rssi", "ap_mac": ap_mac(2), "sta_mac": C1, "channel": 6}, 0)
    assert r["rssi"] == pytest.approx(-66.3, abs=0.1)      # ap2's scanning radio on the client's channel
    assert radio.handle(state, model, {"op": "rssi", "ap_mac": ap_mac(2), "sta_mac": C1}, 0)["rssi"] is None
    polled = radio.handle(state, model, {"op": "poll", "ap_mac": ap_mac(1)}, 0)["clients"]
    assert polled[0]["sta_mac"] == C1 and polled[0]["served"] is False
    assert radio.handle(state, model, {"op": "associate", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)["newly"]
    assert not radio.handle(state, model, {"op": "associate", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)["newly"]
    assert radio.handle(state, model, {"op": "nope", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)["ok"] is False


def test_air_switch_adapter_commands(lab):
    state, model = lab
    calls = []
    air = radio.AirSwitch("unix:/tmp/br-air.mgmt")
    air._run = lambda argv, stdin=None: calls.append((argv, stdin))
    state.vaps[C1] = set()   # Odin manages the client and no agent holds its vAP: no link
    air.sync(radio.air_flows(state, model))
    argv, stdin = calls[0]
    assert argv == ["ovs-ofctl", "-O", "OpenFlow13", "add-flows", "unix:/tmp/br-air.mgmt", "-"]
    assert stdin == "add cookie=0xa1a1,table=0,priority=0,actions=drop\n"
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    air.sync(radio.air_flows(state, model))
    radio.handle(state, model, {"op": "vap_remove", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    air.sync(radio.air_flows(state, model))
    assert calls[2][1].count("delete_strict cookie=0xa1a1/-1,table=0,priority=100") == 2
    air.sync(radio.air_flows(state, model))
    assert len(calls) == 3   # nothing changed: no ovs-ofctl at all


def test_scheduled_switches_are_applied_early_by_the_measured_flow_latency(lab):
    state, model = lab

    class SlowAir(radio.AirSwitch):
        def _run(self, argv, stdin=None):
            radio.time.sleep(0.03)   # as if ovs-ofctl took 30 ms

    the_radio = radio.Radio(state, model, SlowAir("unix:/nowhere"))
    for n in (1, 2):
        the_radio.request({"op": "vap_add", "ap_mac": ap_mac(n), "sta_mac": C1})
    assert 0.03 <= the_radio.lead <= 0.05
    now = the_radio.now()
    the_radio.request({"op": "csa", "ap_mac": ap_mac(1), "sta_mac": C1, "channel": 1, "count": 1,
                       "beacon_interval_ms": 200})
    # the nominal switch is at now + 0.2 s; the radio starts it `lead` earlier
    while state.clients[C1].channel == 6:
        the_radio.sync()
    started = [e for e in state.events if e["event"] == "channel_switch_start"][0]
    assert started["t"] == pytest.approx(now + 0.2, abs=0.02)
    assert the_radio.now() < now + 0.2


def test_hold_devices_and_commands():
    inventory = dict(INVENTORY)
    inventory["_meta"] = {"hostvars": dict(INVENTORY["_meta"]["hostvars"])}
    inventory["_meta"]["hostvars"]["client1"] = dict(inventory["_meta"]["hostvars"]["client1"],
                                                     lab={"prefix": "arnabq"})
    devices = radio.hold_devices(inventory)
    assert devices == {C1: [("arnabq-client1", "wlan0"), ("arnabq-air", "client1")]}
    assert radio.hold_devices(INVENTORY) == {}      # no lab prefix: nowhere to hold
    held = radio.hold_commands(devices[C1], True)
    assert held[0] == (["tc", "-n", "arnabq-air", "-force", "-batch", "-"],
                       "qdisc replace dev client1 root tbf rate 8kbit burst 1600 limit 8000000\n")
    assert held[1][0][2] == "arnabq-client1" and "dev wlan0" in held[1][1]
    assert "rate 10gbit" in radio.hold_commands(devices[C1], False)[0][1]
    frame = radio.kick_frame()
    assert len(frame) == 60 and frame[12:14] == b"\x88\xb5"


def test_air_switch_holds_before_flows_and_releases_after(lab):
    state, model = lab
    calls = []

    class Recorder(radio.AirSwitch):
        def _run(self, argv, stdin=None):
            calls.append("flows")

        def set_holds(self, macs, hold):
            if macs:
                calls.append(("hold" if hold else "release", macs))
                return 0.001
            return None

    air = Recorder("unix:/tmp/br-air.mgmt", hold_devices={C1: [("ns", "wlan0")]})
    _switch_to_ap2(state, model)
    air.sync(radio.air_flows(state, model), radio.held(state, model))
    calls.clear()
    radio.advance(state, model, 10.41)
    air.sync(radio.air_flows(state, model), radio.held(state, model))
    assert calls == [("hold", [C1]), "flows"]
    radio.advance(state, model, 10.51)
    calls.clear()
    air.sync(radio.air_flows(state, model), radio.held(state, model))
    assert calls == [("release", [C1])]             # the flows already lead to ap2
    assert air.timings["release"] == 0.001 and air.changed_holds == ([], [C1])


def test_air_switch_sends_flow_changes_over_its_openflow_connection(lab):
    state, model = lab
    sent, ran = [], []

    class FakeWire:
        def apply(self, to_add, to_delete):
            sent.append((to_add, to_delete))

    air = radio.AirSwitch("unix:/tmp/br-air.mgmt")
    air._run = lambda argv, stdin=None: ran.append(argv)
    air.wire, air.ports = FakeWire(), {"client1": "1", "ap1": "2", "ap2": "3"}
    radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    air.sync(radio.air_flows(state, model))
    assert ran == [] and len(sent) == 1
    specs = sorted(f.spec() for f in sent[0][0])
    assert "cookie=0xa1a1,table=0,priority=100,in_port=1,actions=output:2" in specs   # port names resolved
    assert air.installed == radio.air_flows(state, model)                             # kept by name
    air.ports = {}                                                                     # a name it cannot resolve
    radio.handle(state, model, {"op": "vap_remove", "ap_mac": ap_mac(1), "sta_mac": C1}, 0)
    air.sync(radio.air_flows(state, model))
    assert len(ran) == 1 and len(sent) == 1                                           # ovs-ofctl instead
