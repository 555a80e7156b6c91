"""The walk report (issue 12) from synthetic OCS events, handoff reports and client streams."""
import json

import pytest

from arnab_lab import walk

T0 = 1_700_000_000.0
EDGES = {"ap1": "edge1", "ap2": "edge2", "ap3": "edge1"}


def handoff(seq, client, from_ap, to_ap, t_trigger, t_decision, at, coalesced=(), report=None):
    return {"type": "handoff", "time": T0 + at, "seq": seq, "client": client, "sta_mac": "02:c0:00:00:00:01",
            "from_ap": from_ap, "to_ap": to_ap, "from_edge": EDGES[from_ap], "to_edge": EDGES[to_ap],
            "container": "video", "t_trigger": T0 + t_trigger, "t_decision": T0 + t_decision,
            "decision_ms": round((t_decision - t_trigger) * 1000, 1), "reason": "...", "from_dbm": -72.0,
            "to_dbm": -50.0, "coalesced": list(coalesced), "waited_s": round(at - t_decision, 3),
            "report": report or "/tmp/ocs/handoff-%d-%s.json" % (seq, client), "done_port": 2820}


def done(seq, client, ok, ap, at):
    return {"type": "handoff_done", "time": T0 + at, "seq": seq, "client": client, "ok": ok, "ap": ap}


def report(control_path_ms, tier1_gap, method, downtime_s, tier2_gap, ok=True, stream_ok=True, gaps=()):
    return {"ok": ok, "client": "client1", "tier1": {"control_path_ms": control_path_ms, "client_gap_ms": tier1_gap},
            "tier2": {"method": method, "downtime_s": downtime_s, "client_gap_ms": tier2_gap},
            "client_stream": {"ok": stream_ok, "gaps": [list(g) for g in gaps], "reset": None, "problem": None}}


EVENTS = [
    {"type": "ocs_started", "time": T0, "port": 2819, "done_port": 2820, "aps": ["ap1", "ap2", "ap3"],
     "clients": ["client1", "client2"]},
    handoff(1, "client1", "ap1", "ap2", 15.5, 16.7, 16.7),
    done(1, "client1", True, "ap2", 30.0),
    handoff(2, "client1", "ap2", "ap3", 45.0, 46.2, 46.2),
    # while seq 2 runs: a decision back to ap2 waits, a later one to ap1 replaces it
    {"type": "handoff_coalesced", "time": T0 + 61.0, "client": "client1", "to_ap": "ap2", "t_trigger": T0 + 55.0,
     "replaced_by": "ap1"},
    done(2, "client1", True, "ap3", 62.0),
    handoff(3, "client1", "ap3", "ap1", 59.5, 60.7, 62.0,
            coalesced=[{"to_ap": "ap2", "t_trigger": T0 + 55.0, "t_decision": T0 + 56.2}]),
    done(3, "client1", False, "ap3", 75.0),
    {"type": "client_seen", "time": T0 + 1, "sta_mac": "02:c0:00:00:00:02", "client": "client2", "ap": "ap2",
     "agent": "10.77.0.12", "kind": "probe", "ssid": ""},
    {"type": "ocs_stats", "time": T0 + 80, "final": True, "counters": {
        "master": {}, "handoffs": {}, "agents_up": [],
        "policy": {"samples": 900, "decisions": 4, "suppressed": 3, "suppressed_hysteresis": 2,
                   "suppressed_no_better_ap": 1}}},
]
REPORTS = {1: report(41.2, 130, "pre-copy", 0.61, 700, gaps=[(T0 + 17.0, 130), (T0 + 25.0, 700)]),
           "2": report(39.0, 120, "stop-and-copy", 1.4, 1500, gaps=[(T0 + 50.0, 1500)])}
STREAMS = {"client1": {"ok": True, "gaps": [[T0 + 17.0, 130], [T0 + 25.0, 690], [T0 + 50.0, 1480],
                                            [T0 + 63.0, 40], [T0 + 90.0, 2000]], "reset": None, "problem": None},
           "client2": {"ok": True, "gaps": [], "reset": None, "problem": None}}


def test_one_entry_per_decision_with_the_reports_and_streams():
    result = walk.build(EVENTS, REPORTS, STREAMS, EDGES, flap_window_s=10)
    ran = [h for h in result["handoffs"] if h["seq"]]
    assert [(h["seq"], h["from_ap"], h["to_ap"], h["from_edge"], h["to_edge"]) for h in ran] == [
        (1, "ap1", "ap2", "edge1", "edge2"), (2, "ap2", "ap3", "edge2", "edge1"), (3, "ap3", "ap1", "edge1", "edge1")]
    first = ran[0]
    assert first["t_trigger"] == T0 + 15.5 and first["t_trigger_source"] == "ocs"
    assert first["decision_ms"] == pytest.approx(1200, abs=0.2) and first["ocs_decision_ms"] == 1200
    assert (first["control_path_ms"], first["tier1_gap_ms"], first["method"], first["downtime_s"]) == (
        41.2, 130, "pre-copy", 0.61)
    assert first["client_gap_ms"] == 690        # the walk's own stream between the handoff's start and end
    assert first["ok"] is True and first["ap_after"] == "ap2"
    assert ran[1]["client_gap_ms"] == 1480 and ran[1]["method"] == "stop-and-copy"
    # seq 3 has no report: what only a report holds is null, and said so
    third = ran[2]
    assert (third["control_path_ms"], third["tier1_gap_ms"], third["method"], third["downtime_s"]) == (None,) * 4
    assert third["ok"] is False and third["client_gap_ms"] == 40
    assert third["replaced"] == [{"to_ap": "ap2", "t_trigger": T0 + 55.0, "t_decision": T0 + 56.2}]
    assert "handoff 3" in result["unavailable"] and "downtime_s" in result["unavailable"]["handoff 3"]
    # the decision the OCS coalesced is an entry of its own
    coalesced = [h for h in result["handoffs"] if "coalesced" in h]
    assert len(coalesced) == 1 and coalesced[0]["coalesced"] == {"replaced_by": "ap1"}
    assert coalesced[0]["t_decision"] == T0 + 56.2 and coalesced[0]["to_edge"] == "edge2"
    assert coalesced[0]["ok"] is None and coalesced[0]["downtime_s"] is None
    assert result["decisions"] == 4 and result["coalesced"] == 1
    assert [h["t_decision"] for h in result["handoffs"]] == sorted(h["t_decision"] for h in result["handoffs"])
    assert result["suppressed"] == {"total": 3, "by_reason": {"hysteresis": 2, "no_better_ap": 1}}
    assert result["clients"]["client1"] == {
        "handoffs": 3, "stream_ok": True, "longest_gap_ms": 2000, "longest_gap_at": T0 + 90.0, "stream_problem": None,
        "stream_source": "walk", "ap": "ap3", "edge": "edge1"}
    assert result["clients"]["client2"]["handoffs"] == 0 and result["clients"]["client2"]["longest_gap_ms"] == 0
    assert result["ping_pong"] == [] and result["ok"] is False       # seq 3 failed
    assert "no scenario prediction" in result["unavailable"]["t_trigger"]
    json.dumps(result)


def test_t_trigger_from_the_scenarios_prediction():
    started = T0 + 0.3
    expected = {"handoffs": [
        {"client": "client1", "from_ap": "ap1", "to_ap": "ap2", "t_cross": 15.16, "t_condition": 15.16,
         "t_trigger": 15.5, "t_decision": 16.7},
        {"client": "client1", "from_ap": "ap2", "to_ap": "ap3", "t_cross": 44.9, "t_condition": 44.9,
         "t_trigger": 45.0, "t_decision": 46.2},
        {"client": "client1", "from_ap": "ap3", "to_ap": "ap2", "t_cross": 74.9, "t_condition": None,
         "t_trigger": 75.0, "t_decision": 76.2}]}
    result = walk.build(EVENTS, REPORTS, STREAMS, EDGES, expected=expected, started=started)
    ran = [h for h in result["handoffs"] if h["seq"]]
    assert ran[0]["t_trigger"] == pytest.approx(started + 15.16) and ran[0]["t_trigger_source"] == "scenario"
    assert ran[0]["decision_ms"] == pytest.approx((16.7 - 15.46) * 1000, abs=0.2)
    assert ran[0]["ocs_t_trigger"] == T0 + 15.5 and ran[0]["predicted"]["t_decision"] == 16.7
    assert ran[1]["t_trigger_source"] == "scenario"
    assert ran[2]["t_trigger_source"] == "ocs" and ran[2]["expected"] is False    # ap3 -> ap1 was not predicted
    # the coalesced decision to ap2 (t_decision 56.2) came before the predicted one to ap2 could happen (74.9)
    assert [h["expected"] for h in result["handoffs"] if "coalesced" in h] == [False]
    assert result["expected"]["handoffs"] == 3 and result["expected"]["unexpected"] == 2
    assert [(m["to_ap"], m["t_cross"]) for m in result["expected"]["missed"]] == [("ap2", 74.9)]
    assert "t_trigger" not in result["unavailable"]


def test_ping_pong_is_reported():
    events = [handoff(1, "client1", "ap1", "ap2", 10.0, 11.0, 11.0), done(1, "client1", True, "ap2", 14.0),
              handoff(2, "client1", "ap2", "ap1", 17.0, 18.0, 18.0), done(2, "client1", True, "ap1", 21.0),
              handoff(3, "client1", "ap1", "ap2", 40.0, 41.0, 41.0), done(3, "client1", True, "ap2", 44.0)]
    result = walk.build(events, {}, {"client1": {"ok": True, "gaps": []}}, EDGES, flap_window_s=10)
    assert result["ping_pong"] == [{"client": "client1", "aps": ["ap1", "ap2", "ap1"], "seqs": [1, 2], "after_s": 7.0}]
    assert result["ok"] is False
    assert walk.build(events, {}, {"client1": {"ok": True, "gaps": []}}, EDGES, flap_window_s=5)["ping_pong"] == []


def test_without_walk_streams_the_handoff_reports_stand_in_and_missing_things_are_null():
    result = walk.build([e for e in EVENTS if e["type"] != "ocs_stats"], REPORTS, None, None)
    c1 = result["clients"]["client1"]
    assert c1["stream_source"] == "handoff reports" and c1["longest_gap_ms"] == 1500 and c1["stream_ok"] is True
    first = [h for h in result["handoffs"] if h["seq"] == 1][0]
    assert first["client_gap_ms"] == 700            # the longest of the report's two tiers
    assert first["to_edge"] == "edge2"              # from the event
    assert result["suppressed"] is None and "suppressed" in result["unavailable"]
    assert result["clients"]["client1"]["edge"] is None   # no edges given
    assert walk.build([], {}, {"client2": {"ok": True, "gaps": []}}, services={"client2": "edge2"})["ok"] is False


def test_all_good_is_ok_and_services_follow():
    events = [handoff(1, "client1", "ap1", "ap2", 10.0, 11.0, 11.0), done(1, "client1", True, "ap2", 14.0),
              {"type": "ocs_stats", "time": T0 + 20, "counters": {"policy": {}}}]
    streams = {"client1": {"ok": True, "gaps": [[T0 + 12, 300]]}}
    result = walk.build(events, {1: report(40, 300, "pre-copy", 0.5, 200)}, streams, EDGES,
                        services={"client1": "edge2"})
    assert result["ok"] is True and result["clients"]["client1"]["service_follows"] is True
    assert result["suppressed"] == {"total": 0, "by_reason": {}}
    assert walk.build(events, {}, streams, EDGES, services={"client1": "edge1"})["ok"] is False


def test_a_client_that_never_moved_is_placed_by_the_lab():
    streams = {"client2": {"ok": True, "gaps": []}}
    result = walk.build([], {}, streams, EDGES, services={"client2": "edge2"}, placement={"client2": "ap2"})
    c2 = result["clients"]["client2"]
    assert (c2["ap"], c2["edge"], c2["service_follows"], result["ok"]) == ("ap2", "edge2", True, True)
    moved = [handoff(1, "client1", "ap1", "ap2", 10.0, 11.0, 11.0), done(1, "client1", True, "ap2", 14.0)]
    result = walk.build(moved, {}, {"client1": {"ok": True, "gaps": []}}, EDGES, services={"client1": "edge1"},
                        placement={"client1": "ap1"})        # the lab says where it is, not the last handoff
    assert result["clients"]["client1"]["ap"] == "ap1" and result["clients"]["client1"]["service_follows"] is True


def test_files_and_the_command_line(tmp_path):
    rep = tmp_path / "handoff-1-client1.json"
    rep.write_text(json.dumps(report(40, 300, "pre-copy", 0.5, 200)))
    events = [handoff(1, "client1", "ap1", "ap2", 15.5, 16.7, 16.7, report=str(rep)),
              handoff(2, "client1", "ap2", "ap3", 45.0, 46.2, 46.2, report=str(tmp_path / "none.json")),
              done(1, "client1", True, "ap2", 30.0)]
    log = tmp_path / "events.jsonl"
    log.write_text("INFO:arnab.testbed.odin_master:Odin master on 0.0.0.0:2819\n"
                   + "".join(json.dumps(e) + "\n" for e in events) + "{not json\n[1, 2]\n")
    assert walk.load_events(str(log)) == events
    assert walk.load_reports(events) == {1: json.loads(rep.read_text())}
    from test_scenario import INVENTORY, WALK
    (tmp_path / "inv.json").write_text(json.dumps(INVENTORY))
    (tmp_path / "c1.json").write_text(json.dumps({"ok": True, "gaps": [[T0 + 20, 250]]}))
    out = tmp_path / "reports" / "walk.json"
    rc = walk.main(["--events", str(log), "--stream", "client1=%s" % (tmp_path / "c1.json"), "--inventory-json",
                    str(tmp_path / "inv.json"), "--scenario", WALK, "--started", str(T0 + 0.4), "--out", str(out)])
    result = json.loads(out.read_text())
    assert rc == 0 and result["ok"] is None          # seq 2 never ended; client2 has no stream
    assert result["handoffs"][0]["t_trigger"] == pytest.approx(T0 + 0.4 + 15.16)
    assert result["handoffs"][0]["client_gap_ms"] == 250 and result["handoffs"][0]["downtime_s"] == 0.5
    assert result["scenario"]["duration_s"] == 260 and result["expected"]["handoffs"] == 4


def test_the_table_has_a_row_per_decision_and_the_median():
    events = [handoff(1, "client1", "ap1", "ap2", 10.0, 11.0, 11.0), done(1, "client1", True, "ap2", 14.0),
              {"type": "ocs_stats", "time": T0 + 20, "counters": {"policy": {"suppressed": 2, "suppressed_hysteresis": 2}}}]
    streams = {"client1": {"ok": True, "gaps": [[T0 + 12, 300]]}}
    result = walk.build(events, {1: report(40, 300, "pre-copy", 0.5, 200)}, streams, EDGES,
                        services={"client1": "edge2"})
    lines = walk.table(result)
    assert lines[0].split()[:4] == ["#", "client", "from_ap", "to_ap"]
    assert lines[1].split()[:6] == ["1", "client1", "ap1", "ap2", "edge1", "edge2"] and "pre-copy" in lines[1]
    assert any(line.startswith("decision latency: median") for line in lines)
    assert "suppressed decisions: 2 hysteresis 2" in lines and lines[-1].endswith("result: ok")
    plot = walk.plot_input(result, "client1", streams["client1"], {1: {"timeline": [{"t": T0 + 12, "tier": 2,
                                                                                    "event": "freeze"}]}})
    assert [e["event"] for e in plot["timeline"]] == ["OCS handoff 1 ap1->ap2", "freeze"]
    assert plot["browser"] == {}
    player = {"started_at": T0, "stalls": [{"t": 12.5, "ms": 300}]}
    assert walk.plot_input(result, "client1", streams["client1"], None, player)["browser"] is player
