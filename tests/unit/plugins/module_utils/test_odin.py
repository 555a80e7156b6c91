"""Odin formats: vAP lines, BSSIDs, channels, subscriptions, statistics, agent Click configuration."""
import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import odin

AP1 = dict(ap_mac="02:A0:00:00:00:01", master_ip="10.77.0.10", agent_ip="10.77.0.11", ssid="arnab")


def test_bssid_convention_and_mac_normalization():
    assert odin.vap_bssid("02-C0-00-00-00-01") == "00:1b:b3:00:00:01"
    assert odin.normalize_mac("02-C0-00-00-00-1A") == "02:c0:00:00:00:1a"
    for bad in ("02:c0:00:00:00", "02:c0:00:00:00:zz", "02:c0-00:00:00:01", "", "0200.0000.0001"):
        with pytest.raises(odin.OdinValueError):
            odin.normalize_mac(bad)
    with pytest.raises(odin.OdinValueError):
        odin.normalize_ip("10.78.0.300")


def test_table_round_trip_with_several_ssids():
    text = "02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab guest\n02:c0:00:00:00:02 10.78.0.101 00:1b:b3:00:00:02 arnab\n"
    table = odin.parse_table(text)
    assert table["02:c0:00:00:00:01"].ssids == ("arnab", "guest")
    assert odin.format_table(table) == text
    assert odin.parse_table("") == {}
    with pytest.raises(odin.OdinValueError):
        odin.parse_table("02:c0:00:00:00:01 10.78.0.100\n")


def test_vap_build_defaults_bssid_and_csa_args():
    vap = odin.Vap.build("02:C0:00:00:00:01", "10.78.0.100", "arnab")
    assert vap.to_line() == "02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab"
    assert odin.csa_args(vap, 1) == "02:c0:00:00:00:01 00:1b:b3:00:00:01 1 arnab"
    with pytest.raises(odin.OdinValueError):
        odin.Vap.build("02:c0:00:00:00:01", "10.78.0.100", ["two words"])


@pytest.mark.parametrize("channel,freq", [(1, 2412), (6, 2437), (13, 2472), (14, 2484), (36, 5180), (165, 5825)])
def test_channel_frequency(channel, freq):
    assert odin.channel_to_frequency(channel) == freq
    assert odin.frequency_to_channel(freq) == channel


def test_bad_channels():
    for bad in (0, 15, 200, "x"):
        with pytest.raises(odin.OdinValueError):
            odin.channel_to_frequency(bad)


def test_subscriptions_round_trip_and_matching():
    subs = [odin.Subscription.build(1, None, "signal", "less_than", -70),
            odin.Subscription.build(2, "02:c0:00:00:00:01", "rate", 1, 5.5)]
    text = odin.format_subscriptions(subs)
    assert text == "2 1 00:00:00:00:00:00 signal 2 -70 2 02:c0:00:00:00:01 rate 1 5.5"
    assert odin.parse_subscriptions(text) == subs
    assert subs[0].matches("02:c0:00:00:00:09", -75) and not subs[0].matches("02:c0:00:00:00:09", -60)
    assert not subs[1].matches("02:c0:00:00:00:09", 9)
    assert odin.parse_subscriptions("0") == []
    with pytest.raises(odin.OdinValueError):
        odin.parse_subscriptions("2 1 00:00:00:00:00:00 signal 2 -70")
    assert odin.format_publish("02:c0:00:00:00:01", [(1, -75)]) == "publish 02:c0:00:00:00:01 1 1:-75"


def test_station_stats_and_rssi_parsing():
    line = odin.format_station_stats("02:c0:00:00:00:01", {"packets": 3, "avg_rate": 54000, "avg_signal": -41.5,
                                                           "equipment": "emulated"})
    stats = odin.parse_station_stats(line + "\n")
    assert stats["02:c0:00:00:00:01"]["packets"] == 3
    assert stats["02:c0:00:00:00:01"]["avg_signal"] == -41.5
    assert stats["02:c0:00:00:00:01"]["equipment"] == "emulated"
    assert odin.parse_sta_rssi("02:c0:00:00:00:01 -41\n") == {"02:c0:00:00:00:01": -41}
    assert odin.parse_scan_client("190\n") == -66
    assert odin.parse_scan_client("0") is None


def test_agent_config_round_trip_every_parameter():
    params = dict(AP1, channel=11, queue_size_in=64, queue_size_out=32, master_port=2900, click_debug=1,
                  odin_debug=11, tx_rate=12, tx_power=25, hidden=True, multichannel=False,
                  default_beacon_interval=102, burst_beacon_interval=5, burst_length=4,
                  measurement_beacon_interval=200, capture_mode=True, capture_mac="02:C0:00:00:00:01",
                  control_port=7000, chatter_port=7001, ping_interval=1.5, debugfs_path="/tmp/bssid_extra")
    text = odin.render_agent_config(params, name="ap1")
    assert "odinagent :: OdinAgent(" in text and 'ControlSocket("TCP", $CONTROL_PORT)' in text
    parsed = odin.parse_agent_config(text)
    assert parsed == odin.validate_agent_config(params)
    assert set(parsed) == set(odin.AGENT_CONFIG_PARAMS)


def test_agent_config_defaults_and_errors():
    conf = odin.parse_agent_config(odin.render_agent_config(AP1))
    assert (conf["master_port"], conf["control_port"], conf["channel"], conf["tx_rate"]) == (2819, 6777, 6, 108)
    for bad in (dict(AP1, ap_mac="nope"), dict(AP1, master_ip="10.0.0"), dict(AP1, channel=20),
                dict(AP1, master_port=70000), dict(AP1, ssid="has space"), dict(AP1, queue_size_in=0),
                dict(AP1, unknown_param=1), dict(AP1, debugfs_path="/x;rm -rf /"), {"ap_mac": "02:a0:00:00:00:01"}):
        with pytest.raises(odin.OdinValueError):
            odin.render_agent_config(bad)


def test_parse_click_config_reads_elements_not_just_defines():
    text = odin.render_agent_config(AP1).replace("Socket(UDP, $MASTER_IP, $MASTER_PORT", "Socket(UDP, 10.77.0.99, 3000")
    conf = odin.parse_agent_config(text)
    assert (conf["master_ip"], conf["master_port"]) == ("10.77.0.99", 3000)


def test_subscriptions_read_in_the_real_agents_format_and_written_in_the_write_format():
    # What real OdinAgent answers to READ subscriptions (one line each, upper-case MACs), not the WRITE format.
    text = ("sub_id 1 addr 00:00:00:00:00:00 stat signal rel 2 val -70\n"
            "sub_id 7 addr 02:C0:00:00:00:01 stat signal rel 1 val 160.5\n")
    subs = odin.parse_subscription_lines(text)
    assert [tuple(s) for s in subs] == [
        (1, odin.ANY_MAC, "signal", "less_than", -70.0), (7, "02:c0:00:00:00:01", "signal", "greater_than", 160.5)]
    assert odin.format_subscription_lines(subs) == text
    assert odin.format_subscriptions(subs) == "2 1 00:00:00:00:00:00 signal 2 -70 7 02:c0:00:00:00:01 signal 1 160.5"
    assert odin.parse_subscription_lines("") == [] and odin.parse_subscription_lines("\n") == []
    with pytest.raises(odin.OdinValueError):
        odin.parse_subscription_lines("1 00:00:00:00:00:00 signal 2 -70")   # the WRITE format is not a READ
    with pytest.raises(odin.OdinValueError):
        odin.parse_subscription_lines("sub_id 1 addr nope stat signal rel 2 val -70")
