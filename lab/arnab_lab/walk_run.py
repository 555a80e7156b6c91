"""`make walk [SCENARIO=path]`: the OCS runs the testbed by itself while the emulated radio replays a scenario.

1. provision the lab (site.yml, as `make demo` does; by default only when a client's vAP or a service is nowhere,
   `--provision` always) and put every client on its inventory AP (client_ap) and its
   service (client_service) on that AP's edge (ap_edge), with double_tier.yml where they are not;
2. start the OCS in the lab's ocs node (playbooks/ocs.yml, roles/ocs: ansible-rulebook with
   extensions/eda/rulebooks/ocs.yml), its event log, state and handoff reports in this walk's folder, and wait until
   every agent is up;
3. start a stream probe (playbooks/files/stream_probe.py) in each client's namespace against its service, and, for
   a service that serves the live web video, headless Chromium playing it in that client's namespace (arnab_lab.browser;
   a screenshot before the replay, as each handoff starts and ends, and after);
4. replay the scenario through the radio (lab/playbooks/radio_replay.yml: library/lab_radio_replay);
5. wait for the scenario's end and for every handoff the OCS started to end, then stop the probes and the OCS;
6. read where each vAP and each service ended, write reports/walk-<UTC>.json (arnab_lab.walk.build) and a
   throughput plot per client with each handoff and the player's stalls marked (reports/walk-<UTC>-<client>.png),
   print the table. The report's `browser` maps each watching client to what its player saw (stalls, frames,
   screenshots under reports/walk-<UTC>/browser-<client>/).

Exit status 0 when the walk report's `ok` is true. `run(...)` is what tests/lab/test_walk.py calls.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from arnab_lab import bench, browser, radio, report, scenario, topology, walk
from arnab_lab import lab as lab_ns
from arnab_lab.runner import LAB_INVENTORY, REPO, run_playbook

RADIO = "/run/arnab-lab/radio.sock"
REPORTS = os.path.join(REPO, "reports")
PROBE = os.path.join(REPO, "playbooks", "files", "stream_probe.py")
REPLAY = os.path.join(REPO, "lab", "playbooks", "radio_replay.yml")
DEFAULT_SCENARIO = os.path.join(REPO, "scenarios", "walk.yml")
AGENTS_UP_S = 60          # agents ping every 2 s; the source drops one after 6 s without a ping
SETTLE_S = 5              # after the scenario's end: a late decision's handoff must have started by then
HANDOFF_WAIT_S = 600      # then at most this long for the handoffs under way to end
AFTER_S = 4               # the players watched after the last handoff, before the "after" screenshot


def say(text):
    print("[walk %s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)


class Lab:
    """What the walk needs of the lab inventory (ansible-inventory --list)."""

    def __init__(self, inventory=LAB_INVENTORY):
        self.path = inventory
        self.inv = topology.load_inventory([inventory])
        self.topo = topology.from_inventory(self.inv)
        self.hostvars = self.inv["_meta"]["hostvars"]

    def group(self, name):
        return list(self.inv.get(name, {}).get("hosts", []))

    def policy(self):
        for name in self.group("ocs_servers") + sorted(self.hostvars):
            if "ocs_mobility" in self.hostvars[name]:
                return dict(self.hostvars[name]["ocs_mobility"] or {})
        return {}

    def ap_edge(self, ap):
        return self.hostvars.get(ap, {}).get("ap_edge")

    def services(self):
        """{client: its workload item (edge_workloads)} for every client with a client_service."""
        items = dict((w["name"], w) for w in bench.lab_vars(self.path)["workload_list"])
        out = {}
        for client in self.group("clients"):
            name = self.hostvars[client].get("client_service")
            if name:
                if name not in items:
                    raise RuntimeError("%s: client_service %s is not in edge_workloads" % (client, name))
                out[client] = items[name]
        return out

    def netns(self, node):
        return self.topo.netns(node)

    def in_node(self, node):
        """The command prefix that runs a program in a node's namespaces (network, mount, UTS)."""
        return lab_ns.in_node(self.topo, node, [])


def vap_holders():
    """{client: [APs that hold its vAP]} from the emulated radio."""
    state = radio.ask(RADIO, {"op": "state"}, timeout=10)["state"]
    return dict((name, list(c.get("vaps") or [])) for name, c in state["clients"].items())


def service_edges(lab, services):
    return dict((client, bench.running_on(ct["name"], lab.group("edges"))) for client, ct in services.items())


def place(lab, services, walk_dir):
    """Every client on its inventory AP, its service on that AP's edge (double_tier.yml where they are not)."""
    for client in services:
        radio.ask(RADIO, {"op": "reset", "client": client}, timeout=10)
    holders, running = vap_holders(), service_edges(lab, services)
    for client, ct in sorted(services.items()):
        ap = lab.hostvars[client]["client_ap"]
        edge = lab.ap_edge(ap)
        if holders.get(client) == [ap] and running.get(client) == [edge]:
            continue
        say("placing %s on %s and %s on %s (vAP on %s, service on %s)" % (client, ap, ct["name"], edge,
                                                                        holders.get(client), running.get(client)))
        extra = {"client": client, "service": ct["name"], "vap_target": ap,
                 "report": os.path.join(walk_dir, "place-%s.json" % client)}
        if edge:
            extra["dest"] = edge
        run_playbook("double_tier.yml", extra, quiet=True)


def needs_provisioning(lab, services):
    """site.yml is needed when the radio does not answer, a client's vAP is on no AP or a service runs nowhere."""
    try:
        holders = vap_holders()
    except OSError:
        return True
    running = service_edges(lab, services)
    return any(not holders.get(c) for c in services) or any(not running.get(c) for c in services)


def read_events(path):
    return walk.load_events(path) if os.path.exists(path) else []


def wait_for(check, timeout, what, every=1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError("%s: not within %.0f s" % (what, timeout))
        time.sleep(every)


class Probes:
    """One stream_probe.py per client, in the client's network namespace, stopped by its own PID."""

    def __init__(self, lab, services, walk_dir, max_s):
        self.procs, self.outs = {}, {}
        for client, ct in sorted(services.items()):
            out = os.path.join(walk_dir, "stream-%s.json" % client)
            self.outs[client] = out
            self.procs[client] = subprocess.Popen(
                ["ip", "netns", "exec", lab.netns(client), sys.executable, PROBE, "--host", ct["ip"],
                 "--port", str(ct["port"]), "--duration", str(int(max_s)), "--out", out],
                stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))

    def alive(self):
        return dict((c, p.poll() is None) for c, p in self.procs.items())

    def stop(self):
        results = {}
        for client, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for client, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            try:
                with open(self.outs[client]) as handle:
                    results[client] = json.load(handle)
            except (OSError, ValueError) as exc:
                results[client] = {"ok": False, "problem": "no probe result: %s" % exc, "gaps": []}
        return results


class Viewers:
    """Headless Chromium in each client's namespace playing its service's live web video, if it serves one."""

    def __init__(self, lab, services, walk_dir):
        self.sessions, self.why_not, self.walk_dir = {}, {}, walk_dir
        for client, ct in sorted(services.items()):
            url = browser.video_url(ct)
            if url is None:
                continue
            try:
                self.sessions[client] = browser.watch(url, self.shots(client), wrap=lab.in_node(client))
            except RuntimeError as exc:
                self.why_not[client] = str(exc)

    def shots(self, client):
        return os.path.join(self.walk_dir, "browser-%s" % client)

    def mark(self, label, clients=None):
        for client, session in sorted(self.sessions.items()):
            if clients is None or client in clients:
                try:
                    session.mark(label)
                except RuntimeError as exc:
                    say("%s's browser: %s" % (client, exc))

    def stop(self):
        """{client: the player's result (arnab_lab.browser.summarize) or {"error"}}; nothing of the browsers is left."""
        results = dict((client, {"error": why}) for client, why in self.why_not.items())
        for client, session in sorted(self.sessions.items()):
            results[client] = browser.finish(session, os.path.join(self.shots(client), "events.json"), REPO)
        return results


def ocs(state, walk_dir=None, stats_s=5):
    extra = {"ocs_eda_state": state}
    if walk_dir:
        extra["ocs_eda_vars"] = {"ocs_event_log": os.path.join(walk_dir, "events.jsonl"),
                                 "ocs_report_dir": os.path.join(walk_dir, "handoffs"),
                                 "ocs_state_file": os.path.join(walk_dir, "ocs-state.json"),
                                 "ocs_stats_interval_s": stats_s}
    run_playbook("ocs.yml", extra, quiet=True)


def handoffs_settled(events):
    """(all ended, [seqs under way])."""
    started = [e["seq"] for e in events if e.get("type") == "handoff"]
    ended = set(e.get("seq") for e in events if e.get("type") == "handoff_done")
    running = [s for s in started if s not in ended]
    return not running, running


def run(scenario_path=DEFAULT_SCENARIO, provision=True, out_dir=REPORTS, inventory=LAB_INVENTORY):
    """The whole walk; returns (result, path of the JSON report, {client: plot path}). provision: True (site.yml),
    False, or "auto" (site.yml only when the lab is not provisioned: needs_provisioning)."""
    bench.use_venv()
    lab = Lab(inventory)
    checked = scenario.load(scenario_path, inventory=lab.inv)
    policy = lab.policy()
    expected = scenario.predict(checked, lab.inv, policy)
    services = lab.services()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    walk_dir = os.path.join(out_dir, "walk-%s" % stamp)
    os.makedirs(os.path.join(walk_dir, "handoffs"), exist_ok=True)
    events_path = os.path.join(walk_dir, "events.jsonl")
    say("scenario %s: %.0f s, %d handoff(s) predicted" % (os.path.relpath(scenario_path, REPO), checked["duration_s"],
                                                          len(expected["handoffs"])))
    if provision == "auto":
        provision = needs_provisioning(lab, services)
    if provision:
        say("provisioning the lab (site.yml)")
        run_playbook("site.yml", quiet=True)
    place(lab, services, walk_dir)
    say("starting the OCS (ansible-rulebook in the ocs node)")
    ocs("started", walk_dir)
    probes = viewers = None
    try:
        aps = set(lab.group("aps"))
        wait_for(lambda: aps <= set(e.get("ap") for e in read_events(events_path) if e.get("type") == "agent_up"),
                 AGENTS_UP_S, "every agent up at the OCS")
        probes = Probes(lab, services, walk_dir, checked["duration_s"] + HANDOFF_WAIT_S + 300)
        viewers = Viewers(lab, services, walk_dir)
        time.sleep(2)
        if not all(probes.alive().values()):
            raise RuntimeError("a stream probe ended at once: %s" % probes.alive())
        for client, why in sorted(viewers.why_not.items()):
            say("%s's browser: %s" % (client, why))
        viewers.mark("before")
        say("replaying the scenario; streams: %s" % ", ".join("%s <- %s %s:%s" % (c, ct["name"], ct["ip"], ct["port"])
                                                             for c, ct in sorted(services.items())))
        res = run_playbook(REPLAY, {"walk_scenario": os.path.abspath(scenario_path)}, quiet=True)
        started = res["localhost"]["Replay the scenario"]["started"]
        seen = set()
        end = started + checked["duration_s"] + SETTLE_S
        deadline = end + HANDOFF_WAIT_S
        while True:
            events = read_events(events_path)
            for e in events:
                key = (e.get("type"), e.get("seq"), e.get("time"))
                if e.get("type") in ("handoff", "handoff_done", "handoff_coalesced") and key not in seen:
                    seen.add(key)
                    say("t=%5.1f s %s" % (e["time"] - started, " ".join("%s=%s" % (k, e.get(k)) for k in (
                        "type", "seq", "client", "from_ap", "to_ap", "to_edge", "decision_ms", "ok", "ap", "reason")
                        if e.get(k) is not None)))
                    if e.get("type") in ("handoff", "handoff_done"):
                        viewers.mark("%s %s" % (e["type"].replace("_", " "), e.get("seq")), clients=[e.get("client")])
            settled, running = handoffs_settled(events)
            if time.time() >= end and settled:
                break
            if time.time() > deadline:
                say("handoffs %s still under way after %d s: giving up on them" % (running, HANDOFF_WAIT_S))
                break
            time.sleep(1)
        time.sleep(AFTER_S)
        viewers.mark("after")
    finally:
        streams = probes.stop() if probes else {}
        players = viewers.stop() if viewers else {}
        say("stopping the OCS")
        try:
            ocs("stopped")
        finally:
            log = "/run/%s-lab/ocs/ocs.log" % lab.topo.prefix
            if os.path.exists(log):
                shutil.copy(log, os.path.join(walk_dir, "ocs.log"))
    events = read_events(events_path)
    holders, running = vap_holders(), service_edges(lab, services)
    placement = dict((c, aps[0]) for c, aps in holders.items() if len(aps) == 1 and c in services)
    where = dict((c, edges[0] if len(edges) == 1 else ",".join(edges) or None) for c, edges in running.items())
    reports = walk.load_reports(events)
    result = walk.build(events, reports, streams, walk.ap_edges(lab.inv), expected, started, checked,
                        float(policy.get("flap_window_s", 10.0)), services=where, placement=placement)
    result["vaps"] = holders
    result["service_edges"] = running
    result["policy"] = expected.get("policy")
    result["browser"] = players
    result["command"] = "make walk SCENARIO=%s" % os.path.relpath(scenario_path, REPO)
    result["files"] = os.path.relpath(walk_dir, REPO)
    path = os.path.join(out_dir, "walk-%s.json" % stamp)
    with open(path, "w") as handle:
        json.dump(result, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    plots = {}
    for client, stream in sorted(streams.items()):
        if stream.get("samples"):
            plots[client] = report.plot_throughput(
                walk.plot_input(result, client, stream, reports, players.get(client)), os.path.join(out_dir, "walk-%s-%s.png" % (stamp, client)),
                title="%s's throughput during the walk (%s; orange: tier 1, red: tier 2; shaded: gaps; purple: stalls)"
                      % (client, os.path.basename(scenario_path)))
    return result, path, plots


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.walk_run", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--provision", action="store_true", help="run site.yml first (default: only when a client's vAP "
                     "or a service is nowhere)")
    how.add_argument("--no-provision", action="store_true", help="never run site.yml")
    args = parser.parse_args(argv)
    result, path, plots = run(os.path.abspath(args.scenario),
                              provision=True if args.provision else False if args.no_provision else "auto")
    print("\nARNAB walk (the OCS decides; emulated lab): %s" % os.path.relpath(args.scenario))
    for line in walk.table(result):
        print("  " + line)
    for client, player in sorted(result["browser"].items()):
        print("  %s's %s" % (client, report.browser_line(player)))
    print("  report: %s" % os.path.relpath(path, REPO))
    for client, plot in sorted(plots.items()):
        print("  %s's throughput: %s" % (client, os.path.relpath(plot, REPO)))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
