"""odin_agent_info reads every handler into structured data."""
from ansible_collections.arnab.testbed.plugins.module_utils import odin
from ansible_collections.arnab.testbed.plugins.modules import odin_agent_info

from odin_lab import C1, mini_lab  # noqa: F401  # pylint: disable=unused-import
from module_harness import run_module


def test_reads_all_handlers(mini_lab):
    agent = mini_lab["agents"]["ap1"]
    agent.write_add_vap(odin.Vap.build(C1, "10.78.0.100", "arnab").to_line())
    agent.write_subscriptions("1 1 00:00:00:00:00:00 signal 2 -70")
    ok, result = run_module(odin_agent_info.main, dict(agent="127.0.0.1", port=mini_lab["ports"]["ap1"]),
                            check_mode=True)
    assert ok and not result["changed"]
    info = result["agent_info"]
    assert info["protocol"] == "Click::ControlSocket/1.3"
    assert info["table"] == [{"sta_mac": C1, "sta_ip": "10.78.0.100", "bssid": "00:1b:b3:00:00:01", "ssids": ["arnab"]}]
    assert (info["channel"], info["frequency_mhz"], info["beacon_interval_ms"]) == (6, 2437, 100)
    assert info["subscriptions"] == [{"id": 1, "sta_mac": "00:00:00:00:00:00", "stat": "signal",
                                      "relation": "less_than", "value": -70.0}]
    assert info["sta_rssi"] == {}            # as on a real agent: empty until an AP scan has run
    assert info["rxstats"][C1]["avg_signal"] == -41 and info["rxstats"][C1]["equipment"] == "STA"
    assert info["scanning_flags"] == {"client_scanning": 0, "ap_scanning": 0, "measurement_beacon": 0}
    assert info["txpower"] == 20


def test_gather_subset(mini_lab):
    ok, result = run_module(odin_agent_info.main, dict(agent="127.0.0.1", port=mini_lab["ports"]["ap2"],
                                                       gather=["channel"]))
    assert ok and set(result["agent_info"]) == {"endpoint", "protocol", "channel", "frequency_mhz"}
    assert result["agent_info"]["channel"] == 1
