# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The source's guard: what keeps exactly one running copy when the engine cannot.

P.Haul's model: the final ``criu dump`` stays alive, with the tasks frozen and the network locked, until the
migration has decided. The engine gives the dump an *action script* (criu's ``--action-script``, through the
CRIU config file LXC's criu reads), and this file is that script, written into the migration's private work dir
next to ``guard.json``. criu runs it at every hook; two matter:

``post-dump``
    The images are written and the tasks are still frozen. The guard says so (``dumped``) and waits for the
    engine's decision (``decision``): ``commit`` -> exit 0 (criu leaves the tasks stopped, to be destroyed);
    ``abort`` -> exit 1 (criu itself unlocks the network, takes the TCP sockets out of repair and resumes the
    tasks: no kill and no local restore). If the engine dies (its ``lock`` becomes free: the kernel drops a
    flock however a process ends), the guard takes the lock over and decides alone by asking the destination:
    its copy running -> commit and destroy the source (after a lazy restore from the destination's own images: once
    its daemon put the last page in; it failed -> clean it and abort); not running -> clean it and abort;
    unreachable -> stay frozen and ask again (never resume while the destination may be running).
``network-unlock``
    criu is about to resume the tasks (an aborted or failed dump: also a lazy dump whose pages stopped flowing
    while a restored copy may already serve). Before it returns, the destination must be known clean: an
    ``abort`` decision says the engine made sure; otherwise the guard waits for one, or (engine dead) cleans the
    destination itself, retrying while it cannot reach it.

Post-copy's drain (``--watch-drain PID``)
    For a lazy dump, the commit is given when the restore is about to be sent (criu then serves pages until the
    last one has left), so the guard's part at ``post-dump`` is over before the migration is. The engine starts this
    file as a watcher at that point. It idles while the engine lives. If the engine dies, the watcher waits for criu
    (``PID``) to end, asks the destination how the drain ended (``lazy_status_argv``) and finishes alone: every
    page arrived -> destroy the stopped source and commit the destination; not -> clean the destination (its copy
    read pages that never came), then resume the source by hand (:func:`resume_by_hand`).

The shell part (``precopy.GUARD_SH``) also answers two earlier hooks: ``pre-dump`` freezes the container's cgroup
before criu would (``prefreeze``: criu polls its own freeze every 100 ms), so whoever resumes a source thaws it
(:func:`thaw`); ``network-lock`` leaves ``seized`` (criu holds the tasks: the frozen sync's walk may start).

The guard uses nothing but the standard library and argv lists from ``guard.json`` (no shell).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

GUARD_FILE = "guard"
GUARD_CONFIG = "guard.json"
DECISION_FILE = "decision"
DUMPED_FILE = "dumped"
SEIZED_FILE = "seized"          # criu holds the tasks (its network-lock hook): the container writes nothing more
UNLOCKING_FILE = "unlocking"
RESOLVED_FILE = "resolved"
GUARD_LOG = "guard.log"
COMMIT = "commit"
ABORT = "abort"

POLL_S = 0.002                 # decision polling: the commit costs at most this much frozen time
ASK_EVERY_S = 2.0              # an unreachable destination is asked again this often
SSH_UNREACHABLE_RC = 255
LAZY_PENDING_S = 60            # a destination daemon still PENDING this long after criu's end lost its pages
ENGINE_POLL_S = 0.5            # the drain watcher checks on the engine this often


def write_atomic(path, text):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def lock_is_free(path):
    """Try to take the engine's lock; return the fd holding it (the engine is dead) or None (it still runs)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (IOError, OSError) as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


def pids_in_pidns(init_pid):
    """All host PIDs that share ``init_pid``'s PID namespace (the container's processes)."""
    try:
        ns = os.readlink("/proc/%d/ns/pid" % init_pid)
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % entry) == ns:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def thaw(freezer):
    """Thaw the container's cgroup (``freezer``: criu.freezer_of's dict, or None); True if it was frozen. The dump
    found it frozen (the engine's pre-dump hook), so criu freezes it again whenever it leaves the tasks alive, and
    restores it frozen."""
    try:
        with open(freezer["file"]) as f:
            if f.read().strip() == freezer["thawed"]:
                return False
        with open(freezer["file"], "w") as f:
            f.write(freezer["thawed"])
        return True
    except (IOError, OSError, TypeError):
        return False


def resume_by_hand(run, name, lxcpath, init_pid, netfix_argvs, freezer=None):
    """Post-copy after the page server started: criu resumes the tasks when serving fails, but keeps its network
    lock (it decided at post-dump), or has left them stopped. Thaw, SIGCONT, drop criu's nftables lock, announce
    the container again. The TCP sockets criu put in repair mode stay there: those connections are lost. Returns
    the report's ``rollback.source`` entry; raises RuntimeError when no task is left."""
    out = {"connections": "lost: criu keeps the TCP sockets in repair mode once its page server started"}
    if not init_pid or not os.path.exists("/proc/%s" % init_pid):
        raise RuntimeError("source container %s has no running tasks: post-copy lost it" % name)
    run(["lxc-unfreeze", "-n", name, "-P", lxcpath])          # a no-op unless LXC froze it
    thaw(freezer)
    for p in pids_in_pidns(int(init_pid)):
        try:
            os.kill(p, signal.SIGCONT)
        except OSError:
            pass
    _rc, tables, _err = run(["nsenter", "-t", str(init_pid), "-n", "nft", "list", "tables"])
    dropped = []
    for line in tables.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and (parts[2].startswith("CRIU") or parts[2] == "arnab_lock"):
            run(["nsenter", "-t", str(init_pid), "-n", "nft", "delete", "table", parts[1], parts[2]])
            dropped.append(parts[2])
    out["network_unlocked"] = dropped
    for argv in netfix_argvs:
        run(argv)
    out["ok"] = True
    return out


def parse_status(out):
    """The destination's answer to the status command: ``(state, restore)``.

    ``state``: the container's LXC state there (``RUNNING``, ``STOPPED``, ...) or ``ABSENT``; ``restore``:
    ``pending`` while a restore still runs, its exit status once done, ``none`` when none was started."""
    state, restore = "ABSENT", "none"
    for line in (out or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "STATE":
            state = words[1]
        elif len(words) == 2 and words[0] == "RESTORE":
            restore = words[1]
    return state, restore


class Guard(object):
    def __init__(self, work, clock=time.time, sleep=time.sleep, run=None):
        self.work = work
        with open(os.path.join(work, GUARD_CONFIG)) as f:
            self.cfg = json.load(f)
        self.clock, self.sleep = clock, sleep
        self.run = run or self._run
        self.lock_fd = None

    def path(self, name):
        return os.path.join(self.work, name)

    def log(self, msg):
        with open(self.path(GUARD_LOG), "a") as f:
            f.write("%.3f %s\n" % (self.clock(), msg))

    @staticmethod
    def _run(argv, timeout=None):
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, "", "timeout"
        except OSError as e:
            return 127, "", str(e)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def decision(self):
        return read_text(self.path(DECISION_FILE))

    def engine_dead(self):
        if self.lock_fd is None:
            self.lock_fd = lock_is_free(self.cfg["lock"])
            if self.lock_fd is not None:
                os.ftruncate(self.lock_fd, 0)
                os.write(self.lock_fd, b"%d\n" % os.getpid())
                self.log("the engine is gone (its lock is free): the guard decides")
        return self.lock_fd is not None

    def decide(self, what, why):
        write_atomic(self.path(DECISION_FILE), what)
        write_atomic(self.path(RESOLVED_FILE), json.dumps({"decision": what, "why": why, "by": "guard",
                                                           "t": self.clock()}))
        self.log("decided %s: %s" % (what, why))

    # -- asking the destination ------------------------------------------------------------------------
    def dest_status(self):
        rc, out, err = self.run(self.cfg["status_argv"], timeout=30)
        if rc != 0:
            return None
        return parse_status(out)

    def clean_dest(self):
        """Clean the destination, retrying for as long as it cannot be reached."""
        while True:
            rc, out, err = self.run(self.cfg["clean_argv"], timeout=120)
            if rc == 0 and "cleaned" in out:
                self.log("destination cleaned")
                return
            self.log("cleaning the destination failed (rc %s): %s" % (rc, (err or out).strip()[-200:]))
            self.sleep(ASK_EVERY_S)

    def resolve(self):
        """The engine died with the tasks frozen: commit if the destination runs the container, else abort."""
        while True:
            status = self.dest_status()
            if status is None:
                self.log("destination unreachable: the source stays frozen")
            else:
                state, restore = status
                if state == "RUNNING" and restore != "pending":
                    # a lazy restore from the destination's images runs before its memory is in: it counts once
                    # its daemon has put the last page in
                    pages = self.lazy_status() if self.cfg.get("lazy_local") else "0"
                    if pages == "0":
                        self.decide(COMMIT, "the destination runs the container (restore %s)" % restore)
                        return COMMIT
                    self.clean_dest()
                    self.decide(ABORT, "the destination's copy ran without all its memory (lazy-pages %s)" % pages)
                    return ABORT
                if restore != "pending" and state not in ("STARTING", "FREEZING", "FROZEN", "THAWED"):
                    self.clean_dest()
                    self.decide(ABORT, "the destination does not run the container (%s, restore %s)"
                                % (state, restore))
                    return ABORT
                self.log("destination busy (%s, restore %s): asking again" % (state, restore))
            self.sleep(ASK_EVERY_S)

    # -- criu's hooks ------------------------------------------------------------------------------------
    def post_dump(self):
        write_atomic(self.path(DUMPED_FILE), "%.6f" % self.clock())
        self.log("post-dump: frozen, waiting for the decision")
        while True:
            d = self.decision()
            if d in (COMMIT, ABORT):
                break
            if self.engine_dead():
                d = self.resolve()
                break
            self.sleep(POLL_S)
        if d == COMMIT:
            self.destroy_source_later()
            return 0
        self.poke_later()
        self.thaw_later()
        return 1

    def network_unlock(self):
        if self.decision() == ABORT:
            return 0
        write_atomic(self.path(UNLOCKING_FILE), "%.6f" % self.clock())
        self.log("network-unlock without an abort: waiting until the destination is known clean")
        while self.decision() != ABORT:
            if self.engine_dead():
                self.clean_dest()
                self.decide(ABORT, "criu is resuming the source: the destination was cleaned first")
                self.thaw_later()
                break
            self.sleep(POLL_S)
        return 0

    def destroy_source_later(self):
        """Engine dead and committed: once criu has exited, stop (and destroy) the stopped source tasks."""
        if self.lock_fd is None:
            return      # the engine lives and destroys the source itself
        argvs = self.cfg.get("source_cleanup_argvs") or []
        self._detach("import json, subprocess\n"
                     "while os.path.exists('/proc/%d' % pid): time.sleep(0.1)\n"
                     "for argv in json.loads(sys.argv[2]): subprocess.call(argv)\n", json.dumps(argvs))
        self.log("the source is destroyed once criu exits")

    # -- post-copy's drain, when the engine dies during it ------------------------------------------------
    def watch_drain(self, criu_pid):
        """See the module's docstring: idle while the engine lives; if it dies, finish the post-copy alone."""
        while True:                         # an engine that ends normally kills this watcher first
            if not os.path.exists(self.cfg["lock"]):
                return 0                    # it finished and removed its work dir
            if self.engine_dead():
                break
            self.sleep(ENGINE_POLL_S)
        self.log("post-copy drain: the engine is gone, waiting for criu (pid %d) to end" % criu_pid)
        while os.path.exists("/proc/%d" % criu_pid):
            self.sleep(ENGINE_POLL_S)
        status = self.lazy_status()
        if status == "0":
            self.decide(COMMIT, "post-copy: every page reached the destination")
            for argv in self.cfg.get("source_cleanup_argvs") or []:
                self.run(argv, timeout=120)
            self.log("the source is destroyed, the destination committed")
            return 0
        self.log("post-copy: the drain failed (lazy-pages %s): the destination's copy goes, the source resumes"
                 % status)
        self.clean_dest()
        self.decide(ABORT, "post-copy drain failed (lazy-pages %s)" % status)
        res = resume_by_hand(self.run, self.cfg["container"], self.cfg["lxcpath"], self.cfg["init_pid"],
                             self.cfg.get("netfix_argvs") or [], freezer=self.cfg.get("freezer"))
        self.log("source resumed by hand: %s" % json.dumps(res))
        return 0

    def lazy_status(self):
        """The destination's lazy-pages daemon's exit status ('0' = every page arrived); asked until it answers.
        Still PENDING LAZY_PENDING_S after criu's end: its pages will not come ('LOST')."""
        first_pending = None
        while True:
            rc, out, _err = self.run(self.cfg["lazy_status_argv"], timeout=30)
            lines = out.strip().splitlines() if rc == 0 else []
            text = lines[-1].strip() if lines else None
            if text == "PENDING":
                first_pending = first_pending or self.clock()
                if self.clock() - first_pending > LAZY_PENDING_S:
                    return "LOST"
            elif text is not None:
                return text
            else:
                self.log("destination unreachable: asking for the drain's outcome again")
            self.sleep(ASK_EVERY_S)

    def thaw_later(self):
        """Engine dead and aborted: criu resumes the tasks into the cgroup it found frozen, then exits; thaw it
        then (the engine does this itself when it lives)."""
        if self.lock_fd is None or not self.cfg.get("freezer"):
            return
        freezer = self.cfg["freezer"]
        self._detach("while os.path.exists('/proc/%d' % pid): time.sleep(0.01)\n"
                     "open(sys.argv[2], 'w').write(sys.argv[3])\n", freezer["file"], freezer["thawed"])
        self.log("the source's cgroup is thawed once criu exits")

    def poke_later(self):
        """Engine dead and aborted a post-copy dump: after the guard, criu unlocks, resumes... and first starts its
        page server, which waits for a client that will never come. Connect and leave until criu has exited."""
        server = self.cfg.get("lazy_page_server")
        if self.lock_fd is None or not server:
            return
        self._detach("import socket\n"
                     "addr, port = sys.argv[2], int(sys.argv[3])\n"
                     "while os.path.exists('/proc/%d' % pid):\n"
                     "    try:\n"
                     "        socket.create_connection((addr, port), timeout=2).close()\n"
                     "    except OSError:\n"
                     "        pass\n"
                     "    time.sleep(0.2)\n", server[0], server[1])
        self.log("the page server is ended once criu serves it")

    def _detach(self, code, *args):
        """Run the Python lines ``code`` in a process of its own, holding the engine's lock, that outlives this hook
        and acts around criu's exit: ``pid`` is criu's, ``sys.argv[2:]`` are ``args``."""
        subprocess.Popen([sys.executable, "-c", "import os, sys, time\npid = int(sys.argv[1])\n" + code,
                          str(criu_pid())] + [str(a) for a in args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, pass_fds=(self.lock_fd,))


def criu_pid():
    """criu, the nearest ancestor naming it (criu runs the action script through ``sh -c``, and the shell may
    exec this guard); else the parent."""
    pid = os.getppid()
    for dummy in range(3):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"criu" in f.read():
                    return pid
            with open("/proc/%d/stat" % pid) as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (IOError, OSError, ValueError, IndexError):
            break
    return os.getppid()


def main(argv=None):
    if argv is not None and len(argv) == 3 and argv[1] == "--watch-drain":
        guard = Guard(os.path.dirname(os.path.abspath(argv[0])))
        try:
            return guard.watch_drain(int(argv[2]))
        except Exception as e:  # pylint: disable=broad-except
            guard.log("drain watcher error: %s: %s" % (type(e).__name__, e))
            return 1
    action = os.environ.get("CRTOOLS_SCRIPT_ACTION", "")
    if action not in ("post-dump", "network-unlock"):
        return 0
    guard = Guard(os.path.dirname(os.path.abspath(__file__ if argv is None else argv[0])))
    while True:
        try:
            return guard.post_dump() if action == "post-dump" else guard.network_unlock()
        except Exception as e:  # a crash must not resume the source by accident: log, keep it frozen, try again
            guard.log("guard error: %s: %s" % (type(e).__name__, e))
            guard.sleep(ASK_EVERY_S)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
