"""The emulated lab's life cycle, on a second lab instance (prefix `arnabt`, its own address ranges) so the
main lab is left alone. Needs root and the packages `make setup` installs."""
import json
import os
import shutil
import subprocess
import time

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABCTL = os.path.join(REPO, "lab", "labctl")
PREFIX = "arnabt"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The lab inventory with another prefix and 10.97-99.x instead of 10.77-79.x."""
    inv = tmp_path_factory.mktemp("inv")
    shutil.copytree(os.path.join(REPO, "inventories", "lab"), inv, dirs_exist_ok=True)
    for path in (inv / "hosts.yml", inv / "group_vars" / "all" / "lab.yml"):
        text = path.read_text().replace("10.77.", "10.97.").replace("10.78.", "10.98.").replace("10.79.", "10.99.")
        text = text.replace("prefix: arnab ", "prefix: %s " % PREFIX).replace("bridge: arnab-ctl", "bridge: arnabt-ctl")
        text = text.replace("/var/lib/arnab-lab/", "/var/lib/%s-lab/" % PREFIX)
        path.write_text(text)
    yield str(inv)
    labctl(str(inv), "down")


def labctl(inv, *args):
    proc = subprocess.run([LABCTL, "--inventory", inv] + list(args), capture_output=True, text=True, check=False)
    return proc.returncode, json.loads(proc.stdout or "{}")


def hosts(inv):
    data = yaml.safe_load(open(os.path.join(inv, "hosts.yml")))
    return {h: hv["ansible_host"] for group in data["all"]["children"].values() for h, hv in group["hosts"].items()}


def ssh(inv, ip, command):
    key = "/var/lib/%s-lab/ssh/lab_key" % PREFIX
    return subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "root@" + ip,
                           command], capture_output=True, text=True, timeout=20, check=False)


def lab_netns():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX + "-")]


def test_up_is_idempotent_and_every_host_answers_over_ssh(inventory):
    started = time.monotonic()
    rc, first = labctl(inventory, "up")
    print("lab up: %.1f s" % (time.monotonic() - started))
    assert rc == 0, first
    assert first["changed"] is True
    for name, ip in hosts(inventory).items():
        result = ssh(inventory, ip, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name          # each host has its own UTS namespace
    rc, second = labctl(inventory, "up")
    assert rc == 0 and second["changed"] is False


def test_each_edge_has_its_own_lxc_dir(inventory):
    ips = hosts(inventory)
    marker = "made-on-edge1-%d" % os.getpid()
    assert ssh(inventory, ips["edge1"], "touch /var/lib/lxc/%s" % marker).returncode == 0
    assert ssh(inventory, ips["edge1"], "ls /var/lib/lxc").stdout.split().count(marker) == 1
    assert marker not in ssh(inventory, ips["edge2"], "ls /var/lib/lxc").stdout
    assert not os.path.exists("/var/lib/lxc/" + marker)


def test_up_repairs_a_broken_lab(inventory):
    """A dead sshd (or any leftover of an earlier run) makes `up` rebuild, and the lab works again."""
    pidfile = "/run/%s-lab/nodes/edge2/sshd.pid" % PREFIX
    os.kill(int(open(pidfile).read()), 9)
    rc, status = labctl(inventory, "status")
    assert status["healthy"] is False and "edge2: sshd not running" in status["problems"]
    rc, result = labctl(inventory, "up")
    assert rc == 0 and result["changed"] is True
    assert ssh(inventory, hosts(inventory)["edge2"], "true").returncode == 0


def test_down_removes_everything_and_up_after_down_works(inventory):
    started = time.monotonic()
    rc, result = labctl(inventory, "down")
    print("lab down: %.1f s" % (time.monotonic() - started))
    assert rc == 0
    assert lab_netns() == []
    assert not os.path.exists("/sys/class/net/%s-ctl" % PREFIX)
    leftovers = subprocess.run(["pgrep", "-f", "/run/%s-lab/" % PREFIX], capture_output=True, text=True, check=False)
    assert leftovers.stdout == ""
    rc, result = labctl(inventory, "up")
    assert rc == 0 and result["changed"] is True
    assert ssh(inventory, hosts(inventory)["client1"], "true").returncode == 0


def test_an_address_range_in_use_is_refused_and_nothing_is_made(inventory):
    labctl(inventory, "down")
    # Something else on this machine holds an address in the lab's data range.
    subprocess.run(["ip", "link", "add", "squat0", "type", "veth", "peer", "name", "squat1"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.98.0.200/24", "dev", "squat0"], check=True)
        subprocess.run(["ip", "link", "set", "squat0", "up"], check=True)
        rc, result = labctl(inventory, "up")
        assert rc == 1
        assert "10.98.0.0/24 is already in use" in result["msg"]
        assert lab_netns() == []
        assert not os.path.exists("/sys/class/net/%s-ctl" % PREFIX)
    finally:
        subprocess.run(["ip", "link", "del", "squat0"], check=False)
