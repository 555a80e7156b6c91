"""openflow_rule against a stateful fake ovs-ofctl: want vs have by cookie, check mode, diff, absent."""
import pytest

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


# -- bad input: every string option, refused before the switch is read or changed ---------------------------------

PAYLOADS = ["$(touch /tmp/x)", "`touch /tmp/x`", "x;touch /tmp/x", "x\ntouch /tmp/x", "x\rb", "x'b", 'x"b']
# What an attacker would put in a flow: another flow mod on a new line, or a cookie that overrides ours.
FLOW_MOD_PAYLOADS = ["output:2\ndelete_strict cookie=0x0/0", "output:2\rdel", "output:2\x00", "output:2\tx",
                     "output:2\x7f"]


def recorder():
    ovs = fake()
    ovs.flows[AP1] = [openflow.Flow("in_port=2", "output:1", cookie=99, priority=5)]   # someone else's flow
    return ovs


def refused(args, needle=None):
    ovs = recorder()
    ok, result = run_module(openflow_rule.main, args, run_command=ovs)
    assert not ok, result
    assert ovs.calls == [], "the switch was touched: %r" % ovs.calls
    assert [f.cookie for f in ovs.flows[AP1]] == [99]
    if "must be one of" not in result["msg"]:   # ansible's own choices check quotes the value as it is
        assert "\n" not in result["msg"]
    if needle:
        assert needle in result["msg"], result["msg"]
    return result["msg"]


def flow(**kw):
    return dict(target=AP1, cookie=7, flows=[dict(dict(match="in_port=ap,ip", actions="output:eth1"), **kw)])


def pair(**kw):
    return dict(target=AP1, odin_client_pair=dict(dict(sta_ip="10.78.0.100", sta_mac="02:c0:00:00:00:01"), **kw))


@pytest.mark.parametrize("payload", PAYLOADS + FLOW_MOD_PAYLOADS)
@pytest.mark.parametrize("build", [
    lambda v: dict(target=v, cookie=7),
    lambda v: dict(target="tcp:" + v, cookie=7),
    lambda v: dict(target="tcp:10.77.0.11:" + v, cookie=7),
    lambda v: dict(target="unix:/run/" + v, cookie=7) if "\n" in v or "\r" in v or "\x00" in v or "\t" in v
    or "\x7f" in v else dict(target="unix:" + v, cookie=7),
    lambda v: flow(match=v),
    lambda v: flow(match="in_port=ap," + v),
    lambda v: flow(match="in_port=" + v),
    lambda v: flow(actions=v),
    lambda v: flow(actions="output:1," + v),
    lambda v: pair(sta_ip=v),
    lambda v: pair(sta_ip="10.78.0.100" + v),
    lambda v: pair(sta_mac=v),
    lambda v: pair(sta_mac="02:c0:00:00:00:01" + v),
    lambda v: pair(ap_port=v),
    lambda v: pair(uplink_port="eth1" + v),
    lambda v: dict(target=AP1, cookie=7, ofctl=v),
    lambda v: dict(target=AP1, cookie=7, ofctl="/usr/bin/ovs-ofctl" + v) if "\n" in v or "\r" in v or "\x00" in v
    or "\t" in v or "\x7f" in v else dict(target=AP1, cookie=7, ofctl="ovs-ofctl " + v),
    lambda v: dict(target=AP1, cookie=7, openflow_version="1.0" + v),
    lambda v: dict(target=AP1, cookie=7, state="absent" + v),
], ids=["target", "tcp-host", "tcp-port", "unix", "match", "match-word", "in_port", "actions", "actions-2",
        "sta_ip", "sta_ip-suffix", "sta_mac", "sta_mac-suffix", "ap_port", "uplink_port", "ofctl", "ofctl-suffix",
        "openflow_version", "state"])
def test_every_string_option_refuses_payloads(build, payload):
    refused(build(payload))


@pytest.mark.parametrize("match,needle", [
    ("in_port=ap cookie=0x0", "may hold letters"),             # ovs-ofctl splits at spaces: cookie would win
    ("in_port=ap,cookie=0x0/0", "does not belong in a match"),
    ("in_port=ap,table=3", "does not belong in a match"),
    ("in_port=ap,priority=1", "does not belong in a match"),
    ("in_port=ap,actions=drop", "does not belong in a match"),
    ("ip,nw_src=10.0.0.1(x)", "may hold letters"),
    ("ip nw_src=10.0.0.1", "is not a match field"),
    ("in_port=ap,idle_timeout=5", "does not belong in a match"),
])
def test_match_cannot_reach_other_cookies(match, needle):
    refused(flow(match=match), needle)


@pytest.mark.parametrize("actions,needle", [
    ("output:2 delete", "holds a space"),
    ("output:2#", "is not allowed"),
    ("output:2\\", "is not allowed"),
    ("output:'eth 1'", "is not allowed"),
    ("learn(table=1", "unbalanced"),
    ("output:1)(", "unbalanced"),
])
def test_actions_stay_one_line_of_actions(actions, needle):
    refused(flow(actions=actions), needle)


@pytest.mark.parametrize("args,needle", [
    (dict(target=AP1, cookie=0), "0 is the cookie"),
    (dict(target=AP1, cookie=-1), "use 1 to 2^64-2"),
    (dict(target=AP1, cookie=2 ** 64 - 1), "use 1 to 2^64-2"),
    (dict(target=AP1, cookie=7, priority=70000), "out of range"),
    (flow(table=255), "out of range"),
    (flow(priority=-1), "out of range"),
    (pair(priority=65536), "out of range"),
    (dict(target="-br0", cookie=7), "not starting with '-'"),
    (dict(target="a-bridge-name-too-long", cookie=7), "1 to 15"),
    (dict(target="tcp:-oProxyCommand=x:6634", cookie=7), "neither an IP address nor a host name"),
    (dict(target="tcp:10.77.0.11:99999", cookie=7), "not a port number"),
    (dict(target="unix:relative.sock", cookie=7), "absolute path"),
    (dict(target=AP1, cookie=7, ofctl="ovs-ofctl --strict"), "without arguments"),
    (pair(ap_port="-ap"), "ap_port"),
    (pair(sta_ip="10.78.0.300"), "not an IPv4 address"),
    (pair(sta_mac="02:c0:00:00:00"), "not a MAC address"),
])
def test_bad_values_fail_with_a_message_to_act_on(args, needle):
    refused(args, needle)


def test_issue_9_newline_cannot_delete_other_flows():
    """The report's attack: a newline in actions adding a flow mod that deletes every flow."""
    msg = refused(flow(actions="output:eth1\ndelete"), "control character")
    assert "flows[0].actions" in msg and "'output:eth1\\ndelete'" in msg


def test_valid_values_still_work_and_quotes_are_shown_quoted():
    ovs = recorder()
    ok, result = run_module(openflow_rule.main, dict(target=AP1, cookie=7, flows=[
        dict(match="in_port=ap,ip,nw_src=10.78.0.0/24,ct_state=+trk-new", actions="output:eth1, output:2"),
        dict(match="in_port=eth1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", actions="learn(table=1,output:1)")]),
        run_command=ovs)
    assert ok and result["changed"], result
    assert [f.cookie for f in ovs.flows[AP1]].count(99) == 1
    for argv in ovs.calls:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert all("\n" not in a for argv in ovs.calls for a in argv)
    ok, result = run_module(openflow_rule.main, dict(target="unix:/run/openvswitch/br0.mgmt", cookie=7),
                            check_mode=True, run_command=fake())
    assert not ok and "Connection refused" in result["msg"]   # accepted as a target; the fake has no such switch


def test_batch_refuses_a_flow_mod_with_a_control_character():
    bad = openflow.Flow("in_port=1", "output:2", cookie=7)
    bad.actions = "output:2\ndelete"
    with pytest.raises(openflow.OpenFlowError, match="control character"):
        openflow.batch_command(AP1, [bad], [])
