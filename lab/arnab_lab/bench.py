"""Benchmarks on the emulated lab, driven through the runner (playbooks, events; no stdout scraping).

    python -m arnab_lab.bench tier2 [--quick] [--trials N] [--sizes 1024] [--dirty 20,30,50,70,100]
                                    [--methods stop-and-copy,pre-copy,post-copy] [--no-video]

tier2 is the paper's Fig. 4: the `video` container and `ramsim` at each size and dirty rate, migrated by every
method, N trials, all in ONE run on the lab's backhaul. Methods are interleaved per configuration (and their order
rotated per trial) so that noise on this shared machine hits every method alike. While a container moves, a
client in `client1` holds ONE TCP connection to it (the video stream probe, or a ramsim pinger) and its longest
silence is recorded as `client_gap_s`. Writes reports/bench-tier2-<UTC stamp>.csv (one row per migration),
reports/bench-tier2-<stamp>.md (the table), reports/downtime.png (Fig. 4) and each migration's JSON report
under reports/bench-tier2-<stamp>/.

floor_s = bytes moved while frozen * 8 / backhaul rate (lab.backhaul.rate): the physical floor of the downtime.
source_needed_s = from the freeze until the destination no longer needs the source (post-copy: the last lazy
page; other methods: running on the destination, i.e. the downtime).

The helpers (where a container runs, ramsim control, the client sessions, ramsim's size) are shared with
tests/lab/test_tier2.py.
"""
import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import yaml

from arnab_lab import report as report_mod
from arnab_lab.lab import rate_bits
from arnab_lab.runner import LAB_INVENTORY, REPO, PlaybookFailed, run_playbook

LABCTL = os.path.join(REPO, "lab", "labctl")
REPORTS = os.path.join(REPO, "reports")
PROBE = os.path.join(REPO, "playbooks", "files", "stream_probe.py")
CLIENT = "client1"
PAPER_METHODS = ("stop-and-copy", "pre-copy", "post-copy")
ALL_METHODS = PAPER_METHODS + ("auto",)
CSV_COLUMNS = ("workload", "config", "size_mib", "dirty_pct", "method", "method_used", "trial", "ok", "downtime_s",
               "bytes_frozen", "total_s", "bytes_total", "floor_s", "source_needed_s", "client_gap_s",
               "client_ok", "verify", "iterations", "stop_reason", "dump_s", "transfer_s", "restore_s", "error",
               "report")

# A client that holds ONE TCP connection to ramsim's control port and pings it every INTERVAL seconds; prints
# "ready" after the first answer and, on SIGTERM, one JSON line: pings answered, longest silence, reset or not,
# and whether a last ping on the same socket was answered.
PINGER = r"""
import json, signal, socket, sys, time
host, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
sock = socket.create_connection((host, port), timeout=10)
sock.settimeout(0.2)
buf, times, reset, last_seq, order_ok = b"", [], None, 0, True
def ask():
    global buf, reset
    sock.sendall(b"ping\n")
    deadline = time.time() + 60
    while b"\n" not in buf:
        if time.time() > deadline:
            raise OSError("no answer in 60 s")
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        if not data:
            raise OSError("connection closed by the server")
        buf += data
    line, buf = buf.split(b"\n", 1)
    return line.decode()
def record(line):
    global last_seq, order_ok
    seq = int(line.split("seq=")[1]) if line.startswith("pong") else -1
    order_ok = order_ok and seq > last_seq
    last_seq = seq
    times.append(time.time())
try:
    record(ask())
    print("ready %d" % sock.getsockname()[1], flush=True)
    while not stop:
        record(ask())
        time.sleep(interval)
    record(ask())
    final = True
except OSError as exc:
    reset, final = str(exc), False
gaps = [b - a for a, b in zip(times, times[1:])]
worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
print(json.dumps({"ok": reset is None and final and order_ok, "pings": len(times), "reset": reset,
                  "order_ok": order_ok, "final_ping": final, "local_port": sock.getsockname()[1],
                  "max_gap_s": round(gaps[worst], 4) if gaps else None,
                  "gap_at": round(times[worst], 3) if gaps else None}), flush=True)
"""

# One control line to ramsim on a fresh connection (from the client): prints the answer line.
CTL = r"""
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4]))
sock.sendall(sys.argv[3].encode() + b"\n")
buf = b""
while b"\n" not in buf:
    data = sock.recv(4096)
    if not data:
        break
    buf += data
print(buf.decode().strip())
"""


# ----------------------------------------------------------------------------------------------------------------
# Lab helpers (also used by tests/lab/test_tier2.py)
# ----------------------------------------------------------------------------------------------------------------

def labctl_exec(node, argv, timeout=120, check=False):
    """Run argv inside a lab node (lab/labctl exec); return the CompletedProcess (text)."""
    return subprocess.run([LABCTL, "exec", node, "--"] + list(argv), capture_output=True, text=True,
                          timeout=timeout, check=check)


def use_venv(bindir=None):
    """ansible-runner execs ansible-playbook from PATH: put `bindir` (default: this interpreter's, the venv's, as
    make does) first on it, once."""
    bindir = bindir or os.path.dirname(os.path.abspath(sys.executable))
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def lab_vars(inventory=LAB_INVENTORY):
    """The lab's edges, workloads and backhaul rate, read from the inventory files."""
    hosts = yaml.safe_load(open(os.path.join(inventory, "hosts.yml")))
    edges = sorted(hosts["all"]["children"]["edges"]["hosts"])
    workloads = yaml.safe_load(open(os.path.join(inventory, "group_vars", "edges.yml")))["edge_workloads"]
    lab = yaml.safe_load(open(os.path.join(inventory, "group_vars", "all", "lab.yml")))["lab"]
    return {"edges": edges, "workloads": {w["name"]: w for w in workloads}, "workload_list": workloads,
            "rate": lab["backhaul"]["rate"], "rate_bits": rate_bits(lab["backhaul"]["rate"])}


def container_states(name, edges):
    """{edge: state or ''} for the container on every edge."""
    out = {}
    for edge in edges:
        proc = labctl_exec(edge, ["lxc-info", "-n", name, "-sH"], timeout=30)
        out[edge] = proc.stdout.strip() if proc.returncode == 0 else ""
    return out


def running_on(name, edges):
    return [edge for edge, state in container_states(name, edges).items() if state == "RUNNING"]


def ramsim_ctl(ip, port, command, timeout=120):
    """One ramsim control command from the client, on a fresh connection; returns the answer line."""
    proc = labctl_exec(CLIENT, ["python3", "-c", CTL, ip, str(port), command, str(timeout)], timeout=timeout + 30)
    if proc.returncode != 0:
        raise RuntimeError("ramsim %s: %s" % (command, proc.stderr.strip()[-300:]))
    return proc.stdout.strip()


def wait_ramsim(ip, port, timeout=180):
    """Wait until ramsim answers `status`; return the answer."""
    deadline = time.time() + timeout
    while True:
        try:
            return ramsim_ctl(ip, port, "status", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            if time.time() > deadline:
                raise
            time.sleep(2)


def status_field(line, key):
    for word in line.split():
        if word.startswith(key + "="):
            return word.split("=", 1)[1]
    return None


def ramsim_args(workload, size_mib):
    """The workload's args with --size-mib replaced."""
    words = workload["args"].split()
    if "--size-mib" in words:
        words[words.index("--size-mib") + 1] = str(size_mib)
    else:
        words += ["--size-mib", str(size_mib)]
    return " ".join(words)


def size_of(workload):
    """The --size-mib in a ramsim workload's args (the binary's default: 1024)."""
    words = workload["args"].split()
    return int(words[words.index("--size-mib") + 1]) if "--size-mib" in words else 1024


# A systemd drop-in inside the container overrides the workload's command line (the role's unit file and the
# inventory stay as they are); it travels with the container's rootfs when it migrates.
SIZE_DROPIN = "/etc/systemd/system/arnab-workload.service.d/arnab-size.conf"


def set_ramsim_size(size_mib, inventory=LAB_INVENTORY):
    """Make the running ramsim allocate size_mib MiB: restart its workload service inside the container with a
    drop-in that overrides --size-mib (removed again when size_mib is the inventory's own size). Returns True
    when something changed."""
    lv = lab_vars(inventory)
    ct = lv["workloads"]["ramsim"]
    try:
        if status_field(ramsim_ctl(ct["ip"], ct["port"], "status", timeout=10), "size_mib") == str(size_mib):
            return False
    except (RuntimeError, subprocess.TimeoutExpired):
        pass
    where = running_on("ramsim", lv["edges"])
    if len(where) != 1:
        raise RuntimeError("ramsim runs on %s: expected exactly one edge" % (where or "no edge"))
    if size_mib == size_of(ct):
        script = "rm -f %s" % SIZE_DROPIN
    else:
        script = "mkdir -p %s && printf '[Service]\\nExecStart=\\nExecStart=/usr/local/bin/arnab-workload %s\\n' > %s" % (
            os.path.dirname(SIZE_DROPIN), ramsim_args(ct, size_mib), SIZE_DROPIN)
    proc = labctl_exec(where[0], ["lxc-attach", "-n", "ramsim", "--", "sh", "-c",
                                  script + " && systemctl daemon-reload && systemctl restart arnab-workload"])
    if proc.returncode != 0:
        raise RuntimeError("resizing ramsim failed: %s" % (proc.stderr or proc.stdout).strip()[-300:])
    status = wait_ramsim(ct["ip"], ct["port"])
    if status_field(status, "size_mib") != str(size_mib):
        raise RuntimeError("ramsim did not come back at %d MiB: %s" % (size_mib, status))
    return True


class ClientSession(object):
    """ONE TCP connection from client1 to a workload, kept open across a migration.

    video: the stream probe (every byte verified); ramsim: the pinger (a ping every 20 ms on one socket).
    stop() returns the client's JSON result with `gap_s` (its longest silence) and `ok`."""

    def __init__(self, workload, ip, port, tag="bench"):
        self.workload = workload
        self.out = "/tmp/arnab-t2-%s-%d.json" % (tag, os.getpid())
        if workload == "video":
            argv = ["python3", PROBE, "--host", ip, "--port", str(port), "--duration", "1800", "--out", self.out]
        else:
            argv = ["python3", "-c", PINGER, ip, str(port), "0.02"]
        self.proc = subprocess.Popen([LABCTL, "exec", CLIENT, "--"] + argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        if workload == "video":
            time.sleep(1.5)       # the stream runs; the probe writes its report when stopped
            if self.proc.poll() is not None:
                raise RuntimeError("stream probe ended at once: %s" % self.proc.stderr.read()[-300:])
        else:
            line = self.proc.stdout.readline()
            if not line.startswith("ready"):
                self.proc.kill()
                raise RuntimeError("ramsim pinger did not start: %s %s" % (line, self.proc.stderr.read()[-300:]))
            self.local_port = int(line.split()[1])

    def stop(self, timeout=90):
        """SIGTERM the client and return its result (never leaves the process behind)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if self.workload == "video":
            proc = labctl_exec(CLIENT, ["cat", self.out], timeout=30)
            labctl_exec(CLIENT, ["rm", "-f", self.out], timeout=30)
            try:
                res = json.loads(proc.stdout)
            except ValueError:
                return {"ok": False, "problem": "no probe report: %s" % err[-300:], "gap_s": None}
            res.pop("samples", None)
            res["gap_s"] = max(g[1] for g in res["gaps"]) / 1000.0 if res.get("gaps") else 0.0
            return res
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            return {"ok": False, "reset": "pinger printed nothing: %s" % err[-300:], "gap_s": None}
        res = json.loads(lines[-1])
        res["gap_s"] = res.get("max_gap_s")
        return res


def migrate(container, dest, method, report_path, extravars=None, inventory=LAB_INVENTORY, quiet=True):
    """Run migrate_container.yml; return (ok, report dict, error message or None)."""
    use_venv()
    args = {"container": container, "dest": dest, "method": method, "report": report_path}
    args.update(extravars or {})
    error = None
    try:
        run_playbook("migrate_container.yml", args, inventory=inventory, quiet=quiet)
    except PlaybookFailed as exc:
        error = str(exc)
    try:
        with open(report_path) as f:
            rep = json.load(f)
    except (IOError, OSError, ValueError):
        rep = {}
    return error is None and bool(rep.get("ok")), rep, error


# ----------------------------------------------------------------------------------------------------------------
# tier 2 (Fig. 4)
# ----------------------------------------------------------------------------------------------------------------

def utc_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def configs(args):
    out = []
    if args.video:
        out.append({"workload": "video", "config": "video", "size_mib": "", "dirty_pct": ""})
    for size in args.sizes:
        for dirty in args.dirty:
            out.append({"workload": "ramsim", "config": "ramsim %d MiB %g%%" % (size, dirty), "size_mib": size,
                        "dirty_pct": dirty})
    return out


def row_from(cfg, method, trial, ok, rep, error, client, verify, rate):
    frozen = rep.get("frozen") or {}
    bytes_frozen = int(rep.get("bytes_frozen") or 0)
    post = rep.get("postcopy") or {}
    return {
        "workload": cfg["workload"], "config": cfg["config"], "size_mib": cfg["size_mib"],
        "dirty_pct": cfg["dirty_pct"], "method": method, "method_used": rep.get("method", ""), "trial": trial,
        "ok": ok, "downtime_s": rep.get("downtime_s", ""), "bytes_frozen": bytes_frozen,
        "total_s": rep.get("total_s", ""), "bytes_total": rep.get("bytes_total", ""),
        "floor_s": round(bytes_frozen * 8 / rate, 4),
        "source_needed_s": post.get("source_needed_s", rep.get("downtime_s", "")),
        "client_gap_s": "" if client.get("gap_s") is None else client["gap_s"],
        "client_ok": client.get("ok"), "verify": verify,
        "iterations": len(rep.get("iterations") or []), "stop_reason": rep.get("stop_reason", ""),
        "dump_s": frozen.get("dump_s", ""), "transfer_s": frozen.get("transfer_s", ""),
        "restore_s": frozen.get("restore_s", ""),
        "error": (error or rep.get("error") or "")[:300], "report": os.path.relpath(rep["_path"], REPO) if rep.get("_path") else "",
    }


def run_one(cfg, method, trial, lv, outdir, stamp):
    """One migration of the configuration's container to the other edge, with a client attached."""
    name = cfg["workload"]
    ct = lv["workloads"][name]
    where = running_on(name, lv["edges"])
    if len(where) != 1:
        raise RuntimeError("%s runs on %s: expected exactly one edge" % (name, where or "no edge"))
    dest = [e for e in lv["edges"] if e != where[0]][0]
    if name == "ramsim":
        ramsim_ctl(ct["ip"], ct["port"], "dirty %g" % cfg["dirty_pct"])
        time.sleep(2)     # a steady dirty rate before anything is measured
    path = os.path.join(outdir, "%s-%s-%s-t%d.json" % (
        cfg["config"].replace(" ", "").replace("%", "pct"), method, where[0], trial))
    client = ClientSession(name, ct["ip"], ct["port"], tag=stamp)
    try:
        ok, rep, error = migrate(name, dest, method, path)
        time.sleep(1.0)   # let the client see the service after the move
    finally:
        result = client.stop()
    verify = ""
    if name == "ramsim":
        try:
            verify = ramsim_ctl(ct["ip"], ct["port"], "verify").split()[0]
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            verify = "error: %s" % exc
    rep["_path"] = path
    return row_from(cfg, method, trial, ok, rep, error, result, verify, lv["rate_bits"])


def mean(values):
    values = [float(v) for v in values if v not in ("", None)]
    return statistics.mean(values) if values else float("nan")


def summarize(rows):
    """{config: {method: figures}} with means over the successful trials."""
    table = {}
    for row in rows:
        table.setdefault(row["config"], {}).setdefault(row["method"], []).append(row)
    out = {}
    for config, methods in table.items():
        out[config] = {}
        for method, items in methods.items():
            good = [r for r in items if str(r["ok"]) == "True"]
            downs = [float(r["downtime_s"]) for r in good]
            out[config][method] = {
                "n": len(good), "trials": len(items),
                "downtime": statistics.mean(downs) if downs else float("nan"),
                "sd": statistics.stdev(downs) if len(downs) > 1 else 0.0,
                "floor": mean(r["floor_s"] for r in good),
                "bytes_frozen": mean(r["bytes_frozen"] for r in good),
                "gap": mean(r["client_gap_s"] for r in good),
                "total": mean(r["total_s"] for r in good),
                "source_needed": mean(r["source_needed_s"] for r in good),
                "used": ",".join(sorted({r["method_used"] for r in good})),
            }
    return out


def table_lines(summary):
    """The table as Markdown lines."""
    lines = ["| configuration | method | ok/trials | downtime (s) | / stop-and-copy | floor (s) | / floor | "
             "bytes frozen | client gap (s) | source needed (s) | total (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for config, methods in summary.items():
        sac = methods.get("stop-and-copy", {}).get("downtime", float("nan"))
        for method in [m for m in ALL_METHODS if m in methods]:
            f = methods[method]
            ratio = f["downtime"] / sac if sac == sac and sac > 0 else float("nan")
            floor_ratio = f["downtime"] / f["floor"] if f["floor"] > 0 else float("inf")
            lines.append("| %s | %s%s | %d/%d | %.2f ± %.2f | %.2f | %.3f | %s | %s | %.2f | %.2f | %.1f |" % (
                config, method, " (%s)" % f["used"] if method == "auto" and f["used"] else "", f["n"], f["trials"],
                f["downtime"], f["sd"], ratio, f["floor"],
                "%.1f" % floor_ratio if floor_ratio != float("inf") else "-",
                report_mod.human_bytes(f["bytes_frozen"]) if f["bytes_frozen"] == f["bytes_frozen"] else "-",
                f["gap"], f["source_needed"], f["total"]))
    return lines


def target_lines(summary, rate_bits_s):
    """The issue's targets, checked against what was measured."""
    out = []
    for config, methods in summary.items():
        if not config.startswith("ramsim"):
            continue
        sac = methods.get("stop-and-copy", {}).get("downtime")
        pre = methods.get("pre-copy", {}).get("downtime")
        post = methods.get("post-copy", {})
        size = float(config.split()[1])
        if sac and pre and " 20%" in config:
            out.append("%s: pre-copy / stop-and-copy = %.2f (target <= 0.25): %s" % (
                config, pre / sac, "met" if pre / sac <= 0.25 else "NOT met"))
        if post:
            out.append("%s: post-copy downtime %.2f s (target <= 0.3 s%s): %s" % (
                config, post["downtime"], "" if size >= 1024 else ", stated for 1 GiB",
                "met" if post["downtime"] <= 0.3 else "NOT met"))
            bound = 1.2 * size * 1048576 * 8 / rate_bits_s
            out.append("%s: post-copy source needed %.1f s, whole migration %.1f s (target <= 1.2 x memory/link = "
                       "%.1f s): %s" % (config, post["source_needed"], post["total"], bound,
                                        "met (memory window)" if post["source_needed"] <= bound else "NOT met"))
    return out


def tier2(args):
    use_venv()
    lv = lab_vars(args.inventory)
    stamp = utc_stamp()
    os.makedirs(REPORTS, exist_ok=True)
    outdir = os.path.join(REPORTS, "bench-tier2-%s" % stamp)
    os.makedirs(outdir, exist_ok=True)
    csv_path = os.path.join(REPORTS, "bench-tier2-%s.csv" % stamp)
    default_size = size_of(lv["workloads"]["ramsim"])
    command = " ".join(["python", "-m", "arnab_lab.bench"] + sys.argv[1:])
    print("bench tier2: %s; link %s; %d trial(s); methods %s" % (
        ", ".join(c["config"] for c in configs(args)), lv["rate"], args.trials, ", ".join(args.methods)),
        file=sys.stderr, flush=True)
    rows = []
    started = time.time()
    resized = False
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        try:
            for cfg in configs(args):
                if cfg["workload"] == "ramsim":
                    resized = set_ramsim_size(cfg["size_mib"], args.inventory) or resized
                for trial in range(1, args.trials + 1):
                    # rotate the order per trial: no method always runs first (cold caches) or last
                    shift = (trial - 1) % len(args.methods)
                    for method in args.methods[shift:] + args.methods[:shift]:
                        t0 = time.time()
                        row = None
                        for attempt in range(2):
                            try:
                                row = run_one(cfg, method, trial, lv, outdir, stamp)
                                break
                            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                                # e.g. the lead's demo moved something under us: say so, retry once
                                print("  %s %s trial %d: %s%s" % (cfg["config"], method, trial, exc,
                                                                 "; retrying" if attempt == 0 else ""),
                                      file=sys.stderr, flush=True)
                                time.sleep(5)
                        if row is None:
                            row = row_from(cfg, method, trial, False, {}, "could not run", {}, "", lv["rate_bits"])
                        rows.append(row)
                        writer.writerow(row)
                        f.flush()
                        print("  %-22s %-13s t%d: ok=%s downtime=%s s frozen=%s B gap=%s s verify=%s (%.0f s)%s" % (
                            cfg["config"], method, trial, row["ok"], row["downtime_s"], row["bytes_frozen"],
                            row["client_gap_s"], row["verify"] or "-", time.time() - t0,
                            " ERROR " + row["error"] if row["error"] else ""), file=sys.stderr, flush=True)
        finally:
            if resized and not args.keep_size:
                set_ramsim_size(default_size, args.inventory)
    summary = summarize(rows)
    lines = table_lines(summary)
    targets = target_lines(summary, lv["rate_bits"])
    plot_rows = [dict(r, workload=r["config"], ok=str(r["ok"])) for r in rows]
    png = os.path.join(REPORTS, "downtime.png")
    if any(str(r["ok"]) == "True" for r in rows):
        report_mod.plot_downtime(plot_rows, png)
    md = os.path.join(REPORTS, "bench-tier2-%s.md" % stamp)
    with open(md, "w") as f:
        f.write("Command: `%s` (%s, %.0f s)\n\n" % (command, stamp, time.time() - started))
        f.write("\n".join(lines + [""] + ["- " + t for t in targets]) + "\n")
    print("\n".join(lines))
    print("\n".join(targets))
    print("csv: %s\ntable: %s\nplot: %s\n%d migrations in %.0f s" % (
        os.path.relpath(csv_path, REPO), os.path.relpath(md, REPO), os.path.relpath(png, REPO), len(rows),
        time.time() - started))
    return 0 if rows and all(str(r["ok"]) == "True" for r in rows) else 1


def csv_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m arnab_lab.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    t2 = sub.add_parser("tier2", help="Fig. 4: downtime per workload and method (container migration)")
    t2.add_argument("--quick", action="store_true",
                    help="CI size: video + ramsim 128 MiB at 20%%, 1 trial, every method (auto included)")
    t2.add_argument("--trials", type=int, default=None, help="trials per configuration and method (default 3)")
    t2.add_argument("--sizes", type=csv_list(int), default=None, help="ramsim sizes in MiB (default 1024)")
    t2.add_argument("--dirty", type=csv_list(float), default=None,
                    help="ramsim dirty rates in %% per second (default 20,30,50,70,100)")
    t2.add_argument("--methods", type=csv_list(str), default=None,
                    help="default stop-and-copy,pre-copy,post-copy (--quick: also auto)")
    t2.add_argument("--no-video", dest="video", action="store_false", help="leave the video container out")
    t2.add_argument("--keep-size", action="store_true", help="leave ramsim at the last size (default: restore)")
    t2.add_argument("--inventory", default=LAB_INVENTORY)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = args.trials or 1
        args.sizes = args.sizes or [128]
        args.dirty = args.dirty or [20.0]
        args.methods = args.methods or list(ALL_METHODS)
    args.trials = args.trials or 3
    args.sizes = args.sizes if args.sizes is not None else [1024]
    args.dirty = args.dirty or [20.0, 30.0, 50.0, 70.0, 100.0]
    args.methods = args.methods or list(PAPER_METHODS)
    bad = [m for m in args.methods if m not in ALL_METHODS]
    if bad:
        parser.error("unknown method(s) %s (choose from %s)" % (", ".join(bad), ", ".join(ALL_METHODS)))
    return tier2(args)


if __name__ == "__main__":
    sys.exit(main())
