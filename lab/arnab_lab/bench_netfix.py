"""The net fix after a restore, two ways side by side in one run, on a running container of the lab.

`make bench-netfix` times, in alternating order on the edge where the container runs (default `video`):
- `nsenter`: the commands a remote shell runs (`criu.inbound_unlock_argv`, `criu.netfix_argv`: `nft`, `ethtool`,
  then a new Python that runs the gratuitous ARP and the TCP kick), each started through `nsenter`;
- `in-process`: `criu.after_restore_in_netns`, what the receiver runs: the same steps in a forked child entered
  into the namespace (no `nsenter`, no Python start-up).
Both do the same work on the same container (a gratuitous ARP on the lab's data network, a window probe on each
established socket: harmless to a running container). Prints the medians and their ratio, and writes a summary
under docs/results/.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WAYS = ("nsenter", "in-process")


def inner(container, trials):
    """Runs inside the edge: the timings of both ways, as JSON on stdout."""
    sys.path.insert(0, os.path.dirname(HERE))
    from arnab_lab import collection_utils
    criu = collection_utils.load("criu")
    pid = int(subprocess.run(["lxc-info", "-n", container, "-pH"], capture_output=True, text=True,
                             check=True).stdout.strip())

    def by_nsenter():
        ok = True
        for argv in [criu.inbound_unlock_argv(pid)] + criu.netfix_argv(pid, python="/usr/bin/python3"):
            rc = subprocess.run(argv, capture_output=True, check=False).returncode
            ok = ok and (rc == 0 or argv[4] == "nft")       # no lock left is the normal case
        return ok

    def in_process():
        rc, lines = criu.after_restore_in_netns(pid)
        return rc == 0 and not [line for line in lines if "FAILED" in line]

    runs = []
    for trial in range(trials):
        for way in (WAYS if trial % 2 == 0 else WAYS[::-1]):
            t0 = time.monotonic()
            ok = (by_nsenter if way == "nsenter" else in_process)()
            runs.append({"way": way, "s": time.monotonic() - t0, "ok": ok})
    json.dump({"pid": pid, "runs": runs}, sys.stdout)


def summary(runs):
    out = {}
    for way in WAYS:
        times = [r["s"] for r in runs if r["way"] == way and r["ok"]]
        if times:
            out[way] = {"n": len(times), "median_s": round(statistics.median(times), 4),
                        "min_s": round(min(times), 4), "max_s": round(max(times), 4)}
    if len(out) == 2:
        out["ratio"] = round(out["in-process"]["median_s"] / out["nsenter"]["median_s"], 3)
    out["failed"] = len([r for r in runs if not r["ok"]])
    return out


def markdown(res, command, started, edge, container):
    lines = ["# The net fix after a restore: `nsenter` commands vs the receiver's in-process child", "",
             "Command: `%s`; started %s; `%s` on %s; load before: %s; %d CPUs, kernel %s." % (
                 command, started, container, edge, open("/proc/loadavg").read().split()[:3], os.cpu_count(),
                 os.uname().release),
             "", "| way | runs ok | median | min-max |", "|---|---|---|---|"]
    for way in WAYS:
        if way in res:
            r = res[way]
            lines.append("| %s | %d | %.1f ms | %.1f-%.1f ms |" % (way, r["n"], r["median_s"] * 1000,
                                                                   r["min_s"] * 1000, r["max_s"] * 1000))
    if "ratio" in res:
        lines += ["", "in-process / nsenter (medians): **%.2f**; failed runs: %d." % (res["ratio"], res["failed"])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--inner"]:
        inner(argv[1], int(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--container", default="video")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
    args = ap.parse_args(argv)
    from arnab_lab import bench
    where = bench.running_on(args.container, bench.lab_vars()["edges"])
    if len(where) != 1:
        raise SystemExit("%s runs on %s: expected exactly one edge" % (args.container, where))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    proc = bench.labctl_exec(where[0], ["/usr/bin/python3", os.path.abspath(__file__), "--inner", args.container,
                                        str(args.trials)], timeout=600)
    if proc.returncode != 0:
        raise SystemExit("the bench failed on %s: %s" % (where[0], proc.stderr.strip()[-800:]))
    res = summary(json.loads(proc.stdout.strip().splitlines()[-1])["runs"])
    print(json.dumps(res, indent=1))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "netfix-%s.md" % started.replace(":", "").replace("-", ""))
    with open(path, "w") as f:
        f.write(markdown(res, "make bench-netfix BENCH_ARGS='%s'" % " ".join(argv), started, where[0],
                         args.container))
    print("summary: %s" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
