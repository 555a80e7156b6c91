"""Faithful mode: Debian guests under qemu TCG on the lab's networks (issue #6).

The host kernel has neither soft-dirty nor mac80211_hwsim; a Debian trixie guest kernel has both. This module
builds one guest image (lab/guest/build-image.sh: debootstrap + `mke2fs -d` + qcow2, cached under
/var/lib/arnab-lab/guest/images/<recipe hash>, rebuilt only when the recipe changes) and boots guests from it
under software emulation (`-accel tcg,tb-size=256 -cpu max -smp 1 -m 2048`, one qcow2 overlay per guest).

Networks (all on this machine; nothing leaves it):
- control: each guest's eth0 is a tap on the lab's control bridge (arnab-ctl, 10.77.0.0/24): SSH, Ansible.
- data: each edge guest's eth1 is a tap on the Linux bridge `arnabg-data`, which a veth joins to the data
  switch (OVS `br-data` in the `arnab-dsw` namespace), so the lab's client reaches containers in the guests.
  In the guest, eth1 is a port of `br-data` (the data IP is on the bridge), as on the namespace edges.
- backhaul: the edge guests' eth2 taps on the bridge `arnabg-bh`, shaped with tc tbf on each tap (both ways).

Every interface, bridge and file this module makes starts with `arnabg-` or lives under its run directory, so
`down` (and `up`, before it builds) removes leftovers of any earlier run.

CLI: PYTHONPATH=lab python -m arnab_lab.guest build|up|down|status|ssh|radio-csa [...] (one JSON object out).
"""
import argparse
import glob
import hashlib
import ipaddress
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUEST_SRC = os.path.join(REPO, "lab", "guest")
DEFAULT_INVENTORY = os.path.join(REPO, "inventories", "lab-guest")
LABCTL = os.path.join(REPO, "lab", "labctl")

STATE_DIR = "/var/lib/arnab-lab/guest"          # images (cached by recipe hash), .deb caches
RUN_DIR = "/run/arnab-lab/guest"                 # overlays, pid files, serial logs of running guests
LAB_KEY = "/var/lib/arnab-lab/ssh/lab_key"
TAP_PREFIX = "arnabg-"
DATA_BRIDGE = "arnabg-data"
BACKHAUL_BRIDGE = "arnabg-bh"
DSW_VETH_HOST = "arnabg-dsw"                    # root-namespace end, a port of arnabg-data
DSW_VETH_NS = "arnabg-guests"                   # the end in the data switch's namespace, a port of br-data
RECIPE_FILES = ["build-image.sh", "recipe.env", "files"]
QEMU = "qemu-system-x86_64"

# The TCG recipe (lab/guest/README.md): TCG with a bounded translation cache (0.7 GB RSS per
# guest instead of 3 GB), one vCPU (-smp 2 panicked once: cross-modifying code under multi-threaded TCG).
# la57=off: no 5-level paging. With plain `-cpu max` (qemu 7.2) an edge guest's kernel died once after 9 min of
# Ansible work with a double fault in the slab allocator's cmpxchg16b fast path, page tables 5-level.
QEMU_BASE = ["-machine", "q35", "-accel", "tcg,tb-size=256", "-cpu", "max,la57=off", "-smp", "1", "-m", "2048"]
# cgroup v1 as on the host (and CI): under cgroup v2 the LXC container's systemd holds a BPF device-control
# program (anon_inode:bpf-prog) that criu cannot dump. systemd 257 (trixie) boots v1 only with the FORCE flag.
KERNEL_ARGS = ["root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0", "apparmor=0", "mitigations=off",
               "quiet", "loglevel=4", "systemd.unified_cgroup_hierarchy=0", "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"]


class GuestError(RuntimeError):
    """Something the user can act on."""


# ----------------------------------------------------------------------------------------------------------
# pure parts (unit-tested)

def recipe_hash(src_dir=GUEST_SRC, mirror=""):
    """sha256 over every file of the recipe (path and bytes) and the mirror: the image cache key."""
    digest = hashlib.sha256()
    paths = []
    for name in RECIPE_FILES:
        path = os.path.join(src_dir, name)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                paths += [os.path.join(root, f) for f in sorted(files)]
        elif os.path.exists(path):
            paths.append(path)
        else:
            raise GuestError("recipe file missing: %s" % path)
    for path in paths:
        rel = os.path.relpath(path, src_dir)
        with open(path, "rb") as f:
            data = f.read()
        digest.update(b"%s\0%d\0" % (rel.encode(), len(data)))
        digest.update(data)
    digest.update(b"mirror\0" + mirror.encode())
    return digest.hexdigest()[:16]


def tap_name(guest, role):
    """arnabg-<guest>-<c|d|b>; at most 15 characters (IFNAMSIZ)."""
    name = "%s%s-%s" % (TAP_PREFIX, guest, role[0])
    if len(name) > 15:
        raise GuestError("guest name %r too long for its tap name %r" % (guest, name))
    return name


def mac_for(index, nic):
    """Stable locally administered MAC per guest index and NIC index (52:54:00 is qemu's own prefix)."""
    return "52:54:00:77:%02x:%02x" % (index & 0xFF, nic & 0xFF)


def kernel_cmdline(guest, pubkey=None):
    """Kernel command line: the recipe's root/console arguments plus what arnab-guest-init reads."""
    args = list(KERNEL_ARGS) + ["arnab.hostname=%s" % guest["name"]]
    for nic in guest["nics"]:
        dev = nic["dev"] if not nic.get("bridge") else "%s:%s" % (nic["bridge"], nic["dev"])
        args.append("arnab.if=%s,%s" % (dev, nic.get("addr") or "none"))
    if pubkey:
        parts = pubkey.split()
        args.append("arnab.sshkey=%s:%s" % (parts[0], parts[1]))
    return " ".join(args)


def qemu_argv(guest, image, run_dir, pubkey=None, qemu=QEMU):
    """The qemu command line of one guest (image: dict with vmlinuz, initrd)."""
    name = guest["name"]
    argv = [qemu, "-name", "arnab-guest-" + name] + QEMU_BASE + [
        "-kernel", image["vmlinuz"], "-initrd", image["initrd"],
        "-append", kernel_cmdline(guest, pubkey),
        "-drive", "file=%s/%s.qcow2,if=virtio,format=qcow2,cache=unsafe" % (run_dir, name),
    ]
    for i, nic in enumerate(guest["nics"]):
        dev_opts = "virtio-net-pci,netdev=n%d,mac=%s" % (i, nic["mac"])
        if nic.get("csum_off"):
            # The data path goes through Open vSwitch's userspace datapath: no partial checksums on that wire.
            dev_opts += ",csum=off,guest_csum=off"
        argv += ["-netdev", "tap,id=n%d,ifname=%s,script=no,downscript=no" % (i, nic["tap"]),
                 "-device", dev_opts]
    argv += ["-nographic", "-serial", "file:%s/%s.serial.log" % (run_dir, name), "-monitor", "none",
             "-pidfile", "%s/%s.pid" % (run_dir, name)]
    return argv


def tbf_argv(dev, rate):
    """tc tbf like the namespace lab's backhaul: burst = one 4 ms tick of traffic, at least 32 KiB."""
    bits = rate_bits(rate)
    burst = max(bits // 8 // 250, 32 * 1024)
    return ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", str(burst),
            "latency", "50ms"]


def rate_bits(rate):
    units = {"kbit": 10 ** 3, "mbit": 10 ** 6, "gbit": 10 ** 9, "bit": 1}
    for suffix, mult in units.items():
        if str(rate).lower().endswith(suffix):
            return int(float(str(rate)[:-len(suffix)]) * mult)
    raise GuestError("rate %r: use a tc rate such as 1gbit or 100mbit" % rate)


def guests_from_inventory(inv, include_radio=False):
    """The guests to run, from `ansible-inventory --list` of inventories/lab-guest.

    Hosts with `lab_guest: true` are edge guests: eth0 (control), eth1 (data, a port of br-data in the guest)
    and eth2 (backhaul, shaped). The radio guest (lab.guest.radio, not an inventory host: no play targets it)
    has eth0 only and is included only when asked for.
    """
    hostvars = inv.get("_meta", {}).get("hostvars", {})
    lab = next((hv["lab"] for hv in hostvars.values() if "lab" in hv), None)
    if lab is None:
        raise GuestError("the inventory has no 'lab' variable")
    ctl_len = ipaddress.ip_network(lab["control"]["cidr"]).prefixlen
    data_len = ipaddress.ip_network(lab["data"]["cidr"]).prefixlen
    gcfg = lab.get("guest", {})
    bh = gcfg.get("backhaul", {})
    bh_len = ipaddress.ip_network(bh.get("cidr", "10.79.0.4/30")).prefixlen
    guests = []
    for name in sorted(hostvars):
        hv = hostvars[name]
        if not hv.get("lab_guest"):
            continue
        index = int(hv.get("lab_guest_index", len(guests) + 1))
        nics = [{"role": "control", "dev": "eth0", "addr": "%s/%d" % (hv["ansible_host"], ctl_len),
                 "tap": tap_name(name, "control"), "mac": mac_for(index, 0), "bridge_host": lab["control"]["bridge"]},
                {"role": "data", "dev": "eth1", "bridge": "br-data",
                 "addr": "%s/%d" % (hv["data_ip"], data_len), "tap": tap_name(name, "data"),
                 "mac": mac_for(index, 1), "bridge_host": DATA_BRIDGE, "csum_off": True}]
        if hv.get("backhaul_ip"):
            nics.append({"role": "backhaul", "dev": "eth2", "addr": "%s/%d" % (hv["backhaul_ip"], bh_len),
                         "tap": tap_name(name, "backhaul"), "mac": mac_for(index, 2),
                         "bridge_host": BACKHAUL_BRIDGE, "rate": str(bh.get("rate", "100mbit"))})
        guests.append({"name": name, "role": "edge", "index": index, "ctl_ip": hv["ansible_host"], "nics": nics})
    radio = gcfg.get("radio")
    if include_radio and radio:
        name, index = radio.get("name", "radio"), int(radio.get("index", 9))
        guests.append({"name": name, "role": "radio", "index": index, "ctl_ip": radio["ctl_ip"],
                       "nics": [{"role": "control", "dev": "eth0", "addr": "%s/%d" % (radio["ctl_ip"], ctl_len),
                                 "tap": tap_name(name, "control"), "mac": mac_for(index, 0),
                                 "bridge_host": lab["control"]["bridge"]}]})
    return guests


# ----------------------------------------------------------------------------------------------------------
# running commands

def sh(argv, check=True, input=None, timeout=None):
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise GuestError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode,
                                                    (proc.stderr or proc.stdout).strip()[-2000:]))
    return proc.stdout


def log(msg):
    sys.stderr.write("%s guest: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def load_inventory(paths):
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    if not os.path.exists(exe):
        exe = "ansible-inventory"
    argv = [exe, "--list"]
    for p in paths:
        argv += ["-i", p]
    return json.loads(sh(argv))


def debian_mirror():
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    env = os.environ.get("ARNAB_GUEST_MIRROR")
    if env:
        return env
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        try:
            text = open(path).read()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1] \
                    and "debian" in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in line:
                uri = next(w for w in words[1:] if "://" in w)
                if "debian" in uri:
                    return uri
    return "http://deb.debian.org/debian"


# ----------------------------------------------------------------------------------------------------------
# image

def image_dir(digest):
    return os.path.join(STATE_DIR, "images", digest)


def image_paths(digest):
    d = image_dir(digest)
    return {"dir": d, "base": d + "/base.qcow2", "vmlinuz": d + "/vmlinuz", "initrd": d + "/initrd.img",
            "build": d + "/build.json"}


def build(force=False):
    """The image for the current recipe: cached, built when missing. Returns (changed, info)."""
    mirror = debian_mirror()
    digest = recipe_hash(mirror=mirror)
    paths = image_paths(digest)
    if not force and all(os.path.exists(paths[k]) for k in ("base", "vmlinuz", "initrd", "build")):
        return False, dict(paths, hash=digest, cached=True, recipe=json.load(open(paths["build"])))
    os.makedirs(os.path.dirname(paths["dir"]), exist_ok=True)
    log("building the guest image %s from %s (a few minutes)" % (digest, mirror))
    started = time.monotonic()
    proc = subprocess.run(["bash", os.path.join(GUEST_SRC, "build-image.sh"), paths["dir"], mirror],
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise GuestError("image build failed (rc=%d); logs in %s.tmp" % (proc.returncode, paths["dir"]))
    # Images of older recipes are removed unless a running guest still uses one.
    for old in glob.glob(os.path.join(STATE_DIR, "images", "*")):
        if os.path.basename(old) != digest and old != _running_image():
            sh(["rm", "-rf", old], check=False)
    info = dict(paths, hash=digest, cached=False, seconds=round(time.monotonic() - started, 1),
                recipe=json.load(open(paths["build"])))
    return True, info


def _running_image():
    return _read_state().get("image", {}).get("dir")


# ----------------------------------------------------------------------------------------------------------
# state of running guests

def _state_path():
    return os.path.join(RUN_DIR, "state.json")


def _read_state():
    try:
        with open(_state_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_state(state):
    os.makedirs(RUN_DIR, exist_ok=True)
    tmp = _state_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.replace(tmp, _state_path())


def _pid_of(name):
    """The qemu of guest NAME if it runs: pid from its pid file, checked against /proc (no name matching)."""
    try:
        pid = int(open(os.path.join(RUN_DIR, name + ".pid")).read().strip())
        cmdline = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"arnab-guest-" + name.encode() in cmdline else None


def _links():
    return {l["ifname"]: l for l in json.loads(sh(["ip", "-j", "-d", "link", "show"], check=False) or "[]")}


def _master(links, dev):
    return links.get(dev, {}).get("master")


def _ssh_ok(ip, timeout=3.0):
    """sshd answers with its banner (a TCP accept alone is not enough under emulation)."""
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _panicked(name):
    try:
        with open(os.path.join(RUN_DIR, name + ".serial.log"), errors="replace") as f:
            return "Kernel panic" in f.read()
    except OSError:
        return False


def ssh_argv(ip, command=None, key=LAB_KEY):
    argv = ["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15",
            "root@" + ip]
    if command is not None:
        argv.append(command if isinstance(command, str) else " ".join(shlex.quote(a) for a in command))
    return argv


def guest_ssh(ip, command, check=True, timeout=None, input=None):
    return sh(ssh_argv(ip, command), check=check, timeout=timeout, input=input)


def status(guests):
    """Per guest: running, SSH answering, taps attached; plus the shared plumbing."""
    links = _links()
    out = {}
    for g in guests:
        problems = []
        if not _pid_of(g["name"]):
            problems.append("qemu not running")
        for nic in g["nics"]:
            if nic["tap"] not in links:
                problems.append("tap %s missing" % nic["tap"])
            elif _master(links, nic["tap"]) != nic["bridge_host"]:
                problems.append("tap %s not on %s" % (nic["tap"], nic["bridge_host"]))
        if _panicked(g["name"]):
            problems.append("guest kernel panicked (see %s/%s.serial.log)" % (RUN_DIR, g["name"]))
        if not problems and not _ssh_ok(g["ctl_ip"]):
            problems.append("ssh not answering on %s" % g["ctl_ip"])
        out[g["name"]] = problems
    if any(g["role"] == "edge" for g in guests):
        if DSW_VETH_HOST not in links or _master(links, DSW_VETH_HOST) != DATA_BRIDGE:
            out.setdefault("data-switch", []).append("%s not on %s" % (DSW_VETH_HOST, DATA_BRIDGE))
    return out


# ----------------------------------------------------------------------------------------------------------
# up / down

def _ensure_namespace_lab():
    """The guests hang off the namespace lab's control bridge and data switch: bring it up if it is down
    (lab/labctl up is idempotent and leaves a healthy lab alone). Never with this variant's inventory."""
    out = sh([LABCTL, "status"], check=False)
    try:
        healthy = json.loads(out.strip().splitlines()[-1]).get("healthy")
    except (ValueError, IndexError):
        healthy = False
    if not healthy:
        log("the namespace lab is not up: lab/labctl up")
        sh([LABCTL, "up"])


def _ensure_bridge(name):
    links = _links()
    if name not in links:
        sh(["ip", "link", "add", name, "type", "bridge"])
        # No STP, no forwarding delay: guests must talk as soon as they boot.
        sh(["ip", "link", "set", name, "type", "bridge", "forward_delay", "0", "stp_state", "0"])
    sh(["ip", "link", "set", name, "up"])


def _ensure_dsw_link(prefix="arnab"):
    """veth arnabg-dsw (port of arnabg-data) <-> arnabg-guests (port of br-data in the data switch)."""
    netns = "%s-dsw" % prefix
    links = _links()
    if DSW_VETH_HOST not in links:
        sh(["ip", "link", "add", DSW_VETH_HOST, "type", "veth", "peer", "name", DSW_VETH_NS, "netns", netns])
    sh(["ip", "link", "set", DSW_VETH_HOST, "master", DATA_BRIDGE])
    # TCP through Open vSwitch's userspace datapath hangs with TX checksum offload on (as in the lab).
    sh(["ethtool", "-K", DSW_VETH_HOST, "tx", "off"], check=False)
    sh(["ip", "netns", "exec", netns, "ethtool", "-K", DSW_VETH_NS, "tx", "off"], check=False)
    sh(["ip", "link", "set", DSW_VETH_HOST, "up"])
    sh(["ip", "-n", netns, "link", "set", DSW_VETH_NS, "up"])
    sh([LABCTL, "exec", "dsw", "--", "ovs-vsctl", "--may-exist", "add-port", "br-data", DSW_VETH_NS])


def _plumb(guest):
    """Taps of one guest, made if missing and (re)attached to their bridges; backhaul taps shaped."""
    links = _links()
    for nic in guest["nics"]:
        tap = nic["tap"]
        if tap not in links:
            sh(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
        if _master(links, tap) != nic["bridge_host"]:
            sh(["ip", "link", "set", tap, "master", nic["bridge_host"]])
        if nic.get("rate"):
            # Egress of the tap = into this guest: with a tbf on each guest's tap both directions are shaped.
            sh(tbf_argv(tap, nic["rate"]))
        sh(["ip", "link", "set", tap, "up"])


def _spawn(argv, logfile, pidfile, wait=10.0):
    """Start qemu in its own session (-nographic needs a foreground process: no -daemonize), detached from us;
    wait for its pid file."""
    with open(logfile, "w") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait
    while not os.path.exists(pidfile):
        if proc.poll() is not None:
            raise GuestError("qemu exited at once (rc=%s): %s" % (proc.returncode, open(logfile).read()[-2000:]))
        if time.monotonic() > deadline:
            raise GuestError("qemu wrote no pid file %s in %ds" % (pidfile, wait))
        time.sleep(0.1)
    return proc.pid


def _gone(pid):
    """Exited (a zombie child of this process counts: it is reaped here)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _kill(pid, wait=10.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _gone(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _stop_guest(name):
    pid = _pid_of(name)
    if pid:
        _kill(pid)
    links = _links()
    for role in ("control", "data", "backhaul"):
        tap = tap_name(name, role)
        if tap in links:
            sh(["ip", "link", "del", tap], check=False)
    for suffix in (".qcow2", ".pid", ".qemu.log"):
        path = os.path.join(RUN_DIR, name + suffix)
        if os.path.exists(path):
            os.unlink(path)


def up(guests, image, timeout=600.0):
    """Make GUESTS run (idempotent: a running, reachable guest with its taps in place is left alone).
    Returns (changed, details)."""
    if not guests:
        raise GuestError("no guests to start")
    os.makedirs(RUN_DIR, exist_ok=True)
    if not os.path.exists(LAB_KEY + ".pub"):
        raise GuestError("no lab key %s.pub: run lab/labctl up first" % LAB_KEY)
    pubkey = open(LAB_KEY + ".pub").read().strip()
    state = _read_state()
    state.setdefault("guests", {})
    if state.get("image", {}).get("hash") not in (None, image["hash"]):
        # A running guest of an older image: restart everything on the new one.
        for name in list(state["guests"]):
            _stop_guest(name)
        state["guests"] = {}
    state["image"] = {"hash": image["hash"], "dir": image["dir"]}
    _ensure_bridge(DATA_BRIDGE)
    _ensure_bridge(BACKHAUL_BRIDGE)
    if any(g["role"] == "edge" for g in guests):
        _ensure_dsw_link()
    before = status(guests)
    started, kept = [], []
    t0 = time.monotonic()
    for g in guests:
        _plumb(g)
        # Reattachable: a tap that lost its bridge (the namespace lab was rebuilt), sshd still booting. A tap
        # that is gone cannot be given back to a running qemu: that guest restarts.
        fixable = [p for p in before[g["name"]] if " not on " in p or p.startswith("ssh ")]
        if _pid_of(g["name"]) and len(fixable) == len(before[g["name"]]):
            kept.append(g["name"])
            continue
        _stop_guest(g["name"])
        _plumb(g)
        overlay = os.path.join(RUN_DIR, g["name"] + ".qcow2")
        sh(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image["base"], overlay])
        serial = os.path.join(RUN_DIR, g["name"] + ".serial.log")
        if os.path.exists(serial):
            os.unlink(serial)
        _spawn(qemu_argv(g, image, RUN_DIR, pubkey), os.path.join(RUN_DIR, g["name"] + ".qemu.log"),
               os.path.join(RUN_DIR, g["name"] + ".pid"))
        started.append(g["name"])
        state["guests"][g["name"]] = {"ctl_ip": g["ctl_ip"], "role": g["role"], "started": time.time()}
        _write_state(state)
    _write_state(state)
    ready = {}
    deadline = time.monotonic() + timeout
    pending = list(guests)
    while pending:
        for g in list(pending):
            if not _pid_of(g["name"]):
                raise GuestError("guest %s died while booting; see %s/%s.serial.log"
                                 % (g["name"], RUN_DIR, g["name"]))
            if _ssh_ok(g["ctl_ip"]):
                ready[g["name"]] = round(time.monotonic() - t0, 1)
                pending.remove(g)
        if pending and time.monotonic() > deadline:
            raise GuestError("no SSH after %ds on: %s (serial logs in %s)"
                             % (timeout, ", ".join(g["name"] for g in pending), RUN_DIR))
        if pending:
            time.sleep(1.0)
    # sshd answers before it accepts the key only if arnab-guest-init has not run: check a real login.
    for g in guests:
        deadline = time.monotonic() + 120
        while True:
            proc = subprocess.run(ssh_argv(g["ctl_ip"], "true"), capture_output=True, text=True)
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise GuestError("guest %s: SSH login with the lab key fails: %s" % (g["name"], proc.stderr.strip()))
            time.sleep(2)
        ready[g["name"]] = round(time.monotonic() - t0, 1)
        if g["role"] == "edge":
            _install_lab_key(g)
    return bool(started), {"started": started, "kept": kept, "ssh_ready_s": ready, "image": image["hash"]}


def _install_lab_key(g):
    """Namespace edges see the controller's files, so playbooks give the lab key's controller path to modules
    that run ON an edge (playbooks/migrate_container.yml: the source edge logs in to the destination with it).
    Guest edges get the same key at the same path: lab only, the guests are reachable from this machine only."""
    key = open(LAB_KEY).read()
    guest_ssh(g["ctl_ip"], "umask 077; mkdir -p %s && cat > %s"
              % (shlex.quote(os.path.dirname(LAB_KEY)), shlex.quote(LAB_KEY)), input=key)
    guest_ssh(g["ctl_ip"], "cat > %s.pub" % shlex.quote(LAB_KEY), input=open(LAB_KEY + ".pub").read())


def down(names=None):
    """Stop guests (all, or NAMES) and remove their taps and overlays; with all of them gone, also the bridges,
    the data-switch link and every other arnabg-* interface. Safe on leftovers of any run."""
    state = _read_state()
    known = set(state.get("guests", {}))
    for path in glob.glob(os.path.join(RUN_DIR, "*.pid")):
        known.add(os.path.basename(path)[:-4])
    targets = sorted(known if names is None else set(names))
    for name in targets:
        _stop_guest(name)
        state.get("guests", {}).pop(name, None)
    removed = list(targets)
    if not state.get("guests"):
        probe_client_down()
        links = _links()
        if DSW_VETH_HOST in links and os.path.exists("/run/netns/arnab-dsw"):
            sh([LABCTL, "exec", "dsw", "--", "ovs-vsctl", "--if-exists", "del-port", "br-data", DSW_VETH_NS],
               check=False)
        for dev in sorted(links):
            if dev.startswith(TAP_PREFIX):
                sh(["ip", "link", "del", dev], check=False)
                removed.append(dev)
        for path in glob.glob(os.path.join(RUN_DIR, "*.qcow2")):
            os.unlink(path)
        if os.path.exists(_state_path()):
            os.unlink(_state_path())
    else:
        _write_state(state)
    return removed


# ----------------------------------------------------------------------------------------------------------
# a stand-in data client

PROBE_NS = "arnabg-client"
PROBE_VETH = "arnabg-cl"


def probe_client_up(addr):
    """A client namespace on the guests' data bridge (ADDR like 10.78.0.130/24), for when the lab's client1 has
    no air link (the emulated radio decides that). Returns the argv prefix that runs a command in it."""
    if not os.path.exists("/run/netns/" + PROBE_NS):
        sh(["ip", "netns", "add", PROBE_NS])
    if PROBE_VETH not in _links():
        sh(["ip", "link", "add", PROBE_VETH, "type", "veth", "peer", "name", "eth0", "netns", PROBE_NS])
    sh(["ip", "link", "set", PROBE_VETH, "master", DATA_BRIDGE, "up"])
    sh(["ip", "-n", PROBE_NS, "addr", "replace", addr, "dev", "eth0"])
    sh(["ip", "-n", PROBE_NS, "link", "set", "eth0", "up"])
    sh(["ip", "-n", PROBE_NS, "link", "set", "lo", "up"])
    return ["ip", "netns", "exec", PROBE_NS]


def probe_client_down():
    if PROBE_VETH in _links():
        sh(["ip", "link", "del", PROBE_VETH], check=False)
    if os.path.exists("/run/netns/" + PROBE_NS):
        for pid in sh(["ip", "netns", "pids", PROBE_NS], check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        sh(["ip", "netns", "del", PROBE_NS], check=False)


# ----------------------------------------------------------------------------------------------------------
# the radio measurement (issue #6 c)

def radio_csa(guest, reps=10, cs_count=5, interval_ms=10):
    """Run lab/guest/csa_measure.py in the radio guest; returns its JSON report."""
    script = open(os.path.join(GUEST_SRC, "csa_measure.py")).read()
    guest_ssh(guest["ctl_ip"], "cat > /root/csa_measure.py", input=script)
    out = guest_ssh(guest["ctl_ip"], ["python3", "/root/csa_measure.py", "--reps", str(reps),
                                      "--cs-count", str(cs_count), "--interval-ms", str(interval_ms)],
                    timeout=120 + reps * 30)
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------
# CLI

def _select(guests, names):
    if not names:
        return guests
    wanted = names.split(",")
    chosen = [g for g in guests if g["name"] in wanted]
    missing = set(wanted) - {g["name"] for g in chosen}
    if missing:
        raise GuestError("unknown guests: %s (known: %s)" % (", ".join(sorted(missing)),
                                                              ", ".join(g["name"] for g in guests)))
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m arnab_lab.guest", description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", "-i", action="append",
                        help="inventory source (repeatable; default %s)" % DEFAULT_INVENTORY)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the guest image unless the cache has it").add_argument(
        "--force", action="store_true")
    p_up = sub.add_parser("up", help="boot the edge guests (and/or the radio guest) and wait for SSH")
    p_up.add_argument("--guests", help="comma-separated guest names (default: the edge guests)")
    p_up.add_argument("--radio", action="store_true", help="the radio guest too (or only, with --guests radio)")
    p_up.add_argument("--timeout", type=float, default=600)
    p_down = sub.add_parser("down", help="stop guests, remove taps, bridges, overlays")
    p_down.add_argument("--guests", help="comma-separated guest names (default: all)")
    p_st = sub.add_parser("status")
    p_st.add_argument("--radio", action="store_true")
    p_csa = sub.add_parser("radio-csa", help="boot the radio guest, measure the CSA gap, stop it")
    p_csa.add_argument("--reps", type=int, default=10)
    p_csa.add_argument("--cs-count", type=int, default=5)
    p_csa.add_argument("--interval-ms", type=int, default=10)
    p_csa.add_argument("--keep", action="store_true", help="leave the radio guest running")
    p_csa.add_argument("--out", help="also write the report (JSON) here")
    args = parser.parse_args(argv)

    t0 = time.monotonic()
    try:
        if args.command == "build":
            changed, details = build(force=args.force)
        elif args.command == "down":
            removed = down(args.guests.split(",") if args.guests else None)
            changed, details = bool(removed), {"removed": removed}
        else:
            inv = load_inventory(args.inventory or [DEFAULT_INVENTORY])
            include_radio = getattr(args, "radio", False) or args.command == "radio-csa"
            guests = guests_from_inventory(inv, include_radio=include_radio)
            if args.command == "status":
                found = status(guests)
                changed, details = False, {"healthy": not any(found.values()), "problems": found}
            elif args.command == "up":
                if args.guests:
                    guests = _select(guests, args.guests)
                elif not args.radio:
                    guests = [g for g in guests if g["role"] == "edge"]
                _ensure_namespace_lab()
                _, image = build()
                changed, details = up(guests, image, timeout=args.timeout)
            else:  # radio-csa
                radio = [g for g in guests if g["role"] == "radio"]
                if not radio:
                    raise GuestError("the inventory has no lab.guest.radio")
                _ensure_namespace_lab()
                _, image = build()
                try:
                    _, boot = up(radio, image, timeout=args.timeout if hasattr(args, "timeout") else 600)
                    details = radio_csa(radio[0], reps=args.reps, cs_count=args.cs_count,
                                        interval_ms=args.interval_ms)
                    details["boot"] = boot
                finally:
                    if not args.keep:
                        down([radio[0]["name"]])
                changed = True
                if args.out:
                    with open(args.out, "w") as f:
                        json.dump(details, f, indent=1)
    except (GuestError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    details.update(changed=changed, seconds=round(time.monotonic() - t0, 1))
    print(json.dumps(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())
