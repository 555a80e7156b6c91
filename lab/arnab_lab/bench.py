"""Benchmarks on the emulated lab, driven through the runner (playbooks, events; no stdout scraping).

    python -m arnab_lab.bench tier2 [--quick] [--working-set 20,30,50,70,100] [--dirty D[,D...]]
                                    [--methods stop-and-copy,pre-copy,post-copy,auto] [--trials 3] [--no-video]
                                    [--sizes 1024] [--results docs/results] [--dry-run]
    python -m arnab_lab.bench fig4 docs/results/tier2-<stamp>.csv [-o fig4.png]

tier2 is the paper's Fig. 4: the `video` container and `ramsim` (1 GiB by default) with a hot set (working set) of
each given percentage of its pages, migrated by every method, N trials, all in ONE run on the lab's backhaul. The
hot set and dirty rate are set on the running ramsim (`hot P`, `dirty D`: no restart); by default each working set
P is rewritten at P% of the memory per period. Trial by trial, every cell by every method (the methods' order
rotated per trial), so that noise on this shared machine spreads over all cells and methods alike. While a container
moves, a client in `client1` holds ONE TCP connection to it (the video stream probe, or a ramsim pinger) and its
longest silence is recorded as `client_gap_s`. Writes reports/bench-tier2-<UTC stamp>.csv (one row per migration),
each migration's JSON report under reports/bench-tier2-<stamp>/, reports/downtime.png (Fig. 4 with error bars and
the paper's bars), and the run's summary (per cell: mean, sd, min, max; command, date, load, machine) to
docs/results/tier2-<stamp>.{csv,md}, the part to commit.

floor_s = bytes moved while frozen * 8 / backhaul rate (lab.backhaul.rate): the physical floor of the downtime.
source_needed_s = from the freeze until the destination no longer needs the source (post-copy: the last lazy
page; other methods: running on the destination, i.e. the downtime).

The matrix itself (configs, plan, run_matrix, aggregate, summary_markdown, write_summary, plot_fig4) is pure and
unit tested (tests/unit/lab/test_bench.py). The lab helpers (where a container runs, ramsim control, the client
sessions, ramsim's size) are shared with tests/lab/test_tier2.py.
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import yaml

from arnab_lab import browser
from arnab_lab import report as report_mod
from arnab_lab.lab import rate_bits
from arnab_lab.runner import LAB_INVENTORY, REPO, PlaybookFailed, run_playbook

LABCTL = os.path.join(REPO, "lab", "labctl")
REPORTS = os.path.join(REPO, "reports")
RESULTS = os.path.join(REPO, "docs", "results")
PROBE = os.path.join(REPO, "playbooks", "files", "stream_probe.py")
CLIENT = "client1"
PAPER_METHODS = ("stop-and-copy", "pre-copy", "post-copy")
DEFAULT_METHODS = PAPER_METHODS + ("auto",)
# Bench-only variants: a container_migrate method with other options, measured side by side with the method itself
# (delta pre-copy's iterations each frozen for a criu dump, against its live reads; post-copy's pages over criu's
# page server in pinned TLS or in cleartext, against inside SSH; criu's own freeze; an eager restore).
METHOD_VARIANTS = dict({"pre-copy/dump": ("pre-copy", {"delta_reads": "dump"}),
                        "post-copy/tls": ("post-copy", {"postcopy_channel": "tls"}),
                        "post-copy/tcp": ("post-copy", {"postcopy_channel": "tcp"})},
                       # criu freezes the container itself (container_migrate prefreeze=false): its 100 ms poll
                       **dict({m + "/criu-freeze": (m, {"prefreeze": False}) for m in DEFAULT_METHODS},
                              # the restore reads all memory before the copy runs (lazy_restore=eager)
                              **{m + "/eager": (m, {"lazy_restore": "eager"}) for m in ("stop-and-copy", "pre-copy")}))
ALL_METHODS = DEFAULT_METHODS + tuple(sorted(METHOD_VARIANTS))


def variant(method):
    """``(container_migrate method, its extra options)`` of a bench method (a variant's, or the method's own)."""
    return METHOD_VARIANTS.get(method, (method, {}))


DEFAULT_WORKING_SETS = (20.0, 30.0, 50.0, 70.0, 100.0)
CSV_COLUMNS = ("workload", "config", "size_mib", "working_set_pct", "dirty_pct", "method", "method_used", "trial", "ok",
               "downtime_s", "bytes_frozen", "total_s", "bytes_total", "floor_s", "source_needed_s", "client_gap_s",
               "client_ok", "verify", "iterations", "stop_reason", "dump_s", "transfer_s", "restore_s",
               "frozen_total_s", "error", "report", "load1", "player_stalls", "player_stalled_ms",
               "player_longest_stall_ms", "network_lock", "netfix_s", "ts_shift_ms", "held_packets", "lazy_restore",
               "fill_s")
# Per cell: mean, sd, min and max of these over the successful trials.
STAT_KEYS = ("downtime_s", "client_gap_s", "total_s", "bytes_frozen", "source_needed_s", "floor_s",
             "frozen_total_s")
SUMMARY_COLUMNS = ("config", "workload", "size_mib", "working_set_pct", "dirty_pct", "method", "methods_used",
                   "trials", "ok") + tuple("%s_%s" % (key, stat) for key in STAT_KEYS
                                           for stat in ("mean", "sd", "min", "max")) + (
    "vs_stop_and_copy", "paper_downtime_s", "paper_bytes_frozen")
NAN = float("nan")
# The paper's Fig. 4 in numbers: only its 20% row is given in the text (the other bars are drawn, not stated).
PAPER_NOTE = "1 GiB container, 1 Gbit/s, mean of 10 trials"
PAPER_FIG4 = {20.0: {"stop-and-copy": {"downtime_s": 14.7, "bytes_frozen": 1.2e9},
                     "pre-copy": {"downtime_s": 5.4, "bytes_frozen": 171e6}}}

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
    """The lab's edges, workloads and backhaul rate, read from the inventory files (and the inventory, which the
    migrations then use)."""
    hosts = yaml.safe_load(open(os.path.join(inventory, "hosts.yml")))
    edges = sorted(hosts["all"]["children"]["edges"]["hosts"])
    workloads = yaml.safe_load(open(os.path.join(inventory, "group_vars", "edges.yml")))["edge_workloads"]
    lab = yaml.safe_load(open(os.path.join(inventory, "group_vars", "all", "lab.yml")))["lab"]
    return {"edges": edges, "workloads": {w["name"]: w for w in workloads}, "workload_list": workloads,
            "rate": lab["backhaul"]["rate"], "rate_bits": rate_bits(lab["backhaul"]["rate"]), "inventory": inventory}


# LXC says RUNNING for a container whose cgroup v1 freezer someone else froze (criu, the migration's pre-dump
# hook): what a user means by running is thawed too.
STATE_SH = ('st=$(lxc-info -n "$1" -sH) || exit 1\n'
            'if [ "$st" = RUNNING ]; then\n'
            '  cg=$(awk -F: \'$2 ~ /(^|,)freezer(,|$)/ {print $3}\' /proc/$(lxc-info -n "$1" -pH)/cgroup)\n'
            '  [ -n "$cg" ] && [ "$(cat "/sys/fs/cgroup/freezer$cg/freezer.state" 2>/dev/null)" = FROZEN ] '
            '&& st=FROZEN\n'
            'fi\n'
            'echo "$st"\n')


def container_states(name, edges):
    """{edge: state or ''} for the container on every edge (FROZEN also when only its cgroup freezer says so)."""
    out = {}
    for edge in edges:
        proc = labctl_exec(edge, ["sh", "-c", STATE_SH, "sh", name], timeout=30)
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
# tier 2 (Fig. 4): the matrix as pure functions (configurations, run order, aggregation, summary), then the lab run
# ----------------------------------------------------------------------------------------------------------------

def utc_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def pct(value):
    """20.0 -> 20 (as the CSV shows it), 12.5 stays."""
    return int(value) if float(value).is_integer() else float(value)


def config_name(size_mib, working_set, dirty):
    return "ramsim %d MiB hot %g%% dirty %g%%" % (size_mib, working_set, dirty)


def configs(video=True, sizes=(1024,), working_sets=DEFAULT_WORKING_SETS, dirty=None):
    """The matrix's configurations: video (if asked), then ramsim for each size, working set and dirty rate.

    dirty None: each working set with its own percentage as dirty rate (as many page writes per period as the hot
    set holds), the paper's "P% of the memory changes"; a list: every working set at every dirty rate."""
    out = []
    if video:
        out.append({"workload": "video", "config": "video", "size_mib": "", "working_set_pct": "", "dirty_pct": ""})
    for size in sizes:
        for ws in working_sets:
            for rate in (dirty or [ws]):
                out.append({"workload": "ramsim", "config": config_name(size, ws, rate), "size_mib": size,
                            "working_set_pct": pct(ws), "dirty_pct": pct(rate)})
    return out


NETWORK_LOCKS = ("inbound", "nftables", "iptables")   # container_migrate's network_lock; the first is the lab's


def with_locks(cfgs, locks):
    """Every configuration under every network lock of `locks`; a configuration under another lock than the
    engine's default is named with it (`video lock=nftables`), so that each lock is its own cell."""
    out = []
    for cfg in cfgs:
        for lock in locks:
            out.append(dict(cfg, network_lock=lock,
                            config=cfg["config"] if lock == NETWORK_LOCKS[0] else "%s lock=%s" % (cfg["config"], lock)))
    return out


def with_holds(cfgs, holds):
    """Every inbound-lock configuration with each packet hold of `holds` (True: container_migrate's default, the
    client's packets sent during the freeze are held for the restored copy; False: dropped); the one without is
    named so (`video hold=off`)."""
    out = []
    for cfg in cfgs:
        for hold in (holds if cfg["network_lock"] == NETWORK_LOCKS[0] else [True]):
            out.append(dict(cfg, packet_hold=hold, config=cfg["config"] if hold else cfg["config"] + " hold=off"))
    return out


# How the video container runs (edge_workloads `init`): its PID 1 for `lxc-start -s lxc.init.cmd=...`. systemd's
# is the edge role's (roles/edge/templates/lxc-arnab-criu.conf.j2), arnab-init its application init.
VIDEO_INITS = {"app": "/usr/local/sbin/arnab-init",
               "systemd": "/sbin/init systemd.legacy_systemd_cgroup_controller=1"}


def video_init_of(lv):
    """How the inventory runs the video container (edge_workloads `init`, systemd unless said)."""
    return lv["workloads"].get("video", {}).get("init", "systemd")


def with_inits(cfgs, inits, inventory_init):
    """Every video configuration under each init of `inits` (None: as the inventory starts it); one under another
    init than the inventory's is named with it (`video init=systemd`), so that each is its own cell."""
    out = []
    for cfg in cfgs:
        for init in (inits or [None]) if cfg["workload"] == "video" else [None]:
            name = cfg["config"] if init in (None, inventory_init) else "%s init=%s" % (cfg["config"], init)
            out.append(dict(cfg, init=init, config=name))
    return out


def run_configs(args, inventory_init="systemd"):
    """The configurations of a tier2 run: workloads x video inits x network locks x packet holds."""
    cfgs = with_inits(configs(args.video, args.sizes, args.working_sets, args.dirty), args.video_inits, inventory_init)
    return with_holds(with_locks(cfgs, args.network_locks), args.packet_holds)


def restart_video(ct, init, edges):
    """Start the video container afresh with `init` (VIDEO_INITS) on the edge that runs it, and wait until its
    stream and web video answer."""
    where = running_on(ct["name"], edges)
    if len(where) != 1:
        raise RuntimeError("%s runs on %s: expected exactly one edge" % (ct["name"], where or "no edge"))
    for argv in (["lxc-stop", "-k", "-n", ct["name"]],
                 ["lxc-start", "-n", ct["name"], "-s", "lxc.init.cmd=" + VIDEO_INITS[init]]):
        proc = labctl_exec(where[0], argv, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv), (proc.stderr or proc.stdout).strip()[-300:]))
    ports = [ct["port"]] + ([ct["hls_port"]] if "hls_port" in ct else [])
    proc = labctl_exec(CLIENT, ["python3", "-c", WAIT_PORTS, ct["ip"], "120"] + [str(p) for p in ports], timeout=150)
    if proc.returncode != 0:
        raise RuntimeError("%s (init %s) did not answer on %s: %s" % (ct["name"], init, ports, proc.stderr[-300:]))
    time.sleep(3)     # what else starts with it (systemd's other units) before anything is measured


# From the client: wait until every port answers a TCP connect (argv: host, timeout, ports...).
WAIT_PORTS = r"""
import socket, sys, time
host, deadline = sys.argv[1], time.time() + float(sys.argv[2])
for port in sys.argv[3:]:
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("port %s: no answer" % port)
            time.sleep(0.5)
"""


def plan(cfgs, methods, trials):
    """The run order: [{"cfg", "trial", "method"}].

    Per ramsim size (resizing restarts ramsim, so each size once; video joins the first group), trial by trial:
    every configuration by every method in trial 1, then all of it again in trial 2, ..., so a noisy stretch of
    this shared machine hits one trial of many cells rather than every trial of one. The methods' order rotates
    per trial: none always runs first (cold caches) or last."""
    sizes = []
    for cfg in cfgs:
        if cfg["workload"] == "ramsim" and cfg["size_mib"] not in sizes:
            sizes.append(cfg["size_mib"])
    groups = [[c for c in cfgs if c["workload"] == "ramsim" and c["size_mib"] == size] for size in sizes] or [[]]
    groups[0] = [c for c in cfgs if c["workload"] != "ramsim"] + groups[0]
    methods = list(methods)
    steps = []
    for group in groups:
        for trial in range(1, trials + 1):
            shift = (trial - 1) % len(methods)
            for cfg in group:
                for method in methods[shift:] + methods[:shift]:
                    steps.append({"cfg": cfg, "trial": trial, "method": method})
    return steps


def row_from(cfg, method, trial, ok, rep, error, client, verify, rate, load1="", player=None):
    frozen = rep.get("frozen") or {}
    bytes_frozen = int(rep.get("bytes_frozen") or 0)
    post = rep.get("postcopy") or {}
    return {
        "workload": cfg["workload"], "config": cfg["config"], "size_mib": cfg["size_mib"],
        "working_set_pct": cfg.get("working_set_pct", ""),
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
        "frozen_total_s": rep.get("frozen_total_s", rep.get("downtime_s", "")),
        "error": (error or rep.get("error") or "")[:300],
        "report": os.path.relpath(rep["_path"], REPO) if rep.get("_path") else "", "load1": load1,
        "player_stalls": "" if not player else player.get("stall_count", ""),
        "player_stalled_ms": "" if not player else player.get("stalled_ms", ""),
        "player_longest_stall_ms": "" if not player else max([s["ms"] for s in player.get("stalls") or []] or [0]),
        "network_lock": cfg.get("network_lock", NETWORK_LOCKS[0]),
        "netfix_s": frozen.get("netfix_s", ""),
        "ts_shift_ms": ((rep.get("restore") or {}).get("ts_shift") or {}).get("ms", ""),
        "held_packets": ((rep.get("restore") or {}).get("hold") or {}).get("sent", ""),
        # the restored copy ran before its memory was read; fill_s: until the last page was in
        "lazy_restore": (rep.get("lazy_restore") or {}).get("lazy", ""),
        "fill_s": (rep.get("lazy_restore") or {}).get("fill_s", ""),
    }


def run_matrix(steps, run_step, failed_row, prepare=None, on_row=None, log=None, retry_wait=5.0):
    """Run the steps in order; one row each. run_step(step) -> row; a RuntimeError or timeout is retried once
    (e.g. the lead's demo moved the container under us), then failed_row(step, message) stands for it.
    prepare(step) runs before each step (e.g. resize ramsim); on_row(row) after each (write, print)."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    rows = []
    for step in steps:
        if prepare:
            prepare(step)
        row, problem = None, "could not run"
        for attempt in range(2):
            try:
                row = run_step(step)
                break
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                problem = "could not run: %s" % exc
                log("  %s %s trial %d: %s%s" % (step["cfg"]["config"], step["method"], step["trial"], exc,
                                                "; retrying" if attempt == 0 else ""))
                if attempt == 0 and retry_wait:
                    time.sleep(retry_wait)
        if row is None:
            row = failed_row(step, problem)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def numbers(values):
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            out.append(number)
    return out


def spread(values):
    """mean, sd (sample; 0 for one value), min, max of the numbers among values (NaN when there is none)."""
    vals = numbers(values)
    if not vals:
        return {"mean": NAN, "sd": NAN, "min": NAN, "max": NAN, "n": 0}
    return {"mean": statistics.mean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def isnum(value):
    return isinstance(value, (int, float)) and not math.isnan(value)


def is_ok(row):
    return str(row.get("ok")) == "True"


def paper_figures(cell):
    """The paper's Fig. 4 figures for this cell, or {} (only its 1 GiB, 20% row has numbers)."""
    if cell["workload"] != "ramsim" or numbers([cell["size_mib"]]) != [1024.0]:
        return {}
    return PAPER_FIG4.get((numbers([cell["working_set_pct"]]) or [None])[0], {}).get(cell["method"], {})


def cell_order(cell):
    """video first, then ramsim by size, working set and dirty rate; methods in the usual order."""
    method = ALL_METHODS.index(cell["method"]) if cell["method"] in ALL_METHODS else len(ALL_METHODS)
    if cell["workload"] != "ramsim":
        return (0, cell["config"], 0, 0, 0, method)
    size, ws, dirty = ((numbers([cell[k]]) or [0.0])[0] for k in ("size_mib", "working_set_pct", "dirty_pct"))
    return (1, "", size, ws, dirty, method)


def aggregate(rows):
    """One cell per (configuration, method), video first then by size, working set, dirty rate, method: trials, ok count, and mean/sd/min/max of
    each figure over the successful trials; the downtime's ratio to stop-and-copy's in the same configuration."""
    groups = {}
    for row in rows:
        groups.setdefault((row["config"], row["method"]), []).append(row)
    cells = []
    for (config, method), items in groups.items():
        first = items[0]
        good = [r for r in items if is_ok(r)]
        cell = {"config": config, "workload": first["workload"], "size_mib": first.get("size_mib", ""),
                "working_set_pct": first.get("working_set_pct", ""), "dirty_pct": first.get("dirty_pct", ""),
                "method": method, "trials": len(items), "ok": len(good),
                "methods_used": ",".join(sorted({r.get("method_used") or "" for r in good} - {""}))}
        for key in STAT_KEYS:
            for stat, value in spread(r.get(key) for r in good).items():
                if stat != "n":
                    cell["%s_%s" % (key, stat)] = value
        paper = paper_figures(cell)
        cell["paper_downtime_s"] = paper.get("downtime_s", "")
        cell["paper_bytes_frozen"] = paper.get("bytes_frozen", "")
        cells.append(cell)
    cells.sort(key=cell_order)
    sac = {c["config"]: c["downtime_s_mean"] for c in cells if c["method"] == "stop-and-copy"}
    for cell in cells:
        base = sac.get(cell["config"], NAN)
        cell["vs_stop_and_copy"] = cell["downtime_s_mean"] / base if isnum(base) and base > 0 else NAN
    return cells


def fmt(value, pattern="%.2f"):
    return pattern % value if isnum(value) else "-"


def fmt_bytes(value):
    return report_mod.human_bytes(value) if isnum(value) else "-"


def spread_text(cell, key, pattern="%.2f"):
    """'mean [min-max]' (just the mean for one trial)."""
    if not isnum(cell["%s_mean" % key]):
        return "-"
    text = fmt(cell["%s_mean" % key], pattern)
    if cell["%s_max" % key] > cell["%s_min" % key]:
        text += " [%s-%s]" % (fmt(cell["%s_min" % key], pattern), fmt(cell["%s_max" % key], pattern))
    return text


def heading(cell):
    if cell["workload"] != "ramsim":
        return cell["config"]
    return "ramsim %s MiB, hot set %s%% (%s%% of the memory rewritten per period)" % (
        fmt(float(cell["size_mib"]), "%g"), fmt(float(cell["working_set_pct"]), "%g"),
        fmt(float(cell["dirty_pct"]), "%g"))


def cell_tables(cells):
    """One Markdown table per configuration (per working set), methods in the usual order; the paper's figures
    beside ours where it has some."""
    configs_seen = []
    for cell in cells:
        if cell["config"] not in configs_seen:
            configs_seen.append(cell["config"])
    lines = []
    for config in configs_seen:
        mine = sorted((c for c in cells if c["config"] == config), key=cell_order)
        paper = any(c["paper_downtime_s"] != "" for c in mine)
        lines += ["## %s" % heading(mine[0]), "",
                  "| method | ok/trials | downtime (s) | sd | / stop-and-copy | client gap (s) | total (s) | bytes frozen"
                  " | source needed (s) |" + (" paper downtime | paper bytes frozen |" if paper else ""),
                  "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if paper else "")]
        for c in mine:
            frozen = fmt_bytes(c["bytes_frozen_mean"])
            if c["bytes_frozen_max"] > c["bytes_frozen_min"]:
                frozen += " [%s-%s]" % (fmt_bytes(c["bytes_frozen_min"]), fmt_bytes(c["bytes_frozen_max"]))
            lines.append("| %s%s | %d/%d | %s | %s | %s | %s | %s | %s | %s |%s" % (
                c["method"], " (chose %s)" % c["methods_used"] if c["method"] == "auto" and c["methods_used"] else "",
                c["ok"], c["trials"], spread_text(c, "downtime_s"), fmt(c["downtime_s_sd"]),
                fmt(c["vs_stop_and_copy"]), spread_text(c, "client_gap_s"), spread_text(c, "total_s", "%.1f"),
                frozen, spread_text(c, "source_needed_s", "%.1f"),
                " %s | %s |" % ("%.1f s" % c["paper_downtime_s"] if c["paper_downtime_s"] != "" else "-",
                                fmt_bytes(c["paper_bytes_frozen"]) if c["paper_bytes_frozen"] != "" else "-")
                if paper else ""))
        if paper:
            lines += ["", "Paper: %s." % PAPER_NOTE]
        lines.append("")
    return lines


def target_lines(cells, rate_bits_s):
    """Issue 13's goals for this host kernel, checked against the cells (means over the successful trials)."""
    out = []
    by = {(c["config"], c["method"]): c for c in cells}
    for cell in cells:
        if cell["workload"] != "ramsim" or numbers([cell["working_set_pct"]]) != [20.0]:
            continue
        pre = by.get((cell["config"], "pre-copy"))
        if cell["method"] == "stop-and-copy" and pre and pre["ok"] and cell["ok"]:
            ratio = pre["downtime_s_mean"] / cell["downtime_s_mean"]
            out.append("%s: pre-copy / stop-and-copy downtime = %.2f (goal <= 0.3): %s" % (
                cell["config"], ratio, "met" if ratio <= 0.3 else "NOT met"))
            frozen = pre["frozen_total_s_mean"] / pre["downtime_s_mean"]
            out.append("%s: pre-copy frozen in all / its downtime = %.2f (goal <= 1.5): %s" % (
                cell["config"], frozen, "met" if frozen <= 1.5 else "NOT met"))
        if variant(cell["method"])[0] == "post-copy" and cell["ok"]:
            bound = 1.5 * float(cell["size_mib"]) * 1048576 * 8 / rate_bits_s
            out.append("%s: %s source needed %.1f s (goal <= 1.5 x memory / link = %.1f s): %s" % (
                cell["config"], cell["method"], cell["source_needed_s_mean"], bound,
                "met" if cell["source_needed_s_mean"] <= bound else "NOT met"))
    measured = [c for c in cells if c["ok"] and isnum(c["client_gap_s_mean"])]
    late = [c for c in measured if c["client_gap_s_mean"] > c["downtime_s_mean"] + 0.1]
    if measured:
        out.append("client gap <= downtime + 0.1 s: met in %d of %d cells%s" % (
            len(measured) - len(late), len(measured), "; not met: " + ", ".join(
                "%s %s (%.2f s vs %.2f s)" % (c["config"], c["method"], c["client_gap_s_mean"], c["downtime_s_mean"])
                for c in late) if late else ""))
    return out


def summary_csv(cells, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for cell in cells:
            writer.writerow({k: (round(v, 4) if isnum(v) else "") if isinstance(v, float) else v
                             for k, v in cell.items()})
    return path


def summary_markdown(cells, meta):
    """The run's summary: how it was run (command, date, load, machine), one table per configuration, the goals."""
    lines = ["# Tier 2 (Fig. 4) benchmark %s" % meta["stamp"], "",
             "- command: `%s`" % meta["command"],
             "- date (UTC): %s to %s (%s s)" % (meta["started"], meta["ended"], fmt(meta["elapsed_s"], "%.0f")),
             "- migrations: %d of %d planned%s; %s" % (
                 meta["done"], meta["planned"], "" if meta["done"] == meta["planned"] else " (run interrupted)",
                 "methods interleaved per trial, their order rotated per trial"),
             "- machine: %s" % meta["machine"],
             "- load averages (1, 5, 15 min, as `uptime`): %s at the start, %s at the end" % (
                 meta["load_start"], meta["load_end"]),
             "- link: backhaul %s" % meta["link"],
             "- per-migration rows and reports (not committed): `%s`" % meta["raw"], "",
             "Figures: mean over the successful trials, [min-max] when they differ, sd = sample standard deviation "
             "(0 for one trial); downtime = freeze to running on the destination; client gap = the client's longest "
             "silence on its one TCP connection; source needed = freeze until the destination no longer needs the "
             "source (post-copy: last lazy page).", ""]
    lines += cell_tables(cells)
    goals = target_lines(cells, meta["rate_bits"])
    if goals:
        lines += ["## Goals (issue 13, host kernel)", ""] + ["- " + g for g in goals] + [""]
    return "\n".join(lines)


def write_summary(rows, meta, outdir):
    """docs/results/tier2-<stamp>.{csv,md} (or outdir): the aggregated cells and the Markdown; returns the paths."""
    os.makedirs(outdir, exist_ok=True)
    cells = aggregate(rows)
    base = os.path.join(outdir, "tier2-%s" % meta["stamp"])
    summary_csv(cells, base + ".csv")
    with open(base + ".md", "w") as f:
        f.write(summary_markdown(cells, meta))
    return base + ".csv", base + ".md"


def read_cells(path):
    """Cells back from a summary CSV (numbers as floats, empty as NaN)."""
    cells = []
    for row in report_mod.read_csv(path):
        cell = dict(row)
        for key in SUMMARY_COLUMNS:
            if key.split("_")[-1] in ("mean", "sd", "min", "max") or key in ("vs_stop_and_copy",):
                cell[key] = float(row[key]) if row.get(key) not in ("", None) else NAN
        cell["ok"], cell["trials"] = int(row["ok"]), int(row["trials"])
        for key in ("paper_downtime_s", "paper_bytes_frozen"):
            cell[key] = float(row[key]) if row.get(key) else ""
        cells.append(cell)
    return cells


def plot_fig4(cells, path):
    """Fig. 4: mean downtime per configuration (x: video, then the working sets) and method (bars), error bars
    from the trials' min to max, and the paper's bars (hatched) where it gives figures."""
    plt = report_mod.plt
    configs_seen = []
    for cell in cells:
        if cell["config"] not in configs_seen:
            configs_seen.append(cell["config"])
    methods = [m for m in ALL_METHODS if any(c["method"] == m for c in cells)]
    paper = [m for m in methods if any(c["method"] == m and c["paper_downtime_s"] != "" for c in cells)]
    series = [(m, False) for m in methods] + [(m, True) for m in paper]
    by = {(c["config"], c["method"]): c for c in cells}
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(configs_seen) + 2), 4))
    for j, (method, is_paper) in enumerate(series):
        xs = [i + j * width for i in range(len(configs_seen))]
        cs = [by.get((config, method)) for config in configs_seen]
        if is_paper:
            ys = [c["paper_downtime_s"] if c and c["paper_downtime_s"] != "" else NAN for c in cs]
            ax.bar(xs, ys, width, label="paper: %s" % method, hatch="//", fill=False,
                   edgecolor="C%d" % methods.index(method))
            continue
        ys = [c["downtime_s_mean"] if c and c["ok"] else NAN for c in cs]
        low = [y - c["downtime_s_min"] if c and c["ok"] else 0 for y, c in zip(ys, cs)]
        high = [c["downtime_s_max"] - y if c and c["ok"] else 0 for y, c in zip(ys, cs)]
        ax.bar(xs, ys, width, yerr=[low, high], capsize=3, label=method, color="C%d" % j)
    labels = []
    for config in configs_seen:
        cell = next(c for c in cells if c["config"] == config)
        labels.append("video" if cell["workload"] != "ramsim" else "%s MiB\nhot %s%%\ndirty %s%%" % (
            fmt(float(cell["size_mib"]), "%g"), fmt(float(cell["working_set_pct"]), "%g"),
            fmt(float(cell["dirty_pct"]), "%g")))
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(configs_seen))])
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("downtime (s)")
    ax.set_title("Container migration downtime: mean of the trials, error bars min-max%s" % (
        "\nhatched: the paper (%s)" % PAPER_NOTE if paper else ""), fontsize=9)
    ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def machine_info():
    """nproc, kernel, CPU model and memory of this machine, in one line."""
    model, mem = "", ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        with open("/proc/meminfo") as f:
            kib = next((int(line.split()[1]) for line in f if line.startswith("MemTotal:")), 0)
            mem = "%.0f GiB" % (kib / 1048576.0) if kib else ""
    except (IOError, OSError):
        pass
    return "nproc %d, kernel %s %s%s%s" % (os.cpu_count() or 0, platform.system(), platform.release(),
                                           ", %s" % model if model else "", ", %s RAM" % mem if mem else "")


def load_averages():
    return "%.2f, %.2f, %.2f" % os.getloadavg()


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def workload_setting(workload, option, default):
    words = workload["args"].split()
    return float(words[words.index(option) + 1]) if option in words else default


def set_working_set(ct, working_set, dirty):
    """Point the running ramsim at its hot set and dirty rate for a cell (`hot P`, `dirty D`: no restart)."""
    answer = ramsim_ctl(ct["ip"], ct["port"], "hot %g" % working_set)
    if not answer.startswith("ok") and not (working_set == 100 and "unknown command" in answer):
        raise RuntimeError("ramsim refused `hot %g`: %s%s" % (
            working_set, answer, " (an arnab-workload without working sets: re-run playbooks/edges.yml)"
            if "unknown command" in answer else ""))
    answer = ramsim_ctl(ct["ip"], ct["port"], "dirty %g" % dirty)
    if not answer.startswith("ok"):
        raise RuntimeError("ramsim refused `dirty %g`: %s" % (dirty, answer))


def start_viewer(ct, shots_dir):
    """The live web video of `ct` playing in headless Chromium in client1 (what a viewer sees), or None when the
    workload serves none."""
    url = browser.video_url(ct)
    if url is None:
        return None
    viewer = browser.watch(url, shots_dir, wrap=[LABCTL, "exec", CLIENT, "--"])
    time.sleep(2)
    viewer.mark("before")
    return viewer


def run_one(cfg, method, trial, lv, outdir, stamp, watch=False):
    """One migration of the configuration's container to the other edge, with a client attached (and, `watch`,
    a browser playing its web video)."""
    name = cfg["workload"]
    ct = lv["workloads"][name]
    where = running_on(name, lv["edges"])
    if len(where) != 1:
        raise RuntimeError("%s runs on %s: expected exactly one edge" % (name, where or "no edge"))
    dest = [e for e in lv["edges"] if e != where[0]][0]
    if name == "ramsim":
        set_working_set(ct, cfg["working_set_pct"], cfg["dirty_pct"])
        time.sleep(2)     # a steady dirty rate before anything is measured
    path = os.path.join(outdir, "%s-%s-%s-t%d.json" % (
        cfg["config"].replace(" ", "").replace("%", "pct"), method, where[0], trial))
    load1 = round(os.getloadavg()[0], 2)
    client = ClientSession(name, ct["ip"], ct["port"], tag=stamp)
    viewer, player = None, None
    try:
        viewer = start_viewer(ct, path.replace(".json", "-browser")) if watch else None
        base, options = variant(method)
        extravars = dict(options, network_lock=cfg.get("network_lock", NETWORK_LOCKS[0]),
                         packet_hold=cfg.get("packet_hold", True))
        ok, rep, error = migrate(name, dest, base, path, extravars=extravars,
                                 inventory=lv.get("inventory", LAB_INVENTORY))
        time.sleep(1.0)   # let the client see the service after the move
        if viewer:
            time.sleep(3.0)   # the player's 2 s buffer runs dry after a long enough gap: give a stall time to show
            viewer.mark("after")
            player = viewer.stop(path.replace(".json", "-browser.json"))
    finally:
        result = client.stop()
        if viewer:
            viewer.kill()
    verify = ""
    if name == "ramsim":
        try:
            verify = ramsim_ctl(ct["ip"], ct["port"], "verify").split()[0]
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            verify = "error: %s" % exc
    rep["_path"] = path
    return row_from(cfg, method, trial, ok, rep, error, result, verify, lv["rate_bits"], load1, player)


def tier2(args):
    use_venv()
    lv = lab_vars(args.inventory)
    stamp = utc_stamp()
    os.makedirs(REPORTS, exist_ok=True)
    outdir = os.path.join(REPORTS, "bench-tier2-%s" % stamp)
    os.makedirs(outdir, exist_ok=True)
    csv_path = os.path.join(REPORTS, "bench-tier2-%s.csv" % stamp)
    ct = lv["workloads"]["ramsim"]
    default_size = size_of(ct)
    video_init = video_init_of(lv)
    cfgs = run_configs(args, video_init)
    steps = plan(cfgs, args.methods, args.trials)
    print("bench tier2: %s; link %s; %d trial(s); methods %s; %d migrations" % (
        ", ".join(c["config"] for c in cfgs), lv["rate"], args.trials, ", ".join(args.methods), len(steps)),
        file=sys.stderr, flush=True)
    meta = {"stamp": stamp, "command": args.command, "started": iso_now(), "load_start": load_averages(),
            "machine": machine_info(), "link": lv["rate"], "rate_bits": lv["rate_bits"], "planned": len(steps),
            "raw": "%s, %s/" % (os.path.relpath(csv_path, REPO), os.path.relpath(outdir, REPO))}
    rows = []
    summary_paths = ()
    started = time.time()
    state = {"size": None, "resized": False, "init": None}     # init: how this run last started video

    def prepare(step):
        cfg = step["cfg"]
        if cfg["workload"] == "ramsim" and cfg["size_mib"] != state["size"]:
            state["resized"] = set_ramsim_size(cfg["size_mib"], args.inventory) or state["resized"]
            state["size"] = cfg["size_mib"]
        if cfg.get("init") and cfg["init"] != state["init"]:
            # the first one too: each init's cell starts from a fresh start of the container
            restart_video(lv["workloads"]["video"], cfg["init"], lv["edges"])
            state["init"] = cfg["init"]

    def failed_row(step, problem):
        return row_from(step["cfg"], step["method"], step["trial"], False, {}, problem, {}, "", lv["rate_bits"])

    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()

        def on_row(row):
            rows.append(row)
            writer.writerow(row)
            f.flush()
            print("  %-34s %-13s t%d: ok=%s downtime=%s s frozen=%s B gap=%s s verify=%s%s (%d/%d)%s" % (
                row["config"], row["method"], row["trial"], row["ok"], row["downtime_s"], row["bytes_frozen"],
                row["client_gap_s"], row["verify"] or "-",
                " player %s stall(s) %s ms" % (row["player_stalls"], row["player_stalled_ms"])
                if row["player_stalls"] != "" else "", len(rows), len(steps),
                " ERROR " + row["error"] if row["error"] else ""), file=sys.stderr, flush=True)

        try:
            if any(c["workload"] == "ramsim" for c in cfgs):
                try:
                    hotinfo = ramsim_ctl(ct["ip"], ct["port"], "hotinfo", timeout=30)
                except RuntimeError as e:
                    raise SystemExit("ramsim does not answer on %s:%s (%s): are the edges provisioned? `make demo` "
                                     "or playbooks/site.yml on inventories/lab does it" % (ct["ip"], ct["port"], e))
                if not hotinfo.startswith("ok") and any(c["working_set_pct"] != 100 for c in cfgs
                                                        if c["workload"] == "ramsim"):
                    raise SystemExit("ramsim has no working sets (`hotinfo`: %s): re-run playbooks/edges.yml to "
                                     "deploy the current arnab-workload" % hotinfo)
            run_matrix(steps, lambda step: run_one(step["cfg"], step["method"], step["trial"], lv, outdir, stamp,
                                                   watch=args.browser),
                       failed_row, prepare=prepare, on_row=on_row)
        finally:
            try:
                if state["resized"] and not args.keep_size:
                    set_ramsim_size(default_size, args.inventory)
                elif state["size"] is not None:   # the inventory's own hot set and dirty rate back
                    set_working_set(ct, workload_setting(ct, "--hot-pct", 100.0),
                                    workload_setting(ct, "--dirty-pct", 20.0))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print("  could not put ramsim back to its inventory settings: %s" % exc, file=sys.stderr)
            try:
                if state["init"] not in (None, video_init):
                    restart_video(lv["workloads"]["video"], video_init, lv["edges"])
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print("  could not start video as its inventory says (init %s): %s" % (video_init, exc),
                      file=sys.stderr)
            if rows:
                meta.update(ended=iso_now(), load_end=load_averages(), elapsed_s=time.time() - started,
                            done=len(rows))
                summary_paths = write_summary(rows, meta, args.results)
                print("summary: %s" % ", ".join(os.path.relpath(p, REPO) for p in summary_paths), file=sys.stderr)
    cells = aggregate(rows)
    print("\n".join(cell_tables(cells) + target_lines(cells, lv["rate_bits"])))
    png = os.path.join(REPORTS, "downtime.png")
    if any(c["ok"] for c in cells):
        plot_fig4(cells, png)
    print("csv: %s\nsummary: %s\nplot: %s\n%d migrations in %.0f s" % (
        os.path.relpath(csv_path, REPO), ", ".join(os.path.relpath(p, REPO) for p in summary_paths),
        os.path.relpath(png, REPO), len(rows), time.time() - started))
    return 0 if rows and all(is_ok(r) for r in rows) else 1


def csv_list(kind):
    return lambda text: [kind(x) for x in text.split(",") if x]


def on_off(text):
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError("on or off, not %r" % text)
    return text == "on"


def parse_args(argv=None):
    """The command line, with tier2's defaults resolved (args.working_sets, args.dirty, args.command, ...)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m arnab_lab.bench", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    t2 = sub.add_parser("tier2", help="Fig. 4: downtime per workload, working set and method (container migration)")
    t2.add_argument("--quick", action="store_true",
                    help="CI size: video + ramsim 128 MiB, hot set 20%%, 1 trial, every method (auto included); "
                         "summary under reports/")
    t2.add_argument("--working-set", dest="working_sets", type=csv_list(float), default=None,
                    help="ramsim hot set sizes in %% of its pages (default 20,30,50,70,100, the paper's matrix; "
                         "100 when only --dirty is given)")
    t2.add_argument("--dirty", type=csv_list(float), default=None,
                    help="ramsim dirty rates in %% of its WHOLE memory per period (1 s), every working set at each "
                         "(default: each working set's own %%)")
    t2.add_argument("--methods", type=csv_list(str), default=None,
                    help="comma-separated, from %s (default %s; pre-copy/dump: delta pre-copy with a freezing "
                         "dump per iteration instead of a live read; post-copy/tls, post-copy/tcp: post-copy's pages "
                         "over criu's page server in pinned TLS or in cleartext instead of inside SSH)"
                         % (",".join(ALL_METHODS), ",".join(DEFAULT_METHODS)))
    t2.add_argument("--trials", type=int, default=None, help="trials per cell (default 3; --quick 1)")
    t2.add_argument("--sizes", type=csv_list(int), default=None, help="ramsim sizes in MiB (default 1024)")
    t2.add_argument("--no-video", dest="video", action="store_false", help="leave the video container out")
    t2.add_argument("--network-locks", dest="network_locks", type=csv_list(str), default=[NETWORK_LOCKS[0]],
                    help="the source's network lock during the freeze, each its own cell: inbound (the lab "
                         "inventory's: the guard drops inbound traffic only), nftables or iptables (criu's own lock, both "
                         "directions); default inbound")
    t2.add_argument("--packet-hold", dest="packet_holds", type=csv_list(on_off),
                    default=[True], help="with the inbound lock: on (the default: what the client sends during the "
                                         "freeze is held for the restored copy), off (dropped), or on,off (each its "
                                         "own cell)")
    t2.add_argument("--video-init", dest="video_inits", type=csv_list(str), default=None,
                    help="how the video container runs, each its own cell: app (arnab-init, no systemd) or systemd; "
                         "the container is started afresh in each before its migrations (default: as it runs)")
    t2.add_argument("--browser", action="store_true",
                    help="also play the video container's live web video in headless Chromium in client1 during each "
                         "of its migrations: the player's stalls go in the CSV (player_*)")
    t2.add_argument("--keep-size", action="store_true", help="leave ramsim at the last size (default: restore)")
    t2.add_argument("--results", default=None,
                    help="where the summary goes (default docs/results; --quick: reports)")
    t2.add_argument("--dry-run", action="store_true", help="print the run order and exit (no lab needed)")
    t2.add_argument("--inventory", default=LAB_INVENTORY)
    f4 = sub.add_parser("fig4", help="draw Fig. 4 from a summary CSV (docs/results/tier2-*.csv)")
    f4.add_argument("summary")
    f4.add_argument("-o", "--out", default=None, help="PNG path (default: beside the CSV, .png)")
    args = parser.parse_args(argv)
    args.command = "PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench " + " ".join(shlex.quote(a) for a in argv)
    if args.bench != "tier2":
        return args
    if args.quick:
        args.trials = 1 if args.trials is None else args.trials
        args.sizes = args.sizes or [128]
        args.working_sets = args.working_sets or ([20.0] if not args.dirty else None)
        args.methods = args.methods or list(DEFAULT_METHODS)
        args.results = args.results or REPORTS
    args.trials = 3 if args.trials is None else args.trials
    args.sizes = args.sizes if args.sizes is not None else [1024]
    if args.working_sets is None:
        args.working_sets = [100.0] if args.dirty else list(DEFAULT_WORKING_SETS)
    args.methods = args.methods or list(DEFAULT_METHODS)
    args.results = args.results or RESULTS
    bad = [m for m in args.methods if m not in ALL_METHODS]
    if bad:
        parser.error("unknown method(s) %s (choose from %s)" % (", ".join(bad), ", ".join(ALL_METHODS)))
    if len(set(args.methods)) != len(args.methods):
        parser.error("a method is listed twice: %s" % ",".join(args.methods))
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if [p for p in args.working_sets if not 0 < p <= 100] or [d for d in args.dirty or [] if not 0 < d <= 100]:
        parser.error("--working-set and --dirty take percentages > 0 and <= 100")
    if not args.working_sets or (not args.video and not args.sizes):
        parser.error("nothing to run")
    if not args.network_locks or len(set(args.network_locks)) != len(args.network_locks) or \
            [lock for lock in args.network_locks if lock not in NETWORK_LOCKS]:
        parser.error("--network-locks takes each of %s once: %s" % (", ".join(NETWORK_LOCKS),
                                                                    ",".join(args.network_locks)))
    if args.video_inits is not None and (not args.video or not args.video_inits or
                                         len(set(args.video_inits)) != len(args.video_inits) or
                                         [i for i in args.video_inits if i not in VIDEO_INITS]):
        parser.error("--video-init takes each of %s once, with the video container: %s" % (
            ", ".join(sorted(VIDEO_INITS)), ",".join(args.video_inits)))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.bench == "fig4":
        out = args.out or os.path.splitext(args.summary)[0] + ".png"
        print(plot_fig4(read_cells(args.summary), out))
        return 0
    if args.dry_run:
        steps = plan(run_configs(args, video_init_of(lab_vars(args.inventory))), args.methods, args.trials)
        for i, step in enumerate(steps, 1):
            print("%3d  trial %d  %-34s %s" % (i, step["trial"], step["cfg"]["config"], step["method"]))
        print("%d migrations; summary to %s" % (len(steps), os.path.relpath(args.results, REPO)))
        return 0
    return tier2(args)


if __name__ == "__main__":
    sys.exit(main())
