"""The source's guard (criu's action script): the decisions it waits for, and what it decides alone when the
engine is gone. The destination is a fake runner; the engine's lock is a real flock held by a real child process
(a flock held by this test process itself would be taken again by the guard: locks are per open file)."""
import fcntl
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import migration_guard as mg

HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
       "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"


class Dest(object):
    """The destination as the guard's ssh commands see it: answers in order, the last one repeated."""

    def __init__(self, statuses, clean_rc=(0,)):
        self.statuses = list(statuses)
        self.clean_rc = list(clean_rc)
        self.calls = []

    def run(self, argv, timeout=None):
        kind = argv[0]
        self.calls.append(kind)
        if kind == "status":
            answer = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            if answer is None:
                return 255, "", "ssh: connect to host edge2: No route to host"
            return 0, "STATE %s\nRESTORE %s\n" % answer, ""
        rc = self.clean_rc.pop(0) if len(self.clean_rc) > 1 else self.clean_rc[0]
        return rc, "cleaned\n" if rc == 0 else "", "" if rc == 0 else "unreachable"


@pytest.fixture
def work(tmp_path):
    cfg = {"lock": str(tmp_path / "lock"), "status_argv": ["status"], "clean_argv": ["clean"],
           "source_cleanup_argvs": [["true"]]}
    (tmp_path / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    return tmp_path


@pytest.fixture
def engine(work):
    """A live engine: a process holding the work dir's lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(work / "lock")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def guard(work, dest):
    g = mg.Guard(str(work), sleep=lambda s: None, run=dest.run)
    g.destroy_source_later = lambda: g.log("destroy source later")
    return g


def test_post_dump_waits_for_the_engines_commit(work, engine):
    dest = Dest([("RUNNING", "0")])
    g = guard(work, dest)
    polls = []

    def sleep(s):
        polls.append(s)
        if len(polls) == 3:
            mg.write_atomic(str(work / mg.DECISION_FILE), mg.COMMIT)
    g.sleep = sleep
    assert g.post_dump() == 0
    assert (work / mg.DUMPED_FILE).exists() and len(polls) == 3 and dest.calls == []


def test_post_dump_abort_makes_criu_resume_the_source(work, engine):
    mg.write_atomic(str(work / mg.DECISION_FILE), mg.ABORT)
    assert guard(work, Dest([("RUNNING", "0")])).post_dump() == 1


def test_engine_dead_and_destination_running_commits(work):
    dest = Dest([None, None, ("STARTING", "pending"), ("RUNNING", "0")])
    assert guard(work, dest).post_dump() == 0
    assert dest.calls == ["status"] * 4 and "clean" not in dest.calls
    resolved = json.loads((work / mg.RESOLVED_FILE).read_text())
    assert resolved["decision"] == mg.COMMIT and resolved["by"] == "guard"
    assert (work / mg.DECISION_FILE).read_text() == mg.COMMIT


@pytest.mark.parametrize("state,restore", [("ABSENT", "none"), ("STOPPED", "1"), ("ABSENT", "died")])
def test_engine_dead_and_no_copy_on_the_destination_cleans_it_then_aborts(work, state, restore):
    dest = Dest([None, (state, restore)], clean_rc=(255, 0))
    assert guard(work, dest).post_dump() == 1
    assert dest.calls == ["status", "status", "clean", "clean"]
    assert (work / mg.DECISION_FILE).read_text() == mg.ABORT


class LazyDest(Dest):
    """... whose copy was restored lazily from its own images: its lazy-pages daemon answers in order."""

    def __init__(self, statuses, pages, clean_rc=(0,)):
        super(LazyDest, self).__init__(statuses, clean_rc)
        self.pages = list(pages)

    def run(self, argv, timeout=None):
        if argv[0] == "lazy-status":
            self.calls.append("lazy-status")
            return 0, self.pages.pop(0) + "\n", ""
        return super(LazyDest, self).run(argv, timeout)


@pytest.fixture
def lazy_work(work):
    cfg = json.loads((work / mg.GUARD_CONFIG).read_text())
    cfg.update(lazy_local=True, lazy_status_argv=["lazy-status"])
    (work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    return work


def test_engine_dead_during_a_lazy_restore_commits_once_the_memory_is_in(lazy_work):
    dest = LazyDest([("RUNNING", "0")], ["PENDING", "PENDING", "0"])
    assert guard(lazy_work, dest).post_dump() == 0
    assert dest.calls == ["status"] + ["lazy-status"] * 3
    assert (lazy_work / mg.DECISION_FILE).read_text() == mg.COMMIT


@pytest.mark.parametrize("pages", ["1", "LOST"])
def test_engine_dead_and_a_lazy_restore_that_did_not_fill_cleans_the_destination_then_aborts(lazy_work, pages):
    dest = LazyDest([("RUNNING", "0")], [pages])
    assert guard(lazy_work, dest).post_dump() == 1           # criu resumes the source (its own abort path)
    assert dest.calls == ["status", "lazy-status", "clean"]
    resolved = json.loads((lazy_work / mg.RESOLVED_FILE).read_text())
    assert resolved["decision"] == mg.ABORT and "without all its memory (lazy-pages %s)" % pages in resolved["why"]


def test_an_unreachable_destination_keeps_the_source_frozen(work):
    dest = Dest([None])
    g = guard(work, dest)
    asked = []

    def sleep(s):
        asked.append(s)
        if len(asked) > 50:
            raise KeyboardInterrupt     # still frozen after 50 questions: enough
    g.sleep = sleep
    with pytest.raises(KeyboardInterrupt):
        g.post_dump()
    assert not (work / mg.DECISION_FILE).exists() and set(dest.calls) == {"status"}


def test_guard_takes_the_engines_lock_over(work):
    g = guard(work, Dest([("RUNNING", "0")]))
    assert g.post_dump() == 0
    fd = os.open(str(work / "lock"), os.O_RDWR)
    with pytest.raises(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # the guard holds it: no one restarts the container
    os.close(fd)


def test_network_unlock_after_an_abort_returns_at_once(work, engine):
    mg.write_atomic(str(work / mg.DECISION_FILE), mg.ABORT)
    dest = Dest([("RUNNING", "0")])
    assert guard(work, dest).network_unlock() == 0 and dest.calls == []


def test_network_unlock_without_an_abort_waits_for_the_engine(work, engine):
    mg.write_atomic(str(work / mg.DECISION_FILE), mg.COMMIT)     # post-copy: a drain that failed after the commit
    g = guard(work, Dest([("RUNNING", "0")]))
    done = []
    t = threading.Thread(target=lambda: done.append(g.network_unlock()))
    g.sleep = lambda s: __import__("time").sleep(0.001)
    t.start()
    t.join(0.3)
    assert t.is_alive() and (work / mg.UNLOCKING_FILE).exists()
    mg.write_atomic(str(work / mg.DECISION_FILE), mg.ABORT)
    t.join(5)
    assert done == [0]


def test_network_unlock_with_the_engine_dead_cleans_the_destination_first(work):
    dest = Dest([("RUNNING", "0")], clean_rc=(255, 255, 0))
    assert guard(work, dest).network_unlock() == 0
    assert dest.calls == ["clean", "clean", "clean"]


def _freezer(work, state):
    (work / "freezer.state").write_text(state)
    return {"file": str(work / "freezer.state"), "frozen": "FROZEN", "thawed": "THAWED", "events": None}


def test_thaw_writes_the_thawed_state_and_says_whether_it_was_frozen(work):
    fz = _freezer(work, "FROZEN\n")
    assert mg.thaw(fz) is True and (work / "freezer.state").read_text() == "THAWED"
    assert mg.thaw(fz) is False
    assert mg.thaw(None) is False and mg.thaw(dict(fz, file=str(work / "gone" / "freezer.state"))) is False


@pytest.mark.parametrize("hook", ["post-dump", "network-unlock"])
def test_engine_dead_abort_thaws_the_cgroup_once_criu_has_exited(work, monkeypatch, hook):
    """The dump found the cgroup frozen (the engine's pre-dump hook), so criu resumes the tasks into a frozen
    cgroup and leaves: the guard that aborted alone thaws it then, not before."""
    cfg = json.loads((work / mg.GUARD_CONFIG).read_text())
    cfg["freezer"] = _freezer(work, "FROZEN")
    (work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    criu = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    monkeypatch.setattr(mg, "criu_pid", lambda: criu.pid)
    try:
        g = guard(work, Dest([("ABSENT", "none")]))
        assert (g.post_dump() if hook == "post-dump" else g.network_unlock()) == (1 if hook == "post-dump" else 0)
        assert (work / "freezer.state").read_text() == "FROZEN"       # criu still runs: not yet
        criu.wait()
        deadline = time.time() + 10
        while (work / "freezer.state").read_text() != "THAWED" and time.time() < deadline:
            time.sleep(0.05)
        assert (work / "freezer.state").read_text() == "THAWED"
    finally:
        criu.kill()
        criu.wait()


def test_the_guards_detached_helpers_act_around_criu_s_exit(work, monkeypatch, tmp_path):
    """Engine dead: the committed source is destroyed once criu has exited, and an aborted lazy dump's page server
    gets a client that leaves until criu has exited. Real detached processes, a stand-in criu."""
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(10)
    destroyed = tmp_path / "destroyed"
    cfg = json.loads((work / mg.GUARD_CONFIG).read_text())
    cfg.update(source_cleanup_argvs=[["touch", str(destroyed)]], lazy_page_server=list(server.getsockname()))
    (work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    (work / "lock").write_text("")
    criu = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    monkeypatch.setattr(mg, "criu_pid", lambda: criu.pid)
    try:
        g = mg.Guard(str(work))
        assert g.engine_dead()
        g.destroy_source_later()
        g.poke_later()
        server.accept()[0].close()                    # poked while criu lives
        assert not destroyed.exists()                 # criu still runs: not yet
        criu.wait()
        deadline = time.time() + 10
        while not destroyed.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert destroyed.exists()
    finally:
        criu.kill()
        criu.wait()
        server.close()


def test_an_abort_decided_by_the_live_engine_leaves_the_thaw_to_it(work, engine, monkeypatch):
    cfg = json.loads((work / mg.GUARD_CONFIG).read_text())
    cfg["freezer"] = _freezer(work, "FROZEN")
    (work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    mg.write_atomic(str(work / mg.DECISION_FILE), mg.ABORT)
    g = guard(work, Dest([("RUNNING", "0")]))
    spawned = []
    monkeypatch.setattr(mg.subprocess, "Popen", lambda *a, **k: spawned.append(a))
    assert g.post_dump() == 1
    assert spawned == [] and (work / "freezer.state").read_text() == "FROZEN"


def test_other_criu_hooks_pass(work, monkeypatch):
    monkeypatch.setenv("CRTOOLS_SCRIPT_ACTION", "pre-dump")
    assert mg.main([str(work / mg.GUARD_FILE)]) == 0


def test_parse_status():
    assert mg.parse_status("STATE RUNNING\nRESTORE 0\n") == ("RUNNING", "0")
    assert mg.parse_status("") == ("ABSENT", "none")
    assert mg.parse_status("STATE\nnoise here\nRESTORE pending") == ("ABSENT", "pending")


# ---------------------------------------------------------------------------------------------------------------
# post-copy's drain watcher: the engine died while the pages drained
# ---------------------------------------------------------------------------------------------------------------
class Drain(object):
    """The destination's lazy-pages outcome and the source's commands, as the watcher's runner sees them."""

    def __init__(self, lazy):
        self.lazy = list(lazy)
        self.calls = []

    def run(self, argv, timeout=None):
        self.calls.append(argv)
        if argv[0] == "lazy-status":
            answer = self.lazy.pop(0) if len(self.lazy) > 1 else self.lazy[0]
            return (255, "", "unreachable") if answer is None else (0, answer + "\n", "")
        if argv[0] == "clean":
            return 0, "cleaned\n", ""
        if argv[:1] == ["nsenter"] and argv[-2:] == ["list", "tables"]:
            return 0, "table inet CRIU-42\ntable inet filter\n", ""
        return 0, "", ""


@pytest.fixture
def drain_work(work):
    cfg = json.loads((work / mg.GUARD_CONFIG).read_text())
    cfg.update(lazy_status_argv=["lazy-status"], container="ramsim", lxcpath="/var/lib/lxc", init_pid=os.getpid(),
               netfix_argvs=[["netfix"]], source_cleanup_argvs=[["lxc-stop"], ["lxc-destroy"], ["commit"]],
               freezer=_freezer(work, "FROZEN"))
    (work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    (work / "lock").write_text("")                    # the engine's lock, held by nobody: it died
    return work


def _watcher(work, drain, clock=None):
    g = mg.Guard(str(work), sleep=lambda s: None, run=drain.run, **({"clock": clock} if clock else {}))
    return g


def test_drain_watcher_with_the_engine_dead_and_every_page_arrived_commits(drain_work):
    drain = Drain([None, "PENDING", "0"])           # unreachable, then still draining, then done
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _watcher(drain_work, drain).watch_drain(gone.pid) == 0
    kinds = [a[0] for a in drain.calls]
    assert kinds == ["lazy-status"] * 3 + ["lxc-stop", "lxc-destroy", "commit"]
    assert "clean" not in kinds


def test_drain_watcher_with_a_failed_drain_cleans_the_destination_then_resumes_the_source(drain_work, monkeypatch):
    drain = Drain(["1"])
    resumed = []
    monkeypatch.setattr(mg.os, "kill", lambda pid, sig: resumed.append((pid, sig)))
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _watcher(drain_work, drain).watch_drain(gone.pid) == 0
    kinds = [a[0] for a in drain.calls]
    assert kinds.index("clean") < kinds.index("lxc-unfreeze") < kinds.index("netfix")
    assert ["nsenter", "-t", str(os.getpid()), "-n", "nft", "delete", "table", "inet", "CRIU-42"] in drain.calls
    assert not [a for a in drain.calls if "filter" in a]        # only criu's own lock table goes
    assert (os.getpid(), mg.signal.SIGCONT) in resumed
    assert (drain_work / "freezer.state").read_text() == "THAWED"     # lxc-unfreeze leaves what LXC did not freeze
    assert "lxc-destroy" not in kinds
    assert json.loads((drain_work / mg.RESOLVED_FILE).read_text())["decision"] == mg.ABORT


def test_drain_watcher_takes_a_daemon_pending_for_too_long_as_lost(drain_work, monkeypatch):
    now = [0.0]

    def clock():
        now[0] += 10.0
        return now[0]
    monkeypatch.setattr(mg.os, "kill", lambda pid, sig: None)
    drain = Drain(["PENDING"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _watcher(drain_work, drain, clock=clock).watch_drain(gone.pid) == 0
    assert "clean" in [a[0] for a in drain.calls]


def test_drain_watcher_idles_while_the_engine_lives_and_leaves_when_it_finished(drain_work, engine):
    drain = Drain(["0"])
    lock = drain_work / "lock"
    g = _watcher(drain_work, drain)
    g.sleep = lambda s: lock.unlink()                 # the engine finishes: it removes its work dir
    assert g.watch_drain(1) == 0
    assert drain.calls == []                          # it never asked or touched anything


def test_drain_watcher_waits_for_criu_before_deciding(drain_work):
    drain = Drain(["0"])
    criu = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        g = mg.Guard(str(drain_work), run=drain.run)
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("rc", g.watch_drain(criu.pid)))
        t.start()
        t.join(0.5)
        assert drain.calls == []                      # criu still serves pages: nothing yet
        criu.wait()
        t.join(10)
        assert box.get("rc") == 0 and drain.calls[-1] == ["commit"]
    finally:
        criu.kill()
        criu.wait()


def test_watch_drain_entry_point(drain_work):
    gone = subprocess.Popen(["true"])
    gone.wait()
    g = str(drain_work / "guard.py")
    with open(mg.__file__) as f, open(g, "w") as out:
        out.write(f.read())
    cfg = json.loads((drain_work / mg.GUARD_CONFIG).read_text())
    cfg.update(lazy_status_argv=["echo", "0"], source_cleanup_argvs=[["touch", str(drain_work / "destroyed")]])
    (drain_work / mg.GUARD_CONFIG).write_text(json.dumps(cfg))
    rc = subprocess.call([sys.executable, "-I", "-S", g, "--watch-drain", str(gone.pid)], timeout=60)
    assert rc == 0 and (drain_work / "destroyed").exists()
