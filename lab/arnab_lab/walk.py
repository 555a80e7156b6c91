"""The walk report (issue 12, `make walk`): one JSON from the OCS's events, each handoff's report and each
client's stream. `build` is pure; `load_events`, `load_reports`, `main` read files.

Where each field comes from:
  * client, from_ap, to_ap, container, t_decision, waited_s, seq, report: the `handoff` event;
  * from_edge, to_edge: the `handoff` event (the policy's `ap_edge` per AP), else `edges` (the inventory's);
  * t_trigger: the scenario's prediction (`expected`, arnab_lab.scenario.predict: when the handoff condition held on
    the replayed signal, plus `started`, the replay's start); without one, the event's `t_trigger` (the OCS's first
    sample below the threshold). `t_trigger_source` says which; `ocs_t_trigger` is always the event's;
  * decision_ms: t_decision - t_trigger (the event's own `decision_ms` is `ocs_decision_ms`);
  * control_path_ms, tier1_gap_ms, method, downtime_s: the handoff's report (double_tier.yml, at the event's
    `report` path): `tier1.control_path_ms`, `tier1.client_gap_ms`, `tier2.method`, `tier2.downtime_s`;
  * client_gap_ms: the client's own stream (`streams`), its longest gap from the handoff's start to its end
    (`handoff_done`); without one, the report's longest gap of both tiers;
  * ok: the `handoff_done` event (ocs_done.yml reads it from the report); null when the handoff never ended;
  * coalesced: a decision that did not run, from the `handoff_coalesced` event (`replaced_by` a later decision, or
    `reason`); the decision that ran in its place lists it in `replaced`;
  * suppressed: the policy's counters in the last `ocs_stats` event (`final` when the source stopped);
  * clients.*.ap: `placement` (the AP serving the client at the end, read from the lab), else where its last
    handoff left it; clients.*.edge: that AP's ap_edge; service_follows: `services` (where its service runs) is it;
  * clients.*.stream_ok, longest_gap_ms: `streams` (a stream_probe.py result per client: ok, gaps [[epoch, ms]]);
    without one, the handoff reports' `client_stream`.

None of control_path_ms, tier1_gap_ms, method, downtime_s is in the OCS's events: they are null (and listed in
`unavailable`) for a handoff whose report is missing. Times are epoch seconds (the OCS's clock, time.time()).
"""
import argparse
import json
import os
import sys

FROM_REPORT = ("control_path_ms", "tier1_gap_ms", "method", "downtime_s")
SLACK_S = 1.0   # a decision can be matched to a predicted one whose condition held up to this much after it


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000.0, 1)


def _latency(t_decision, t_trigger):
    if _num(t_decision) is None or _num(t_trigger) is None:
        return None
    return _ms(t_decision - t_trigger)


def ap_edges(inventory):
    """`ansible-inventory --list` output -> {AP: its ap_edge}."""
    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    return dict((ap, hostvars.get(ap, {}).get("ap_edge")) for ap in inventory.get("aps", {}).get("hosts", []))


def longest_gap(stream, since=None, until=None):
    """(ms, epoch) of the longest gap of a stream_probe.py result starting in [since, until]; (0, None) if none."""
    best = (0, None)
    for start, ms in stream.get("gaps") or []:
        if (since is None or start >= since) and (until is None or start <= until) and ms > best[0]:
            best = (ms, start)
    return best


def _match(expected, started, client, to_ap, t_decision, used):
    """The first unused predicted handoff of `client` to `to_ap` that could have caused a decision at t_decision."""
    for i, h in enumerate(expected):
        if i in used or h["client"] != client or h["to_ap"] != to_ap:
            continue
        t = h.get("t_condition")
        t = h.get("t_cross") if t is None else t
        if started + t <= t_decision + SLACK_S:
            used.add(i)
            return h
    return None


def build(events, reports=None, streams=None, edges=None, expected=None, started=None, scenario=None,
          flap_window_s=10.0, services=None, placement=None):
    """The walk report.

    events: the OCS's events (odin_master source), in order; reports: {seq: the handoff's double_tier report};
    streams: {client: stream_probe.py result over the whole walk}; edges: {AP: ap_edge}; expected: the scenario's
    prediction (arnab_lab.scenario.predict) and started: the replay's start (epoch); scenario: the validated
    scenario; flap_window_s: a hand back within this is a ping-pong; services: {client: the edge its service runs
    on at the end}; placement: {client: the AP that serves it at the end} (what the lab says; without it, where its
    last handoff left it)."""
    reports = dict((int(k), v) for k, v in (reports or {}).items())
    streams, edges, services, placement = streams or {}, dict(edges or {}), services or {}, placement or {}
    unavailable = {}
    runs, done, coalesced, stats, replaced_info = [], {}, [], None, {}
    for event in events:
        kind = event.get("type")
        if kind == "handoff":
            runs.append(event)
            for old in event.get("coalesced") or []:
                replaced_info[(event["client"], old.get("to_ap"), old.get("t_trigger"))] = old
        elif kind == "handoff_done":
            done[event.get("seq")] = event
        elif kind == "handoff_coalesced":
            coalesced.append(event)
        elif kind == "ocs_stats":
            stats = event
    predicted = (expected or {}).get("handoffs") or []
    if expected is not None and started is None:
        unavailable["t_trigger"] = "a prediction without the replay's start time: the OCS's t_trigger"
        predicted = []
    elif expected is None:
        unavailable["t_trigger"] = ("no scenario prediction: t_trigger is the OCS's (its first sample below the "
                                    "threshold), not when the replayed signal crossed")
    used = set()

    def timing(client, to_ap, t_decision, ocs_t_trigger):
        match = _match(predicted, started, client, to_ap, t_decision, used) if predicted else None
        if match is None:
            return {"t_trigger": ocs_t_trigger, "t_trigger_source": "ocs", "expected": False if predicted else None}
        t = match["t_condition"] if match.get("t_condition") is not None else match["t_cross"]
        return {"t_trigger": round(started + t, 3), "t_trigger_source": "scenario", "expected": True,
                "predicted": {"t_condition": match.get("t_condition"), "t_cross": match.get("t_cross"),
                              "t_decision": match.get("t_decision")}}

    handoffs = []
    for event in runs:
        seq, client = event.get("seq"), event.get("client")
        report = reports.get(seq) if seq is not None else None
        end = done.get(seq)
        entry = {"seq": seq, "client": client, "from_ap": event.get("from_ap"), "to_ap": event.get("to_ap"),
                 "from_edge": event.get("from_edge") or edges.get(event.get("from_ap")),
                 "to_edge": event.get("to_edge") or edges.get(event.get("to_ap")),
                 "container": event.get("container")}
        entry.update(timing(client, event.get("to_ap"), event.get("t_decision"), event.get("t_trigger")))
        t_decision = _num(event.get("t_decision"))
        entry.update(t_decision=t_decision, ocs_t_trigger=event.get("t_trigger"),
                     ocs_decision_ms=event.get("decision_ms"),
                     decision_ms=_latency(t_decision, entry["t_trigger"]))
        tier1 = (report or {}).get("tier1") or {}
        tier2 = (report or {}).get("tier2") or {}
        entry.update(control_path_ms=_num(tier1.get("control_path_ms")), tier1_gap_ms=_num(tier1.get("client_gap_ms")),
                     method=tier2.get("method"), downtime_s=_num(tier2.get("downtime_s")))
        if report is None:
            unavailable["handoff %s" % seq] = "no report (%s): %s are null" % (
                event.get("report") or "none written", ", ".join(FROM_REPORT))
        started_at, ended_at = _num(event.get("time")), _num((end or {}).get("time"))
        if client in streams:
            entry["client_gap_ms"] = longest_gap(streams[client], started_at, ended_at)[0]
        else:
            gaps = [g for g in (_num(tier1.get("client_gap_ms")), _num(tier2.get("client_gap_ms"))) if g is not None]
            entry["client_gap_ms"] = max(gaps) if gaps else None
        ok = (end or {}).get("ok")
        entry["ok"] = bool(ok) if ok is not None else ((report or {}).get("ok") if report else None)
        entry.update(ap_after=(end or {}).get("ap"), waited_s=event.get("waited_s"), report=event.get("report"),
                     started=started_at, ended=ended_at)
        if event.get("coalesced"):
            entry["replaced"] = event["coalesced"]
        handoffs.append(entry)
    for event in coalesced:
        client, to_ap = event.get("client"), event.get("to_ap")
        old = replaced_info.get((client, to_ap, event.get("t_trigger")), {})
        how = {"replaced_by": event["replaced_by"]} if event.get("replaced_by") else {"reason": event.get("reason")}
        entry = {"seq": None, "client": client, "from_ap": None, "to_ap": to_ap, "from_edge": None,
                 "to_edge": edges.get(to_ap), "container": None}
        t_decision = _num(old.get("t_decision"))
        entry.update(timing(client, to_ap, t_decision if t_decision is not None else event.get("time"),
                            event.get("t_trigger")))
        entry.update(t_decision=t_decision, ocs_t_trigger=event.get("t_trigger"), ocs_decision_ms=None,
                     decision_ms=_latency(t_decision, entry["t_trigger"]),
                     control_path_ms=None, tier1_gap_ms=None, method=None, downtime_s=None, client_gap_ms=None,
                     ok=None, coalesced=how)
        handoffs.append(entry)
    handoffs.sort(key=lambda h: (h["t_decision"] if h["t_decision"] is not None else float("inf"), h["client"]))

    ping_pong, last = [], {}
    for h in (h for h in handoffs if h["seq"] is not None):
        before = last.get(h["client"])
        back = before is not None and h["to_ap"] == before["from_ap"]
        if back and None not in (h["t_decision"], before["t_decision"]) \
                and h["t_decision"] - before["t_decision"] < flap_window_s:
            ping_pong.append({"client": h["client"], "aps": [before["from_ap"], before["to_ap"], h["to_ap"]],
                              "seqs": [before["seq"], h["seq"]],
                              "after_s": round(h["t_decision"] - before["t_decision"], 3)})
        last[h["client"]] = h

    suppressed = None
    if stats is None:
        unavailable["suppressed"] = "no ocs_stats event (the source's counters)"
    else:
        policy = ((stats.get("counters") or {}).get("policy") or {})
        suppressed = {"total": policy.get("suppressed", 0),
                      "by_reason": dict((k[len("suppressed_"):], v) for k, v in sorted(policy.items())
                                        if k.startswith("suppressed_"))}

    names = sorted(set(streams) | set(h["client"] for h in handoffs if h["client"]) | set(services)
                   | set((scenario or {}).get("clients") or {}))
    clients = {}
    for name in names:
        mine = [h for h in handoffs if h["client"] == name and h["seq"] is not None]
        info = {"handoffs": len(mine)}
        if name in streams:
            gap, at = longest_gap(streams[name])
            info.update(stream_ok=bool(streams[name].get("ok")), longest_gap_ms=gap, longest_gap_at=at,
                        stream_problem=streams[name].get("reset") or streams[name].get("problem"),
                        stream_source="walk")
        else:
            parts = [reports[h["seq"]].get("client_stream") for h in mine if h["seq"] in reports]
            parts = [p for p in parts if p]
            if parts:
                gaps = [longest_gap(p) for p in parts]
                gap, at = max(gaps, key=lambda g: g[0])
                info.update(stream_ok=all(bool(p.get("ok")) for p in parts), longest_gap_ms=gap, longest_gap_at=at,
                            stream_problem=next((p.get("reset") or p.get("problem") for p in parts
                                                 if p.get("reset") or p.get("problem")), None),
                            stream_source="handoff reports")
            else:
                info.update(stream_ok=None, longest_gap_ms=None, longest_gap_at=None, stream_problem=None,
                            stream_source=None)
                unavailable["stream of %s" % name] = "no stream result: stream_ok and longest_gap_ms are null"
        ended = [h for h in mine if h["ap_after"]]
        info["ap"] = placement.get(name) or (ended[-1]["ap_after"] if ended else None)
        info["edge"] = edges.get(info["ap"]) if info["ap"] else None
        if name in services:
            info["service_edge"] = services[name]
            info["service_follows"] = info["edge"] is not None and services[name] == info["edge"]
        clients[name] = info

    missed = []
    if predicted:
        missed = [dict(h) for i, h in enumerate(predicted) if i not in used]
    ran = [h for h in handoffs if h["seq"] is not None]
    failed = (any(h["ok"] is False for h in ran) or any(c["stream_ok"] is False for c in clients.values())
              or bool(ping_pong) or any(c.get("service_follows") is False for c in clients.values()))
    unknown = any(h["ok"] is None for h in ran) or any(c["stream_ok"] is None for c in clients.values())
    return {
        "scenario": None if scenario is None else {"source": scenario.get("source"),
                                                   "description": scenario.get("description"),
                                                   "duration_s": scenario.get("duration_s")},
        "started": started,
        "ok": False if failed else (None if unknown else True),
        "decisions": len(handoffs),
        "handoffs": handoffs,
        "coalesced": sum(1 for h in handoffs if "coalesced" in h),
        "suppressed": suppressed,
        "ping_pong": ping_pong,
        "expected": None if not predicted else {"handoffs": len(predicted), "missed": missed,
                                                "unexpected": sum(1 for h in handoffs if h.get("expected") is False)},
        "clients": clients,
        "unavailable": unavailable,
    }


# -- what a person reads ----------------------------------------------------------------------------------------

TABLE_COLUMNS = ("client", "from_ap", "to_ap", "from_edge", "to_edge", "decision_ms", "control_path_ms", "tier1_gap_ms",
                 "method", "downtime_s", "client_gap_ms", "ok")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return "%.3f" % value if abs(value) < 10 else "%.1f" % value
    return str(value)


def table(result):
    """The walk report as text lines: one row per decision, then per client, then the policy's suppressions."""
    rows = [("#",) + TABLE_COLUMNS]
    for h in result["handoffs"]:
        row = [_cell(h.get("seq"))] + [_cell(h.get(k)) for k in TABLE_COLUMNS]
        if h.get("coalesced"):
            row[-1] = "coalesced (%s)" % (h["coalesced"].get("replaced_by") or h["coalesced"].get("reason"))
        rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    decisions = [h["decision_ms"] for h in result["handoffs"] if _num(h.get("decision_ms")) is not None]
    if decisions:
        ordered = sorted(decisions)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
        lines.append("decision latency: median %.1f ms, max %.1f ms (%d decisions)" % (median, ordered[-1],
                                                                                      len(ordered)))
    lines.append("clients:")
    for name, c in sorted(result["clients"].items()):
        lines.append("  %s: stream %s, longest gap %s ms; ends on %s (edge %s), service on %s%s" % (
            name, {True: "intact", False: "BROKEN (%s)" % c.get("stream_problem"), None: "unknown"}[c.get("stream_ok")],
            _cell(c.get("longest_gap_ms")), _cell(c.get("ap")), _cell(c.get("edge")), _cell(c.get("service_edge")),
            "" if c.get("service_follows") in (True, None) else " - NOT the edge of its AP"))
    sup = result.get("suppressed")
    lines.append("suppressed decisions: %s" % ("unknown" if sup is None else "%d %s" % (
        sup["total"], ", ".join("%s %d" % kv for kv in sorted(sup["by_reason"].items())) or "")))
    lines.append("ping-pong: %d; coalesced: %d; result: %s" % (len(result["ping_pong"]), result["coalesced"],
                                                              {True: "ok", False: "FAILED", None: "incomplete"}[result["ok"]]))
    return lines


def plot_input(result, client, stream, reports=None, player=None):
    """A double-tier-report-shaped dict for report.plot_throughput: the client's walk stream, for each of its
    handoffs the decision ("OCS handoff ...") and the handoff report's own timeline (tier 1 and tier 2 steps), and
    what its browser saw (`player`, for the stalls)."""
    timeline = []
    for h in result["handoffs"]:
        if h["client"] != client or h["seq"] is None or h.get("t_decision") is None:
            continue
        timeline.append({"t": h["t_decision"], "tier": 1,
                         "event": "OCS handoff %s %s->%s" % (h["seq"], h["from_ap"], h["to_ap"])})
        timeline.extend(((reports or {}).get(h["seq"]) or {}).get("timeline") or [])
    return {"client_stream": stream, "timeline": sorted(timeline, key=lambda e: e["t"]), "browser": player or {}}


# -- files ------------------------------------------------------------------------------------------------------

def load_events(path):
    """Events as JSON lines (the source's standalone output, or an event log); other lines are skipped."""
    events = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "type" in event:
                events.append(event)
    return events


def load_reports(events):
    """{seq: report} for every `handoff` event whose report file exists."""
    found = {}
    for event in events:
        path = event.get("report") if event.get("type") == "handoff" else None
        if path and os.path.exists(path):
            try:
                with open(path) as handle:
                    found[event["seq"]] = json.load(handle)
            except ValueError:
                pass
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.walk", description="the walk report (JSON) from the OCS's events")
    parser.add_argument("--events", required=True, help="the OCS's events, one JSON object a line")
    parser.add_argument("--stream", action="append", default=[], metavar="CLIENT=PROBE.json",
                        help="a client's stream_probe.py result over the walk (repeat per client)")
    parser.add_argument("--inventory-json", help="ansible-inventory --list output (ap_edge; the prediction)")
    parser.add_argument("--scenario", help="the replayed scenario (with --inventory-json and --started: t_trigger)")
    parser.add_argument("--started", type=float, help="when the replay started (epoch)")
    parser.add_argument("--policy-json", help="the mobility policy (ocs_mobility) as JSON")
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    events = load_events(args.events)
    streams = {}
    for item in args.stream:
        name, path = item.split("=", 1)
        with open(path) as handle:
            streams[name] = json.load(handle)
    inventory, checked, expected, policy = {}, None, None, {}
    if args.inventory_json:
        with open(args.inventory_json) as handle:
            inventory = json.load(handle)
    if args.policy_json:
        with open(args.policy_json) as handle:
            policy = json.load(handle)
    if args.scenario:
        from arnab_lab import scenario
        checked = scenario.load(args.scenario, inventory=inventory or None)
        if inventory:
            expected = scenario.predict(checked, inventory, policy)
    result = build(events, load_reports(events), streams, ap_edges(inventory) if inventory else None, expected,
                   args.started, checked, float(policy.get("flap_window_s", 10.0)))
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".tmp", "w") as handle:
            handle.write(text)
        os.replace(args.out + ".tmp", args.out)
    return 0 if result["ok"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
