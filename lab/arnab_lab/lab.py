"""Bring the emulated lab up and down: namespaces, veths, bridges, Open vSwitch instances, sshd.

`up` is idempotent: a healthy lab that matches the inventory is left alone (changed=False); anything else,
leftovers of an earlier run included, is removed and built afresh. A failure while building removes what
was made, so nothing is left half-made. `down` removes everything with the lab's prefix, also after a
failed run.
"""
import hashlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import time

from arnab_lab import topology as topo_mod

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # lab/, holds the arnab_lab package

# Runtime files (namespace files, pid files, sockets; gone at reboot) live under Topology.run_dir
# (/run/arnab-lab), persistent ones (keys, per-node state such as edge containers) under Topology.state_dir.
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
REQUIRED_TOOLS = ["ip", "tc", "ethtool", "unshare", "nsenter", "tini", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
                  "ovs-ofctl", "ovsdb-tool", "ssh-keygen", "/usr/sbin/sshd"]
SSHD_CONFIG = """# arnab lab sshd (one per host namespace)
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
HostKey {host_key}
MaxStartups 100:30:200
MaxSessions 100
"""


RADIO_DOWN = "the emulated radio is not running"


class LabError(RuntimeError):
    """Something the user can act on."""


def sh(argv, check=True, input=None):
    """Run argv; return stdout. Raise LabError with the command's stderr on failure."""
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode,
                                                  (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def node_dirs(topo, node):
    return {"run": "%s/nodes/%s" % (topo.run_dir, node), "state": "%s/nodes/%s" % (topo.state_dir, node)}


def ns_dir(topo):
    return topo.run_dir + "/ns"


def state_file(topo):
    return topo.run_dir + "/state.json"


def lab_key(topo):
    """The key Ansible logs in with (the inventory's ansible_ssh_private_key_file)."""
    return topo.state_dir + "/ssh/lab_key"


def host_key(topo):
    return topo.state_dir + "/ssh/ssh_host_ed25519_key"


def ns_files(topo, node):
    return "%s/%s.mnt" % (ns_dir(topo), node), "%s/%s.uts" % (ns_dir(topo), node)


def in_node(topo, node, argv):
    """argv run inside a node's network, mount and UTS namespaces."""
    mnt, uts = ns_files(topo, node)
    return ["nsenter", "--net=/run/netns/" + topo.netns(node), "--mount=" + mnt, "--uts=" + uts, "--"] + argv


def in_netns(topo, node, argv):
    return ["ip", "netns", "exec", topo.netns(node)] + argv


def _bind_mounts(topo, node):
    """(host dir, path in the node) pairs that make a node's files its own."""
    d = node_dirs(topo, node.name)
    # /tmp stays the host's: the lab's code may live there (a CI clone), and nodes run it (the emulated click).
    binds = [(d["state"] + "/root-ssh", "/root/.ssh")]
    if node.ovs_bridge:
        binds += [(d["state"] + "/ovs-etc", "/etc/openvswitch"), (d["run"] + "/ovs-run", "/run/openvswitch"),
                  (d["run"] + "/ovs-log", "/var/log/openvswitch")]
    if node.kind == "edge":
        binds += [(d["state"] + "/lxc", "/var/lib/lxc"), (d["state"] + "/etc-lxc", "/etc/lxc")]
    if node.kind == "ap":
        # The agent's configuration and the AP's own tools (the emulated `click`).
        binds += [(d["state"] + "/etc-odin", "/etc/odin"), (d["run"] + "/bin", "/usr/local/bin")]
    return binds


# --------------------------------------------------------------------------------------------------------------
# status

def _alive(pidfile):
    """The process named in pidfile runs. A zombie does not count: this machine's init may never reap it."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def _mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


SSHD_DOWN = "sshd not running"


def problems(topo):
    """What is missing or dead in the lab; [] means healthy and matching the inventory."""
    found = []
    try:
        with open(state_file(topo)) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return ["no lab state at %s" % state_file(topo)]
    if state.get("fingerprint") != _fingerprint(topo):
        found.append("the inventory changed since the lab was built")
    if not _alive(topo.run_dir + "/radio.pid"):
        # A new radio would not know which agent holds which vAP (agents announce themselves when they start):
        # like any other dead part, it makes `up` rebuild the lab.
        found.append(RADIO_DOWN)
    existing = set(list_netns(topo.prefix))
    for node in topo.nodes.values():
        if topo.netns(node.name) not in existing:
            found.append("%s: network namespace missing" % node.name)
            continue
        if not all(_mounted(f) for f in ns_files(topo, node.name)):
            found.append("%s: mount/UTS namespace missing" % node.name)
        run = node_dirs(topo, node.name)["run"]
        if node.ssh_host and not _alive(run + "/sshd.pid"):
            found.append("%s: %s" % (node.name, SSHD_DOWN))
        if node.ovs_bridge and not (_alive(run + "/ovs-run/ovsdb-server.pid")
                                    and _alive(run + "/ovs-run/ovs-vswitchd.pid")):
            found.append("%s: Open vSwitch not running" % node.name)
    return found


def _fingerprint(topo):
    return hashlib.sha256(topo.fingerprint().encode()).hexdigest()


def list_netns(prefix):
    out = sh(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


# --------------------------------------------------------------------------------------------------------------
# down

def down(topo):
    """Remove every namespace, mount, process, veth and bridge the lab made. Safe on a partial lab."""
    removed = []
    for name in list_netns(topo.prefix):
        node = name[len(topo.prefix) + 1:]
        if node in topo.nodes and topo.nodes[node].kind == "edge":
            _stop_containers(topo, node)
        for pid in sh(["ip", "netns", "pids", name], check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        removed.append(name)
    if os.path.isdir(ns_dir(topo)):
        for entry in os.listdir(ns_dir(topo)):
            path = os.path.join(ns_dir(topo), entry)
            if _mounted(path):
                sh(["umount", "-l", path], check=False)
    # Deleting a namespace destroys its veths and their peers, but only once nothing pins it any more, and then
    # asynchronously: the control veths' root-namespace ends go now, or an `up` right after a session whose
    # processes were killed (CI over our leftovers) finds them still there ("File exists").
    for node in topo.nodes:
        outside = topo_mod.control_veth_name(topo, node)
        if os.path.exists("/sys/class/net/" + outside):
            sh(["ip", "link", "del", outside], check=False)
            removed.append(outside)
    for name in list_netns(topo.prefix):
        sh(["ip", "netns", "del", name], check=False)
    # The control bridge lives in the root namespace.
    if os.path.exists("/sys/class/net/" + topo.control_bridge):
        sh(["ip", "link", "del", topo.control_bridge], check=False)
        removed.append(topo.control_bridge)
    _stop_ssh_masters(topo)
    _kill_pidfile(topo.run_dir + "/radio.pid")
    if os.path.exists(state_file(topo)):
        os.unlink(state_file(topo))
    sh(["rm", "-rf", topo.run_dir + "/nodes"], check=False)
    return removed


def _kill_pidfile(pidfile):
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    if os.path.exists(pidfile):
        os.unlink(pidfile)


def _stop_containers(topo, node):
    """Containers have their own network namespaces: `ip netns pids` does not see them."""
    mnt = ns_files(topo, node)[0]
    if not _mounted(mnt):
        return
    running = sh(in_node(topo, node, ["lxc-ls", "-1", "--running"]), check=False).split()
    frozen = sh(in_node(topo, node, ["lxc-ls", "-1", "--frozen"]), check=False).split()
    for name in set(running + frozen):
        sh(in_node(topo, node, ["timeout", "20", "lxc-stop", "-k", "-n", name]), check=False)


def _stop_ssh_masters(topo):
    """Ansible's ControlPersist masters would outlive the lab and confuse the next one: stop the ssh
    processes of the control node that hold a connection into this lab's control network."""
    net = ipaddress.ip_network(topo.control_cidr)
    for line in sh(["ss", "-Htnp"], check=False).splitlines():
        fields = line.split()
        if len(fields) < 6 or '"ssh"' not in fields[-1]:
            continue
        peer = fields[4].rsplit(":", 1)[0].strip("[]")
        try:
            inside = ipaddress.ip_address(peer) in net
        except ValueError:
            continue
        if inside:
            for pid in re.findall(r"pid=(\d+)", fields[-1]):
                sh(["kill", pid], check=False)


# --------------------------------------------------------------------------------------------------------------
# up

def up(topo):
    """Make the lab match the inventory. Returns (changed, details)."""
    missing = [t for t in REQUIRED_TOOLS if not _which(t)]
    if missing:
        raise LabError("missing tools: %s (run `make setup`)" % ", ".join(missing))
    if topo.agent == "real":
        real_click(topo)   # refuse before anything is made: real mode needs a Click build
    found = problems(topo)
    if not found:
        return False, {"status": "already up"}
    dead_sshd = [n for n in topo.nodes.values() if "%s: %s" % (n.name, SSHD_DOWN) in found]
    if len(dead_sshd) == len(found):
        # only listeners are gone (a drill stops one): start them again, the nodes and their containers stay
        for node in dead_sshd:
            _start_sshd(topo, node)
        _wait_ssh(topo)
        return True, {"status": "repaired", "reasons": found}
    leftovers = down(topo)
    _check_conflicts(topo)
    try:
        _build(topo)
    except BaseException:
        down(topo)
        raise
    return True, {"status": "built", "reasons": found, "removed_leftovers": leftovers}


def _which(tool):
    if os.path.isabs(tool):
        return os.access(tool, os.X_OK)
    return any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")
               + ["/usr/sbin", "/sbin"])


def _check_conflicts(topo):
    """Refuse to build over addresses or names that something else on this machine already uses."""
    routes = json.loads(sh(["ip", "-j", "route", "show", "table", "all"], check=False) or "[]")
    ours = ipaddress.ip_network
    for route in routes:
        dst, dev = route.get("dst"), route.get("dev", "")
        if not dst or dst == "default" or dev.startswith(topo.prefix) or route.get("type") in ("broadcast", "local"):
            continue
        try:
            net = ours(dst, strict=False)
        except ValueError:
            continue
        for cidr in topo.cidrs:
            if net.version == 4 and net.overlaps(ours(cidr)):
                raise LabError("address range %s is already in use on this machine (route %s dev %s); "
                               "change lab.*.cidr in the inventory" % (cidr, dst, dev))
    if os.path.exists("/sys/class/net/" + topo.control_bridge):
        raise LabError("interface %s already exists and is not the lab's; change lab.control.bridge"
                       % topo.control_bridge)


def _build(topo):
    started = time.monotonic()
    for d in (topo.run_dir, ns_dir(topo), os.path.dirname(lab_key(topo))):
        os.makedirs(d, exist_ok=True)
    _keys(topo)
    _private_mount(ns_dir(topo))
    with open(topo.run_dir + "/sshd_config", "w") as f:
        f.write(SSHD_CONFIG.format(host_key=host_key(topo)))

    sh(["ip", "link", "add", topo.control_bridge, "type", "bridge"])
    sh(["ip", "addr", "add", "%s/%d" % (topo.control_node_ip, topo_mod._prefix_len(topo.control_cidr)),
        "dev", topo.control_bridge])
    sh(["ip", "link", "set", topo.control_bridge, "up"])

    for node in topo.nodes.values():
        _make_node(topo, node)
    for i, link in enumerate(topo.links):
        _make_link(topo, i, link)
    for node in topo.nodes.values():
        _configure_addresses(topo, node)
    for node in topo.nodes.values():
        if node.ovs_bridge:
            _start_ovs(topo, node)
    _start_radio(topo)
    for node in topo.nodes_of("ap"):
        _install_click_shim(topo, node)
    for node in topo.nodes.values():
        if node.ssh_host:
            _start_sshd(topo, node)
    _wait_ssh(topo)
    with open(state_file(topo), "w") as f:
        json.dump({"fingerprint": _fingerprint(topo), "built_s": round(time.monotonic() - started, 2)}, f)


def _keys(topo):
    for key, comment in ((lab_key(topo), topo.prefix + "-lab"), (host_key(topo), topo.prefix + "-lab-host")):
        if not os.path.exists(key):
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key])


def _private_mount(path):
    """`unshare --mount=FILE` needs FILE on a private mount."""
    if not _mounted(path):
        sh(["mount", "--bind", path, path])
    sh(["mount", "--make-private", path])


def _make_node(topo, node):
    ns = topo.netns(node.name)
    sh(["ip", "netns", "add", ns])
    sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    dirs = node_dirs(topo, node.name)
    binds = _bind_mounts(topo, node)
    os.makedirs(dirs["run"], exist_ok=True)    # pid files and logs of the node's daemons
    for host_dir, dummy in binds:
        os.makedirs(host_dir, exist_ok=True)
    ssh_dir = dirs["state"] + "/root-ssh"
    os.chmod(ssh_dir, 0o700)
    _install_authorized_key(topo, ssh_dir)
    # The mount and UTS namespaces are made here and pinned to files; the shell sets them up once.
    setup = ["hostname %s" % node.name, "mount -t sysfs sysfs /sys"]
    if node.kind == "edge":
        # /run on a tmpfs of its own, as on a real Debian host: criu keeps its kernel-feature cache
        # (/run/criu.kdat) only on a tmpfs, else every dump and restore probes the kernel again (~25 ms each, frozen
        # time); LXC's /run/lxc is then the edge's own too. The lab's run dir (sshd's pid file) stays visible.
        hold = dirs["state"] + "/.run-hold"
        os.makedirs(hold, exist_ok=True)
        setup += ["mount --bind %s %s" % (topo.run_dir, hold), "mount -t tmpfs -o mode=0755,size=64m arnab-run /run",
                  "mkdir -p %s /run/sshd" % topo.run_dir, "mount --move %s %s" % (hold, topo.run_dir)]
    setup += ["mount --bind %s %s" % (src, dst) for src, dst in binds if os.path.isdir(dst) or _mkdir(dst)]
    mnt, uts = ns_files(topo, node.name)
    for f in (mnt, uts):
        open(f, "a").close()
    sh(["unshare", "--mount=" + mnt, "--uts=" + uts, "--propagation", "private",
        "nsenter", "--net=/run/netns/" + ns, "--", "sh", "-ec", "; ".join(setup)])
    if node.ctl_ip:
        outside = topo_mod.control_veth_name(topo, node.name)
        sh(["ip", "link", "add", outside, "type", "veth", "peer", "name", "ctl0", "netns", ns])
        sh(["ip", "link", "set", outside, "master", topo.control_bridge, "up"])
        sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (node.ctl_ip, topo_mod._prefix_len(topo.control_cidr)),
            "dev", "ctl0"])
        sh(["ip", "-n", ns, "link", "set", "ctl0", "up"])


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return True


def _install_authorized_key(topo, ssh_dir):
    with open(lab_key(topo) + ".pub") as f:
        lab_pub = f.read().strip()
    path = os.path.join(ssh_dir, "authorized_keys")
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    if lab_pub not in lines:
        with open(path, "a") as f:
            f.write(lab_pub + "\n")
    os.chmod(path, 0o600)


def _make_link(topo, index, link):
    """A veth pair made in the root namespace under temporary names, then moved and renamed."""
    tmp_a, tmp_b = "%sv%da" % (topo.prefix, index), "%sv%db" % (topo.prefix, index)
    (node_a, if_a), (node_b, if_b) = link.a, link.b
    sh(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
    for tmp, node, ifname in ((tmp_a, node_a, if_a), (tmp_b, node_b, if_b)):
        ns = topo.netns(node)
        sh(["ip", "link", "set", tmp, "netns", ns])
        sh(["ip", "-n", ns, "link", "set", tmp, "name", ifname])
        # TCP through Open vSwitch's userspace datapath hangs with TX checksum offload on.
        sh(in_netns(topo, node, ["ethtool", "-K", ifname, "tx", "off"]))
        if link.rate:
            _shape(topo, node, ifname, link.rate)
        sh(["ip", "-n", ns, "link", "set", ifname, "up"])


def _shape(topo, node, ifname, rate):
    """tbf at `rate`; the burst is one 4 ms tick of traffic so short bursts stay close to the rate."""
    bits = rate_bits(rate)
    burst = max(bits // 8 // 250, 32 * 1024)
    sh(in_netns(topo, node, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", rate,
                             "burst", str(burst), "latency", "50ms"]))


def rate_bits(rate):
    """tc rate ('1gbit', '100mbit') -> bits per second."""
    units = {"kbit": 10 ** 3, "mbit": 10 ** 6, "gbit": 10 ** 9, "bit": 1}
    for suffix, mult in units.items():
        if rate.lower().endswith(suffix):
            return int(float(rate[:-len(suffix)]) * mult)
    raise LabError("backhaul rate %r: use a tc rate such as 1gbit or 100mbit" % rate)


def _configure_addresses(topo, node):
    ns = topo.netns(node.name)
    data_len = topo_mod._prefix_len(topo.data_cidr)
    if node.kind == "edge":
        # Containers join the data network through the edge's own bridge.
        sh(["ip", "-n", ns, "link", "add", "br-data", "type", "bridge"])
        sh(["ip", "-n", ns, "link", "set", "eth1", "master", "br-data"])
        sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (node.vars["data_ip"], data_len), "dev", "br-data"])
        sh(["ip", "-n", ns, "link", "set", "br-data", "up"])
        if "backhaul_ip" in node.vars:
            sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (node.vars["backhaul_ip"],
                                                          topo_mod._prefix_len(topo.backhaul_cidr)), "dev", "bh0"])
    elif node.kind == "client":
        if node.vars.get("client_mac"):
            sh(["ip", "-n", ns, "link", "set", "wlan0", "address", node.vars["client_mac"]])
        sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (node.vars["data_ip"], data_len), "dev", "wlan0"])


def _start_ovs(topo, node):
    """One ovsdb-server + ovs-vswitchd per switch node, userspace datapath (no OVS kernel module here)."""
    def run(argv):
        return sh(in_node(topo, node.name, argv))

    db = "/etc/openvswitch/conf.db"
    run(["rm", "-f", db])
    run(["ovsdb-tool", "create", db, OVS_SCHEMA])
    run(["ovsdb-server", db, "--remote=punix:/run/openvswitch/db.sock", "--pidfile", "--detach",
         "--log-file=/var/log/openvswitch/ovsdb-server.log"])
    run(["ovs-vsctl", "--no-wait", "init"])
    run(["ovs-vswitchd", "--pidfile", "--detach", "--log-file=/var/log/openvswitch/ovs-vswitchd.log"])
    br = node.ovs_bridge
    ports = sorted({ifname for link in topo.links for (n, ifname) in (link.a, link.b)
                    if n == node.name and ifname != "ctl0"})
    if node.kind == "ap":
        ports = ["ap", "eth1"]
    cmd = ["ovs-vsctl", "--", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure"]
    for port in ports:
        cmd += ["--", "add-port", br, port]
    if node.ctl_ip:
        # Lets ovs-ofctl on the control node manage the switch: tcp:<control IP>:<openflow_port>.
        cmd += ["--", "set-controller", br, "ptcp:%d:%s" % (topo.openflow_port, node.ctl_ip)]
    run(cmd)
    if node.kind in ("ap", "dsw"):
        run(["ovs-ofctl", "add-flow", br, "priority=0,actions=NORMAL"])


def radio_socket(topo):
    return topo.run_dir + "/radio.sock"


def _lab_python():
    """The interpreter that runs the lab's emulations (the venv's, with the collection's dependencies)."""
    import sys
    return sys.executable


def _start_radio(topo):
    """The emulated radio (root namespace) owns br-air's flows: who hears whom, channel switches."""
    _kill_pidfile(topo.run_dir + "/radio.pid")
    inv = topo.run_dir + "/inventory.json"
    with open(inv, "w") as f:
        json.dump(topo.inventory, f)
    log = open(topo.run_dir + "/radio.log", "a")
    proc = subprocess.Popen([_lab_python(), "-m", "arnab_lab.radio", "--inventory-json", inv,
                             "--socket", radio_socket(topo),
                             "--air", "unix:%s/ovs-run/br-air.mgmt" % node_dirs(topo, topo_mod.AIR)["run"]],
                            cwd=LAB_DIR, env=dict(os.environ, PYTHONPATH=LAB_DIR), stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with open(topo.run_dir + "/radio.pid", "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + 10
    while not os.path.exists(radio_socket(topo)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError("the emulated radio did not start: see %s/radio.log" % topo.run_dir)
        time.sleep(0.05)


CLICK_SHIM = """#!/bin/sh
# EMULATED Click for the arnab lab: `click CONFIG.cli` runs the lab's emulated Odin agent (arnab_lab.odin_agent),
# which reads the same Click configuration a real OpenWrt AP would run. Made by lab/labctl.
[ -n "$1" ] || {{ echo "usage: click [-q] CONFIG.cli" >&2; exit 64; }}
# click -q [CONFIG]: load and check, do not run (stdin without CONFIG), as odin_agent_config does before a write.
[ "$1" = -q ] && exec env PYTHONPATH={lab} {python} -m arnab_lab.odin_agent --check --config "${{2:--}}"
[ -r "$1" ] || {{ echo "click: cannot read $1" >&2; exit 66; }}
# The emulation runs with the lab's Python; Ansible on the AP has none (the inventory's interpreter is void).
exec env PYTHONPATH={lab} {python} -m arnab_lab.odin_agent --config "$1" --bind {ip} --radio {radio} --name {name}
"""


REAL_CLICK_SHIM = """#!/bin/sh
# REAL Click for the arnab lab (lab.agent: real): `click CONFIG.cli` runs real Click with the OdinAgent element on
# the AP's configuration, its radio side idle and its serving radio's frames sent to the emulated radio
# (arnab_lab.real_agent). Made by lab/labctl.
[ -n "$1" ] || {{ echo "usage: click [-q] CONFIG.cli" >&2; exit 64; }}
# click -q [CONFIG]: real Click loads and checks (stdin without CONFIG), as odin_agent_config does before a write.
[ "$1" = -q ] && {{ shift; exec {click} -q "$@"; }}
[ -r "$1" ] || {{ echo "click: cannot read $1" >&2; exit 66; }}
exec env PYTHONPATH={lab} {python} -m arnab_lab.real_agent --click {click} --config "$1" --radio {radio} \\
    --node-dir {node_dir} --name {name}
"""


def real_click(topo):
    """The Click binary with OdinAgent that `lab.agent: real` runs: lab.click, else $ARNAB_CLICK, else the
    checkout's build/click (`make click`)."""
    lab = next((hv["lab"] for hv in topo.inventory.get("_meta", {}).get("hostvars", {}).values() if "lab" in hv), {})
    path = lab.get("click") or os.environ.get("ARNAB_CLICK") or os.path.join(os.path.dirname(LAB_DIR), "build", "click")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise LabError("lab.agent: real needs real Click with OdinAgent at %s: run `make click` (docs/click.md), "
                       "or set lab.click or ARNAB_CLICK" % path)
    return os.path.realpath(path)


def _install_click_shim(topo, node):
    path = node_dirs(topo, node.name)["run"] + "/bin/click"
    if topo.agent == "real":
        from arnab_lab import real_agent
        node_dir = node_dirs(topo, node.name)["run"]
        with open(node_dir + "/bin/hostapd_cli", "w") as f:
            f.write(real_agent.HOSTAPD_CLI.format(log=node_dir + "/hostapd_cli.log"))
        os.chmod(node_dir + "/bin/hostapd_cli", 0o755)
        with open(path, "w") as f:
            f.write(REAL_CLICK_SHIM.format(lab=LAB_DIR, python=_lab_python(), click=real_click(topo),
                                           radio="%s:%d" % (topo.control_node_ip, real_agent.FRAMES_PORT),
                                           node_dir=node_dir, name=node.name))
        os.chmod(path, 0o755)
        return
    with open(path, "w") as f:
        f.write(CLICK_SHIM.format(lab=LAB_DIR, python=_lab_python(), ip=node.ctl_ip,
                                  radio=radio_socket(topo), name=node.name))
    os.chmod(path, 0o755)


def _start_sshd(topo, node):
    """sshd under tini as a child subreaper: daemons started over SSH (the AP's agent, say) are reaped when
    they exit, as a real host's init would do; this machine's init leaves them as zombies that `kill -0`
    still finds alive."""
    run = node_dirs(topo, node.name)["run"]
    os.makedirs("/run/sshd", exist_ok=True)
    with open(run + "/sshd.log", "a") as log:
        subprocess.Popen(in_node(topo, node.name, ["tini", "-s", "--", "/usr/sbin/sshd", "-D", "-e",
                                                   "-f", topo.run_dir + "/sshd_config",
                                                   "-o", "PidFile=" + run + "/sshd.pid"]),
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def _wait_ssh(topo, timeout=15):
    """sshd daemonizes before it listens: wait until every host accepts TCP on port 22."""
    import socket
    deadline = time.monotonic() + timeout
    pending = [n for n in topo.nodes.values() if n.ssh_host]
    while pending:
        still = []
        for node in pending:
            try:
                socket.create_connection((node.ctl_ip, 22), timeout=0.5).close()
            except OSError:
                still.append(node)
        pending = still
        if pending and time.monotonic() > deadline:
            raise LabError("sshd did not come up on: %s" % ", ".join(n.name for n in pending))
        if pending:
            time.sleep(0.1)
