"""Pure parts of arnab_lab.guest: recipe hash (the image cache key), qemu argv, kernel command line, taps."""
import json
import os
import shutil
import subprocess

import pytest

from arnab_lab import guest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture
def recipe(tmp_path):
    src = tmp_path / "guest"
    shutil.copytree(guest.GUEST_SRC, src, ignore=shutil.ignore_patterns("csa_measure.py", "__pycache__"))
    return src


def test_recipe_hash_is_stable_and_keyed_on_the_recipe(recipe):
    first = guest.recipe_hash(str(recipe), mirror="http://m/debian")
    assert first == guest.recipe_hash(str(recipe), mirror="http://m/debian")
    assert len(first) == 16
    assert guest.recipe_hash(str(recipe), mirror="http://other/debian") != first
    (recipe / "recipe.env").write_text((recipe / "recipe.env").read_text() + "\n# changed\n")
    second = guest.recipe_hash(str(recipe), mirror="http://m/debian")
    assert second != first
    (recipe / "files" / "extra").write_text("x")
    assert guest.recipe_hash(str(recipe), mirror="http://m/debian") != second


def test_recipe_hash_ignores_files_outside_the_recipe(recipe):
    first = guest.recipe_hash(str(recipe))
    (recipe / "csa_measure.py").write_text("# runs in the radio guest, copied at run time")
    (recipe / "README.txt").write_text("notes")
    assert guest.recipe_hash(str(recipe)) == first


def test_recipe_hash_needs_the_recipe(tmp_path):
    with pytest.raises(guest.GuestError):
        guest.recipe_hash(str(tmp_path))


def test_tap_names_fit_ifnamsiz():
    assert guest.tap_name("edge1", "control") == "arnabg-edge1-c"
    assert guest.tap_name("edge2", "backhaul") == "arnabg-edge2-b"
    assert guest.tap_name("radio", "control") == "arnabg-radio-c"
    with pytest.raises(guest.GuestError):
        guest.tap_name("averylongname", "data")


def test_macs_are_distinct_and_local():
    macs = {guest.mac_for(i, n) for i in (1, 2, 9) for n in (0, 1, 2)}
    assert len(macs) == 9
    assert all(m.startswith("52:54:00:77:") for m in macs)


def _inventory():
    out = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-inventory"), "--list", "-i",
                          os.path.join(REPO, "inventories", "lab-guest")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("ansible-inventory not available: %s" % out.stderr[-200:])
    return json.loads(out.stdout)


INV = {
    "_meta": {"hostvars": {
        "edge1": {"ansible_host": "10.77.0.31", "data_ip": "10.78.0.31", "backhaul_ip": "10.79.0.5",
                  "lab_guest": True, "lab_guest_index": 1,
                  "lab": {"control": {"cidr": "10.77.0.0/24", "bridge": "arnab-ctl"}, "data": {"cidr": "10.78.0.0/24"},
                          "guest": {"backhaul": {"cidr": "10.79.0.4/30", "rate": "100mbit"},
                                    "radio": {"name": "radio", "ctl_ip": "10.77.0.41", "index": 9}}}},
        "edge2": {"ansible_host": "10.77.0.32", "data_ip": "10.78.0.32", "backhaul_ip": "10.79.0.6",
                  "lab_guest": True, "lab_guest_index": 2},
        "ap1": {"ansible_host": "10.77.0.11"},
    }}
}


def test_guests_from_inventory():
    guests = guest.guests_from_inventory(INV)
    assert [g["name"] for g in guests] == ["edge1", "edge2"]
    e1 = guests[0]
    assert [(n["dev"], n["addr"], n["tap"], n["bridge_host"]) for n in e1["nics"]] == [
        ("eth0", "10.77.0.31/24", "arnabg-edge1-c", "arnab-ctl"),
        ("eth1", "10.78.0.31/24", "arnabg-edge1-d", "arnabg-data"),
        ("eth2", "10.79.0.5/30", "arnabg-edge1-b", "arnabg-bh"),
    ]
    assert e1["nics"][2]["rate"] == "100mbit"
    assert e1["nics"][1]["bridge"] == "br-data"
    with_radio = guest.guests_from_inventory(INV, include_radio=True)
    radio = with_radio[-1]
    assert radio["role"] == "radio" and radio["ctl_ip"] == "10.77.0.41"
    assert [n["tap"] for n in radio["nics"]] == ["arnabg-radio-c"]


def test_the_repo_inventory_describes_two_edge_guests_and_a_radio():
    guests = guest.guests_from_inventory(_inventory(), include_radio=True)
    assert sorted(g["name"] for g in guests if g["role"] == "edge") == ["edge1", "edge2"]
    assert [g["ctl_ip"] for g in guests if g["role"] == "radio"] == ["10.77.0.41"]


def test_kernel_cmdline():
    g = guest.guests_from_inventory(INV)[0]
    line = guest.kernel_cmdline(g, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc arnab-lab")
    words = line.split()
    for w in ("root=/dev/vda", "rw", "console=ttyS0", "net.ifnames=0", "apparmor=0", "arnab.hostname=edge1",
              "arnab.if=eth0,10.77.0.31/24", "arnab.if=br-data:eth1,10.78.0.31/24", "arnab.if=eth2,10.79.0.5/30",
              "arnab.sshkey=ssh-ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIabc"):
        assert w in words
    assert "arnab-lab" not in words          # no comment: the command line is split on spaces
    assert len(line) < 2048                  # x86 COMMAND_LINE_SIZE


def test_qemu_argv_follows_the_recipe():
    g = guest.guests_from_inventory(INV)[0]
    image = {"vmlinuz": "/img/vmlinuz", "initrd": "/img/initrd.img"}
    argv = guest.qemu_argv(g, image, "/run/x", pubkey="ssh-ed25519 AAAA c")
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    for part in ("-accel tcg,tb-size=256", "-cpu max,la57=off", "-smp 1", "-m 2048", "-machine q35", "-nographic",
                 "-serial file:/run/x/edge1.serial.log", "-kernel /img/vmlinuz", "-initrd /img/initrd.img",
                 "file=/run/x/edge1.qcow2,if=virtio,format=qcow2"):
        assert part in joined
    assert "-enable-kvm" not in argv and "kvm" not in joined
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == ["tap,id=n0,ifname=arnabg-edge1-c,script=no,downscript=no",
                       "tap,id=n1,ifname=arnabg-edge1-d,script=no,downscript=no",
                       "tap,id=n2,ifname=arnabg-edge1-b,script=no,downscript=no"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "csum=off" in devices[1] and "csum=off" not in devices[0]
    assert argv[argv.index("-append") + 1] == guest.kernel_cmdline(g, "ssh-ed25519 AAAA c")


def test_tbf_argv_and_rates():
    assert guest.tbf_argv("arnabg-edge1-b", "100mbit") == [
        "tc", "qdisc", "replace", "dev", "arnabg-edge1-b", "root", "tbf", "rate", "100mbit",
        "burst", "50000", "latency", "50ms"]
    assert guest.rate_bits("1gbit") == 10 ** 9
    assert guest.tbf_argv("x", "1mbit")[10] == str(32 * 1024)
    with pytest.raises(guest.GuestError):
        guest.rate_bits("fast")


def test_ssh_argv_uses_the_lab_key():
    argv = guest.ssh_argv("10.77.0.31", ["criu", "check", "--feature", "mem_dirty_track"])
    assert argv[:3] == ["ssh", "-i", guest.LAB_KEY]
    assert argv[-2:] == ["root@10.77.0.31", "criu check --feature mem_dirty_track"]
