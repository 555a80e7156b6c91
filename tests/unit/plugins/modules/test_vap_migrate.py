"""vap_migrate end to end on loopback: two emulated agents, the emulated radio, a fake ovs-ofctl."""
import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin, openflow
from ansible_collections.arnab.testbed.plugins.modules import vap_migrate

from odin_lab import C1, mini_lab  # noqa: F401  # pylint: disable=unused-import
from module_harness import FakeOvs, free_port, run_module

AP1_SW, AP2_SW, DSW = "tcp:10.77.0.11:6634", "tcp:10.77.0.12:6634", "tcp:10.77.0.5:6634"
COOKIE = openflow.client_cookie(C1)


def switches():
    return FakeOvs({AP1_SW: {"ap": 1, "eth1": 2}, AP2_SW: {"ap": 1, "eth1": 2},
                    DSW: {"ap1": 1, "ap2": 2, "edge1": 3, "edge2": 4}})


def args(lab, target, **extra):
    aps = [dict(name=n, agent="127.0.0.1", port=lab["ports"][n], switch=sw)
           for n, sw in (("ap1", AP1_SW), ("ap2", AP2_SW))]
    return dict(dict(sta_mac=C1, target=target, aps=aps, data_switch=DSW, scan_time=0.05), **extra)


def serve_from_ap1(lab, ovs):
    lab["agents"]["ap1"].write_add_vap(odin.Vap.build(C1, "10.78.0.100", "arnab").to_line())
    table = openflow.FlowTable(ovs, AP1_SW)
    table.apply(table.plan(openflow.odin_client_pair("10.78.0.100", "ap", "eth1", COOKIE), [COOKIE])[0])
    dsw = openflow.FlowTable(ovs, DSW)
    dsw.apply(dsw.plan(openflow.data_switch_steering("10.78.0.100", "ap1", COOKIE), [COOKIE])[0])


def test_migrate_to_named_target_then_idempotent(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2"), check_mode=True, run_command=ovs)
    assert ok and result["changed"] and (result["from_ap"], result["to_ap"]) == ("ap1", "ap2")
    assert C1 in mini_lab["agents"]["ap1"].vaps and not mini_lab["agents"]["ap2"].vaps   # untouched
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2"), diff=True, run_command=ovs)
    assert ok and result["changed"] and result["channel_switch"]
    steps = [e["step"] for e in result["timeline"]]
    assert steps == ["preflight", "flows_new_ap", "channel_switch_announcement", "add_vap",
                     "wait_channel_switch", "flows_data_switch", "remove_vap", "flows_old_ap(ap1)"]
    wait = [e for e in result["timeline"] if e["step"] == "wait_channel_switch"][0]
    assert 390 <= wait["duration_ms"] < 600          # 4 beacons x 100 ms
    assert result["total_ms"] > 400                  # the countdown is part of the whole move...
    serving = sum(e["duration_ms"] for e in result["timeline"]
                  if e["step"] in ("flows_new_ap", "channel_switch_announcement", "add_vap", "flows_data_switch"))
    assert result["control_path_ms"] == pytest.approx(serving, abs=0.05)   # ...not of the control path
    assert result["control_path_ms"] < wait["duration_ms"]
    assert C1 in mini_lab["agents"]["ap2"].vaps and C1 not in mini_lab["agents"]["ap1"].vaps
    assert ovs.flows[AP1_SW] == [] and len(ovs.flows[AP2_SW]) == 4
    assert {f.actions for f in ovs.flows[DSW]} == {"output:2"}       # toward ap2's port
    assert mini_lab["radio"].state.vaps[C1] == {"ap2"}
    assert "csa_received" in [e["event"] for e in mini_lab["radio"].state.events]
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2"), run_command=ovs)
    assert ok and not result["changed"] and result["commands"] == [] and result["control_path_ms"] == 0


def test_auto_picks_the_ap_that_hears_best(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    ok, result = run_module(vap_migrate.main, args(mini_lab, "auto"), run_command=ovs)
    assert ok and not result["changed"] and result["to_ap"] == "ap1"      # client at 5 m from ap1
    assert result["scan"]["ap1"] == -41 and result["scan"]["ap2"] == -66
    mini_lab["radio"].request({"op": "move", "client": "client1", "position": [36, 0]})
    ok, result = run_module(vap_migrate.main, args(mini_lab, "auto"), run_command=ovs)
    assert ok and result["changed"] and result["to_ap"] == "ap2"
    assert [e["step"] for e in result["timeline"]][:2] == ["preflight", "scan"]


def test_without_waiting_for_the_channel_switch(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2", wait_for_channel_switch=False), run_command=ovs)
    assert ok and "wait_channel_switch" not in [e["step"] for e in result["timeline"]]
    assert result["control_path_ms"] < 400


def test_fails_before_any_change(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    before = (dict(mini_lab["agents"]["ap1"].vaps), {k: list(v) for k, v in ovs.flows.items()})
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2", sta_mac="02:c0:00:00:00:zz"), run_command=ovs)
    assert not ok and "not a MAC" in result["msg"]
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap9"), run_command=ovs)
    assert not ok and "ap9" in result["msg"]
    bad = args(mini_lab, "ap2", timeout=1)
    bad["aps"][1]["port"] = free_port()
    ok, result = run_module(vap_migrate.main, bad, run_command=ovs)
    assert not ok and "unreachable" in result["msg"] and "ap2" in result["msg"]
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2", data_switch="tcp:10.77.0.99:6634"),
                            run_command=ovs)
    assert not ok and "nothing changed" in result["msg"]
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2", sta_mac="02:c0:00:00:00:09"), run_command=ovs)
    assert not ok and "has no vAP" in result["msg"]
    assert before == (dict(mini_lab["agents"]["ap1"].vaps), {k: list(v) for k, v in ovs.flows.items()})
    assert not mini_lab["agents"]["ap2"].vaps


def test_failure_mid_way_is_rolled_back(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    before = {k: sorted(f.spec() for f in v) for k, v in ovs.flows.items()}
    ovs.fail_on = "del-flows " + AP1_SW   # the last step fails
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2"), run_command=ovs)
    assert not ok and result["failed_step"] == "flows_old_ap(ap1)"
    assert result["rolled_back"] == ["remove_vap", "flows_data_switch", "add_vap", "flows_new_ap"]
    assert result["csa_sent"] and "cannot be undone" in result["msg"]
    assert "wait_channel_switch" in [e["step"] for e in result["timeline"]]
    assert C1 in mini_lab["agents"]["ap1"].vaps and C1 not in mini_lab["agents"]["ap2"].vaps
    assert {k: sorted(f.spec() for f in v) for k, v in ovs.flows.items()} == before


def test_failure_before_the_csa_changes_nothing(mini_lab):
    ovs = switches()
    serve_from_ap1(mini_lab, ovs)
    ovs.fail_on = "add-flows " + AP2_SW
    ok, result = run_module(vap_migrate.main, args(mini_lab, "ap2"), run_command=ovs)
    assert not ok and result["failed_step"] == "flows_new_ap" and not result["csa_sent"]
    assert "csa_received" not in [e["event"] for e in mini_lab["radio"].state.events]
    assert C1 in mini_lab["agents"]["ap1"].vaps and not mini_lab["agents"]["ap2"].vaps
