"""ovs-ofctl argv, dump-flows parsing and want-vs-have by cookie (a fake ovs-ofctl)."""
import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import openflow

DUMP = """\
 cookie=0x3039, duration=12.1s, table=0, n_packets=4, n_bytes=392, idle_age=3, priority=200,ip,in_port=1,nw_src=10.78.0.100 actions=output:2
 cookie=0x3039, duration=12.1s, table=0, n_packets=0, n_bytes=0, reset_counts priority=200,arp,in_port=2,arp_tpa=10.78.0.100 actions=output:1
"""
PORTS = """\
OFPST_PORT_DESC reply (xid=0x2):
 1(ap): addr:aa:bb:cc:dd:ee:01
     config:     0
 2(eth1): addr:aa:bb:cc:dd:ee:02
 LOCAL(br0): addr:aa:bb:cc:dd:ee:00
"""


class FakeOfctl:
    """Answers dump-ports-desc and dump-flows, records every argv."""

    def __init__(self, flows_text=DUMP, ports_text=PORTS):
        self.flows_text, self.ports_text, self.calls = flows_text, ports_text, []

    def __call__(self, argv, stdin=None):
        self.calls.append(argv)
        if "dump-ports-desc" in argv:
            return 0, self.ports_text, ""
        if "dump-flows" in argv:
            cookie = int(argv[-1].split("=")[1].split("/")[0], 16)
            lines = [l for l in self.flows_text.splitlines() if int(l.split("cookie=")[1].split(",")[0], 16) == cookie]
            return 0, "\n".join(lines), ""
        return 0, "", ""


def test_argv_built_in_one_place():
    assert openflow.ofctl_argv("dump-flows", "tcp:10.77.0.11:6634", "cookie=0x1/-1", version="1.3", names=False) == \
        ["ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", "tcp:10.77.0.11:6634", "cookie=0x1/-1"]
    assert openflow.ofctl_argv("del-flows", "br0", "x", strict=True)[:4] == ["ovs-ofctl", "-O", "OpenFlow10", "--strict"]
    for bad_target in ("http://x", "br0; rm", ""):
        with pytest.raises(openflow.OpenFlowError):
            openflow.ofctl_argv("dump-flows", bad_target)
    with pytest.raises(openflow.OpenFlowError):
        openflow.ofctl_argv("dump-flows", "br0", version="1.5")


def test_parse_dump_flows_normalizes_shorthands():
    flows = openflow.parse_dump_flows("NXST_FLOW reply (xid=0x4):\n" + DUMP)
    assert flows[0] == openflow.Flow("in_port=1,dl_type=0x0800,nw_src=10.78.0.100/32", "2", 12345, 200)
    assert flows[1] == openflow.Flow("in_port=2,dl_type=0x806,nw_dst=10.78.0.100", "output:1", 12345, 200)
    assert flows[1].match["arp_tpa"] == "10.78.0.100"


def test_odin_pair_idempotent_against_switch_with_names():
    fake = FakeOfctl()
    table = openflow.FlowTable(fake, "tcp:10.77.0.11:6634")
    want = openflow.odin_client_pair("10.78.0.100", "ap", "eth1", arp=True)
    argvs, to_add, to_delete = table.plan(want)
    # two of the four flows exist already (by number): only the other two are added, nothing deleted
    assert len(to_add) == 2 and not to_delete
    assert len(argvs) == 1 and argvs[0].argv[3:] == ["add-flows", "tcp:10.77.0.11:6634", "-"]
    assert argvs[0].stdin.count("add cookie=0x3039,table=0,priority=200,in_port=") == 2
    assert {f.match.get("nw_dst") or f.match.get("arp_spa") for f in to_add} == {"10.78.0.100"}


def test_exclusive_removes_our_stale_flows_only():
    fake = FakeOfctl()
    table = openflow.FlowTable(fake, "br0")
    want = [openflow.Flow("in_port=1,ip,nw_src=10.78.0.100", "output:2", 12345, 200)]
    argvs, to_add, to_delete = table.plan(want)
    assert not to_add and len(to_delete) == 1
    assert argvs[0].stdin.startswith("delete_strict cookie=0x3039/-1,table=0,priority=200,in_port=2,dl_type=0x0806")
    # dumps asked only for our cookie
    assert any(c[-1] == "cookie=0x3039/-1" for c in fake.calls if "dump-flows" in c)


def test_unknown_port_name_fails_before_any_change():
    table = openflow.FlowTable(FakeOfctl(), "br0")
    with pytest.raises(openflow.OpenFlowError) as info:
        table.plan(openflow.odin_client_pair("10.78.0.100", "ap", "wan0"))
    assert "wan0" in str(info.value)


def test_absent_by_cookie_and_by_flow():
    table = openflow.FlowTable(FakeOfctl(), "br0")
    argvs, gone = table.plan_absent(cookies=[12345])
    assert len(gone) == 2 and [c.argv for c in argvs] == [openflow.delete_cookie_command("br0", 12345).argv]
    argvs, gone = table.plan_absent(flows=[openflow.Flow("in_port=ap,ip,nw_src=10.78.0.100", "output:eth1", 12345, 200)])
    assert len(gone) == 1 and argvs[0].stdin.startswith("delete_strict ")
    assert openflow.FlowTable(FakeOfctl(flows_text=""), "br0").plan_absent(cookies=[12345]) == ([], [])


def test_client_cookie_and_steering():
    assert openflow.client_cookie("02:c0:00:00:00:01") == 0x0D1A02C000000001
    flows = openflow.data_switch_steering("10.78.0.100", "ap2", cookie=7)
    assert [f.spec() for f in flows] == [
        "cookie=0x7,table=0,priority=200,dl_type=0x0800,nw_dst=10.78.0.100,actions=output:ap2",
        "cookie=0x7,table=0,priority=200,dl_type=0x0806,arp_tpa=10.78.0.100,actions=output:ap2"]


def test_ofctl_failure_is_reported():
    table = openflow.FlowTable(lambda argv, stdin=None: (1, "", "ovs-ofctl: br9 is not a bridge"), "br9")
    with pytest.raises(openflow.OpenFlowError) as info:
        table.flows([1])
    assert "not a bridge" in str(info.value)


def test_replacing_actions_is_gapless():
    old = [openflow.Flow("in_port=1", "output:2", 5, 100), openflow.Flow("in_port=3", "output:2", 5, 100)]
    new = [openflow.Flow("in_port=1", "output:3", 5, 100)]
    to_add, to_delete = openflow.diff_flows(new, old)
    assert to_add == new and to_delete == [old[1]]     # in_port=1 is replaced by the add, not deleted
    text = openflow.batch_command("br0", to_add, to_delete).stdin
    assert text.index("add ") < text.index("delete_strict ")


@pytest.mark.parametrize("target", ["br0", "br-air", "tcp:10.77.0.11:6634", "tcp:10.77.0.11", "ssl:ap1.lab:6634",
                                    "tcp:[fe80::1]:6634", "unix:/run/openvswitch/br0.mgmt"])
def test_targets_accepted(target):
    assert openflow.validate_target(target) == target
    assert openflow.ofctl_argv("dump-flows", target)[-1] == target


@pytest.mark.parametrize("target", ["br0\n", "br0 ", "-br0", "tcp:10.77.0.11:6634\n", "tcp:$(id):6634",
                                    "tcp:10.77.0.11:66a", "unix:run/x", "unix:/run/x\x00", "udp:1.2.3.4:1", "",
                                    "tcp:[fe80::1:6634", "brüde"])
def test_targets_refused(target):
    with pytest.raises(openflow.OpenFlowError, match="target"):
        openflow.validate_target(target)


def test_match_and_actions_checks():
    assert openflow.check_match("in_port=ap,ip,nw_src=10.78.0.0/24") == "in_port=ap,ip,nw_src=10.78.0.0/24"
    assert openflow.check_actions("set_field:10.0.0.1->nw_dst,load:0x1->NXM_NX_REG0[0..15],ct(commit,zone=1)")
    for match in ["ip\n", "ip cookie=1", "cookie=1", "ip,nw_src=$(id)", "ip;x", "in_port='a'"]:
        with pytest.raises(openflow.OpenFlowError):
            openflow.check_match(match)
    for actions in ["drop\n", "output:1 2", "output:$(id)", "output:`id`", "output:1;x", "output:'a'", 'output:"a"']:
        with pytest.raises(openflow.OpenFlowError):
            openflow.check_actions(actions)


def test_odin_pair_ports_and_ip_checked():
    with pytest.raises(openflow.OpenFlowError, match="ap_port"):
        openflow.odin_client_pair("10.78.0.100", "ap,cookie=0", "eth1")
    with pytest.raises(openflow.OpenFlowError, match="sta_ip"):
        openflow.odin_client_pair("10.78.0.100\n", "ap", "eth1")
    with pytest.raises(openflow.OpenFlowError, match="toward_port"):
        openflow.data_switch_steering("10.78.0.100", "3\nadd")
    assert len(openflow.odin_client_pair("10.78.0.100", "1", "eth1")) == 4
