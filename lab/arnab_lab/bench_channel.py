"""Post-copy's page channel: the drain inside SSH (`postcopy_channel: ssh`) against criu's cleartext page server
(`tcp`), side by side in one run.

`make bench-postcopy-channel` migrates ramsim (scaled to --mib, 128 MiB by default) back and forth by post-copy,
alternating the two channels in the order ssh, tcp, tcp, ssh, ... so the shared machine's noise falls on both, and
prints each run's downtime and how long the source was still needed after the copy ran (the drain).
"""
import argparse
import statistics
import sys
import time

from arnab_lab import bench

CHANNELS = ("ssh", "tcp")


def order(runs):
    """ssh, tcp, tcp, ssh, ssh, tcp, ...: each channel goes first as often as the other."""
    return [CHANNELS[(i + 1) // 2 % 2] for i in range(runs)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--mib", type=int, default=128)
    args = ap.parse_args(argv)
    bench.use_venv()
    lv = bench.lab_vars()
    bench.set_ramsim_size(args.mib)
    rows = []
    try:
        for i, channel in enumerate(order(args.runs)):
            src = bench.running_on("ramsim", lv["edges"])[0]
            dest = [e for e in lv["edges"] if e != src][0]
            t0 = time.time()
            ok, rep, err = bench.migrate("ramsim", dest, "post-copy", "reports/postcopy-%s-%d.json" % (channel, i),
                                         {"postcopy_channel": channel})
            pc = rep.get("postcopy") or {}
            rows.append({"channel": channel, "ok": ok, "downtime_s": rep.get("downtime_s"),
                         "drain_s": pc.get("source_needed_after_running_s"),
                         "bytes": pc.get("link_bytes_while_serving"), "total_s": round(time.time() - t0, 1)})
            print(rows[-1], (err or "")[-300:], flush=True)
    finally:
        bench.set_ramsim_size(bench.size_of(lv["workloads"]["ramsim"]))
    for channel in CHANNELS:
        ok = [r for r in rows if r["channel"] == channel and r["ok"]]
        if ok:
            print("%s: %d ok, downtime median %.3f s, drain median %.2f s (%.2f-%.2f)" % (
                channel, len(ok), statistics.median(r["downtime_s"] for r in ok),
                statistics.median(r["drain_s"] for r in ok), min(r["drain_s"] for r in ok),
                max(r["drain_s"] for r in ok)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
