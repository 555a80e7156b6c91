"""Tier-1 benchmark (the paper's Fig. 3 analogue): a client streams TCP from a server behind the data switch
while its vAP moves N times between two APs on different channels (ap1 <-> ap2); the client's throughput in
10 ms bins, each move's control path, total time and client gap, and the radio's view of each switch.

    PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench_tier1 [-i inventories/lab] [-n 10 | --quick]

Needs the lab up and `playbooks/aps.yml` run on it. The stream server is the `video` workload built from
roles/edge/files/arnab_workload.c and run in the first edge's own network namespace (no container), the
probe is playbooks/files/stream_probe.py in the client's namespace; the moves are playbooks/migrate_vap.yml
through ansible-runner. Writes reports/bench-tier1-<stamp>.{csv,json,png}.
"""
import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from arnab_lab import bench, radio, report, runner

REPO = runner.REPO
VENV_BIN = os.path.join(REPO, ".venv", "bin")
PROBE = os.path.join(REPO, "playbooks", "files", "stream_probe.py")
WORKLOAD_C = os.path.join(REPO, "roles", "edge", "files", "arnab_workload.c")
CONTROL_PATH_TARGET_MS = 20.0
GAP_MARGIN_MS = 20.0          # gap target: the radio's channel-switch delay + this
STREAM_PORT = 8090
MOVE_TASK = "Move the client's vAP"
RADIO_EVENTS = ("csa_received", "channel_switch_start", "channel_switch_done", "frames_held", "frames_released",
                "air_flows", "vap_add", "vap_remove")


def inventory_list(inventory):
    bench.use_venv(VENV_BIN)
    out = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", inventory, "--list"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


class Lab:
    """What the benchmark needs to know of a lab instance, from its inventory."""

    def __init__(self, inventory):
        self.inventory = inventory
        data = inventory_list(inventory)
        self.hostvars = data["_meta"]["hostvars"]
        self.groups = dict((g, v.get("hosts", [])) for g, v in data.items() if isinstance(v, dict))
        any_host = next(iter(self.hostvars.values()))
        self.prefix = any_host["lab"]["prefix"]
        model = (any_host.get("lab") or {}).get("radio") or {}
        self.channel_switch_delay_ms = float(model.get("channel_switch_delay_ms", 100.0))

    def netns(self, node):
        return "%s-%s" % (self.prefix, node)

    @property
    def radio_socket(self):
        return "/run/%s-lab/radio.sock" % self.prefix


def radio_request(lab, request):
    """One request to the lab's emulated radio; None if it does not answer."""
    try:
        return radio.ask(lab.radio_socket, request, timeout=5)
    except (OSError, ValueError):
        return None


def radio_events(lab, since=0):
    """Radio events after seq `since`, each with an `epoch` (the radio's clock lined up with the wall clock)."""
    reply = radio_request(lab, {"op": "events", "since": since}) or {}
    clock = reply.get("clock")
    events = reply.get("events", [])
    if clock:
        for event in events:
            event["epoch"] = clock["epoch"] - (clock["t"] - event["t"])
    return events


def last_seq(lab):
    events = (radio_request(lab, {"op": "events", "since": 0}) or {}).get("events", [])
    return events[-1]["seq"] if events else 0


class StreamServer:
    """The `video` workload in an edge's network namespace (a process of ours, ended by its pid)."""

    def __init__(self, lab, edge, workdir, port=STREAM_PORT):
        self.host, self.port = lab.hostvars[edge]["data_ip"], port
        binary = os.path.join(workdir, "arnab-workload")
        if not os.path.exists(binary):
            subprocess.run(["gcc", "-O2", "-static", "-o", binary, WORKLOAD_C], check=True)
        self.log = open(os.path.join(workdir, "video-%s.log" % edge), "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.netns(edge), binary, "video", "--port", str(port),
                                      "--rss-mib", "1"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while "video: http" not in open(self.log.name).read():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stream server did not start: %s" % open(self.log.name).read())
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Probe:
    """stream_probe.py in the client's network namespace; stop() returns its report."""

    def __init__(self, lab, client, host, port, workdir, duration=3600):
        self.out = os.path.join(workdir, "probe-%d.json" % os.getpid())
        if os.path.exists(self.out):
            os.unlink(self.out)
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.netns(client), sys.executable, PROBE, "--host", host,
                                      "--port", str(port), "--duration", str(duration), "--out", self.out])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with open(self.out) as handle:
            return json.load(handle)


def migrate(lab, client, target, quiet=True):
    """One vAP move through playbooks/migrate_vap.yml (no probe of its own) -> vap_migrate's result."""
    bench.use_venv(VENV_BIN)
    with tempfile.TemporaryDirectory(prefix="arnab-bench1-") as tmp:
        results = runner.run_playbook("migrate_vap.yml", {"client": client, "target": target, "probe": False,
                                                          "report": os.path.join(tmp, "vap.json")},
                                      inventory=lab.inventory, quiet=quiet)
    return results["localhost"][MOVE_TASK]


def gap_of(stream, started, until):
    """The longest gap (ms) the client saw that started in [started, until]; 0 if none."""
    found = [g[1] for g in stream.get("gaps", []) if started - 0.05 <= g[0] <= until]
    return max(found) if found else 0


def switch_view(events, started, until):
    """The radio's timeline of one move, ms after its start."""
    view = {}
    for event in events:
        if started <= event.get("epoch", 0) <= until and event["event"] in RADIO_EVENTS:
            view.setdefault(event["event"], round((event["epoch"] - started) * 1000, 1))
    return view


def plot(full, path, window=(-0.5, 1.0)):
    """Fig. 3 analogue: (top) the client's throughput over the whole run, each move's channel switch marked;
    (bottom) every move overlaid, aligned on the start of its channel switch (10 ms bins)."""
    plt = report.plt
    stream = full["client_stream"]
    bin_s = stream["bin_ms"] / 1000.0
    rate = [8 * b / bin_s / 1e6 for b in stream["samples"]]
    smooth = [sum(rate[max(0, i - 9):i + 1]) / len(rate[max(0, i - 9):i + 1]) for i in range(len(rate))]
    t = [i * bin_s for i in range(len(rate))]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7))
    top.plot(t, rate, color="0.8", linewidth=0.5, label="per %d ms" % stream["bin_ms"])
    top.plot(t, smooth, color="tab:blue", linewidth=1.0, label="moving average (100 ms)")
    for row in full["migrations"]:
        if row.get("switch_start_ms") is not None:
            top.axvline(row["started"] + row["switch_start_ms"] / 1000.0 - stream["started"], color="tab:orange",
                        linewidth=0.8, linestyle="--")
    top.set_xlabel("time (s); dashed: a vAP move's channel switch")
    top.set_ylabel("Mbit/s")
    top.set_ylim(bottom=0)
    top.legend(loc="lower left", fontsize=8)
    top.set_title("Client TCP throughput across %d vAP migrations ap1 <-> ap2 (channels 6 <-> 1)"
                  % len(full["migrations"]))
    for row in full["migrations"]:
        if row.get("switch_start_ms") is None:
            continue
        at = row["started"] + row["switch_start_ms"] / 1000.0 - stream["started"]
        first, last = int((at + window[0]) / bin_s), int((at + window[1]) / bin_s)
        xs = [(i * bin_s - at) * 1000 for i in range(max(first, 0), min(last, len(rate)))]
        bottom.plot(xs, rate[max(first, 0):min(last, len(rate))], linewidth=0.7, alpha=0.7)
    delay = full["summary"]["channel_switch_delay_ms"]
    bottom.axvspan(0, delay, color="tab:orange", alpha=0.15, label="channel-switch delay (%d ms)" % delay)
    bottom.set_xlabel("ms from the start of the client's channel switch (every move overlaid, 10 ms bins)")
    bottom.set_ylabel("Mbit/s")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * fraction
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summarize(rows, switch_delay_ms):
    gap_target = switch_delay_ms + GAP_MARGIN_MS
    good = [r for r in rows if r["ok"]]
    out = {"migrations": len(rows), "ok": len(good), "control_path_target_ms": CONTROL_PATH_TARGET_MS,
           "gap_target_ms": gap_target, "channel_switch_delay_ms": switch_delay_ms}
    for key, target in (("control_path_ms", CONTROL_PATH_TARGET_MS), ("client_gap_ms", gap_target),
                        ("total_ms", None)):
        values = [r[key] for r in good]
        if not values:
            continue
        out[key] = {"median": round(statistics.median(values), 1), "p90": round(percentile(values, 0.9), 1),
                    "min": round(min(values), 1), "max": round(max(values), 1)}
        if target:
            out[key]["median_ratio_to_target"] = round(statistics.median(values) / target, 2)
            out[key]["p90_ratio_to_target"] = round(percentile(values, 0.9) / target, 2)
    return out


def run(inventory, migrations, client="client1", aps=("ap1", "ap2"), settle=1.5, outdir=None, quiet=True):
    lab = Lab(inventory)
    outdir = outdir or os.path.join(REPO, "reports")
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = os.path.join(outdir, "bench-tier1-%s" % stamp)
    workdir = tempfile.mkdtemp(prefix="arnab-bench1-")
    edge = lab.groups["edges"][0]
    server = probe = None
    moves, stream = [], None
    seq0 = last_seq(lab)
    try:
        server = StreamServer(lab, edge, workdir)
        probe = Probe(lab, client, server.host, server.port, workdir)
        time.sleep(settle)
        # alternate, starting from wherever the client is now (the radio knows which AP holds its vAP)
        state = (radio_request(lab, {"op": "state"}) or {}).get("state", {})
        vaps = state.get("clients", {}).get(client, {}).get("vaps") or [aps[0]]
        first = 1 if vaps[0] == aps[0] else 0
        targets = [aps[(first + i) % 2] for i in range(migrations)]
        for index, target in enumerate(targets):
            result = migrate(lab, client, target, quiet=quiet)
            moves.append({"index": index + 1, "result": result})
            print("  move %d/%d -> %s: control path %.1f ms, total %.1f ms"
                  % (index + 1, migrations, result["to_ap"], result["control_path_ms"], result["total_ms"]),
                  file=sys.stderr, flush=True)
            time.sleep(settle)
    finally:
        if probe:
            try:
                stream = probe.stop()
            except (OSError, ValueError) as exc:
                stream = {"ok": False, "problem": "no probe report: %s" % exc, "gaps": [], "samples": [],
                          "bin_ms": 10, "started": time.time()}
        if server:
            server.stop()
    events = radio_events(lab, seq0)
    rows = []
    for move in moves:
        res = move["result"]
        started = res["started"]
        # the last step's end (the timeline counts from the start, preflight included), plus the switch's tail
        until = started + max(e["start_ms"] + e["duration_ms"] for e in res["timeline"]) / 1000.0 + 0.5
        switch = switch_view(events, started, until)
        rows.append({"index": move["index"], "from_ap": res["from_ap"], "to_ap": res["to_ap"],
                     "channel_switch": res["channel_switch"], "started": started,
                     "control_path_ms": res["control_path_ms"], "total_ms": res["total_ms"],
                     "client_gap_ms": gap_of(stream, started, until),
                     "csa_ms": switch.get("csa_received"), "switch_start_ms": switch.get("channel_switch_start"),
                     "switch_done_ms": switch.get("channel_switch_done"),
                     "held_ms": switch.get("frames_held"), "released_ms": switch.get("frames_released"),
                     "ok": bool(stream and stream.get("ok"))})
    summary = summarize(rows, lab.channel_switch_delay_ms)
    summary["stream"] = {"ok": stream.get("ok"), "reset": stream.get("reset"), "problem": stream.get("problem"),
                         "bytes": stream.get("bytes")}
    with open(base + ".csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        writer.writerows(rows)
    timeline = []
    for move in moves:
        res = move["result"]
        timeline.append({"t": res["started"], "event": "tier 1 start -> %s" % res["to_ap"], "tier": 1})
        for step in res["timeline"]:
            if step["step"] in ("channel_switch_announcement", "flows_data_switch"):
                timeline.append({"t": res["started"] + step["start_ms"] / 1000.0, "event": step["step"], "tier": 1})
    full = {"inventory": inventory, "client": client, "summary": summary, "migrations": rows,
            "timelines": [m["result"]["timeline"] for m in moves], "radio_events": events,
            "client_stream": stream, "timeline": timeline}
    with open(base + ".json", "w") as handle:
        json.dump(full, handle, indent=1)
    png = None
    if stream and stream.get("samples"):
        png = plot(full, base + ".png")
    return {"summary": summary, "rows": rows, "csv": base + ".csv", "json": base + ".json", "png": png}


def print_summary(result, out=sys.stdout):
    s = result["summary"]
    print("tier 1: %d vAP migrations, %d with the stream intact (%s)"
          % (s["migrations"], s["ok"], "no reset, no lost byte" if s["stream"]["ok"]
             else "BROKEN: %s" % (s["stream"]["reset"] or s["stream"]["problem"])), file=out)
    for key, label in (("control_path_ms", "control path"), ("client_gap_ms", "client gap"),
                       ("total_ms", "total")):
        if key not in s:
            continue
        v = s[key]
        line = "  %-13s median %6.1f ms  p90 %6.1f ms  (min %.1f, max %.1f)" % (
            label, v["median"], v["p90"], v["min"], v["max"])
        if "median_ratio_to_target" in v:
            target = s["control_path_target_ms"] if key == "control_path_ms" else s["gap_target_ms"]
            line += "  target %.0f ms: median x%.2f, p90 x%.2f" % (
                target, v["median_ratio_to_target"], v["p90_ratio_to_target"])
        print(line, file=out)
    print("  reports: %s, %s, %s" % (result["csv"], result["json"], result["png"]), file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.bench_tier1", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-i", "--inventory", default=runner.LAB_INVENTORY)
    parser.add_argument("-n", "--migrations", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 migrations")
    parser.add_argument("--client", default="client1")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds of streaming before, between, after moves")
    parser.add_argument("--outdir", default=None, help="default: reports/")
    parser.add_argument("--verbose", action="store_true", help="print each playbook task")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces of the lab)")
    result = run(args.inventory, 3 if args.quick else args.migrations, args.client, settle=args.settle,
                 outdir=args.outdir, quiet=not args.verbose)
    print_summary(result)
    return 0 if result["summary"]["ok"] == result["summary"]["migrations"] else 1


if __name__ == "__main__":
    sys.exit(main())
