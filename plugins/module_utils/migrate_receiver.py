# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration receiver: the ONLY program a peer edge's migration key may run on this (destination) edge.

sshd runs it as the key's forced command (``restrict,command="/usr/local/lib/arnab/arnab-migrate-receiver",
from="<peer backhaul addresses>"`` in root's authorized_keys). It reads ``SSH_ORIGINAL_COMMAND``, splits it with
:func:`shlex.split` and accepts only the fixed operations below, each on ONE container whose name is validated
(:func:`validate.container_name`). Nothing the client sends is ever given to a shell, and no path comes from the
client: the LXC path, the work root ``<lxcpath>/.arnab-migrate`` and the programs come from the root-owned
``/etc/arnab/receiver.json`` the edge role writes. Anything else exits 126 with one line on stderr (and in syslog).

Operations (``NAME`` is the container; ``<work>`` is ``<lxcpath>/.arnab-migrate/NAME``; ``DIR`` an image dir
name: ``images``, ``final``, ``lazy`` or ``it-N``, default ``images``):

=====================================================  ==========================================================
``probe NAME [--link BRIDGE] [--token FILE]``          one JSON object: what preflight needs (read-only)
``prepare NAME``                                       empty ``<work>``, ``<work>/images``, the container dir with
                                                       the ``.arnab-migrating`` marker (refused over a container
                                                       that runs here or is not a migration's copy)
``status NAME``                                        ``STATE <lxc state|ABSENT>`` / ``RESTORE <rc|pending|died|none>``
``clean NAME [--ifname IF]``                           stop and remove the migration's copy (only a marked one);
                                                       prints ``cleaned`` only once the container is not running
``commit NAME``                                        drop the marker and ``<work>`` (the copy is the service now)
``lazy-status NAME``                                   the lazy-pages daemon: its exit status, ``PENDING`` or ``LOST``
``logs NAME``                                          tails of ``restore.log`` and ``lazy-pages.log``
``rm NAME [--dir DIR] FILE...``                        remove plain-named files from ``<work>/DIR``
``restore NAME --ifname IF [--lazy (--address A       the restore (lazy-pages daemon, ``lxc-checkpoint -r``, TX
--port P [--tls] | --local)] [--timeout S] [--verbose]  offload off, gratuitous ARP, TCP kick); ``T <step> <epoch>``,
[--dir DIR] [--ts-shift-ms MS]``                       ``PID n``, ``kicked n``, ``GARP_FAILED`` ... on stdout;
                                                       ``--ts-shift-ms``: the sockets' timestamp clocks move that far
                                                       forward first (criu.shift_tcp_timestamps); ``--tls``: the
                                                       daemon speaks TLS with what ``tls`` pinned; ``--local``: the
                                                       daemon serves the pages from the images dir itself (the
                                                       container runs before its memory is read)
``tls NAME``                                           post-copy's TLS channel: pin the source's certificate (one
                                                       PEM on stdin) in ``<work>/tls``, make this edge's key and
                                                       certificate there, print the certificate
``put NAME fs|images [--dir DIR]``                     a tar stream on stdin, extracted safely into the container
                                                       dir (``fs``) or ``<work>/DIR`` (``images``: plain files only)
``patch NAME [--dir DIR] [--parent it-N]``             a page patch stream (``state_transfer.encode_patch``'s protocol);
                                                       ``--parent``: then DIR's ``parent`` link to ``../it-N`` (native
                                                       pre-copy's final dump, whose earlier pages are there)
``pages NAME``                                         post-copy's page channel: ``LISTEN <port>`` on stderr, then
                                                       ONE root-owned connection to 127.0.0.1:<port> (the lazy-pages
                                                       daemon) relayed to this session's stdin/stdout, where the
                                                       source's criu page server sits: pages travel inside SSH
``session NAME``                                       framed requests (put, rm, restore, status, lazy-status, logs,
                                                       ping) on one connection: the frozen window pays no SSH
                                                       session and no Python start-up
``arnab-rsync fs|images NAME [DIR] rsync --server ...``  rsync's server, through Debian's ``rrsync`` confined to
                                                       the container dir or ``<work>/DIR`` (write-only)
=====================================================  ==========================================================

Everything that writes into the container dir or an image dir, and the restore, holds a per-container lock, so the
container's config checked before a restore is the one LXC reads. A restore refuses a config that could run code
on this host (hooks, mount entries, includes outside the LXC config dirs: :func:`check_lxc_config`) and removes
symbolic links from the image dirs (criu would follow them when it writes its log or reads an image).
Pure standard library plus the collection's ``criu``, ``state_transfer`` and ``validate`` (imported from beside
this file when it runs installed as a script).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import io
import ipaddress
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import time

try:
    from ansible_collections.arnab.testbed.plugins.module_utils import criu as criu_lib
    from ansible_collections.arnab.testbed.plugins.module_utils import migration_guard
    from ansible_collections.arnab.testbed.plugins.module_utils import state_transfer
    from ansible_collections.arnab.testbed.plugins.module_utils import validate
except ImportError:     # installed as a script beside copies of them (/usr/local/lib/arnab)
    import criu as criu_lib
    import migration_guard
    import state_transfer
    import validate

# 2: thaws a restored copy (precopy.RECEIVER_THAWS); 3: restore --lazy --local (RECEIVER_LAZY_LOCAL);
# 4: patch --parent (precopy.RECEIVER_PATCH_PARENT)
VERSION = 4
CONFIG_PATH = "/etc/arnab/receiver.json"
DEFAULTS = {
    "lxcpath": "/var/lib/lxc",
    "criu": "criu",
    "python": "/usr/bin/python3",
    "rrsync": "/usr/bin/rrsync",
    "openssl": "openssl",
    "path": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "network_lock": "nftables",
    "enable_fs": ["ramfs"],
    "lxc_include_dirs": ("/usr/share/lxc/config", "/etc/lxc"),
    "lxc_config_keys": [],          # extra allowed LXC config keys (full-match regexes)
    "restore_timeout": 120,
    "lock_wait_s": 60,
    "lazy_start_wait_s": 30,
    "syslog": True,
    "log_file": "",
}
WORK_ROOT = ".arnab-migrate"
MARKER = ".arnab-migrating"
PAGES_PID = "pages.pid"
REFUSED = 126
STOPPED_STATES = ("STOPPED", "ABSENT")

IMAGE_DIR_RE = re.compile(r"images|final|lazy|it-[0-9]{1,4}", re.ASCII)
FILE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}", re.ASCII)
TOKEN_RE = re.compile(r"\.?[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}", re.ASCII)
PARENT_LINK_RE = re.compile(r"\.\./it-[0-9]{1,4}/?", re.ASCII)
PARENT_DIR_RE = re.compile(r"it-[0-9]{1,4}", re.ASCII)

MAX_HEADER = 65536
MAX_PAYLOAD = 1 << 30
MAX_PATCH_RECORD = 64 << 20
MAX_FILES = 100000
STEP_TIMEOUT_S = 30
PAGES_ACCEPT_S = 600            # the page channel waits this long for the restore's lazy-pages daemon
RELAY_CHUNK = 256 * 1024

SESSION_OPS = ("put", "rm", "restore", "status", "lazy-status", "logs", "ping")
FLAG = "flag"
# op -> (positional kinds, {option: kind}); kinds are checked by _check_value
OPS = {
    "probe": ((), {"--link": "ifname", "--token": "token"}),
    "prepare": ((), {}),
    "status": ((), {}),
    "clean": ((), {"--ifname": "ifname"}),
    "commit": ((), {}),
    "lazy-status": ((), {}),
    "logs": ((), {}),
    "rm": (("file...",), {"--dir": "dir"}),
    "restore": ((), {"--ifname": "ifname", "--lazy": FLAG, "--address": "address", "--port": "port",
                     "--timeout": "timeout", "--verbose": FLAG, "--dir": "dir", "--ts-shift-ms": "ms",
                     "--tls": FLAG, "--local": FLAG}),
    "tls": ((), {}),
    "put": (("kind",), {"--dir": "dir"}),
    "patch": ((), {"--dir": "dir", "--parent": "parent"}),
    "session": ((), {}),
    "pages": ((), {}),
    "ping": ((), {}),
}
LXC_KEYS = re.compile(
    r"lxc\.(arch|uts\.name|pty\.max|tty\.max|tty\.dir|init\.cmd|init\.cwd|environment|autodev|ephemeral|"
    r"start\.(auto|delay|order)|signal\.(halt|reboot|stop)|log\.level|console\.size|cgroup\.dir|"
    r"net\.[0-9]{1,3}\.(type|link|flags|name|hwaddr|mtu|ipv4\.address|ipv4\.gateway|ipv6\.address|ipv6\.gateway|"
    r"veth\.pair|veth\.mode|l2proxy))", re.ASCII)


class Refused(Exception):
    """Not an operation this key may run: exit 126."""


class OpError(Exception):
    """An accepted operation failed."""

    def __init__(self, msg, rc=1):
        super(OpError, self).__init__(msg)
        self.rc = rc


# --------------------------------------------------------------------------------------------------
# parsing: the client's words -> (op, name, positional, options); nothing else gets through
# --------------------------------------------------------------------------------------------------

def _count(value, highest, message):
    """A whole number 1..highest written in plain digits -> int; ValidationError(message % value) otherwise."""
    if not re.fullmatch(r"[0-9]{1,%d}" % len(str(highest)), value or "", re.ASCII) or not 0 < int(value) <= highest:
        raise validate.ValidationError(message % value)
    return int(value)


def _check_value(kind, value):
    try:
        if kind == "ifname":
            return validate.ifname(value, "interface")
        if kind == "port":
            return validate.port(value, "port")
        if kind == "address":
            return str(ipaddress.ip_address(validate.no_control_chars(value, "address")))
        if kind == "timeout":
            return _count(value, 3600, "timeout %r: 1 to 3600 seconds")
        if kind == "ms":
            return _count(value, 600000, "%r: 1 to 600000 ms")
        if kind == "dir":
            if not IMAGE_DIR_RE.fullmatch(value or ""):
                raise validate.ValidationError("image dir %r: images, final, lazy or it-N" % value)
            return value
        if kind == "parent":
            if not PARENT_DIR_RE.fullmatch(value or ""):
                raise validate.ValidationError("parent dir %r: it-N (a pre-dump's)" % value)
            return value
        if kind == "token":
            if not TOKEN_RE.fullmatch(value or "") or value in (".", ".."):
                raise validate.ValidationError("token %r: a plain file name" % value)
            return value
        if kind in ("file", "file..."):
            if not FILE_NAME_RE.fullmatch(value or ""):
                raise validate.ValidationError("file %r: a plain file name (letters, digits, '_.+-')" % value)
            return value
        if kind == "kind":
            return validate.one_of(value, ("fs", "images"), "put target")
    except (validate.ValidationError, ValueError) as e:
        raise Refused(str(e))
    raise Refused("unknown value kind %s" % kind)


def parse(words):
    """``[op, NAME, ...]`` -> ``(op, name, positional, options)``; raises Refused for anything else."""
    if not words:
        raise Refused("no operation")
    op = words[0]
    if op not in OPS:
        raise Refused("unknown operation %r" % op[:40])
    if len(words) < 2:
        raise Refused("%s needs a container name" % op)
    try:
        name = validate.container_name(words[1])
    except validate.ValidationError as e:
        raise Refused(str(e))
    pos_kinds, opt_kinds = OPS[op]
    positional, options = [], {}
    rest = words[2:]
    i = 0
    while i < len(rest):
        w = rest[i]
        if w.startswith("-"):
            if w not in opt_kinds:
                raise Refused("%s: unknown option %r" % (op, w[:40]))
            if w in options:
                raise Refused("%s: option %s given twice" % (op, w))
            if opt_kinds[w] == FLAG:
                options[w] = True
                i += 1
                continue
            if i + 1 >= len(rest):
                raise Refused("%s: option %s needs a value" % (op, w))
            options[w] = _check_value(opt_kinds[w], rest[i + 1])
            i += 2
            continue
        positional.append(w)
        i += 1
    if pos_kinds and pos_kinds[-1].endswith("..."):
        if not positional or len(positional) > MAX_FILES:
            raise Refused("%s needs 1 to %d file names" % (op, MAX_FILES))
        positional = [_check_value(pos_kinds[-1], p) for p in positional]
    elif len(positional) != len(pos_kinds):
        raise Refused("%s takes %d argument(s) after the name, got %d" % (op, len(pos_kinds), len(positional)))
    else:
        positional = [_check_value(k, p) for k, p in zip(pos_kinds, positional)]
    if op == "restore":
        if "--ifname" not in options:
            raise Refused("restore needs --ifname")
        lazy_opts = [o for o in ("--address", "--port") if o in options]
        if options.get("--lazy") and (len(lazy_opts) != 2) == (not options.get("--local")):
            raise Refused("restore --lazy needs either --address and --port (the source serves the pages) or "
                          "--local (these images do)")
        if (lazy_opts or options.get("--tls") or options.get("--local")) and not options.get("--lazy"):
            raise Refused("--address/--port/--tls/--local only with --lazy")
        if options.get("--local") and options.get("--tls"):
            raise Refused("--tls is for pages from the source, not --local ones")
    if op == "patch" and options.get("--parent") is not None and \
            options["--parent"] == options.get("--dir", "images"):
        raise Refused("patch: a dir cannot be its own parent")
    return op, name, positional, options


def parse_rsync(raw, words):
    """``arnab-rsync fs|images NAME [DIR] [rsync] --server ...`` -> ``(kind, name, dir, rrsync_command)``.

    rrsync parses the command line itself, so it gets the client's own text after the fixed words (which must
    be spelled exactly as :func:`shlex.join` would: they are validated plain words)."""
    if len(words) < 4 or words[1] not in ("fs", "images"):
        raise Refused("arnab-rsync fs|images NAME [DIR] rsync --server ...")
    kind = words[1]
    try:
        name = validate.container_name(words[2])
    except validate.ValidationError as e:
        raise Refused(str(e))
    i = 3
    subdir = None
    if kind == "images":
        subdir = "images"
        if words[i] not in ("rsync", "--server"):
            subdir = _check_value("dir", words[i])
            i += 1
    if i < len(words) and words[i] == "rsync":
        i += 1
    if i >= len(words) or words[i] != "--server":
        raise Refused("arnab-rsync runs only rsync's server (--server)")
    if i + 1 < len(words) and words[i + 1] == "--sender":
        raise Refused("arnab-rsync is write-only (no --sender)")
    prefix = " ".join(words[:i]) + " "
    if not raw.startswith(prefix + "--server"):
        raise Refused("arnab-rsync: the words before --server must be plain")
    return kind, name, subdir, "rsync " + raw[len(prefix):]


# --------------------------------------------------------------------------------------------------
# LXC config and file-system helpers
# --------------------------------------------------------------------------------------------------

def check_lxc_config(text, lxcpath, name, include_dirs=("/usr/share/lxc/config", "/etc/lxc"), extra_keys=()):
    """The problems of a container config received from a peer (``[]`` when LXC may read it): only keys that cannot
    run code or reach host paths (no hooks, mounts, net scripts, device rules, capabilities, console paths ...),
    includes only from the LXC config dirs, the rootfs exactly ``<lxcpath>/<name>/rootfs``."""
    problems = []
    extra = [re.compile(k) for k in extra_keys]
    rootfs = os.path.join(lxcpath, name, "rootfs")
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.fullmatch(r"(lxc\.[A-Za-z0-9_.]+)\s*=\s*(.*)", s)
        if not m:
            problems.append("line %d: not a 'lxc.key = value' line" % n)
            continue
        key, value = m.group(1), m.group(2).strip()
        if key == "lxc.include":
            norm = os.path.normpath(value)
            if not (value.startswith("/") and any(norm.startswith(d.rstrip("/") + "/") for d in include_dirs)):
                problems.append("line %d: lxc.include %r is outside %s" % (n, value, ", ".join(include_dirs)))
        elif key == "lxc.rootfs.path":
            if value not in (rootfs, "dir:" + rootfs):
                problems.append("line %d: lxc.rootfs.path %r is not %s" % (n, value, rootfs))
        elif key == "lxc.console.path":
            if value != "none":
                problems.append("line %d: lxc.console.path must be none" % n)
        elif not (LXC_KEYS.fullmatch(key) or any(r.fullmatch(key) for r in extra)):
            problems.append("line %d: %s is not allowed in a migrated container's config" % (n, key))
    return problems


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read_nofollow(path, limit=1 << 20):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OpError("%s is not a regular file" % path)
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _tail(path, lines):
    try:
        text = _read_nofollow(path, 1 << 22)
    except (OSError, OpError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _fresh(path, mode=0o600):
    """Open ``path`` for writing as a NEW regular file: whatever was there (a symlink a peer planted) goes first."""
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            raise OpError("%s is a directory" % path)
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def _write(path, text, mode=0o600):
    fd = _fresh(path, mode)
    try:
        os.write(fd, text.encode() if isinstance(text, str) else text)
    finally:
        os.close(fd)


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def wait_exit(proc, timeout):
    """The exit status of ``proc`` as soon as it exits; TimeoutExpired after ``timeout`` seconds. ``Popen.wait``
    with a timeout looks every 50 ms at most (it sleeps 0.5 ms, then twice as long each time up to 50 ms): for the
    restore, in the downtime, that was up to 50 ms after criu had finished. A pidfd is readable the moment the
    process exits (Linux 5.3, Python 3.9); without one, Popen.wait as before."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout=timeout)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:    # a zombie is not alive
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return False


def _read_pid(path):
    try:
        text = _read_nofollow(path, 64).strip()
    except (OSError, OpError):
        return None
    return int(text) if text.isdigit() else None


class Output(object):
    def __init__(self):
        self.out, self.err = [], []

    def __call__(self, line):
        self.out.append(line)

    def error(self, line):
        self.err.append(line)

    def text(self):
        return "".join(x + "\n" for x in self.out)


class Trace(object):
    """The restore's output: into ``restore.trace`` as it happens (a dropped connection loses nothing), and to the
    client only at the end."""

    def __init__(self, path):
        self.fd = _fresh(path)
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)
        try:
            os.write(self.fd, (line + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def mark(self, step):
        self("T %s %.6f" % (step, time.time()))

    def close(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# the receiver
# --------------------------------------------------------------------------------------------------

class Receiver(object):
    def __init__(self, cfg, log=None):
        self.cfg = cfg
        self.lxcpath = cfg["lxcpath"]
        self.work_root = os.path.join(self.lxcpath, WORK_ROOT)
        self.env = {"PATH": cfg["path"], "LC_ALL": "C", "HOME": "/root"}
        self.log = log or (lambda msg: None)
        self.lock_fd = None

    # -- places --------------------------------------------------------------------------------------
    def work(self, name):
        return os.path.join(self.work_root, name)

    def cdir(self, name):
        return os.path.join(self.lxcpath, name)

    def marked(self, name):
        return os.path.lexists(os.path.join(self.cdir(name), MARKER))

    def image_dir(self, name, subdir, create=False):
        work = self.work(name)
        if not self._real_dir(work):
            raise OpError("no migration is prepared for %s here (prepare first)" % name)
        d = os.path.join(work, subdir)
        if create and not os.path.lexists(d):
            os.mkdir(d, 0o700)
        if not self._real_dir(d):
            raise OpError("%s/%s is not a directory" % (name, subdir))
        return d

    @staticmethod
    def _real_dir(path):
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False

    def ensure_work_root(self):
        if not os.path.lexists(self.work_root):
            os.mkdir(self.work_root, 0o700)
        if not self._real_dir(self.work_root):
            raise OpError("%s is not a directory" % self.work_root)
        os.chmod(self.work_root, 0o700)

    # -- running programs (argv lists, fixed environment) ---------------------------------------------
    def run(self, argv, timeout=STEP_TIMEOUT_S, env=None, cwd="/"):
        full = dict(self.env)
        full.update(env or {})
        try:
            p = subprocess.run(argv, env=full, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, check=False, start_new_session=True)
        except subprocess.TimeoutExpired:
            return 124, "", "timeout after %ss" % timeout
        except OSError as e:
            return 127, "", str(e)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def state(self, name):
        rc, out, _err = self.run(["lxc-info", "-n", name, "-P", self.lxcpath, "-sH"])
        st = out.strip() if rc == 0 else ""
        return st if re.fullmatch(r"[A-Z]{1,20}", st) else "ABSENT"

    def init_pid(self, name):
        rc, out, _err = self.run(["lxc-info", "-n", name, "-P", self.lxcpath, "-pH"])
        pid = out.strip()
        return int(pid) if rc == 0 and pid.isdigit() else None

    # -- the per-container lock -------------------------------------------------------------------------
    def lock(self, name):
        """Hold ``<work root>/.lock-NAME`` (flock) until :meth:`unlock`; waits at most ``lock_wait_s``."""
        if self.lock_fd is not None:
            return
        self.ensure_work_root()
        path = os.path.join(self.work_root, ".lock-" + name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        deadline = time.time() + float(self.cfg["lock_wait_s"])
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES) or time.time() >= deadline:
                    os.close(fd)
                    raise OpError("%s is busy (another operation on it holds %s)" % (name, path))
                time.sleep(0.05)
        self.lock_fd = fd

    def unlock(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def require_copy(self, name, what):
        """The container dir may be written (or restored) only while it is a migration's copy and stopped."""
        if not self.marked(name):
            raise OpError("%s: %s holds no migration copy (no %s): refusing" % (what, name, MARKER))
        st = self.state(name)
        if st not in STOPPED_STATES:
            raise OpError("%s: container %s is %s here: refusing" % (what, name, st))

    # -- operations ------------------------------------------------------------------------------------
    def op_ping(self, name, pos, opts, out, stdin):
        out("pong %d" % VERSION)
        return 0

    def op_probe(self, name, pos, opts, out, stdin):
        rc, vout, _err = self.run([self.cfg["criu"], "--version"], timeout=10)
        m = re.search(r"Version:\s*(\S+)", vout or "")
        st_lxc = os.stat(self.lxcpath)
        res = {
            "receiver": VERSION,
            "hostname": socket.gethostname(),
            "lxc_checkpoint": shutil.which("lxc-checkpoint", path=self.env["PATH"]),
            "criu_ok": rc == 0,
            "criu_version": m.group(1) if (rc == 0 and m) else None,
            "pipe_max_size": criu_lib.read_int("/proc/sys/fs/pipe-max-size"),
            "python": self.cfg["python"] if os.access(self.cfg["python"], os.X_OK) else None,
            "state": self.state(name),
            "exists": os.path.lexists(os.path.join(self.cdir(name), "config")),
            "marker": self.marked(name),
            "lxcpath_id": [st_lxc.st_dev, st_lxc.st_ino],
        }
        res["exists_unmarked"] = res["exists"] and not res["marker"]
        if "--link" in opts:
            res["bridge"] = os.path.exists(os.path.join("/sys/class/net", opts["--link"]))
        if "--token" in opts:
            res["token_found"] = os.path.lexists(os.path.join(self.lxcpath, opts["--token"]))
        out(json.dumps(res, sort_keys=True))
        return 0

    def op_prepare(self, name, pos, opts, out, stdin):
        st = self.state(name)
        if st not in STOPPED_STATES:
            raise OpError("a container named %s is %s here: refusing" % (name, st))
        cdir = self.cdir(name)
        if os.path.lexists(cdir) and not self.marked(name):
            raise OpError("a container %s that is no migration's copy exists here (%s): refusing" % (name, cdir))
        self.lock(name)
        work = self.work(name)
        _remove(work)
        os.mkdir(work, 0o700)
        os.mkdir(os.path.join(work, "images"), 0o700)
        if not os.path.lexists(cdir):
            os.mkdir(cdir, 0o700)
        if not self._real_dir(cdir):
            raise OpError("%s is not a directory" % cdir)
        _write(os.path.join(cdir, MARKER), "")
        out("prepared")
        return 0

    def op_tls(self, name, pos, opts, out, stdin):
        """Post-copy's TLS channel: the source's certificate (stdin) is the only one the lazy-pages daemon will
        trust; this edge's own, made now for this migration, is the answer (criu.tls_identity)."""
        self.image_dir(name, "images")          # a prepared migration only
        try:
            peer = criu_lib.check_pem_cert(stdin.read(criu_lib.MAX_PEM_BYTES + 1).decode("ascii"))
            tls_dir = os.path.join(self.work(name), "tls")
            own = criu_lib.tls_identity(tls_dir, openssl=self.cfg["openssl"], env=self.env)
            criu_lib.pin_tls_peer(tls_dir, peer)
        except (UnicodeDecodeError, ValueError, OSError, criu_lib.CriuError) as e:
            raise OpError("tls: %s" % e)
        out(own.rstrip("\n"))
        return 0

    def op_status(self, name, pos, opts, out, stdin):
        out("STATE %s" % self.state(name))
        work = self.work(name)
        rcfile, pidfile = os.path.join(work, "restore.rc"), os.path.join(work, "restore.pid")
        if os.path.lexists(rcfile):
            rc = _read_pid(rcfile)
            out("RESTORE %s" % (rc if rc is not None else "died"))
        elif os.path.lexists(pidfile):
            pid = _read_pid(pidfile)
            out("RESTORE %s" % ("pending" if pid and _pid_alive(pid) else "died"))
        else:
            out("RESTORE none")
        return 0

    def _restore_dir(self, name):
        work = self.work(name)
        try:
            sub = _read_nofollow(os.path.join(work, "restore.dir"), 64).strip()
        except (OSError, OpError):
            sub = "images"
        return os.path.join(work, sub if IMAGE_DIR_RE.fullmatch(sub) else "images")

    def op_lazy_status(self, name, pos, opts, out, stdin):
        d = self._restore_dir(name)
        rc = _read_pid(os.path.join(d, "lazy-pages.rc"))
        if rc is not None:
            out(str(rc))
            return 0
        pid = _read_pid(os.path.join(d, "lazy-pages.pid"))
        out("PENDING" if pid and _pid_alive(pid) else "LOST")
        return 0

    def op_logs(self, name, pos, opts, out, stdin):
        d = self._restore_dir(name)
        for fname, n in (("restore.log", 30), ("lazy-pages.log", 20)):
            text = _tail(os.path.join(d, fname), n)
            if text:
                out(text)
        return 0

    def op_rm(self, name, pos, opts, out, stdin):
        d = self.image_dir(name, opts.get("--dir", "images"))
        self.lock(name)
        removed = 0
        for fname in pos:
            path = os.path.join(d, fname)
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                pass
        out("removed %d" % removed)
        return 0

    def _kill_users_of(self, prefix):
        """SIGKILL every process with an argument that is ``prefix`` or a path below it (criu restore and
        lazy-pages get ``-D <work>/<dir>``): this container's migration, never another one's. Only processes of
        this host's mount namespace: the same path can name another host's work dir where hosts share a PID
        namespace (the emulated lab's edges do: the source's criu dump has ``-D <work>/final``)."""
        killed = []
        me = os.getpid()
        try:
            mnt = os.readlink("/proc/self/ns/mnt")
        except OSError:
            mnt = None
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                if mnt is not None and os.readlink("/proc/%s/ns/mnt" % entry) != mnt:
                    continue
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    args = f.read().split(b"\0")
            except (IOError, OSError):
                continue
            p = prefix.encode()
            if any(a == p or a.startswith(p + b"/") for a in args):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
                except OSError:
                    pass
        return killed

    def op_clean(self, name, pos, opts, out, stdin):
        work = self.work(name)
        ours = self.marked(name)
        if ours:
            if self._real_dir(work):
                pid = _read_pid(os.path.join(work, PAGES_PID))
                if pid and _pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)       # the page relay: the source's tunnel ends with it
                    except OSError:
                        pass
                for sub in os.listdir(work):
                    pid = _read_pid(os.path.join(work, sub, "lazy-pages.pid"))
                    if pid:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
            pid = self.init_pid(name)
            if pid:
                # cut the copy off the network first: killing it would reset (RST) the client connections it
                # took over, which the resumed source still holds
                self.run(["nsenter", "-t", str(pid), "-n", "ip", "link", "set", opts.get("--ifname", "eth0"),
                          "down"])
            self.run(["lxc-stop", "-k", "-n", name, "-P", self.lxcpath], timeout=30)
        self._kill_users_of(work)
        st = self.state(name)
        if st not in STOPPED_STATES:
            why = "" if ours else ": it is no migration's copy (committed?), not stopping it"
            raise OpError("still %s%s" % (st, why))
        self.lock(name)
        _remove(work)
        if ours and self.marked(name):
            _remove(self.cdir(name))
        try:
            os.rmdir(self.work_root)
        except OSError:
            pass
        out("cleaned")
        return 0

    def op_commit(self, name, pos, opts, out, stdin):
        self.lock(name)
        try:
            os.unlink(os.path.join(self.cdir(name), MARKER))
        except FileNotFoundError:
            pass
        _remove(self.work(name))
        out("committed %s" % self.state(name))
        return 0

    # -- put: a tar stream, extracted without leaving its directory -----------------------------------
    def op_put(self, name, pos, opts, out, stdin):
        kind = pos[0]
        if kind == "fs":
            self.require_copy(name, "put fs")
            dest = self.cdir(name)
        else:
            dest = self.image_dir(name, opts.get("--dir", "images"), create=True)
        self.lock(name)
        if kind == "fs":
            self.require_copy(name, "put fs")
        files, total = extract_tar(stdin, dest, kind)
        out("ok files=%d bytes=%d" % (files, total))
        return 0

    def op_patch(self, name, pos, opts, out, stdin):
        dest = self.image_dir(name, opts.get("--dir", "images"), create=True)
        # the channel is opened before the freeze and waits here: take the lock only once the stream begins
        if opts.get("--parent"):
            self.image_dir(name, opts["--parent"])      # there before anything is written
        files, total = apply_patch(stdin, dest, on_start=lambda: self.lock(name))
        if opts.get("--parent"):
            # native pre-copy's final dump, streamed: criu finds the earlier pages through this link (as rsync
            # would have copied it from the source)
            _remove(os.path.join(dest, "parent"))
            os.symlink("../" + opts["--parent"], os.path.join(dest, "parent"))
        out("ok files=%d bytes=%d" % (files, total))
        return 0

    # -- restore ---------------------------------------------------------------------------------------
    def sanitize_work(self, name):
        """Remove symbolic links and special files from the image dirs (rrsync lets a peer create them, criu
        would follow them); only native pre-copy's ``parent -> ../it-N`` chain links stay."""
        removed = []
        for dirpath, dirnames, filenames in os.walk(self.work(name)):
            for fname in filenames + dirnames:
                path = os.path.join(dirpath, fname)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    if fname == "parent" and os.path.dirname(dirpath) == self.work(name) and \
                            PARENT_LINK_RE.fullmatch(os.readlink(path)):
                        continue
                elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                    continue
                os.unlink(path)
                removed.append(os.path.relpath(path, self.work(name)))
        return removed

    def check_container(self, name):
        cdir = self.cdir(name)
        if not self._real_dir(os.path.join(cdir, "rootfs")):
            raise OpError("%s/rootfs is not a directory" % cdir)
        try:
            text = _read_nofollow(os.path.join(cdir, "config"))
        except OSError as e:
            raise OpError("cannot read %s/config: %s" % (cdir, e))
        problems = check_lxc_config(text, self.lxcpath, name, self.cfg["lxc_include_dirs"],
                                    self.cfg["lxc_config_keys"])
        if problems:
            raise OpError("refusing to restore %s: its config %s" % (name, "; ".join(problems[:5])))

    def op_restore(self, name, pos, opts, out, stdin):
        subdir = opts.get("--dir", "images")
        d = self.image_dir(name, subdir)
        self.lock(name)
        self.require_copy(name, "restore")
        self.check_container(name)
        removed = self.sanitize_work(name)
        if removed:
            self.log("restore %s: removed links/special files %s" % (name, ", ".join(removed[:10])))
        work = self.work(name)
        _write(os.path.join(work, "restore.dir"), subdir)
        _remove(os.path.join(work, "restore.rc"))
        _write(os.path.join(work, "restore.pid"), str(os.getpid()))
        trace = Trace(os.path.join(work, "restore.trace"))
        # from here a dropped connection must not stop us between the restore and the net fix
        old = [(s, signal.signal(s, signal.SIG_IGN)) for s in (signal.SIGHUP, signal.SIGPIPE)]
        rc = 1
        try:
            rc = self._restore(name, d, opts, trace)
        finally:
            _write(os.path.join(work, "restore.rc"), "%d\n" % rc)
            trace.close()
            for s, h in old:
                signal.signal(s, h)
        for line in trace.lines:
            out(line)
        return rc

    def _restore(self, name, d, opts, trace):
        trace.mark("start")
        lazy = bool(opts.get("--lazy"))
        unlock_sh = os.path.join(d, ".post-restore.sh")
        argv, copts = criu_lib.build_argv("restore", images_dir=d, container=name, lxcpath=self.lxcpath,
                                          lazy_pages=lazy, network_lock=self.cfg["network_lock"],
                                          enable_fs=tuple(self.cfg["enable_fs"]), verbose=bool(opts.get("--verbose")),
                                          action_script=unlock_sh)
        conf = os.path.join(d, ".criu-restore.conf")
        try:
            _write(unlock_sh, criu_lib.INBOUND_UNLOCK_SH, 0o700)
            _remove(os.path.join(d, criu_lib.POST_RESTORE_RAN))
            _write(conf, criu_lib.config_text(copts))
            shift = opts.get("--ts-shift-ms")
            if shift:
                try:    # a socket left as it was only risks a stall: never a reason to fail the restore
                    trace("TS_SHIFTED %d %d" % (criu_lib.shift_tcp_timestamps(d, shift), shift))
                except (OSError, ValueError) as e:
                    trace("TS_SHIFT_FAILED %s" % e)
            if lazy:
                for fname in ("lazy-pages.socket", "lazy-pages.rc", "lazy-pages.pid"):
                    _remove(os.path.join(d, fname))
                tls_dir = os.path.join(self.work(name), "tls") if opts.get("--tls") else None
                if tls_dir and not os.path.isfile(os.path.join(tls_dir, criu_lib.TLS_PEER)):
                    raise OpError("restore --tls: no certificate pinned (the tls operation comes first)")
                # --local: no page server, criu's daemon reads the pages from this images dir
                largv, _o = criu_lib.build_argv("lazy-pages", images_dir=d, address=opts.get("--address"),
                                                port=opts.get("--port"), criu=self.cfg["criu"],
                                                log_file="lazy-pages.log", tls_dir=tls_dir)
                pid = self.spawn_lazy_daemon(largv, d)
                _write(os.path.join(d, "lazy-pages.pid"), "%d\n" % pid)
                deadline = time.time() + float(self.cfg["lazy_start_wait_s"])
                while not _is_socket(os.path.join(d, "lazy-pages.socket")):
                    if time.time() > deadline:
                        trace("lazy-pages daemon did not start")
                        trace(_tail(os.path.join(d, "lazy-pages.out"), 10))
                        return 3
                    time.sleep(0.01)
                trace.mark("lazyd")
            timeout = opts.get("--timeout") or int(self.cfg["restore_timeout"])
            # the restored container's monitor keeps the stdout it inherits: a file, never our connection
            outfd = _fresh(os.path.join(d, "restore.out"))
            try:
                proc = subprocess.Popen(argv, env=dict(self.env, CRIU_CONFIG_FILE=conf), cwd=d,
                                        stdin=subprocess.DEVNULL, stdout=outfd, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            finally:
                os.close(outfd)
            try:
                rc = wait_exit(proc, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = 137
        except (OSError, OpError, ValueError) as e:
            trace("restore could not start: %s" % e)
            return 1
        if rc != 0:
            trace(_tail(os.path.join(d, "restore.out"), 20))
            err = criu_lib.find_criu_error(_tail(os.path.join(d, "restore.log"), 30))
            if err:
                trace(err)
            return rc
        trace.mark("restored")
        # the container runs: nothing below may fail the restore, each step only reports
        try:
            pid = self.init_pid(name)
            trace("PID %s" % (pid or ""))
            if not pid:
                trace("NO_PID")
                return 0
            # criu restores the freezer state the source had when criu came, and the engine had frozen it then
            # (its pre-dump hook): thaw, or the copy stays frozen
            if migration_guard.thaw(criu_lib.freezer_of(pid)):
                trace("THAWED")
            nrc, lines = criu_lib.after_restore_in_netns(
                pid, ifname=opts["--ifname"], env=self.env,
                check_lock=not os.path.exists(os.path.join(d, criu_lib.POST_RESTORE_RAN)))
            for line in lines:
                trace(line)
            if nrc != 0 and "GARP_FAILED" not in " ".join(lines):
                trace("GARP_FAILED rc %d" % nrc)
            trace.mark("netfix")
        except Exception as e:  # pylint: disable=broad-except
            trace("NETFIX_ERROR %s: %s" % (type(e).__name__, e))
        return 0

    def spawn_lazy_daemon(self, largv, d):
        """``criu lazy-pages`` in its own session, outliving this process; its exit status goes to
        ``lazy-pages.rc`` (the only sign that every page arrived). Returns the waiter's pid."""
        outfd = _fresh(os.path.join(d, "lazy-pages.out"))
        rfd, wfd = os.pipe()
        first = os.fork()
        if first == 0:      # pragma: no cover - runs in the forked children
            try:
                os.close(rfd)
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(outfd, 1)
                os.dup2(outfd, 2)
                os.write(wfd, str(os.getpid()).encode())
                os.close(wfd)
                os.closerange(3, 1024)
                p = subprocess.Popen(largv, env=dict(self.env), cwd=d, stdin=0, stdout=1, stderr=2)
                rc = p.wait()
                _write(os.path.join(d, "lazy-pages.rc"), "%d\n" % rc)
            finally:
                os._exit(0)
        os.close(wfd)
        os.close(outfd)
        os.waitpid(first, 0)
        pid = int(os.read(rfd, 32) or b"0")
        os.close(rfd)
        return pid

    # -- rsync through rrsync --------------------------------------------------------------------------
    def rsync(self, kind, name, subdir, command):
        if kind == "fs":
            self.require_copy(name, "rsync fs")
            dest = self.cdir(name)
        else:
            dest = self.image_dir(name, subdir, create=True)
        self.lock(name)
        if kind == "fs":
            self.require_copy(name, "rsync fs")
        env = dict(self.env, SSH_ORIGINAL_COMMAND=command)
        if os.environ.get("SSH_CONNECTION"):
            env["SSH_CONNECTION"] = os.environ["SSH_CONNECTION"]
        rc = subprocess.call([self.cfg["rrsync"], "-wo", "-no-lock", dest], env=env, cwd="/")
        if kind == "images":
            os.chmod(dest, 0o700)       # rsync gave it the source dir's mode
        if kind == "fs" and not self.marked(name) and self._real_dir(dest):
            _write(os.path.join(dest, MARKER), "")      # a --delete without the exclude took it
        return rc

    # -- pages: post-copy's page channel inside the SSH connection ------------------------------------
    def pages(self, name, rfd, wfd, errfile, accept_s=PAGES_ACCEPT_S):
        """Listen on 127.0.0.1 (a free port, told as ``LISTEN <port>`` on ``errfile``), accept ONE connection from a
        socket of our own uid, root's (the lazy-pages daemon the restore starts with ``--address 127.0.0.1 --port
        <port>``), and relay it to ``rfd``/``wfd``, this SSH session's stdin/stdout, where the source's criu page server sits
        (``--ps-socket``). So the pages travel encrypted inside the migration key's SSH connection, and nothing
        listens on the backhaul. Ends when the daemon's connection ends (every page arrived, or it died), when the
        source closes its side before a daemon came, or after ``accept_s`` without one."""
        self.image_dir(name, "images")          # a prepared migration only
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        _write(os.path.join(self.work(name), PAGES_PID), "%d\n" % os.getpid())
        _emit(errfile, "LISTEN %d\n" % port)
        self.log("pages %s: listening on 127.0.0.1:%d" % (name, port))
        early = []                              # anything the source sends before the daemon connects
        conn = None
        deadline = time.time() + accept_s
        try:
            while conn is None:
                left = deadline - time.time()
                if left <= 0:
                    self.log("pages %s: no lazy-pages daemon within %ss" % (name, accept_s))
                    return 1
                ready = select.select([listener, rfd], [], [], left)[0]
                if rfd in ready:
                    data = os.read(rfd, RELAY_CHUNK)
                    if not data:
                        return 0                # the source went away first
                    early.append(data)
                if listener in ready:
                    c, peer = listener.accept()
                    uid = tcp_owner_uid(peer, port)
                    if uid != os.geteuid():     # root's on an edge: the lazy-pages daemon, not a local user
                        self.log("pages %s: refused a connection from %s:%d (uid %s)" % (name, peer[0], peer[1], uid))
                        c.close()
                        continue
                    conn = c
            listener.close()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # small page requests go at once
            for data in early:
                conn.sendall(data)
            return self._relay(name, conn, rfd, wfd)
        finally:
            listener.close()
            if conn is not None:
                conn.close()
            _remove(os.path.join(self.work(name), PAGES_PID))

    def _relay(self, name, conn, rfd, wfd):
        sent = received = 0
        source_open = True
        while True:
            ready = select.select([conn] + ([rfd] if source_open else []), [], [])[0]
            if rfd in ready:
                data = os.read(rfd, RELAY_CHUNK)
                if data:
                    conn.sendall(data)
                    received += len(data)
                else:
                    source_open = False
                    conn.shutdown(socket.SHUT_WR)
            if conn in ready:
                data = conn.recv(RELAY_CHUNK)
                if not data:        # the daemon is done (or dead): the source's side ends with this session
                    break
                _write_all(wfd, data)
                sent += len(data)
        self.log("pages %s: relayed %d bytes to the source, %d from it" % (name, sent, received))
        return 0

    # -- session: framed requests on one connection -----------------------------------------------------
    def session(self, name, rfile, wfile):
        """Requests: a JSON line ``{"argv": [op, args...], "size": N}`` then N payload bytes (put's tar);
        answers: a JSON line ``{"rc", "out", "err"}``. The container is the session's. A refused request gets
        rc 126 and the session goes on; a broken frame ends it."""
        while True:
            line = rfile.readline(MAX_HEADER + 1)
            if not line:
                return 0
            try:
                if not line.endswith(b"\n"):
                    raise Refused("request header too long")
                req = json.loads(line.decode("utf-8"))
                argv, size = req.get("argv"), req.get("size", 0)
                if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)) or \
                        not isinstance(size, int) or not 0 <= size <= MAX_PAYLOAD:
                    raise Refused("bad request frame")
            except (ValueError, UnicodeDecodeError, AttributeError, Refused) as e:
                self.log("session %s: %s" % (name, e))
                _answer(wfile, REFUSED, "", "refused: %s" % e)
                return REFUSED
            payload = _read_exact(rfile, size)
            if payload is None:
                return REFUSED
            rc, out, err = self.dispatch_words(argv[:1] + [name] + argv[1:], io.BytesIO(payload), SESSION_OPS)
            self.unlock()
            if not _answer(wfile, rc, out, err):
                return 0

    def dispatch_words(self, words, stdin, allowed):
        try:
            op, name, pos, opts = parse(words)
            if op not in allowed:
                raise Refused("%s is not allowed here" % op)
        except Refused as e:
            self.log("refused %s" % e)
            return REFUSED, "", "refused: %s" % e
        return self.dispatch(op, name, pos, opts, stdin)

    def dispatch(self, op, name, pos, opts, stdin):
        out = Output()
        self.log("%s %s %s" % (op, name, " ".join(pos[:5])))
        try:
            rc = getattr(self, "op_" + op.replace("-", "_"))(name, pos, opts, out, stdin)
        except OpError as e:
            rc = e.rc
            out.error(str(e))
        except (OSError, tarfile.TarError, ValueError, KeyError) as e:
            rc = 1
            out.error("%s %s: %s: %s" % (op, name, type(e).__name__, e))
        finally:
            self.unlock()
        if rc != 0:
            self.log("%s %s: rc %s %s" % (op, name, rc, " ".join(out.err)[-300:]))
        return rc, out.text(), "".join(x + "\n" for x in out.err)


def _answer(wfile, rc, out, err):
    try:
        wfile.write(json.dumps({"rc": rc, "out": out, "err": err}).encode() + b"\n")
        wfile.flush()
        return True
    except (IOError, OSError):
        return False


def _read_exact(rfile, n):
    chunks, left = [], n
    while left:
        b = rfile.read(min(left, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def tcp_owner_uid(peer, port, proc_net="/proc/net/tcp"):
    """The uid owning the local TCP socket ``peer`` (address, port) connected to 127.0.0.1:``port``, from
    ``/proc/net/tcp`` (SO_PEERCRED exists only for UNIX sockets); None if not found."""
    want_local = ":%04X" % peer[1]
    want_remote = "0100007F:%04X" % port
    try:
        with open(proc_net) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 7 and parts[1].endswith(want_local) and parts[2] == want_remote:
                    return int(parts[7])
    except (IOError, OSError, ValueError):
        return None
    return None


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# tar and patch streams
# --------------------------------------------------------------------------------------------------

def _plain_rel(name, what):
    if not name or "\0" in name or name.startswith("/") or ".." in name.split("/"):
        raise OpError("%s %r: absolute or with '..': refused" % (what, name), REFUSED)
    return os.path.normpath(name)


def check_member(m, root, kind):
    """Refuse a tar member that would land (or link) outside ``root``; ``images`` takes plain files only,
    ``fs`` also directories, links inside, and devices."""
    rel = _plain_rel(m.name, "tar member")
    if rel == ".":
        if kind == "fs" and m.isdir():
            return None
        raise OpError("tar member %r: refused" % m.name, REFUSED)
    if kind == "images":
        if not m.isfile() or "/" in rel or not FILE_NAME_RE.fullmatch(rel):
            raise OpError("tar member %r: an image dir takes plain-named regular files only" % m.name, REFUSED)
    elif not (m.isfile() or m.isdir() or m.issym() or m.islnk() or m.ischr() or m.isblk() or m.isfifo()):
        raise OpError("tar member %r: unsupported type" % m.name, REFUSED)
    parent = os.path.realpath(os.path.join(root, os.path.dirname(rel)))
    if not _inside(parent, root):
        raise OpError("tar member %r: its directory leads outside (%s)" % (m.name, parent), REFUSED)
    if m.islnk():
        src_rel = _plain_rel(m.linkname, "hard link target")
        src = os.path.join(root, src_rel)
        if not _inside(os.path.realpath(os.path.dirname(src)), root) or \
                not stat.S_ISREG(os.lstat(src).st_mode):
            raise OpError("tar member %r: hard link to %r outside or not a regular file" % (m.name, m.linkname),
                          REFUSED)
        m.linkname = src_rel
    m.name = rel
    return m


_EXTRACT_KW = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def extract_tar(stream, dest, kind):
    """Extract a tar stream into ``dest`` member by member, each checked by :func:`check_member` first (a
    symlink already in place is replaced, never written through). Owners are kept by number for ``fs``; image
    files are root's, 0600. Returns ``(files, bytes)``."""
    root = os.path.realpath(dest)
    files = total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            if check_member(m, root, kind) is None:
                continue
            if kind == "images":
                m.uid = m.gid = 0
                m.uname = m.gname = "root"
                m.mode = 0o600
            target = os.path.join(root, m.name)
            try:
                st = os.lstat(target)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(target)
                elif not m.isdir():
                    raise OpError("tar member %r: a directory is in the way" % m.name)
            except FileNotFoundError:
                pass
            tar.extract(m, root, numeric_owner=True, **_EXTRACT_KW)
            files += 1
            total += m.size if m.isfile() else 0
    return files, total


def apply_patch(stream, dest, on_start=None):
    """Apply a page patch stream (``state_transfer``'s protocol, described there beside its encoder; constants
    shared from it) in ``dest``: per file ``<H name> <Q size>`` (PATCH_MAGIC: then ``<B aside> <H basis>``), then
    records up to ``END_OF_FILE``; ``<H 0>`` ends. A file not ``aside`` (every file of a PATCH_MAGIC_V1 stream)
    is patched in place by DATA records; an ``aside`` one is built as ``name`` + ``PART_SUFFIX`` from its basis
    (COPY records), or from nothing, and DATA records, and renamed over ``name`` once the stream has ended, so
    every basis is read before it is replaced. Names are plain, files opened without following links, 0600.
    Returns ``(files, data bytes)``."""
    def rd(n):
        b = _read_exact(stream, n)
        if b is None:
            raise OpError("page patch stream: short read")
        return b

    def plain(raw):
        fname = raw.decode("utf-8", "replace")
        if not FILE_NAME_RE.fullmatch(fname) or len(fname) + len(state_transfer.PART_SUFFIX) > 255:
            raise OpError("page patch: file name %r refused" % fname, REFUSED)
        return fname

    magic = rd(4)
    if magic not in (state_transfer.PATCH_MAGIC, state_transfer.PATCH_MAGIC_V1):
        raise OpError("not a page patch stream", REFUSED)
    v2 = magic == state_transfer.PATCH_MAGIC
    if on_start:
        on_start()
    dfd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    files = total = 0
    built = []      # (aside, name): renamed when the stream has ended
    try:
        while True:
            (nl,) = struct.unpack("<H", rd(2))
            if nl == 0:
                break
            fname = plain(rd(nl))
            (size,) = struct.unpack("<Q", rd(8))
            in_place, basis = True, ""
            if v2:
                aside, bl = struct.unpack("<BH", rd(3))
                in_place, basis = not aside, plain(rd(bl)) if bl else ""
            target = fname if in_place else fname + state_transfer.PART_SUFFIX
            try:
                fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | (0 if in_place else os.O_TRUNC),
                             0o600, dir_fd=dfd)
                bfd = os.open(basis, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd) if basis and not in_place else None
            except OSError as e:
                raise OpError("page patch: %s: %s" % (fname, e))
            try:
                if not all(stat.S_ISREG(os.fstat(f).st_mode) for f in (fd, bfd) if f is not None):
                    raise OpError("page patch: %s or its basis is not a regular file" % fname)
                basis_size = os.fstat(bfd).st_size if bfd is not None else 0
                while True:
                    off, ln = struct.unpack("<QI", rd(12))
                    if off == state_transfer.END_OF_FILE:
                        break
                    if v2 and off & state_transfer.COPY_FLAG:
                        (src,) = struct.unpack("<Q", rd(8))
                        dst = off & ~state_transfer.COPY_FLAG
                        if bfd is None or src + ln > basis_size or dst + ln > size:
                            raise OpError("page patch: %s: copy without a basis, or outside it or the file" % fname,
                                          REFUSED)
                        _copy_range(bfd, fd, src, dst, ln)
                        continue
                    if ln > MAX_PATCH_RECORD:
                        raise OpError("page patch: record of %d bytes refused" % ln, REFUSED)
                    os.pwrite(fd, rd(ln), off)
                    total += ln
                os.ftruncate(fd, size)
                os.fchmod(fd, 0o600)
            finally:
                if bfd is not None:
                    os.close(bfd)
                os.close(fd)
            if not in_place:
                built.append((target, fname))
            files += 1
        for aside, fname in built:
            os.rename(aside, fname, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)
    return files, total


def _copy_range(src_fd, dst_fd, src, dst, length, chunk=1 << 20):
    """Copy ``length`` bytes at ``src`` of ``src_fd`` (a basis) to ``dst`` of ``dst_fd`` (another file)."""
    pos = 0
    while pos < length:
        n = min(chunk, length - pos)
        data = os.pread(src_fd, n, src + pos)
        if len(data) != n:
            raise OpError("page patch: short read from the basis at %d" % (src + pos))
        os.pwrite(dst_fd, data, dst + pos)
        pos += n


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------

def load_config(path):
    """The root-owned receiver config (not writable by group or others) over :data:`DEFAULTS`."""
    st = os.stat(path)
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
        raise OpError("%s must be owned by root and writable by root only" % path)
    with open(path) as f:
        data = json.load(f)
    cfg = dict(DEFAULTS)
    cfg.update(data)
    for key in ("lxcpath", "python", "rrsync"):
        validate.abs_path(cfg[key], key)
    validate.command(cfg["criu"], "criu")
    return cfg


class Logger(object):
    def __init__(self, cfg):
        self.cfg = cfg
        self.peer = (os.environ.get("SSH_CONNECTION") or "local").split(" ")[0]
        self.syslog = None
        if cfg.get("syslog"):
            try:
                import syslog
                syslog.openlog("arnab-migrate-receiver", syslog.LOG_PID, syslog.LOG_AUTH)
                self.syslog = syslog
            except ImportError:
                pass

    def __call__(self, msg):
        line = "from %s: %s" % (self.peer, msg)
        line = re.sub(r"[\x00-\x1f\x7f]", "?", line)[:1000]
        if self.syslog is not None:
            self.syslog.syslog(self.syslog.LOG_INFO, line)
        if self.cfg.get("log_file"):
            try:
                with open(self.cfg["log_file"], "a") as f:
                    f.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), line))
            except (IOError, OSError):
                pass


def _emit(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except (IOError, OSError):
        pass


def main(argv=None, environ=None):
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    config_path = CONFIG_PATH
    if argv[:1] == ["--config"] and len(argv) == 2:
        config_path = argv[1]
    elif argv:
        sys.stderr.write("usage: arnab-migrate-receiver [--config FILE] (as an SSH forced command)\n")
        return REFUSED
    os.umask(0o077)
    try:
        cfg = load_config(config_path)
    except (OSError, ValueError, OpError, validate.ValidationError) as e:
        sys.stderr.write("refused: the receiver is not configured (%s)\n" % e)
        return REFUSED
    os.chdir("/")
    log = Logger(cfg)
    recv = Receiver(cfg, log)
    raw = environ.get("SSH_ORIGINAL_COMMAND") or ""
    try:
        if not raw.strip():
            raise Refused("no command: this key runs only the migration receiver")
        if validate.control_char(raw) or len(raw) > MAX_HEADER:
            raise Refused("control character or overlong command")
        try:
            words = shlex.split(raw)
        except ValueError as e:
            raise Refused("cannot split the command: %s" % e)
        if words and words[0] == "arnab-rsync":
            kind, name, subdir, command = parse_rsync(raw, words)
            log("rsync %s %s %s" % (kind, name, subdir or ""))
            try:
                return recv.rsync(kind, name, subdir, command)
            except OpError as e:
                sys.stderr.write("%s\n" % e)
                log("rsync %s %s: %s" % (kind, name, e))
                return e.rc
        op, name, pos, opts = parse(words)
    except Refused as e:
        log("refused %r: %s" % (raw[:200], e))
        sys.stderr.write("refused: %s\n" % e)
        return REFUSED
    if op == "pages":
        log("pages %s" % name)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        sys.stdout.flush()
        try:
            return recv.pages(name, sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr)
        except (OSError, OpError) as e:
            sys.stderr.write("pages %s: %s\n" % (name, e))
            log("pages %s: %s" % (name, e))
            return 1
    if op == "session":
        log("session %s" % name)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        return recv.session(name, sys.stdin.buffer, sys.stdout.buffer)
    rc, out, err = recv.dispatch(op, name, pos, opts, sys.stdin.buffer)
    _emit(sys.stdout, out)
    _emit(sys.stderr, err)
    return rc
