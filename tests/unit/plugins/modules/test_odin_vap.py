"""odin_vap against an emulated agent: idempotence, check mode, diff, bad input, unreachable agent."""
from ansible_collections.arnab.testbed.plugins.modules import odin_vap

from odin_lab import C1, mini_lab  # noqa: F401  # pylint: disable=unused-import
from module_harness import free_port, run_module


def args(lab, **extra):
    return dict(dict(agent="127.0.0.1", port=lab["ports"]["ap1"], sta_mac=C1, sta_ip="10.78.0.100",
                     ssids=["arnab"]), **extra)


def test_present_then_idempotent_then_absent(mini_lab):
    ok, result = run_module(odin_vap.main, args(mini_lab), check_mode=True, diff=True)
    assert ok and result["changed"] and result["commands"][0].startswith("WRITE odinagent.add_vap")
    assert mini_lab["agents"]["ap1"].vaps == {}          # check mode sent nothing
    assert result["diff"]["after"] == "02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab\n"
    ok, result = run_module(odin_vap.main, args(mini_lab))
    assert ok and result["changed"] and result["vap"]["bssid"] == "00:1b:b3:00:00:01"
    assert C1 in mini_lab["agents"]["ap1"].vaps
    ok, result = run_module(odin_vap.main, args(mini_lab))
    assert ok and not result["changed"] and result["commands"] == []
    ok, result = run_module(odin_vap.main, args(mini_lab, ssids=["arnab", "guest"]))
    assert ok and result["changed"] and "set_vap" in result["commands"][0]
    ok, result = run_module(odin_vap.main, args(mini_lab, state="absent"))
    assert ok and result["changed"] and result["vap"] is None and mini_lab["agents"]["ap1"].vaps == {}
    ok, result = run_module(odin_vap.main, args(mini_lab, state="absent"))
    assert ok and not result["changed"]


def test_bad_mac_and_unreachable_agent(mini_lab):
    ok, result = run_module(odin_vap.main, args(mini_lab, sta_mac="02:c0:00:00:00"))
    assert not ok and "not a MAC address" in result["msg"]
    ok, result = run_module(odin_vap.main, args(mini_lab, sta_ip="10.78.0.999"))
    assert not ok and "IPv4" in result["msg"]
    ok, result = run_module(odin_vap.main, args(mini_lab, port=free_port(), timeout=1))
    assert not ok and "cannot connect" in result["msg"]
