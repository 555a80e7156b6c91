"""Turn migration reports into what a person reads: a short summary and the paper's figures as PNGs.

- Fig. 3 analogue: the client's throughput over time (10 ms bins) with both tiers' migration events marked.
- Fig. 4 analogue: downtime per workload and method from a benchmark CSV, mean of the trials, with error bars.
"""
import csv
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def human_bytes(count):
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return "%.1f %s" % (count, unit) if unit != "B" else "%d B" % count
        count /= 1000.0
    return str(count)


def summary(report):
    """A few lines on what moved where, how long each tier's service was down and what moved on the wire."""
    lines = []
    t1, t2, stream = report.get("tier1") or {}, report.get("tier2") or {}, report.get("client_stream") or {}
    if t1:
        lines.append("tier 1 (connectivity): %s's vAP %s -> %s%s; control path %.1f ms; client gap %s"
                     % (report.get("client"), t1.get("from_ap"), t1.get("to_ap"),
                        " with channel switch %s" % t1["channel_switch"] if t1.get("channel_switch") else "",
                        t1.get("control_path_ms", float("nan")),
                        "%.0f ms" % t1["client_gap_ms"] if t1.get("client_gap_ms") is not None else "none seen"))
    if t2:
        lines.append("tier 2 (application): container %s %s -> %s by %s%s; downtime %.3f s; %s moved while frozen,"
                     " %s in all; %d pre-copy iteration(s); total %.1f s"
                     % (report.get("service"), t2.get("source"), t2.get("dest"), t2.get("method"),
                        " (%s)" % t2["method_reason"] if t2.get("method_reason") else "",
                        t2.get("downtime_s", float("nan")), human_bytes(t2.get("bytes_frozen", 0)),
                        human_bytes(t2.get("bytes_total", 0)), len(t2.get("iterations") or []),
                        t2.get("total_s", float("nan"))))
    if stream:
        lines.append("client stream: %s received, %s; longest gap %s"
                     % (human_bytes(stream.get("bytes", 0)),
                        "intact (no reset, no byte lost)" if stream.get("ok") else
                        "BROKEN: %s" % (stream.get("reset") or stream.get("problem")),
                        "%d ms" % max(gap[1] for gap in stream["gaps"]) if stream.get("gaps") else "< 50 ms"))
    player = report.get("browser")
    if player:
        lines.append(browser_line(player))
    lines.append("result: %s" % ("ok" if report.get("ok") else "FAILED"))
    return lines


def browser_line(player):
    """What the viewer saw: the player's stalls and frames (arnab_lab.browser's result)."""
    if player.get("error"):
        return "browser (Chromium, live video): %s" % player["error"]
    stalls = player.get("stalls") or []
    return ("browser (Chromium, live video): %s; frames decoded %s before, %s after the migrations; "
            "picture's frame counter %s; %d screenshot(s)"
            % ("no stall" if not stalls else "%d stall(s), %d ms in all, longest %d ms"
               % (len(stalls), player.get("stalled_ms", 0), max(s["ms"] for s in stalls)),
               player.get("frames_decoded_before"), player.get("frames_decoded_after"),
               " -> ".join(str(f) for f in player.get("picture_frames") or []) or "unread",
               len(player.get("screenshots") or [])))


# Events worth a label on the throughput plot (the others are drawn as thin lines).
KEY_EVENTS = ("tier 1 start", "channel_switch_announcement", "flows_data_switch", "tier 2 start", "freeze",
              "running on destination", "OCS handoff")


def plot_throughput(report, path, smooth_bins=10, title=None):
    """Fig. 3: client throughput (Mbit/s) over time with the migration events of both tiers."""
    stream = report["client_stream"]
    bin_s = stream["bin_ms"] / 1000.0
    samples = stream["samples"]
    # 10 ms bins are what the gaps are measured on; a moving average shows the rate a viewer perceives.
    rate = [8 * b / bin_s / 1e6 for b in samples]
    smooth = [sum(rate[max(0, i - smooth_bins + 1):i + 1]) / len(rate[max(0, i - smooth_bins + 1):i + 1])
              for i in range(len(rate))]
    t = [i * bin_s for i in range(len(samples))]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, rate, color="0.8", linewidth=0.6, label="per %d ms" % stream["bin_ms"])
    ax.plot(t, smooth, color="tab:blue", linewidth=1.2, label="moving average (%d ms)" % (smooth_bins * stream["bin_ms"]))
    colors = {1: "tab:orange", 2: "tab:red"}
    label_y = max(smooth or [1]) * 1.05
    end = t[-1] if t else 0
    for event in report.get("timeline", []):
        x = event["t"] - stream["started"]
        if not 0 <= x <= end:
            continue
        color = colors.get(event.get("tier"), "k")
        key = any(word in event["event"] for word in KEY_EVENTS)
        ax.axvline(x, color=color, linestyle="--" if key else ":", linewidth=0.9 if key else 0.5)
        if key:
            ax.annotate(event["event"][:40], (x, label_y), rotation=90, fontsize=7, va="top", ha="right", color=color)
    for start, duration in stream.get("gaps", []):
        ax.axvspan(start - stream["started"], start - stream["started"] + duration / 1000.0, color="tab:red",
                   alpha=0.15)
    player = report.get("browser") or {}
    for n, stall in enumerate(player.get("stalls") or []):
        x = player["started_at"] + stall["t"] - stream["started"]
        ax.axvspan(x, x + stall["ms"] / 1000.0, ymin=0, ymax=0.08, color="tab:purple", alpha=0.8,
                   label="player stalled" if n == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("client throughput (Mbit/s)")
    ax.set_title(title or "Client throughput across the double-tier migration (orange: tier 1, red: tier 2; shaded: "
                          "gaps%s)" % ("; purple: player stalls" if player.get("stalls") else ""))
    ax.legend(loc="lower left", fontsize=8)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def downtime_table(rows):
    """{(workload, method): (mean downtime s, stdev, n, mean bytes frozen)} from benchmark rows."""
    groups = {}
    for row in rows:
        if row.get("ok", "True") not in ("True", "true", "1"):
            continue
        groups.setdefault((row["workload"], row["method"]), []).append(row)
    table = {}
    for key, items in groups.items():
        downs = [float(r["downtime_s"]) for r in items]
        table[key] = (statistics.mean(downs), statistics.stdev(downs) if len(downs) > 1 else 0.0, len(downs),
                      statistics.mean(float(r["bytes_frozen"]) for r in items))
    return table


def plot_downtime(rows, path):
    """Fig. 4: downtime per workload (x) and method (bars)."""
    table = downtime_table(rows)
    workloads = sorted({key[0] for key in table}, key=lambda w: (not w.startswith("video"), w))
    methods = [m for m in ("stop-and-copy", "pre-copy", "post-copy") if any(key[1] == m for key in table)]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        xs = [i + j * width for i in range(len(workloads))]
        means = [table.get((w, method), (0, 0, 0, 0))[0] for w in workloads]
        errs = [table.get((w, method), (0, 0, 0, 0))[1] for w in workloads]
        ax.bar(xs, means, width, yerr=errs, label=method, capsize=2)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(workloads))])
    ax.set_xticklabels(workloads, fontsize=8)
    ax.set_ylabel("downtime (s)")
    ax.set_title("Container migration downtime (mean of trials, same run, same link)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
