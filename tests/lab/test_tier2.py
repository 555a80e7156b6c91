"""Tier 2 on the emulated lab: every migration method with both workloads, and two fault drills.

Each migration runs through the runner (playbooks/migrate_container.yml) to the other edge while a client in
client1 holds ONE TCP connection to the container (the video stream probe, which checks every byte, or a ramsim
pinger), and asserts: the playbook's report says ok, the container runs on the destination and is gone from the
source, ramsim's memory is intact (`verify`), and the client's connection neither reset nor lost a byte.

Fault drills (ramsim, stop-and-copy, injected when the engine's progress log reaches the step):
- the backhaul goes down during the final transfer (for CUT_S seconds, longer than the engine's SSH keepalive
  window): the migration fails, the container runs on the source again with its memory and its client's
  connection, and the destination is clean;
- the restore fails on the destination (the workload's binary is hidden in the destination's copy of the rootfs
  once the frozen filesystem sync is done, so criu cannot map it): same checks.

ramsim runs at CI_RAMSIM_MIB (default 128 MiB, env ARNAB_CI_RAMSIM_MIB) during the module: a systemd drop-in in
the container overrides the workload's --size-mib and its service restarts (bench.set_ramsim_size); the drop-in is
removed and the inventory's 1 GiB restored afterwards (the role's unit and the inventory are never changed). Needs root and a lab that
`make lab-up` can build; the fixture provisions it with site.yml. Runtime on this 2-core machine: see the report.
"""
import json
import os
import subprocess
import threading
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import precopy
from arnab_lab import bench
from arnab_lab.runner import run_playbook
from playback import VIDEO_FPS, assert_picture_went_on

CI_RAMSIM_MIB = int(os.environ.get("ARNAB_CI_RAMSIM_MIB", "128"))
METHODS = ("stop-and-copy", "pre-copy", "post-copy", "auto")
WORKLOADS = ("video", "ramsim")
# How long the backhaul stays down: longer than the engine's keepalive window (precopy.SSH_ALIVE_*: 8 s), shorter
# than its destination clean-up retries (precopy.DEST_CLEAN_RETRY_S: 30 s).
CUT_S = 12
HIDDEN_SUFFIX = ".t2-hidden"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


@pytest.fixture(scope="module")
def lab():
    """The main lab, up and provisioned, ramsim scaled down for CI; ramsim's inventory size put back after."""
    bench.use_venv()
    run_playbook("lab.yml", {"lab_state": "present"}, quiet=True)
    run_playbook("site.yml", quiet=True)
    lv = bench.lab_vars()
    resized = bench.set_ramsim_size(CI_RAMSIM_MIB)
    try:
        yield lv
    finally:
        if resized:
            bench.set_ramsim_size(bench.size_of(lv["workloads"]["ramsim"]))


def placement(lv, name):
    """(source, destination): the edge that runs the container and the other one."""
    where = bench.running_on(name, lv["edges"])
    assert len(where) == 1, "%s should run on exactly one edge: %s" % (name, where)
    return where[0], [edge for edge in lv["edges"] if edge != where[0]][0]


def verify_ramsim(lv):
    ct = lv["workloads"]["ramsim"]
    return bench.ramsim_ctl(ct["ip"], ct["port"], "verify")


def assert_client_intact(workload, result):
    if workload == "video":
        assert result["ok"], "stream broken: reset=%s problem=%s" % (result.get("reset"), result.get("problem"))
        assert result["packets"] > 0 and result["reset"] is None and result["problem"] is None
    else:
        assert result["ok"], "ramsim connection broken: %s" % result
        assert result["final_ping"] and result["order_ok"] and result["pings"] > 2


def dest_leftovers(dest, name):
    """What a migration of `name` may have left on the destination edge."""
    paths = ["/var/lib/lxc/%s" % name, "/var/lib/lxc/.arnab-migrate/%s" % name]
    proc = bench.labctl_exec(dest, ["sh", "-c", "for p in %s; do test -e $p && echo $p; done; true" % " ".join(paths)])
    return proc.stdout.split()


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("method", METHODS)
def test_migration_moves_the_service_with_its_memory_and_client_connection(lab, workload, method, tmp_path):
    ct = lab["workloads"][workload]
    source, dest = placement(lab, workload)
    client = bench.ClientSession(workload, ct["ip"], ct["port"], tag="test")
    try:
        ok, rep, error = bench.migrate(workload, dest, method, str(tmp_path / "report.json"))
        time.sleep(1.0)        # the client keeps using the same connection after the move
    finally:
        result = client.stop()
    assert ok, error or rep.get("error")
    assert rep["ok"] is True and rep["downtime_s"] > 0
    if method != "auto":
        assert rep["method"] == method
    states = bench.container_states(workload, lab["edges"])
    assert states[dest] == "RUNNING", states
    assert states[source] == "", "the source still holds %s: %s" % (workload, states)
    assert_client_intact(workload, result)
    if workload == "ramsim":
        assert verify_ramsim(lab).startswith("ok "), "memory not intact after %s" % method
    # stop-and-copy and pre-copy of a container of 128 MiB or more: the copy ran before its memory was read, and
    # the migration committed once the destination's daemon had put every page in
    lazy = (rep["method"] in ("stop-and-copy", "pre-copy") and
            rep["facts"]["memory_bytes"] >= precopy.LAZY_RESTORE_MIN_BYTES)
    assert rep["lazy_restore"]["lazy"] is lazy, rep["lazy_restore"]
    if lazy:
        assert rep["lazy_restore"]["lazy_pages_rc"] == 0 and rep["lazy_restore"]["fill_s"] >= 0
        assert rep["frozen"]["lazy_daemon_s"] > 0
    if rep.get("precopy_mode") == "delta":     # (this host's kernel): its iterations read memory live, froze nothing
        assert [(it["read"], it["freeze_s"]) for it in rep["iterations"]] == [("live", 0.0)] * len(rep["iterations"])
        assert rep["frozen_total_s"] == rep["downtime_s"]
    print("%s %s %s->%s: downtime %.3f s, client gap %.3f s" % (workload, method, source, dest, rep["downtime_s"],
                                                                result.get("gap_s") or 0.0))


def test_post_copy_over_pinned_tls_moves_the_service_and_leaves_no_key(lab, tmp_path):
    """Post-copy's pages over criu's own page server in TLS, each edge trusting only the certificate the other made
    for this migration (exchanged over the migration's SSH session): the service moves with its memory and its
    client's connection, the pages crossed the backhaul, and neither edge keeps the migration's keys."""
    ct = lab["workloads"]["ramsim"]
    source, dest = placement(lab, "ramsim")
    client = bench.ClientSession("ramsim", ct["ip"], ct["port"], tag="test")
    try:
        ok, rep, error = bench.migrate("ramsim", dest, "post-copy", str(tmp_path / "report.json"),
                                       {"postcopy_channel": "tls"})
        time.sleep(1.0)
    finally:
        result = client.stop()
    assert ok, error or rep.get("error")
    assert rep["method"] == "post-copy" and rep["facts"]["postcopy_channel"] == "tls"
    assert rep["postcopy"]["link_bytes_while_serving"] > CI_RAMSIM_MIB * 2 ** 20 * 0.8    # the memory went over it
    assert_client_intact("ramsim", result)
    assert verify_ramsim(lab).startswith("ok "), "memory not intact after post-copy over TLS"
    for edge in (source, dest):
        left = bench.labctl_exec(edge, ["find", "/var/lib/lxc/.arnab-migrate", "-name", "tls"]).stdout.split()
        assert left == [], "%s keeps a migration's TLS files: %s" % (edge, left)
    print("ramsim post-copy over tls %s->%s: downtime %.3f s, drain %.2f s" % (
        source, dest, rep["downtime_s"], rep["postcopy"]["source_needed_after_running_s"]))


def test_a_viewer_keeps_watching_the_live_video_across_the_migration(lab, tmp_path):
    """Headless Chromium in client1 plays the video container's live stream (nginx, HLS) while the container moves:
    the picture's clock went on after the move, frames were decoded after it, and any stall was bounded."""
    ct = lab["workloads"]["video"]
    assert "hls_port" in ct, "the lab's video workload serves no web video"
    source, dest = placement(lab, "video")
    viewer = bench.start_viewer(ct, str(tmp_path / "shots"))
    try:
        ok, rep, error = bench.migrate("video", dest, "stop-and-copy", str(tmp_path / "report.json"))
        time.sleep(5.0)     # longer than the player's 2 s buffer: a broken stream would show as an open stall
        viewer.mark("after")
        time.sleep(2.0)
        player = viewer.stop(str(tmp_path / "events.json"))
    finally:
        viewer.kill()
    assert ok, error or rep.get("error")
    assert bench.container_states("video", lab["edges"])[dest] == "RUNNING"
    before, after = [m for m in player["marks"] if m["label"] in ("before", "after")]
    dummy, elapsed = assert_picture_went_on(before, after)
    assert player["frames_decoded_after"] > VIDEO_FPS, player       # still decoding after the move (2 s watched)
    assert not [e for e in player["errors"] if e.get("fatal")], player["errors"]
    assert not any(s.get("open") for s in player["stalls"]), player["stalls"]
    assert player["stalled_ms"] <= rep["downtime_s"] * 1000 + 3000, (player["stalls"], rep["downtime_s"])
    for path in player["screenshots"]:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print("video stop-and-copy %s->%s: downtime %.3f s; player %d stall(s), %d ms; frames %d -> %d in %.1f s"
          % (source, dest, rep["downtime_s"], player["stall_count"], player["stalled_ms"], before["picture_frame"],
             after["picture_frame"], elapsed))


# The PIDs of the container's tasks named $1 (from inside it: /proc is the container's own).
PIDS_OF = 'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"; done; true'


def test_video_runs_without_systemd_and_its_services_come_back(lab):
    """The lab's video is an application container (edge_workloads `init: app`): arnab-init is its PID 1, neither
    systemd, journald nor sshd runs in it, and a service that ends starts again, as systemd's Restart=always did."""
    assert lab["workloads"]["video"].get("init") == "app"
    edge = placement(lab, "video")[0]

    def inside(script, *args):
        return bench.labctl_exec(edge, ["lxc-attach", "-n", "video", "--", "sh", "-c", script, "sh"] + list(args),
                                 timeout=30, check=True).stdout

    assert inside("cat /proc/1/cmdline").split("\0")[:2] == ["/bin/sh", "/usr/local/sbin/arnab-init"]
    comms = inside("cat /proc/[0-9]*/comm 2>/dev/null || :").split()    # a task may end between glob and cat
    assert not {"systemd", "systemd-journal", "sshd"} & set(comms), comms
    assert {"arnab-workload", "nginx", "advancer"} <= set(comms), comms
    assert inside("grep ' /run ' /proc/mounts").split()[2] == "tmpfs"
    old = inside(PIDS_OF, "arnab-workload").split()
    assert len(old) == 1
    inside("kill " + old[0])
    deadline, new = time.time() + 15, []
    while time.time() < deadline:
        new = inside(PIDS_OF, "arnab-workload").split()
        if new and new != old:
            break
        time.sleep(0.5)
    assert new and new != old, "the workload did not start again: %s" % new
    ct = lab["workloads"]["video"]
    proc = bench.labctl_exec(bench.CLIENT, ["python3", "-c", bench.WAIT_PORTS, ct["ip"], "30", str(ct["port"])],
                             timeout=60)
    assert proc.returncode == 0, proc.stderr


class Injector(object):
    """Runs COMMAND in a shell already open inside NODE as soon as the migration's progress log on WATCH_NODE
    shows STEP (an open shell: no process start-up between the step and the fault)."""

    def __init__(self, watch_node, container, step, node, command):
        self.step, self.command, self.fired = step, command, None
        self.shell = subprocess.Popen([bench.LABCTL, "exec", node, "--", "sh"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.tail = subprocess.Popen([bench.LABCTL, "exec", watch_node, "--", "tail", "-n", "0", "-F",
                                      "/tmp/arnab-migrate-%s.log" % container], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        time.sleep(1.5)         # tail is following the log before anything is migrated

    def watch(self):
        for line in self.tail.stdout:
            if self.step in line:
                self.shell.stdin.write(self.command + "\n")
                self.shell.stdin.flush()
                self.fired = line.strip()
                return

    def close(self):
        for proc in (self.tail, self.shell):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=CUT_S + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_fault(lab, tmp_path, step, inject_on, command):
    """Migrate ramsim by stop-and-copy with a fault injected at `step`; return what the checks need."""
    ct = lab["workloads"]["ramsim"]
    source, dest = placement(lab, "ramsim")
    node = source if inject_on == "source" else dest
    client = bench.ClientSession("ramsim", ct["ip"], ct["port"], tag="fault")
    injector = Injector(source, "ramsim", step, node, command)
    try:
        ok, rep, error = bench.migrate("ramsim", dest, "stop-and-copy", str(tmp_path / "report.json"))
        time.sleep(1.0)
    finally:
        injector.close()
        result = client.stop()
    return {"source": source, "dest": dest, "fired": injector.fired, "ok": ok, "rep": rep, "error": error or "",
            "client": result, "leftovers": dest_leftovers(dest, "ramsim")}


def assert_rolled_back(lab, out):
    source, dest, fired, ok, rep, error = (out[k] for k in ("source", "dest", "fired", "ok", "rep", "error"))
    assert fired, "the fault was never injected (the progress log did not show the step)"
    assert not ok, "the migration succeeded despite the fault: %s" % rep.get("downtime_s")
    assert "failed" in error and "rolled back: the container runs on the source again" in error, error
    assert rep.get("rolled_back") is True, rep.get("rollback")
    states = bench.container_states("ramsim", lab["edges"])
    assert states[source] == "RUNNING" and states[dest] == "", states
    assert out["leftovers"] == [], "left on %s: %s" % (dest, out["leftovers"])
    kept = bench.labctl_exec(source, ["find", "/var/lib/lxc/.arnab-migrate/ramsim", "-type", "f", "!", "-name",
                                      "*.log", "!", "-name", "lock"]).stdout.split()
    assert kept == [], "the source kept images after the rollback: %s" % kept
    assert_client_intact("ramsim", out["client"])
    assert verify_ramsim(lab).startswith("ok "), "memory not intact after the rollback"


def test_backhaul_cut_during_the_final_transfer_rolls_back(lab, tmp_path):
    source = placement(lab, "ramsim")[0]
    try:
        out = run_fault(lab, tmp_path, "transfer final images", "source",
                        "ip link set bh0 down; sleep %d; ip link set bh0 up" % CUT_S)
    finally:
        bench.labctl_exec(source, ["ip", "link", "set", "bh0", "up"], check=True)
    assert "tbf" in bench.labctl_exec(source, ["tc", "qdisc", "show", "dev", "bh0"]).stdout   # shaping kept
    assert_rolled_back(lab, out)
    error = out["error"]
    assert any(word in error for word in ("page delta", "transfer", "broke", "closed")), error


def test_restore_failing_on_the_destination_rolls_back(lab, tmp_path):
    dest = placement(lab, "ramsim")[1]
    binary = "/var/lib/lxc/ramsim/rootfs/usr/local/bin/arnab-workload"
    try:
        # once frozen, the engine sends only files changed since the pre-freeze sync: the hidden binary stays
        # hidden in the destination's copy and criu cannot map it at restore
        out = run_fault(lab, tmp_path, "freeze: final dump", "dest",
                        "mv %s %s%s" % (binary, binary, HIDDEN_SUFFIX))
    finally:
        bench.labctl_exec(dest, ["sh", "-c", "if [ -e /var/lib/lxc/ramsim/.arnab-migrating ]; then "
                                 "lxc-stop -k -n ramsim >/dev/null 2>&1; rm -rf /var/lib/lxc/ramsim; fi; "
                                 "rm -rf /var/lib/lxc/.arnab-migrate/ramsim"])
    assert_rolled_back(lab, out)
    assert "restore on" in out["error"], out["error"]


HOLD_LOCK = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
            "fcntl.flock(fd, fcntl.LOCK_EX); time.sleep(600)"


def test_edges_play_restarts_workloads_over_a_dead_migrations_leftovers_not_a_live_ones(lab):
    """What a lab rebuilt over its leftovers meets (CI after a session): the containers stopped, and the work dir
    of a migration that died. edges.yml starts such a container again; one whose migration still holds its lock
    (the engine's <work>/lock) is left alone."""
    ramsim_edge, video_edge = placement(lab, "ramsim")[0], placement(lab, "video")[0]
    work = "/var/lib/lxc/.arnab-migrate/%s"
    bench.labctl_exec(ramsim_edge, ["sh", "-c", "mkdir -p {w}/final && : > {w}/lock && : > {w}/final/pages-1.img && "
                                    "lxc-stop -k -n ramsim".format(w=work % "ramsim")], check=True)
    bench.labctl_exec(video_edge, ["sh", "-c", "mkdir -p %s && lxc-stop -k -n video" % (work % "video")], check=True)
    holder = bench.labctl_exec(video_edge, ["sh", "-c", "python3 -c '%s' %s/lock >/dev/null 2>&1 & echo $!"
                                            % (HOLD_LOCK, work % "video")], check=True)
    holder_pid = int(holder.stdout.split()[-1])
    try:
        run_playbook("edges.yml", quiet=True)
        assert bench.running_on("ramsim", lab["edges"]) == [ramsim_edge]
        ct = lab["workloads"]["ramsim"]
        assert bench.status_field(bench.wait_ramsim(ct["ip"], ct["port"]), "size_mib") == str(CI_RAMSIM_MIB)
        assert bench.running_on("video", lab["edges"]) == [], "the play started a container being migrated"
    finally:
        os.kill(holder_pid, 9)
        bench.labctl_exec(video_edge, ["sh", "-c", "rm -rf %s; lxc-start -n video" % (work % "video")])
        bench.labctl_exec(ramsim_edge, ["rm", "-rf", work % "ramsim"])
    run_playbook("edges.yml", quiet=True)       # waits until video answers again
    assert bench.running_on("video", lab["edges"]) == [video_edge]


def edge_files(lv):
    """What migrations leave on the edges: the lxcpath's entries and the work dirs."""
    cmd = "ls -A /var/lib/lxc; ls -AR /var/lib/lxc/.arnab-migrate 2>/dev/null; true"
    return {e: bench.labctl_exec(e, ["sh", "-c", cmd]).stdout for e in lv["edges"]}


def migrate_task(results):
    for tasks in results.values():
        for name, res in tasks.items():
            if name.startswith("Migrate the container from its edge"):
                return res
    return None


def test_check_mode_touches_no_edge_and_a_second_migration_changes_nothing(lab, tmp_path):
    source, dest = placement(lab, "video")
    args = {"container": "video", "dest": dest, "method": "stop-and-copy", "report": str(tmp_path / "r.json")}
    before = edge_files(lab)
    res = migrate_task(run_playbook("migrate_container.yml", args, quiet=True, check=True))
    assert res["changed"] is True and res["report"]["check_mode"] is True and res["method"] == "stop-and-copy"
    assert edge_files(lab) == before, "check mode changed an edge"
    assert bench.running_on("video", lab["edges"]) == [source]

    ok, rep, error = bench.migrate("video", dest, "stop-and-copy", str(tmp_path / "first.json"))
    assert ok, error
    results = run_playbook("migrate_container.yml", dict(args, report=str(tmp_path / "second.json")), quiet=True)
    assert not any(r.get("changed") for tasks in results.values() for r in tasks.values()), results
    with open(str(tmp_path / "second.json")) as f:
        second = json.load(f)
    assert second["ok"] is True and second["already_on_dest"] is True
    assert bench.running_on("video", lab["edges"]) == [dest]
