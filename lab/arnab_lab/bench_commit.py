"""What the commit point costs: stop-and-copy downtime with and without it, side by side in one run.

`make bench-commit-point` migrates `video` back and forth between the lab's edges, alternating two engines on the same
receiver, channel and container:
- `commit-point`: the engine as it is (plugins/module_utils/precopy.py): criu waits in the migration guard at
  `post-dump`, frozen, until the destination confirmed the restore; then commit;
- `no-commit-point`: the engine as it was before issue #9: the final `lxc-checkpoint -s` leaves the tasks stopped
  and exits by itself; nothing can resume them but a kill and a local restore.
The engine runs in the source node like the module would, with the same driver; only the final dump and the commit
differ (the subclass below). Each pair runs the two in alternating order, so the shared machine's noise falls on
both. Prints the medians and the differences, and writes a summary under docs/results/.
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
VARIANTS = ("commit-point", "no-commit-point")
KEY = "/root/.ssh/arnab_migrate"


def inner(variant, container, dest):
    """Runs inside the source node: one stop-and-copy migration, its report on stdout (JSON)."""
    sys.path.insert(0, os.path.dirname(HERE))
    from arnab_lab import collection_utils
    precopy = collection_utils.load("precopy")

    class NoCommitPoint(precopy.LxcMigrationDriver):
        """The final dump exits by itself, tasks left stopped; then its stats and size are read, as `LxcCriu.checkpoint`
        did (the engine before the commit point)."""

        def _guarded_dump(self, images_dir, parent_dir=None, track_mem=False, lazy=False):
            argv, env = self.lxc.checkpoint_command(self.name, images_dir, action="dump", parent_dir=parent_dir,
                                                    leave="stopped", track_mem=track_mem)
            full = dict(os.environ)
            full.update(env)
            t0 = time.time()
            self.source.to(precopy.SourceState.FROZEN)
            self.dump_proc = subprocess.Popen(argv, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.STDOUT)
            if self.dump_proc.wait() != 0:
                raise precopy.CriuError("dump failed (rc %s)" % self.dump_proc.returncode)
            self.dump_dir = images_dir
            return {"images_dir": images_dir, "duration_s": time.time() - t0, "bytes": precopy._dir_bytes(images_dir),
                    "stats": precopy.summarize_dump_stats(precopy.read_stats(images_dir, "dump"))}

        def commit(self):
            self.source.to(precopy.SourceState.COMMITTED)
            return {"commit_s": 0.0, "dump_rc": self.dump_proc.returncode, "stats": {}}

    cls = precopy.LxcMigrationDriver if variant == "commit-point" else NoCommitPoint
    drv = cls(container, dest, ssh_key=KEY, link_rate_bps=precopy.parse_rate("1gbit"))
    os.umask(0o077)
    try:
        drv.preflight()
        rep = precopy.migrate(drv, "stop-and-copy")
    finally:
        drv.close()
    json.dump({k: rep.get(k) for k in ("ok", "downtime_s", "frozen", "commit", "total_s")}, sys.stdout)


def migrate_once(variant, container, source, dest_ip):
    from arnab_lab import bench
    # the edge's own Python, as the module runs there
    proc = bench.labctl_exec(source, ["/usr/bin/python3", os.path.abspath(__file__), "--inner", variant, container,
                                      dest_ip], timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("%s migration from %s failed: %s" % (variant, source, proc.stderr.strip()[-800:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(runs):
    """{variant: {median downtime, dump, restore, n}} and the differences (commit-point minus no-commit-point)."""
    out = {}
    for v in VARIANTS:
        rows = [r for r in runs if r["variant"] == v and r["ok"]]
        if not rows:
            continue
        out[v] = {"n": len(rows),
                  "downtime_s": round(statistics.median(r["downtime_s"] for r in rows), 4),
                  "dump_s": round(statistics.median(r["frozen"]["dump_s"] for r in rows), 4),
                  "restore_s": round(statistics.median(r["frozen"]["restore_s"] for r in rows), 4),
                  "downtime_min_max": [min(r["downtime_s"] for r in rows), max(r["downtime_s"] for r in rows)]}
    if len(out) == 2:
        a, b = out["commit-point"], out["no-commit-point"]
        out["added_by_commit_point_s"] = {k: round(a[k] - b[k], 4) for k in ("downtime_s", "dump_s")}
        pairs = {}
        for r in runs:
            pairs.setdefault(r["pair"], {})[r["variant"]] = r
        diffs = [p["commit-point"]["downtime_s"] - p["no-commit-point"]["downtime_s"] for p in pairs.values()
                 if len(p) == 2 and all(x["ok"] for x in p.values())]
        if diffs:
            out["paired_difference_median_s"] = round(statistics.median(diffs), 4)
    return out


def markdown(res, command, started):
    lines = ["# The commit point's cost: stop-and-copy of `video`, with and without it", "",
             "Command: `%s`; started %s; load before: %s; %d CPUs, kernel %s." % (
                 command, started, open("/proc/loadavg").read().split()[:3], os.cpu_count(), os.uname().release),
             "", "| engine | runs ok | downtime median (min-max) | final dump median | restore median |",
             "|---|---|---|---|---|"]
    for v in VARIANTS:
        if v in res:
            r = res[v]
            lines.append("| %s | %d | %.3f s (%.3f-%.3f) | %.3f s | %.3f s |" % (
                v, r["n"], r["downtime_s"], r["downtime_min_max"][0], r["downtime_min_max"][1], r["dump_s"],
                r["restore_s"]))
    if "added_by_commit_point_s" in res:
        lines += ["", "Added by the commit point (medians): downtime %+.1f ms, final dump %+.1f ms; median of the "
                  "paired differences %+.1f ms." % (res["added_by_commit_point_s"]["downtime_s"] * 1000,
                                                   res["added_by_commit_point_s"]["dump_s"] * 1000,
                                                   res.get("paired_difference_median_s", 0.0) * 1000)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--inner"]:
        inner(*argv[1:4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--container", default="video")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "results"))
    args = ap.parse_args(argv)
    import yaml
    from arnab_lab import bench
    hosts = yaml.safe_load(open(os.path.join(ROOT, "inventories", "lab", "hosts.yml")))
    edge_vars = hosts["all"]["children"]["edges"]["hosts"]
    edges = sorted(edge_vars)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    runs = []
    for pair in range(args.pairs):
        order = VARIANTS if pair % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            where = bench.running_on(args.container, edges)
            if len(where) != 1:
                raise SystemExit("%s runs on %s: expected exactly one edge" % (args.container, where))
            source = where[0]
            dest = [e for e in edges if e != source][0]
            rep = migrate_once(variant, args.container, source, edge_vars[dest]["backhaul_ip"])
            rep.update(variant=variant, pair=pair, source=source)
            runs.append(rep)
            print("pair %d %-16s %s -> %s downtime %.3f s (dump %.3f s)" % (
                pair, variant, source, dest, rep["downtime_s"], rep["frozen"]["dump_s"]), flush=True)
    res = summary(runs)
    print(json.dumps(res, indent=1))
    os.makedirs(args.out, exist_ok=True)
    stamp = started.replace(":", "").replace("-", "")
    path = os.path.join(args.out, "commit-point-%s.md" % stamp)
    with open(path, "w") as f:
        f.write(markdown(res, "make bench-commit-point BENCH_ARGS='%s'" % " ".join(argv), started))
    print("summary: %s" % os.path.relpath(path, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
