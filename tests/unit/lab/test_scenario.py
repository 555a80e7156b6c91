"""Scenarios as data (issue 12): loading and checking scenario files, the radio requests that start them, and the
mobility policy's predicted handoffs on the default scenarios."""
import copy
import os

import pytest
import yaml

from arnab_lab import odin_agent, scenario

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WALK = os.path.join(ROOT, "scenarios", "walk.yml")
NOISY = os.path.join(ROOT, "scenarios", "noisy.yml")
with open(os.path.join(ROOT, "inventories", "lab", "group_vars", "all", "ocs.yml")) as _f:
    LAB_POLICY = yaml.safe_load(_f)["ocs_mobility"]
WI5_POLICY = {}     # the policy's defaults: three triggers, then a scan
PERIOD = odin_agent.POLL_INTERVAL

# The lab as issue 12 wants it: three APs (ap3 on another channel), two edges, two clients with a service each.
HOSTVARS = {
    "ap1": {"ap_mac": "02:a0:00:00:00:01", "ap_channel": 6, "ap_position": [0, 0], "ap_edge": "edge1"},
    "ap2": {"ap_mac": "02:a0:00:00:00:02", "ap_channel": 1, "ap_position": [40, 0], "ap_edge": "edge2"},
    "ap3": {"ap_mac": "02:a0:00:00:00:03", "ap_channel": 11, "ap_position": [80, 0], "ap_edge": "edge1"},
    "client1": {"client_mac": "02:c0:00:00:00:01", "client_ap": "ap1", "client_position": [5, 0],
                "client_service": "video"},
    "client2": {"client_mac": "02:c0:00:00:00:02", "client_ap": "ap2", "client_position": [42, 3],
                "client_service": "video2"},
}
INVENTORY = {"_meta": {"hostvars": HOSTVARS}, "all": {"children": ["aps", "clients", "ungrouped"]},
             "aps": {"hosts": ["ap1", "ap2", "ap3"]}, "clients": {"hosts": ["client1", "client2"]}}
# today's lab inventory: two APs, one client
LAB_TODAY = {"_meta": {"hostvars": dict((k, v) for k, v in HOSTVARS.items() if k in ("ap1", "ap2", "client1"))},
             "aps": {"hosts": ["ap1", "ap2"]}, "clients": {"hosts": ["client1"]}}


def write(tmp_path, text, name="s.yml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_default_scenarios_are_valid_for_three_aps_and_two_clients():
    walk = scenario.load(WALK, inventory=INVENTORY)
    assert walk["duration_s"] == 260 and sorted(walk["clients"]) == ["client1", "client2"]
    assert walk["clients"]["client1"]["signal"][0] == [0.0, {"ap1": -45.0, "ap2": -82.0, "ap3": -84.0}]
    noisy = scenario.load(NOISY, inventory=INVENTORY)
    assert list(noisy["clients"]) == ["client1"] and len(noisy["clients"]["client1"]["signal"]) == 81
    assert scenario.inventory_names(INVENTORY) == (["ap1", "ap2", "ap3"], ["client1", "client2"])


def test_the_walk_names_what_todays_lab_inventory_lacks():
    with pytest.raises(scenario.ScenarioError) as exc:
        scenario.load(WALK, inventory=LAB_TODAY)
    assert str(exc.value) == ("%s: client client1, signal point 1 (t=0): ap3 is not an AP of the inventory "
                              "(ap1, ap2)" % WALK)


GOOD = """
duration_s: 20
clients:
  client1:
    signal:
      - [0, {ap1: -45, ap2: -85}]
      - [10, {ap1: -85, ap2: -45}]
"""


@pytest.mark.parametrize("text, error", [
    (GOOD.replace("client1:", "client9:"), "client client9: not a client of the inventory (client1, client2)"),
    (GOOD.replace("ap2: -45", "ap7: -45"), "client client1, signal point 2 (t=10): ap7 is not an AP of the inventory"),
    (GOOD.replace("[10,", "[0,"), "client client1, signal point 2 (t=0): times must increase (the point before is "
                                  "at t=0)"),
    (GOOD.replace("[10,", "[30,"), "client client1, signal point 2 (t=30): after the scenario's end (duration_s 20)"),
    (GOOD.replace("[10,", "[-2,"), "signal point 2 (t=-2): times start at 0"),
    (GOOD.replace("[0, {", "[-1, {"), "signal point 1 (t=-1): times start at 0"),
    (GOOD.replace("duration_s: 20\n", ""), "missing duration_s"),
    (GOOD.replace("duration_s: 20", "duration_s: soon"), "duration_s: 'soon' is not a number"),
    (GOOD.replace("duration_s: 20", "duration_s: 0"), "duration_s must be positive"),
    ("duration_s: 5\n", "missing clients"),
    ("duration_s: 5\nclients: {}\n", "clients must map each client's name"),
    (GOOD + "speed: 3\n", "unknown key(s) speed"),
    (GOOD.replace("[10,", "[ten,"), "client client1, signal point 2, t: 'ten' is not a number"),
    (GOOD.replace("ap2: -45", "ap2: strong"), "signal point 2 (t=10), ap2: 'strong' is not a level in dBm"),
    (GOOD.replace("ap2: -45", "ap2: .nan"), "signal point 2 (t=10), ap2: nan is not a level in dBm"),
    (GOOD.replace("ap2: -45", "ap2: true"), "ap2: True is not a level in dBm"),
    (GOOD.replace("ap2: -45", "ap2: 10"), "ap2: 10 is not a level in dBm (-255 <= dBm < 0)"),
    (GOOD.replace("{ap1: -85, ap2: -45}", "{ap1: -85}"), "signal point 2 (t=10): names ap1, the points before ap1, "
                                                         "ap2 (every point names the same APs)"),
    (GOOD.replace("[10, {ap1: -85, ap2: -45}]", "[10]"), "signal point 2 (t=10): [10] is not [t_s, {ap: dBm, ...}]"),
    (GOOD.replace("[10, {ap1: -85, ap2: -45}]", "7"), "signal point 2: 7 is not [t_s, {ap: dBm}]"),
    (GOOD.replace("signal:", "positions:"), "client client1, positions point 1 (t=0): [0, {"),
    ("duration_s: 9\nclients:\n  client1:\n    positions: [[0, 1, 2], [5, 3]]\n",
     "client client1, positions point 2 (t=5): [5, 3] is not [t_s, x, y]"),
    ("duration_s: 9\nclients:\n  client1:\n    positions: [[0, 1, y]]\n",
     "client client1, positions point 1 (t=0), y: 'y' is not a number"),
    ("duration_s: 9\nclients:\n  client1:\n    positions: []\n", "client client1, positions: no points"),
    ("duration_s: 9\nclients:\n  client1:\n    signal: {ap1: -50}\n", "client client1, signal: not a list of points"),
    ("duration_s: 9\nclients:\n  client1: {}\n", "client client1: give exactly one of signal: and positions:"),
    ("duration_s: 9\nclients:\n  client1:\n    positions: [[0, 1, 2]]\n    signal: [[0, {ap1: -50}]]\n",
     "give exactly one of signal: and positions:"),
    ("duration_s: 9\nclients:\n  client1:\n    walk: []\n", "client client1: unknown key(s) walk"),
    ("duration_s: 9\nclients:\n  client1: ap2\n", "client client1: give signal: or positions:, not 'ap2'"),
    ("- just\n- a list\n", "a scenario is a mapping with duration_s and clients, not list"),
    ("duration_s: [\n", "not YAML"),
])
def test_bad_scenarios_are_refused_naming_the_file_client_and_point(tmp_path, text, error):
    path = write(tmp_path, text)
    with pytest.raises(scenario.ScenarioError) as exc:
        scenario.load(path, inventory=INVENTORY)
    assert str(exc.value).startswith(path + ":")
    assert error in str(exc.value)


def test_a_missing_file():
    with pytest.raises(scenario.ScenarioError, match="nowhere.yml: cannot read it: No such file"):
        scenario.load("/nowhere.yml")


def test_without_an_inventory_any_names_go_and_validation_is_idempotent(tmp_path):
    checked = scenario.load(write(tmp_path, GOOD.replace("client1", "someone")))
    assert list(checked["clients"]) == ["someone"]
    assert scenario.validate(copy.deepcopy(checked), checked["source"]) == checked


def test_start_requests():
    walk = scenario.load(WALK, inventory=INVENTORY)
    requests = scenario.start_requests(walk, all_clients=["client1", "client2"])
    assert [(r["op"], r["client"]) for r in requests] == [("signal", "client1"), ("signal", "client2")]
    assert requests[1]["signal"] == [[0.0, {"ap1": -76.0, "ap2": -50.0, "ap3": -78.0}]]
    noisy = scenario.load(NOISY, inventory=INVENTORY)
    # a client the file does not name goes back where the inventory puts it ...
    assert [(r["op"], r["client"]) for r in scenario.start_requests(noisy, all_clients=["client1", "client2"])] == [
        ("signal", "client1"), ("reset", "client2")]
    # ... unless the replay is limited to other clients
    assert [r["client"] for r in scenario.start_requests(noisy, ["client1"], ["client1", "client2"])] == ["client1"]
    assert [r["op"] for r in scenario.start_requests(noisy, "client2", ["client1", "client2"])] == ["reset"]
    assert [r["client"] for r in scenario.start_requests(noisy)] == ["client1"]   # no radio: the file's clients
    with pytest.raises(scenario.ScenarioError, match=r"noisy.yml: client3 is not a client of the radio \(client1, "
                                                     r"client2\)"):
        scenario.start_requests(noisy, ["client3"], ["client1", "client2"])
    moved = scenario.validate({"duration_s": 4, "clients": {"client1": {"positions": [[0, 5, 0], [4, 35, 0]]}}})
    assert scenario.start_requests(moved) == [{"op": "trace", "client": "client1",
                                               "trace": [[0.0, 5.0, 0.0], [4.0, 35.0, 0.0]]}]


def test_predicted_walk_four_handoffs_for_client1_none_for_client2():
    walk = scenario.load(WALK, inventory=INVENTORY)
    for policy in (WI5_POLICY, LAB_POLICY):
        for offset in (0.0, 0.3 * PERIOD, 0.7 * PERIOD):
            predicted = scenario.predict(walk, INVENTORY, policy, offset_s=offset)
            moves = [(h["client"], h["from_ap"], h["to_ap"], h["from_edge"], h["to_edge"])
                     for h in predicted["handoffs"]]
            assert moves == [("client1", "ap1", "ap2", "edge1", "edge2"), ("client1", "ap2", "ap3", "edge2", "edge1"),
                             ("client1", "ap3", "ap2", "edge1", "edge2"), ("client1", "ap2", "ap1", "edge2", "edge1")]
            crossings = [h["t_condition"] for h in predicted["handoffs"]]
            assert crossings == pytest.approx([15.16, 89.895, 164.895, 239.895], abs=0.01)
            assert [h["t_cross"] for h in predicted["handoffs"]] == crossings
            for h in predicted["handoffs"]:
                assert h["t_condition"] <= h["t_trigger"] <= h["t_decision"]
                if policy is WI5_POLICY:   # three triggers one period apart, then the 0.2 s scan
                    assert h["t_condition"] + 2 * PERIOD + 0.2 <= h["t_decision"] <= h["t_condition"] + 3 * PERIOD + 0.2
                else:                      # the lab's: the first sample past the crossing decides (scanned ahead)
                    assert h["t_decision"] - h["t_condition"] <= PERIOD + 1e-6
            assert predicted["suppressed"] == {}


def test_predicted_noisy_moves_once_and_never_back():
    noisy = scenario.load(NOISY, inventory=INVENTORY)
    for policy in (WI5_POLICY, LAB_POLICY):
        suppressed = 0
        for offset in (0.0, 0.3 * PERIOD, 0.7 * PERIOD):
            predicted = scenario.predict(noisy, INVENTORY, policy, offset_s=offset)
            assert [(h["client"], h["from_ap"], h["to_ap"]) for h in predicted["handoffs"]] == [
                ("client1", "ap1", "ap2")]
            h = predicted["handoffs"][0]
            assert h["t_condition"] is None or h["t_condition"] <= h["t_decision"]   # None: only averages met it
            suppressed += sum(predicted["suppressed"].values())
        assert suppressed >= 8   # attempts were made and refused, every time
    # the signal does flap: without hysteresis, gain and flap window the same samples ping-pong
    naive = scenario.predict(noisy, INVENTORY, {"hysteresis_s": 0, "flap_window_s": 0, "min_gain_db": 0,
                                                "triggers": 1})
    assert len(naive["handoffs"]) >= 5


def test_prediction_with_positions_and_clients_the_file_does_not_name():
    moved = scenario.validate({"duration_s": 30, "clients": {"client1": {"positions": [[0, 5, 0], [20, 75, 0]]}}},
                              "moves.yml")
    predicted = scenario.predict(moved, INVENTORY)   # client2 (not named) stays at its inventory position by ap2
    assert [(h["client"], h["to_ap"]) for h in predicted["handoffs"]] == [("client1", "ap2")]
    # the path-loss model: ap1 hears -70 dBm at 10 ** ((20 - 40 + 70) / 30) = 46.4 m (46.6 m for -70.1 dBm, levels
    # are rounded to 0.1 dB), i.e. t = 41.6 / 3.5 = 11.9 s
    assert predicted["handoffs"][0]["t_condition"] == pytest.approx(11.88, abs=0.03)
    with pytest.raises(ValueError, match="unknown mobility policy parameter"):
        scenario.predict(moved, INVENTORY, {"treshold_dbm": -60})
