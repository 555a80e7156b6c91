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


# -- signal replay (issue 12): what each AP hears of a client as a timeline --------------------------------------

def _signal(state, model, now, timeline):
    return radio.handle(state, model, {"op": "signal", "client": "client1", "signal": timeline}, now)


def test_signal_timeline_is_interpolated_from_the_request_and_held_after_its_end(lab):
    state, model = lab
    assert _signal(state, model, 100.0, [[0, {"ap1": -45, "ap2": -80}], [10, {"ap1": -75, "ap2": -50}]])["ok"]
    client, ap1, ap2 = state.clients[C1], state.aps["ap1"], state.aps["ap2"]
    assert radio.hears(model, ap1, client) == -45.0          # started at the request's time
    radio.advance(state, model, 105.0)
    assert radio.hears(model, ap1, client) == -60.0
    assert radio.hears(model, ap2, client, channel=6) == -65.0   # ap2 scanning on the client's channel
    assert radio.hears(model, ap2, client) is None               # ... but it serves channel 1
    radio.advance(state, model, 500.0)
    assert radio.hears(model, ap1, client) == -75.0           # held after the last point
    assert radio.signal_at([(2, {"a": -50.0}), (4, {"a": -60.0})], 0) == {"a": -50.0}


def test_signal_below_the_sensitivity_and_unnamed_aps_hear_nothing(lab):
    state, model = lab
    for n in (1, 2):
        radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(n), "sta_mac": C1}, 0)
    _signal(state, model, 0, [[0, {"ap1": -60}], [10, {"ap1": -95}]])
    client = state.clients[C1]
    assert radio.hears(model, state.aps["ap2"], client, channel=6) is None   # not named: nothing, whatever the model
    assert radio.links(state, model) == {C1: "ap1"}
    radio.advance(state, model, 9.0)          # -91.5 dBm < -85
    assert radio.hears(model, state.aps["ap1"], client) is None
    assert radio.links(state, model) == {C1: None}
    reply = radio.handle(state, model, {"op": "csa", "ap_mac": ap_mac(1), "sta_mac": C1, "channel": 1}, 9.0)
    assert not reply["ok"] and "does not hear" in reply["error"]
    polled = radio.handle(state, model, {"op": "poll", "ap_mac": ap_mac(1)}, 9.0)["clients"]
    assert polled == []


def test_signal_steers_the_link_and_the_snapshot(lab):
    state, model = lab
    for n in (1, 2):
        radio.handle(state, model, {"op": "vap_add", "ap_mac": ap_mac(n), "sta_mac": C1}, 0)
    radio.handle(state, model, {"op": "tune", "client": "client1", "channel": 1}, 0)
    assert radio.links(state, model) == {C1: "ap2"}          # the model: ap2 is 35 m away, still heard
    _signal(state, model, 1.0, [[0, {"ap1": -50, "ap2": -90}], [4, {"ap1": -50, "ap2": -60}]])
    assert radio.links(state, model) == {C1: None}           # ap2 no longer hears it
    radio.advance(state, model, 3.0)
    assert radio.links(state, model) == {C1: "ap2"}
    snap = radio.snapshot(state, model, 3.0)["clients"]["client1"]
    assert snap["rssi"] == {"ap1": -50.0, "ap2": -75.0}
    assert snap["heard"] == {"ap1": -50.0, "ap2": -75.0}
    assert snap["replay"] == {"kind": "signal", "elapsed_s": 2.0, "length_s": 4.0}
    assert [e["event"] for e in state.events][-1] == "signal"


def test_move_trace_and_reset_clear_the_signal(lab):
    state, model = lab
    client, ap1 = state.clients[C1], state.aps["ap1"]
    _signal(state, model, 0, [[0, {"ap1": -80}]])
    assert radio.handle(state, model, {"op": "move", "client": "client1", "position": [5, 0]}, 1)["ok"]
    assert not client.signal and radio.hears(model, ap1, client) == pytest.approx(-41.0, abs=0.1)
    _signal(state, model, 0, [[0, {"ap1": -80}]])
    radio.handle(state, model, {"op": "trace", "client": "client1", "trace": [[0, 10, 0], [10, 20, 0]]}, 5)
    assert not client.signal and radio.snapshot(state, model, 10)["clients"]["client1"]["replay"]["kind"] == "trace"
    radio.advance(state, model, 10)
    assert client.position == (15, 0)
    _signal(state, model, 0, [[0, {"ap1": -80}]])
    assert not client.trace                                  # a signal replay stops a trace
    radio.handle(state, model, {"op": "reset", "client": "client1"}, 20)
    assert (client.position, client.signal, client.trace) == ((5, 0), [], [])
    assert radio.snapshot(state, model)["clients"]["client1"]["replay"] is None


@pytest.mark.parametrize("timeline, error", [
    ([[0, {"ap9": -50}]], "ap9 is not an AP of the inventory (ap1, ap2)"),
    ([[0, {"ap1": -50}], [0, {"ap1": -60}]], "point 2 (t=0): times must increase"),
    ([[0, {"ap1": "loud"}]], "'loud' is not a level in dBm"),
    ([[0, {"ap1": -50}], [5, {"ap2": -50}]], "every point names the same APs"),
    ([[0, {"ap1": 5}]], "5 is not a level in dBm"),
    ([[-1, {"ap1": -50}]], "times start at 0"),
    ([], "no points"),
    ([[0]], "is not [t_s, {ap: dBm, ...}]"),
])
def test_bad_signal_requests_change_nothing(lab, timeline, error):
    state, model = lab
    the_radio = radio.Radio(state, model, radio.AirSwitch(None))
    reply = the_radio.request({"op": "signal", "client": "client1", "signal": timeline})
    assert reply["ok"] is False and error in reply["error"] and "signal of client1" in reply["error"]
    assert state.clients[C1].signal == [] and [e["event"] for e in state.events if e["event"] == "signal"] == []


def test_replay_starts_a_scenario_at_once_and_check_changes_nothing(lab):
    state, model = lab
    scenario = {"duration_s": 20, "clients": {"client1": {"signal": [[0, {"ap1": -50, "ap2": -70}]]}}}
    reply = radio.handle(state, model, {"op": "replay", "scenario": scenario, "source": "s.yml", "check": True}, 3)
    assert reply["ok"] and reply["check"] and reply["requests"] == [
        {"op": "signal", "client": "client1", "signal": [[0.0, {"ap1": -50.0, "ap2": -70.0}]]}]
    assert state.clients[C1].signal == []
    reply = radio.handle(state, model, {"op": "replay", "scenario": scenario, "source": "s.yml"}, 3)
    assert reply["ok"] and state.clients[C1].signal and state.clients[C1].signal_start == 3
    with pytest.raises(ValueError, match=r"s.yml: client client7: not a client of the inventory \(client1\)"):
        radio.handle(state, model, {"op": "replay", "scenario": {"duration_s": 1, "clients": {
            "client7": {"positions": [[0, 1, 1]]}}}, "source": "s.yml"}, 4)
    # `clients` limits a replay to some clients; one the file does not name goes back where the inventory puts it
    radio.handle(state, model, {"op": "move", "client": "client1", "position": [30, 0]}, 5)
    assert radio.handle(state, model, {"op": "replay", "scenario": scenario, "clients": []}, 6)["requests"] == []
    assert state.clients[C1].position == (30, 0)
    two = {"_meta": {"hostvars": dict(INVENTORY["_meta"]["hostvars"], client2={
        "client_mac": "02:c0:00:00:00:02", "client_position": [38, 0], "client_ap": "ap2"})},
        "aps": INVENTORY["aps"], "clients": {"hosts": ["client1", "client2"]}}
    state, model = radio.state_from_inventory(two)
    radio.handle(state, model, {"op": "move", "client": "client2", "position": [1, 1]}, 0)
    reply = radio.handle(state, model, {"op": "replay", "scenario": scenario}, 7)
    assert [(r["op"], r["client"]) for r in reply["requests"]] == [("signal", "client1"), ("reset", "client2")]
    assert state.clients["02:c0:00:00:00:02"].position == (38, 0)
