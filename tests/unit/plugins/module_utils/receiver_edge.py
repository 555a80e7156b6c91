"""A destination edge for the receiver's tests: a tmp lxcpath, fake lxc-*/criu/nsenter on PATH, the receiver
installed as the role installs it (beside copies of what it imports, started by a launcher), its config."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

from ansible_collections.arnab.testbed.plugins.module_utils import migrate_receiver as mr

from netns_standin import NO_SUCH_PID

MU = os.path.dirname(os.path.abspath(mr.__file__))
NAME = "ramsim"

FAKES = {
    "lxc-info": r"""#!/bin/sh
F=$(dirname "$0")/../fake
n=""; mode=""
while [ $# -gt 0 ]; do case "$1" in -n) n=$2; shift;; -sH) mode=s;; -pH) mode=p;; esac; shift; done
echo "lxc-info $n $mode" >> "$F/calls"
st=$(cat "$F/state-$n" 2>/dev/null) || { echo "$n doesn't exist" >&2; exit 1; }
if [ "$mode" = s ]; then echo "$st"; elif [ "$mode" = p ] && [ "$st" = RUNNING ]; then cat "$F/pid-$n"; fi
exit 0
""",
    "lxc-stop": r"""#!/bin/sh
F=$(dirname "$0")/../fake
echo "lxc-stop $*" >> "$F/calls"
while [ $# -gt 0 ]; do case "$1" in -n) n=$2; shift;; esac; shift; done
[ -f "$F/stop-fails" ] && exit 1
[ -f "$F/state-$n" ] && echo STOPPED > "$F/state-$n"
exit 0
""",
    "lxc-checkpoint": r"""#!/bin/sh
F=$(dirname "$0")/../fake
echo "lxc-checkpoint $*" >> "$F/calls"
[ -n "$CRIU_CONFIG_FILE" ] && cp "$CRIU_CONFIG_FILE" "$F/criu-config"
while [ $# -gt 0 ]; do case "$1" in -n) n=$2; shift;; -D) d=$2; shift;; esac; shift; done
[ -f "$F/restore-sleep" ] && sleep "$(cat "$F/restore-sleep")"
rc=$(cat "$F/restore-rc" 2>/dev/null || echo 0)
if [ "$rc" = 0 ]; then echo RUNNING > "$F/state-$n"; cat "$F/restored-pid" > "$F/pid-$n"
  # criu's post-restore hook, as criu runs it (sh -c SCRIPT), when a test asks for it
  a=$(sed -n 's/^action-script //p' "$CRIU_CONFIG_FILE" 2>/dev/null)
  [ -f "$F/run-hooks" ] && [ -n "$a" ] && CRTOOLS_SCRIPT_ACTION=post-restore \
      CRTOOLS_INIT_PID=$(cat "$F/restored-pid") sh -c "$a"
else echo "Error (criu/cr-restore.c:1): fake restore failure" > "$d/restore.log"; echo "lxc says no"; fi
exit "$rc"
""",
    "criu": r"""#!/bin/sh
F=$(dirname "$0")/../fake
echo "criu $*" >> "$F/calls"
case "$1" in
--version) echo "Version: 4.2.1"; exit 0;;
lazy-pages)
  while [ $# -gt 0 ]; do case "$1" in -D) d=$2; shift;; esac; shift; done
  [ -f "$F/lazy-never" ] && exit 1
  python3 -c 'import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); time.sleep(0.3)' \
      "$d/lazy-pages.socket"
  exit "$(cat "$F/lazy-rc" 2>/dev/null || echo 0)";;
esac
exit 0
""",
    "nsenter": r"""#!/bin/sh
F=$(dirname "$0")/../fake
echo "nsenter $*" >> "$F/calls"
exit 0
""",
}

CONFIG = """lxc.include = /usr/share/lxc/config/debian.common.conf
lxc.include = /etc/lxc/arnab-criu.conf
lxc.arch = amd64
lxc.uts.name = ramsim
lxc.rootfs.path = dir:{lxcpath}/ramsim/rootfs
lxc.pty.max = 1024
lxc.net.0.type = veth
lxc.net.0.link = br-data
lxc.net.0.flags = up
lxc.net.0.name = eth0
lxc.net.0.hwaddr = 02:ab:00:00:00:51
lxc.net.0.ipv4.address = 10.78.0.51/24
"""


class Edge(object):
    def __init__(self, root):
        self.root = str(root)
        self.lxcpath = os.path.join(self.root, "lxc")
        self.fake = os.path.join(self.root, "fake")
        self.bin = os.path.join(self.root, "bin")
        self.lib = os.path.join(self.root, "lib")
        self.outside = os.path.join(self.root, "outside")
        for d in (self.lxcpath, self.fake, self.bin, self.lib, self.outside):
            os.makedirs(d)
        for name, text in FAKES.items():
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        # the installed layout: the receiver beside copies of what it imports, and the role's launcher
        for name in ("migrate_receiver.py", "criu.py", "migration_guard.py", "state_transfer.py", "validate.py"):
            shutil.copy(os.path.join(MU, name), self.lib)
        self.launcher = os.path.join(self.lib, "arnab-migrate-receiver")
        with open(self.launcher, "w") as f:
            f.write("#!%s -I\nimport sys\nsys.path.insert(0, %r)\nimport migrate_receiver\n"
                    "sys.exit(migrate_receiver.main())\n" % (sys.executable, self.lib))
        os.chmod(self.launcher, 0o755)
        self.log = os.path.join(self.root, "receiver.log")
        self.config = os.path.join(self.root, "receiver.json")
        self.write_config()
        # the pid the fake restore gives the container: none that runs, unless a test puts a stand-in's here
        self.fake_file("restored-pid", "%d\n" % NO_SUCH_PID)

    def write_config(self, **kw):
        cfg = {"lxcpath": self.lxcpath, "path": self.bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "syslog": False,
               "log_file": self.log, "lock_wait_s": 3, "python": sys.executable}
        cfg.update(kw)
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        os.chmod(self.config, 0o600)

    def run(self, command, data=b"", timeout=60):
        env = {"PATH": "/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": command, "SSH_CONNECTION": "10.79.0.1 5555 10.79.0.2 22"}
        p = subprocess.run([self.launcher, "--config", self.config], input=data, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, check=False)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, command, data=b""):
        rc, out, err = self.run(command, data)
        assert rc == 0, (command, rc, out, err)
        return out

    def set_state(self, state, name=NAME):
        with open(os.path.join(self.fake, "state-" + name), "w") as f:
            f.write(state + "\n")

    def fake_file(self, name, text):
        with open(os.path.join(self.fake, name), "w") as f:
            f.write(text)

    def calls(self):
        try:
            with open(os.path.join(self.fake, "calls")) as f:
                return f.read()
        except IOError:
            return ""

    @property
    def work(self):
        return os.path.join(self.lxcpath, ".arnab-migrate", NAME)

    @property
    def cdir(self):
        return os.path.join(self.lxcpath, NAME)

    def prepared(self, config=None):
        self.ok("prepare " + NAME)
        os.makedirs(os.path.join(self.cdir, "rootfs", "etc"))
        with open(os.path.join(self.cdir, "config"), "w") as f:
            f.write(config if config is not None else CONFIG.format(lxcpath=self.lxcpath))
        return self


def tar_of(entries):
    """entries: (name, kind, data_or_target); kind file|dir|sym|lnk|chr|fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o644
            if kind == "file":
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                       "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "lnk"):
                ti.linkname = data
            if kind == "dir":
                ti.mode = 0o755
            if kind == "chr":
                ti.devmajor, ti.devminor = 1, 3
            tar.addfile(ti)
    return buf.getvalue()


def recv_exactly(sock, n):
    """Read exactly n bytes from a socket (a test fails if it closes first)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed after %d of %d bytes" % (len(data), n)
        data += chunk
    return data
