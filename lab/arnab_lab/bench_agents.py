"""Tier 1's control path with the emulated agent and with real Click + OdinAgent, side by side (issue 10).

    PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench_agents [-n 10] [--prefix arnabr] [--nets 67,68,69]

For each `lab.agent` (emulated, then real): a private lab instance (the lab inventory with another prefix and
address ranges, so the main lab is left alone) is brought up, `aps.yml` run on it, `arnab_lab.bench_tier1` run
(N vAP moves ap1 <-> ap2 while the client streams), and the instance removed, whatever happened. Prints one table:
control path, client gap and total per agent. Needs root and a Click build (`make click`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from arnab_lab import bench_tier1, runner, topology

REPO = runner.REPO
LABCTL = os.path.join(REPO, "lab", "labctl")


def labctl(inv, *args):
    proc = subprocess.run([LABCTL, "--inventory", inv] + list(args), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("labctl %s: %s" % (" ".join(args), (proc.stdout + proc.stderr).strip()[-2000:]))


def one(agent, migrations, prefix, nets, workdir, outdir):
    inv = topology.private_inventory(os.path.join(workdir, "inv-" + agent), prefix, nets, agent)
    try:
        labctl(inv, "up")
        bench_tier1.bench.use_venv(bench_tier1.VENV_BIN)
        runner.run_playbook("aps.yml", inventory=inv, quiet=True)
        return bench_tier1.run(inv, migrations, outdir=outdir)
    finally:
        subprocess.run([LABCTL, "--inventory", inv, "down"], capture_output=True, check=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.bench_agents", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-n", "--migrations", type=int, default=10)
    parser.add_argument("--prefix", default="arnabr", help="the private instance's prefix (not the main lab's)")
    parser.add_argument("--nets", default="67,68,69", help="second octets for the control, data, backhaul networks")
    parser.add_argument("--agents", default="emulated,real")
    parser.add_argument("--outdir", default=None, help="default: reports/")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces of the lab)")
    nets = tuple(int(n) for n in args.nets.split(","))
    outdir = args.outdir or os.path.join(REPO, "reports")
    results = {}
    with tempfile.TemporaryDirectory(prefix="arnab-bench-agents-") as workdir:
        for agent in args.agents.split(","):
            print("lab.agent: %s, %d migrations" % (agent, args.migrations), file=sys.stderr, flush=True)
            results[agent] = one(agent, args.migrations, args.prefix, nets, workdir, outdir)
    print("tier 1, %d vAP moves ap1 <-> ap2 per agent (ms: median / p90 / max)" % args.migrations)
    print("%-9s %6s %22s %22s %22s" % ("agent", "ok", "control path", "client gap", "total"))
    for agent, result in results.items():
        s = result["summary"]
        cells = ["%6.1f / %6.1f / %6.1f" % (s[k]["median"], s[k]["p90"], s[k]["max"]) if k in s else "-"
                 for k in ("control_path_ms", "client_gap_ms", "total_ms")]
        print("%-9s %3d/%-2d %s %s %s" % (agent, s["ok"], s["migrations"], cells[0], cells[1], cells[2]))
    summary = os.path.join(outdir, "bench-agents.json")
    with open(summary, "w") as handle:
        json.dump(dict((a, {"summary": r["summary"], "json": r["json"]}) for a, r in results.items()), handle,
                  indent=1)
    print("reports: %s; %s" % (summary, ", ".join(r["json"] for r in results.values())))
    return 0 if all(r["summary"]["ok"] == r["summary"]["migrations"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
