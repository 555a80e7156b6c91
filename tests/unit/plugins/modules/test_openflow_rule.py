"""openflow_rule against a stateful fake ovs-ofctl: want vs have by cookie, check mode, diff, absent."""
from ansible_collections.arnab.testbed.plugins.module_utils import openflow
from ansible_collections.arnab.testbed.plugins.modules import openflow_rule

from module_harness import FakeOvs, run_module

AP1 = "tcp:10.77.0.11:6634"


def fake():
    return FakeOvs({AP1: {"ap": 1, "eth1": 2}})


def test_pair_present_idempotent_absent():
    ovs = fake()
    pair = dict(sta_ip="10.78.0.100", sta_mac="02:c0:00:00:00:01")
    ok, result = run_module(openflow_rule.main, dict(target=AP1, odin_client_pair=pair), check_mode=True,
                            diff=True, run_command=ovs)
    assert ok and result["changed"] and len(result["commands"]) == 1 and ovs.flows[AP1] == []
    assert result["commands"][0].count("\nadd cookie=") == 4 and len(result["added"]) == 4
    assert result["cookie"] == openflow.client_cookie("02:c0:00:00:00:01")
    assert "nw_src=10.78.0.100" in result["diff"]["after"]
    ok, result = run_module(openflow_rule.main, dict(target=AP1, odin_client_pair=pair), run_command=ovs)
    assert ok and result["changed"] and len(ovs.flows[AP1]) == 4
    assert "add-flows tcp:10.77.0.11:6634 - <<'EOF'" in result["commands"][0]
    ok, result = run_module(openflow_rule.main, dict(target=AP1, odin_client_pair=pair), run_command=ovs)
    assert ok and not result["changed"] and result["commands"] == []
    # ARP off: the module owns the cookie, so the two ARP flows go
    ok, result = run_module(openflow_rule.main, dict(target=AP1, odin_client_pair=dict(pair, arp=False)),
                            run_command=ovs)
    assert ok and result["changed"] and len(result["deleted"]) == 2 and len(ovs.flows[AP1]) == 2
    ok, result = run_module(openflow_rule.main, dict(target=AP1, cookie=result["cookie"], state="absent"),
                            run_command=ovs)
    assert ok and result["changed"] and ovs.flows[AP1] == []


def test_other_cookies_untouched_and_version():
    ovs = fake()
    run_module(openflow_rule.main, dict(target=AP1, cookie=7, flows=[dict(match="in_port=ap", actions="NORMAL")]),
               run_command=ovs)
    ok, result = run_module(openflow_rule.main, dict(target=AP1, cookie=8, openflow_version="1.3",
                                                     flows=[dict(match="in_port=eth1,arp", actions="output:ap",
                                                                 priority=300)]), run_command=ovs)
    assert ok and result["changed"] and "-O OpenFlow13" in result["commands"][0]
    assert sorted(f.cookie for f in ovs.flows[AP1]) == [7, 8]


def test_failures_are_clear():
    ok, result = run_module(openflow_rule.main, dict(target=AP1, flows=[dict(match="ip", actions="drop")]),
                            run_command=fake())
    assert not ok and "cookie is required" in result["msg"]
    ok, result = run_module(openflow_rule.main, dict(target="tcp:10.77.0.99:6634", cookie=1), run_command=fake())
    assert not ok and "Connection refused" in result["msg"]
    pair = dict(sta_ip="10.78.0.100", uplink_port="wan")
    ok, result = run_module(openflow_rule.main, dict(target=AP1, odin_client_pair=pair), run_command=fake())
    assert not ok and "no port named wan" in result["msg"]
