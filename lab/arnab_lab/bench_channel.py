"""Post-copy's page channel: the drain inside SSH (`postcopy_channel: ssh`) against criu's page server in pinned TLS
(`tls`) and in cleartext (`tcp`), side by side in one run.

`make bench-postcopy-channel` migrates ramsim (scaled to --mib, 128 MiB by default) back and forth by post-copy,
rotating the channels (ssh, tls, tcp, then tls, tcp, ssh, ...) so the shared machine's noise falls on all of them,
and prints each run's downtime and how long the source was still needed after the copy ran (the drain).
"""
import argparse
import statistics
import sys
import time

from arnab_lab import bench

CHANNELS = ("ssh", "tls", "tcp")


def order(runs):
    """ssh, tls, tcp, tls, tcp, ssh, tcp, ssh, tls, ...: each channel opens a round as often as the others."""
    n = len(CHANNELS)
    return [CHANNELS[(i + i // n) % n] for i in range(runs)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
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
