"""`make demo`: bring the emulated lab up, provision it, walk the client to the other AP and run the double-tier
migration while the client watches the live video in a real browser; print what moved where and what the viewer
saw, and write the Fig. 3 (and, after a benchmark, Fig. 4) PNGs."""
import glob
import json
import os
import sys
import time

from arnab_lab import browser, lab, radio, report, topology
from arnab_lab.runner import LAB_INVENTORY, REPO, PlaybookFailed, run_playbook

RADIO = "/run/arnab-lab/radio.sock"
REPORTS = os.path.join(REPO, "reports")


def say(text):
    print("[demo %s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)


def walk_to_the_other_ap(client):
    """The user walks: put the client next to the AP that does not serve it now (emulated radio)."""
    state = radio.ask(RADIO, {"op": "state"})["state"]
    aps, me = state["aps"], state["clients"][client]
    serving = me["link"] or (me["vaps"] or [None])[0]
    target = next(name for name in sorted(aps) if name != serving)
    x, y = aps[target]["position"]
    radio.ask(RADIO, {"op": "move", "client": client, "position": [x - 3, y]})
    return serving, target


# Screenshots as each tier starts (the double-tier playbook's task names), beside "before" and "after".
MARK_AT_TASKS = {"Tier 1 - move the client's vAP": "tier 1", "Let the client settle on its new AP": "tier 2 soon"}
WATCH_S = 3     # playback watched before the "before" screenshot, and after the "after" one
AFTER_S = 4     # playback watched after the migrations, before the "after" screenshot


def watch_video(client, service, shots_dir):
    """The client opens the service's live video in headless Chromium, in its own namespace (on the emulated
    WiFi); returns the playing browser session, or None and why not."""
    inv = topology.load_inventory([LAB_INVENTORY])
    edge = inv["edges"]["hosts"][0]
    workload = next((w for w in inv["_meta"]["hostvars"][edge].get("edge_workloads", []) if w["name"] == service), {})
    url = browser.video_url(workload)
    if url is None:
        return None, "%s serves no web video (no hls_port in edge_workloads)" % service
    try:
        return browser.watch(url, shots_dir, wrap=lab.in_node(topology.from_inventory(inv), client, [])), None
    except RuntimeError as exc:
        return None, str(exc)


def double_tier(path, viewer):
    """Run the double-tier playbook; the viewer takes a screenshot before, as each tier starts, and after."""
    def on_task(task):
        if task in MARK_AT_TASKS:
            viewer.mark(MARK_AT_TASKS[task])
    if viewer:
        time.sleep(WATCH_S)
        viewer.mark("before")
    try:
        run_playbook("double_tier.yml", {"vap_target": "auto", "report": path}, on_task=viewer and on_task)
    finally:
        if viewer:
            time.sleep(AFTER_S)
            viewer.mark("after")
            time.sleep(WATCH_S)


def add_browser(path, viewer, why_not, shots):
    """Stop the viewer (even when the migration failed) and put what it saw in the report's `browser` object."""
    player = browser.finish(viewer, os.path.join(shots, "events.json"), REPO) if viewer else {"error": why_not}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
        result["browser"] = player
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def main():
    started = time.monotonic()
    os.makedirs(REPORTS, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(REPORTS, "double-tier-%s.json" % stamp)
    try:
        say("lab up (emulated ARNAB testbed: namespaces, Open vSwitch, LXC/CRIU; radio and Odin agent emulated)")
        run_playbook("lab.yml", {"lab_state": "present"})
        say("provisioning: OCS, Odin APs, edges and the video container (site.yml; slow only the first time)")
        run_playbook("site.yml")
        shots = path.replace(".json", "-browser")
        say("client1 opens the live video in Chromium (screenshots in %s)" % os.path.relpath(shots, REPO))
        viewer, why_not = watch_video("client1", "video", shots)
        try:
            serving, target = walk_to_the_other_ap("client1")
            say("client1 walks from %s toward %s (emulated radio)" % (serving, target))
            say("double-tier migration: vAP by RSSI (tier 1), then the video container (tier 2), method auto")
            double_tier(path, viewer)
        finally:
            add_browser(path, viewer, why_not, shots)
    except PlaybookFailed as exc:
        say("FAILED: %s" % exc)
        if os.path.exists(path):
            print("\n".join(report.summary(json.load(open(path)))))
        return 1
    result = json.load(open(path))
    fig3 = report.plot_throughput(result, path.replace(".json", "-throughput.png"))
    print("\nARNAB double-tier migration (emulated lab)")
    for line in report.summary(result):
        print("  " + line)
    print("  report: %s\n  Fig. 3 (client throughput): %s" % (os.path.relpath(path, REPO), os.path.relpath(fig3, REPO)))
    benches = sorted(glob.glob(os.path.join(REPORTS, "bench-tier2-*.csv")))
    if benches:
        fig4 = report.plot_downtime(report.read_csv(benches[-1]), os.path.join(REPORTS, "downtime.png"))
        print("  Fig. 4 (downtime, last benchmark %s): %s" % (os.path.basename(benches[-1]),
                                                              os.path.relpath(fig4, REPO)))
    print("done in %.0f s" % (time.monotonic() - started))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
