"""The odin_master event source on loopback UDP (127.0.0.1) with a fake queue: agents, clients, handoffs,
per-client serialization and coalescing, the done channel."""
import asyncio
import json
import socket
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ocs_harness import C1, C2, Harness, run  # noqa: E402
from ansible_collections.arnab.testbed.extensions.eda.plugins.event_source import odin_master as source  # noqa: E402


def test_agents_up_and_down_and_strangers_counted():
    async def scenario():
        h = Harness(agent_timeout_s=0.4)
        started = await h.start()
        assert started["aps"] == ["ap1", "ap2", "ap3"] and started["done_port"] > 0
        h.agents[0].send("ping\n")
        up = await h.wait("agent_up")
        assert (up["ap"], up["agent"]) == ("ap1", h.agents[0].address)
        h.agents[0].send("ping\n")                       # still up: no second event
        h.agents[1].send("publish %s 1 1:-80\n" % C2)    # not up yet (no ping): ignored, counted
        down = await h.wait("agent_down", timeout=3)
        assert down["ap"] == "ap1" and down["silent_s"] >= 0.4
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(b"ping\n", h.agents[0].master)
        stranger.close()
        await h.settle()
        counters = h.ocs.stats()["master"]
        assert counters["agent_not_up"] == 1 and counters["unknown_agent"] == 1
        assert len(h.of("agent_up")) == 1             # ap1 only: the stranger came up as nobody
        await h.stop()
        final = h.of("ocs_stats")[-1]
        assert final["final"] is True and final["counters"]["master"]["datagrams"] == 4
    run(scenario())


def up_all(h):
    for agent in h.agents:
        agent.send("ping\n")


def test_handoff_event_carries_what_the_rulebook_needs():
    async def scenario():
        h = Harness(report_dir="/tmp/ocs-reports")
        await h.start()
        up_all(h)
        for dummy in range(3):
            await h.wait("agent_up")
        h.agents[1].send("publish %s 1 1:-50\n" % C1)        # ap2 hears client1 well
        h.agents[0].send("publish %s 1 1:%d\n" % (C1, 256 - 80))   # ap1: raw value, -80 dBm
        event = await h.wait("handoff")
        for key, value in dict(client="client1", sta_mac=C1, from_ap="ap1", to_ap="ap2", from_edge="edge1",
                               to_edge="edge2", container="video", seq=1, from_dbm=-80, to_dbm=-50,
                               coalesced=[]).items():
            assert event[key] == value, key
        assert event["t_trigger"] <= event["t_decision"] and event["decision_ms"] >= 0
        assert event["report"] == "/tmp/ocs-reports/handoff-1-client1.json"
        assert event["done_port"] == h.ocs.done_port and "below -70 dBm" in event["reason"]
        json.dumps(event)                                      # an event must serialize
        await h.stop()
    run(scenario())


def test_one_handoff_per_client_latest_target_wins_and_done_releases():
    async def scenario():
        h = Harness()
        await h.start()
        up_all(h)
        for dummy in range(3):
            await h.wait("agent_up")
        a1, a2, a3 = h.agents
        a2.send("publish %s 1 1:-50\n" % C1)
        a1.send("publish %s 1 1:-80\n" % C1)
        first = await h.wait("handoff")
        assert first["to_ap"] == "ap2"
        # while it runs the client walks on: ap3 first, then back toward ap1 (the latest wins)
        a3.send("publish %s 1 1:-45\n" % C1)
        a2.send("publish %s 1 1:-85\n" % C1)
        await h.settle()
        a1.send("publish %s 1 1:-40\n" % C1)
        a3.send("publish %s 1 1:-85\n" % C1)
        coalesced = await h.wait("handoff_coalesced")
        assert (coalesced["to_ap"], coalesced["replaced_by"]) == ("ap3", "ap1")
        # another client is not held by client1's migration
        a1.send("publish %s 1 1:-50\n" % C2)
        a2.send("publish %s 1 1:-80\n" % C2)
        other = await h.wait("handoff", where=lambda e: e["client"] == "client2")
        assert (other["from_ap"], other["to_ap"]) == ("ap2", "ap1")
        assert not [e for e in h.of("handoff") if e["client"] == "client1" and e["seq"] != first["seq"]]
        h.done(99, "client1", True)                            # stale: ignored
        h.done(first["seq"], "client1", True)
        done = await h.wait("handoff_done")
        assert (done["client"], done["ok"], done["ap"]) == ("client1", True, "ap2")
        nxt = await h.wait("handoff", where=lambda e: e["client"] == "client1")
        assert (nxt["from_ap"], nxt["to_ap"], nxt["from_edge"], nxt["to_edge"]) == ("ap2", "ap1", "edge2", "edge1")
        assert [c["to_ap"] for c in nxt["coalesced"]] == ["ap3"]
        h.done(nxt["seq"], "client1", False)                   # failed: the client stays where it was
        done = await h.wait("handoff_done", where=lambda e: e["seq"] == nxt["seq"])
        assert done["ap"] == "ap2" and h.ocs.policy.serving("client1") == "ap2"
        await h.stop()
        counters = h.ocs.stats()
        assert counters["master"]["stale_done"] == 1 and counters["handoffs"]["coalesced"] == 1
    run(scenario())


def test_client_seen_association_sets_the_serving_ap_and_probes_are_rate_limited():
    async def scenario():
        h = Harness(seen_interval_s=60)
        await h.start()
        up_all(h)
        for dummy in range(3):
            await h.wait("agent_up")
        h.agents[2].send("association %s\n" % C1)
        seen = await h.wait("client_seen")
        assert (seen["client"], seen["ap"], seen["kind"]) == ("client1", "ap3", "association")
        for dummy in range(5):
            h.agents[0].send("probe 02:99:00:00:00:09 arnab\n")
        probe = await h.wait("client_seen", where=lambda e: e["kind"] == "probe")
        assert probe["client"] is None and probe["ssid"] == "arnab"
        h.agents[0].send("deauthentication %s\n" % C2)
        await h.wait("client_seen", where=lambda e: e["kind"] == "deauthentication")
        await h.settle()
        assert len([e for e in h.of("client_seen") if e["kind"] == "probe"]) == 1   # the other four: held
        assert h.ocs.policy.serving("client1") == "ap3"
        assert h.ocs.stats()["master"]["unknown_client"] == 5
        await h.stop()
    run(scenario())


def test_migration_timeout_releases_the_client():
    async def scenario():
        h = Harness(migration_timeout_s=0.3)
        await h.start()
        up_all(h)
        for dummy in range(3):
            await h.wait("agent_up")
        h.agents[1].send("publish %s 1 1:-50\n" % C1)
        h.agents[0].send("publish %s 1 1:-80\n" % C1)
        await h.wait("handoff")
        done = await h.wait("handoff_done", timeout=3)
        assert done["ok"] is False and done["ap"] == "ap1"
        assert h.ocs.stats()["master"]["migration_timeouts"] == 1
        await h.stop()
    run(scenario())


def test_bad_done_datagrams_are_counted(tmp_path):
    async def scenario():
        h = Harness(state_file=str(tmp_path / "ocs.json"))
        await h.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for data in (b"nope", b"{}", b'{"seq": "x", "client": "c", "ok": 1}', b"\xff" * 10, b"{" * 5000):
            sock.sendto(data, ("127.0.0.1", h.ocs.done_port))
        sock.close()
        await h.settle(0.3)
        assert h.ocs.stats()["master"]["done_errors"] == 5
        await h.stop()
        state = json.loads((tmp_path / "ocs.json").read_text())
        assert state["clients"]["client1"] == {"serving": "ap1", "busy": False}
    run(scenario())


def test_main_runs_for_its_duration():
    async def scenario():
        queue = asyncio.Queue()
        await source.main(queue, {"host": "127.0.0.1", "port": 0, "done_port": None, "duration_s": 0.2,
                                  "aps": {}, "clients": {}})
        kinds = [queue.get_nowait()["type"] for dummy in range(queue.qsize())]
        assert kinds == ["ocs_started", "ocs_stats"]
    run(scenario())


def test_inventory_topology():
    data = {"_meta": {"hostvars": {
        "ocs": {"ocs_mobility": {"threshold_dbm": -65}},
        "ap1": {"ansible_host": "10.77.0.11", "ap_edge": "edge1", "ap_channel": 6},
        "ap2": {"ansible_host": "10.77.0.12", "odin_agent_ip": "10.77.1.12", "ap_edge": "edge2", "ap_channel": 1},
        "client1": {"client_mac": C1, "client_ap": "ap1", "client_service": "video"}}},
        "all": {"children": ["ocs_servers", "aps", "clients"]},
        "ocs_servers": {"hosts": ["ocs"]}, "aps": {"hosts": ["ap1", "ap2"]}, "clients": {"hosts": ["client1"]}}
    aps, clients, policy = source.inventory_topology(data)
    assert aps["ap1"] == {"agent": "10.77.0.11", "edge": "edge1", "channel": 6, "control_port": 6777}
    assert aps["ap2"]["agent"] == "10.77.1.12"
    assert clients == {"client1": {"mac": C1, "ap": "ap1", "container": "video"}}
    assert policy == {"threshold_dbm": -65}


def test_lab_inventory_reads():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))))))
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(exe):
        pytest.skip("no ansible-inventory in this venv")
    aps, clients, dummy = source.read_inventory(os.path.join(root, "inventories", "lab"))
    assert aps["ap1"]["agent"] == "10.77.0.11" and clients["client1"]["mac"] == C1


def test_event_log_holds_every_event_as_a_json_line(tmp_path):
    log = tmp_path / "events.jsonl"

    async def scenario():
        queue = asyncio.Queue()
        await source.main(queue, {"host": "127.0.0.1", "port": 0, "done_port": None, "duration_s": 0.2,
                                  "aps": {}, "clients": {}, "event_log": str(log)})
        return [queue.get_nowait() for dummy in range(queue.qsize())]

    events = run(scenario())
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["type"] for e in logged] == ["ocs_started", "ocs_stats"] and logged == events


def test_an_event_log_that_cannot_be_written_is_counted(tmp_path):
    async def scenario():
        queue = asyncio.Queue()
        ocs = source.OdinMaster(queue, {"host": "127.0.0.1", "port": 0, "done_port": None, "duration_s": 0.1,
                                        "aps": {}, "clients": {}, "event_log": str(tmp_path / "no" / "dir.jsonl")})
        await ocs.run()
        return ocs.stats()["master"]

    assert run(scenario())["event_log_errors"] == 2


def test_active_scan_ahead_lets_the_crossing_sample_decide(monkeypatch):
    """The agents' scan_client (a socket fake: each AP hears client1 at a fixed level after the scan time) runs
    while client1 nears the threshold; the first sample below it is decided at once, from that scan."""
    scans = []

    def scan_one(self, ap, sta_mac, channel, scan_time):
        scans.append((ap, sta_mac, channel))
        return {"ap2": -52, "ap3": -90}[ap]

    monkeypatch.setattr(source.OdinMaster, "_scan_one", scan_one)

    async def scenario():
        h = Harness(policy={"scan": "active", "triggers": 1, "scan_ahead_db": 6, "scan_time_s": 0.05})
        await h.start()
        up_all(h)
        for dummy in range(3):
            await h.wait("agent_up")
        h.agents[0].send("publish %s 1 1:-66\n" % C1)      # near the threshold: the scan ahead runs
        await h.settle(0.3)
        assert sorted(scans) == [("ap2", C1, 1), ("ap3", C1, 1)] and not h.of("handoff")
        h.agents[0].send("publish %s 1 1:-75\n" % C1)      # the crossing
        event = await h.wait("handoff")
        assert (event["from_ap"], event["to_ap"], event["to_dbm"]) == ("ap1", "ap2", -52)
        assert "scanned ahead" in event["reason"] and event["decision_ms"] == 0.0
        assert len(scans) == 2                              # decided without a scan of its own
        await h.stop()
        counters = h.of("ocs_stats")[-1]["counters"]
        assert counters["policy"]["decided_from_scan_ahead"] == 1, counters
    run(scenario())
