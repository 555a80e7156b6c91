"""`make demo`: bring the emulated lab up, provision it, walk the client to the other AP and run the double-tier
migration; print what moved where and write the Fig. 3 (and, after a benchmark, Fig. 4) PNGs."""
import glob
import json
import os
import sys
import time

from arnab_lab import radio, report
from arnab_lab.runner import REPO, PlaybookFailed, run_playbook

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
        serving, target = walk_to_the_other_ap("client1")
        say("client1 walks from %s toward %s (emulated radio)" % (serving, target))
        say("double-tier migration: vAP by RSSI (tier 1), then the video container (tier 2), method auto")
        run_playbook("double_tier.yml", {"vap_target": "auto", "report": path})
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
