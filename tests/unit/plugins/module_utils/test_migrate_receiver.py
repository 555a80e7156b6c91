"""The migration receiver (module_utils/migrate_receiver.py), run for real as the forced command would run it: the
installed layout (the receiver beside copies of criu.py, state_transfer.py and validate.py, started by a launcher
like the role's), SSH_ORIGINAL_COMMAND set, a tmp lxcpath and fake lxc-*/criu/nsenter on PATH. rsync goes through
a real local rsync whose remote shell is a wrapper that sets SSH_ORIGINAL_COMMAND (no sshd)."""
import contextlib
import io
import json
import os
import shutil
import stat
import struct
import socket
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu
from ansible_collections.arnab.testbed.plugins.module_utils import migrate_receiver as mr
from ansible_collections.arnab.testbed.plugins.module_utils import precopy
from ansible_collections.arnab.testbed.plugins.module_utils import state_transfer as st

from netns_standin import ADDRESS, NO_SUCH_PID, in_netns, restored_container
from receiver_edge import CONFIG, NAME, Edge, recv_exactly, tar_of


@pytest.fixture
def edge(tmp_path):
    return Edge(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# refusals: every payload is refused (126) before anything runs, and logged
# ---------------------------------------------------------------------------------------------------------------
MARK = "{m}"
REFUSED_COMMANDS = [
    "", "   ", "bash -i", "sh -c 'touch {m}'", "touch {m}", "probe", "ping",
    "probe $(touch {m})", "probe `touch {m}`", "probe ramsim;touch {m}", "probe 'ramsim;touch {m}'",
    "probe \"ramsim$(touch {m})\"", "probe ramsim\ntouch {m}", "probe ramsim\rtouch {m}", "probe ramsim && touch {m}",
    "probe ramsim | touch {m}", "prepare ../etc", "prepare /etc", "prepare .arnab-migrate", "prepare ..",
    "prepare -rf", "prepare ramsim/../x", "status ramsim extra", "status ramsim --dir images", "status ramsim --",
    "probe ramsim --token ../x", "probe ramsim --token /etc/passwd", "probe ramsim --link 'br;touch {m}'",
    "probe ramsim --link", "restore ramsim", "restore ramsim --ifname 'eth0;touch {m}'",
    "restore ramsim --ifname '$(touch {m})'", "restore ramsim --ifname eth0 --ifname eth1",
    "restore ramsim --ifname eth0 --lazy", "restore ramsim --ifname eth0 --lazy --address 10.0.0.1",
    "restore ramsim --ifname eth0 --address 10.0.0.1 --port 27100",
    "restore ramsim --ifname eth0 --lazy --address '10.0.0.1;touch {m}' --port 1",
    "restore ramsim --ifname eth0 --lazy --address 10.0.0.1 --port 0",
    "restore ramsim --ifname eth0 --timeout 99999", "restore ramsim --ifname eth0 --timeout -1",
    "restore ramsim --ifname eth0 --dir ../../etc", "restore ramsim --ifname eth0 --dir /tmp",
    "restore ramsim --ifname eth0 --criu-option x", "rm ramsim", "rm ramsim ../x", "rm ramsim /etc/passwd",
    "rm ramsim images/x", "rm ramsim .ssh", "rm ramsim --dir ../.. x", "rm ramsim '$(touch {m})'",
    "put ramsim", "put ramsim /", "put ramsim fs extra", "put ramsim rootfs/../../", "patch ramsim --dir ..",
    "session ramsim x", "session", "rsync --server . /", "rsync --server -logDtpre.iLsfxC . /root/.ssh/",
    "arnab-rsync", "arnab-rsync fs ramsim sh -c 'touch {m}'", "arnab-rsync fs ../x rsync --server . .",
    "arnab-rsync fs ramsim rsync --server --sender -logDtpre.iLsfxC . /",
    "arnab-rsync images ramsim ../x rsync --server . .", "arnab-rsync images ramsim /x rsync --server . .",
    "arnab-rsync fs 'ramsim' rsync --server -logDtpre.iLsfxC . .",
    "arnab-rsync fs ramsim  rsync --server -logDtpre.iLsfxC . .",
    "arnab-rsync etc ramsim rsync --server . .", "arnab-rsync fs ramsim rsync",
    "arnab-rsync fs ramsim;touch {m} rsync --server . .",
    "tls ramsim extra", "tls ramsim --dir images", "restore ramsim --ifname eth0 --tls",
    "restore ramsim --ifname eth0 --lazy --address 10.0.0.1 --port 27100 --tls x",
    "restore ramsim --ifname eth0 --local", "restore ramsim --ifname eth0 --lazy --local --address 10.0.0.1 --port 1",
    "restore ramsim --ifname eth0 --lazy --local --tls", "restore ramsim --ifname eth0 --lazy --local x",
    "restore ramsim --ifname eth0 --lazy --local --local",
    "patch ramsim --dir final --parent ../it-1", "patch ramsim --dir final --parent images",
    "patch ramsim --dir final --parent 'it-1;touch {m}'", "patch ramsim --dir final --parent '$(touch {m})'",
    "patch ramsim --dir final --parent it-1/..", "patch ramsim --dir it-2 --parent it-2", "patch ramsim --parent",
]


@pytest.mark.parametrize("command", REFUSED_COMMANDS)
def test_refused(edge, command):
    mark = os.path.join(edge.root, "PWNED")
    rc, out, err = edge.run(command.replace(MARK, mark))
    assert rc == 126, (rc, out, err)
    assert out == "" and err.startswith("refused:") and err.count("\n") == 1
    assert not os.path.exists(mark)
    assert "refused" in open(edge.log).read()
    assert "lxc-" not in edge.calls() and "criu" not in edge.calls()
    assert os.listdir(edge.lxcpath) == []


def test_unconfigured_or_unsafe_config_is_refused(edge):
    os.chmod(edge.config, 0o666)
    rc, _out, err = edge.run("probe ramsim")
    assert rc == 126 and "not configured" in err
    os.remove(edge.config)
    rc, _out, err = edge.run("probe ramsim")
    assert rc == 126 and "not configured" in err
    edge.write_config(lxcpath="relative/path")
    assert edge.run("probe ramsim")[0] == 126


def test_arguments_are_only_for_the_config():
    assert mr.main(["--help"], {}) == 126
    assert mr.main(["--config"], {}) == 126


def test_parse_words():
    assert mr.parse(["restore", "ramsim", "--ifname", "eth0", "--lazy", "--address", "10.79.0.1", "--port", "27100",
                     "--timeout", "60", "--verbose", "--dir", "final"]) == (
        "restore", "ramsim", [], {"--ifname": "eth0", "--lazy": True, "--address": "10.79.0.1", "--port": 27100,
                                  "--timeout": 60, "--verbose": True, "--dir": "final"})
    assert mr.parse(["rm", "ramsim", "pages-1.img", "core-1.img"])[2] == ["pages-1.img", "core-1.img"]
    assert mr.parse(["put", "ramsim", "fs"])[2] == ["fs"]
    with pytest.raises(mr.Refused):
        mr.parse(["restore", "ramsim", "--ifname", "-eth0"])


def test_parse_rsync_keeps_the_clients_own_text():
    raw = "arnab-rsync images ramsim it-3 rsync --server -logDtpre.iLsfxCIvu --delete . ./"
    kind, name, subdir, cmd = mr.parse_rsync(raw, raw.split())
    assert (kind, name, subdir) == ("images", "ramsim", "it-3")
    assert cmd == "rsync --server -logDtpre.iLsfxCIvu --delete . ./"
    raw = "arnab-rsync fs ramsim --server -a . ./"
    assert mr.parse_rsync(raw, raw.split())[3] == "rsync --server -a . ./"


# ---------------------------------------------------------------------------------------------------------------
# probe, prepare, status, commit, logs, rm
# ---------------------------------------------------------------------------------------------------------------

def test_probe(edge):
    with open(os.path.join(edge.lxcpath, ".arnab-probe-1-2"), "w"):
        pass
    res = json.loads(edge.ok("probe ramsim --link lo --token .arnab-probe-1-2"))
    assert res["criu_version"] == "4.2.1" and res["criu_ok"] and res["state"] == "ABSENT"
    assert res["lxc_checkpoint"] == os.path.join(edge.bin, "lxc-checkpoint")
    assert res["bridge"] is True and res["token_found"] is True and res["exists_unmarked"] is False
    st_ = os.stat(edge.lxcpath)
    assert res["lxcpath_id"] == [st_.st_dev, st_.st_ino]
    res = json.loads(edge.ok("probe ramsim --link nosuchbr0 --token .arnab-probe-9"))
    assert res["bridge"] is False and res["token_found"] is False
    os.makedirs(edge.cdir)
    with open(os.path.join(edge.cdir, "config"), "w"):
        pass
    edge.set_state("STOPPED")
    res = json.loads(edge.ok("probe ramsim"))
    assert res["exists_unmarked"] is True and res["state"] == "STOPPED" and "bridge" not in res


def test_prepare_makes_private_dirs_and_the_marker(edge):
    assert edge.ok("prepare ramsim").strip() == "prepared"
    for d in (os.path.dirname(edge.work), edge.work, os.path.join(edge.work, "images")):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))
    # a leftover of a dead migration (marked) is emptied by the next prepare
    with open(os.path.join(edge.work, "images", "old.img"), "w"):
        pass
    edge.ok("prepare ramsim")
    assert os.listdir(os.path.join(edge.work, "images")) == []


@pytest.mark.parametrize("state", ["RUNNING", "FROZEN", "STARTING"])
def test_prepare_refuses_a_container_that_runs(edge, state):
    edge.set_state(state)
    rc, _out, err = edge.run("prepare ramsim")
    assert rc == 1 and state in err and not os.path.exists(edge.work)


def test_prepare_refuses_a_container_that_is_not_a_migrations_copy(edge):
    os.makedirs(os.path.join(edge.cdir, "rootfs"))
    edge.set_state("STOPPED")
    rc, _out, err = edge.run("prepare ramsim")
    assert rc == 1 and "no migration's copy" in err
    assert not os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))


def test_status(edge):
    assert edge.ok("status ramsim") == "STATE ABSENT\nRESTORE none\n"
    edge.prepared()
    edge.set_state("STOPPED")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with open(os.path.join(edge.work, "restore.pid"), "w") as f:
            f.write("%d\n" % sleeper.pid)
        assert edge.ok("status ramsim") == "STATE STOPPED\nRESTORE pending\n"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert edge.ok("status ramsim").endswith("RESTORE died\n")
    with open(os.path.join(edge.work, "restore.rc"), "w") as f:
        f.write("0\n")
    edge.set_state("RUNNING")
    out = edge.ok("status ramsim")
    assert out == "STATE RUNNING\nRESTORE 0\n"
    from ansible_collections.arnab.testbed.plugins.module_utils import migration_guard
    assert migration_guard.parse_status(out) == ("RUNNING", "0")


def test_commit_drops_the_marker_and_the_work_dir(edge):
    edge.prepared()
    edge.set_state("RUNNING")
    assert edge.ok("commit ramsim").strip() == "committed RUNNING"
    assert not os.path.exists(edge.work) and not os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))
    assert os.path.isdir(os.path.join(edge.cdir, "rootfs"))


def test_rm_removes_plain_files_in_the_image_dir_only(edge):
    edge.prepared()
    images = os.path.join(edge.work, "images")
    for n in ("pages-1.img", "core-1.img"):
        with open(os.path.join(images, n), "w"):
            pass
    os.mkdir(os.path.join(images, "keepdir"))
    assert edge.ok("rm ramsim pages-1.img missing.img keepdir").strip() == "removed 1"
    assert sorted(os.listdir(images)) == ["core-1.img", "keepdir"]
    assert edge.run("rm ramsim --dir it-1 core-1.img")[0] == 1      # no such image dir: nothing made
    assert not os.path.exists(os.path.join(edge.work, "it-1"))


def test_ops_need_a_prepared_migration(edge):
    for cmd in ("rm ramsim x.img", "put ramsim images", "restore ramsim --ifname eth0", "patch ramsim"):
        rc, _out, err = edge.run(cmd, data=b"APD1\0\0")
        assert rc == 1 and ("prepare first" in err or "no migration copy" in err), (cmd, err)


def test_logs(edge):
    edge.prepared()
    with open(os.path.join(edge.work, "images", "restore.log"), "w") as f:
        f.write("".join("line %d\n" % i for i in range(50)))
    out = edge.ok("logs ramsim")
    assert out.startswith("line 20\n") and "line 49" in out
    os.remove(os.path.join(edge.work, "images", "restore.log"))
    os.symlink("/etc/shadow", os.path.join(edge.work, "images", "restore.log"))
    assert "root" not in edge.ok("logs ramsim")


# ---------------------------------------------------------------------------------------------------------------
# put: tar streams stay in their directory
# ---------------------------------------------------------------------------------------------------------------

def test_put_images(edge):
    edge.prepared()
    out = edge.ok("put ramsim images", tar_of([("pages-1.img", "file", b"x" * 5000), ("core-1.img", "file", b"c")]))
    assert out.strip() == "ok files=2 bytes=5001"
    p = os.path.join(edge.work, "images", "pages-1.img")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600 and os.stat(p).st_uid == 0
    edge.ok("put ramsim images --dir it-2", tar_of([("pages-1.img", "file", b"y")]))
    assert os.path.exists(os.path.join(edge.work, "it-2", "pages-1.img"))


@pytest.mark.parametrize("entries", [
    [("../evil", "file", b"x")],
    [("/tmp/evil", "file", b"x")],
    [("a/b.img", "file", b"x")],
    [("evil", "sym", "/etc/shadow")],
    [("evil", "lnk", "/etc/shadow")],
    [("evil", "chr", None)],
    [("evil", "dir", None)],
    [(".hidden", "file", b"x")],
    [("$(touch x)", "file", b"x")],
])
def test_put_images_refuses_anything_but_plain_files(edge, entries):
    edge.prepared()
    rc, _out, err = edge.run("put ramsim images", tar_of(entries))
    assert rc == 126, err
    assert os.listdir(os.path.join(edge.work, "images")) == []
    assert os.listdir(edge.outside) == []


def test_put_fs_keeps_a_root_filesystem(edge):
    edge.prepared()
    data = tar_of([("rootfs/etc", "dir", None), ("rootfs/etc/hostname", "file", b"ramsim\n"),
                   ("rootfs/etc/mtab", "sym", "/proc/self/mounts"), ("rootfs/etc/hard", "lnk", "rootfs/etc/hostname"),
                   ("rootfs/dev/null", "chr", None), ("rootfs/run/initctl", "fifo", None), ("./rootfs/x", "file", b"1")])
    assert edge.ok("put ramsim fs", data).strip().startswith("ok files=7")
    etc = os.path.join(edge.cdir, "rootfs", "etc")
    assert os.readlink(os.path.join(etc, "mtab")) == "/proc/self/mounts"
    assert os.stat(os.path.join(etc, "hard")).st_ino == os.stat(os.path.join(etc, "hostname")).st_ino
    assert stat.S_ISCHR(os.lstat(os.path.join(edge.cdir, "rootfs", "dev", "null")).st_mode)
    assert stat.S_ISFIFO(os.lstat(os.path.join(edge.cdir, "rootfs", "run", "initctl")).st_mode)
    assert os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))


def test_put_fs_never_writes_through_a_link(edge):
    edge.prepared()
    target = os.path.join(edge.outside, "passwd")
    with open(target, "w") as f:
        f.write("host\n")
    os.symlink(target, os.path.join(edge.cdir, "rootfs", "etc", "passwd"))
    os.symlink(edge.outside, os.path.join(edge.cdir, "rootfs", "out"))
    # a file over a planted link replaces the link
    edge.ok("put ramsim fs", tar_of([("rootfs/etc/passwd", "file", b"container\n")]))
    assert open(target).read() == "host\n"
    assert not os.path.islink(os.path.join(edge.cdir, "rootfs", "etc", "passwd"))
    # through a link to a directory outside, or a link made in the same stream: refused
    for entries in ([("rootfs/out/evil", "file", b"x")],
                    [("rootfs/l2", "sym", edge.outside), ("rootfs/l2/evil", "file", b"x")],
                    [("rootfs/l3", "sym", "../../../outside"), ("rootfs/l3/evil", "file", b"x")],
                    [("rootfs/h", "lnk", "rootfs/out/passwd")],
                    [("rootfs/h", "lnk", "../outside/passwd")],
                    [("rootfs/h", "lnk", "/etc/shadow")],
                    [("../outside/evil", "file", b"x")],
                    [("/abs/evil", "file", b"x")],
                    [("rootfs/../../outside/evil", "file", b"x")]):
        rc, _out, err = edge.run("put ramsim fs", tar_of(entries))
        assert rc in (1, 126), (entries, err)
        assert sorted(os.listdir(edge.outside)) == ["passwd"], entries
        assert open(target).read() == "host\n"


def test_put_fs_needs_a_stopped_marked_copy(edge):
    edge.prepared()
    edge.set_state("RUNNING")
    rc, _out, err = edge.run("put ramsim fs", tar_of([("rootfs/x", "file", b"x")]))
    assert rc == 1 and "RUNNING" in err
    edge.set_state("STOPPED")
    os.remove(os.path.join(edge.cdir, ".arnab-migrating"))
    rc, _out, err = edge.run("put ramsim fs", tar_of([("rootfs/x", "file", b"x")]))
    assert rc == 1 and "no migration copy" in err
    assert not os.path.exists(os.path.join(edge.cdir, "rootfs", "x"))


# ---------------------------------------------------------------------------------------------------------------
# patch: state_transfer's page patch protocol
# ---------------------------------------------------------------------------------------------------------------

def _patch_stream(tmp, pairs):
    buf = io.BytesIO()
    st.encode_patch(pairs, buf)
    return buf.getvalue()


def test_patch_applies_page_deltas(edge, tmp_path):
    edge.prepared()
    images = os.path.join(edge.work, "images")
    old = os.urandom(4096 * 8)
    new = bytearray(old)
    new[4096 * 3:4096 * 4] = os.urandom(4096)
    src = tmp_path / "src"
    src.mkdir()
    (src / "pages-1.img").write_bytes(bytes(new))
    (src / "old.img").write_bytes(old)
    (src / "core-1.img").write_bytes(b"core")
    with open(os.path.join(images, "pages-1.img"), "wb") as f:
        f.write(old)
    stream = _patch_stream(tmp_path, [("pages-1.img", str(src / "old.img"), str(src / "pages-1.img")),
                                      ("core-1.img", None, str(src / "core-1.img"))])
    out = edge.ok("patch ramsim", stream)
    assert out.strip() == "ok files=2 bytes=4100"
    assert open(os.path.join(images, "pages-1.img"), "rb").read() == bytes(new)
    assert stat.S_IMODE(os.stat(os.path.join(images, "core-1.img")).st_mode) == 0o600


def test_patch_refuses_names_and_links(edge, tmp_path):
    edge.prepared()
    images = os.path.join(edge.work, "images")
    target = os.path.join(edge.outside, "victim")
    with open(target, "w") as f:
        f.write("host\n")
    os.symlink(target, os.path.join(images, "pages-1.img"))
    (tmp_path / "n").write_bytes(b"evil")
    # a whole file is built aside and renamed over the link: the link goes, its target is never written
    rc, _out, err = edge.run("patch ramsim", _patch_stream(tmp_path, [("pages-1.img", None, str(tmp_path / "n"))]))
    assert rc == 0 and open(target).read() == "host\n"
    assert not os.path.islink(os.path.join(images, "pages-1.img"))
    # in place (a v1 stream), through a link planted as the file built aside, or a link as a basis: refused
    os.remove(os.path.join(images, "pages-1.img"))
    os.symlink(target, os.path.join(images, "pages-1.img"))
    v1 = st.PATCH_MAGIC_V1 + struct.pack("<H", 11) + b"pages-1.img" + struct.pack("<QQI", 4, 0, 4) + b"evil" + \
        struct.pack("<QIH", st.END_OF_FILE, 0, 0)
    assert edge.run("patch ramsim", v1)[0] == 1
    os.symlink(target, os.path.join(images, "pages-2.img" + st.PART_SUFFIX))
    assert edge.run("patch ramsim", _patch_stream(tmp_path, [("pages-2.img", None, str(tmp_path / "n"))]))[0] == 1
    plan = {"name": "pages-3.img", "new": str(tmp_path / "n"), "basis": "pages-1.img", "by": "vaddr",
            "in_place": False, "records": lambda: iter([("copy", 0, 0, 4)])}
    assert edge.run("patch ramsim", _patch_stream(tmp_path, [plan]))[0] == 1
    assert open(target).read() == "host\n"
    for bad in ("../victim", "/tmp/victim", "a/b", ".", "..", "x\ny"):
        rc, _out, err = edge.run("patch ramsim", _patch_stream(tmp_path, [(bad, None, str(tmp_path / "n"))]))
        assert rc == 126, (bad, err)
    assert edge.run("patch ramsim", b"GARBAGE")[0] == 126
    assert sorted(os.listdir(edge.outside)) == ["victim"]


def test_patch_with_a_parent_links_the_streamed_final_dir_to_it(edge, tmp_path):
    """Native pre-copy's final dump streamed before the freeze: its files arrive whole and the dir's ``parent``
    leads to the last pre-dump, as the source's does (criu reads the earlier pages there); a link a peer planted
    there is replaced, and restore's clean-up of links keeps this one."""
    edge.prepared()
    os.mkdir(os.path.join(edge.work, "it-3"))
    final = os.path.join(edge.work, "final")
    (tmp_path / "pages-1.img").write_bytes(b"p" * 4096)
    stream = _patch_stream(tmp_path, [("pages-1.img", None, str(tmp_path / "pages-1.img"))])
    os.mkdir(final, 0o700)
    os.symlink(edge.outside, os.path.join(final, "parent"))
    assert edge.ok("patch ramsim --dir final --parent it-3", stream).startswith("ok files=1")
    assert os.readlink(os.path.join(final, "parent")) == "../it-3"
    assert open(os.path.join(final, "pages-1.img"), "rb").read() == b"p" * 4096
    assert mr.PARENT_LINK_RE.fullmatch(os.readlink(os.path.join(final, "parent")))     # restore keeps it
    # a parent that is not there: refused before anything is written
    shutil.rmtree(final)
    rc, _out, err = edge.run("patch ramsim --dir final --parent it-4", stream)
    assert rc == 1 and "it-4" in err and os.listdir(final) == []


# ---------------------------------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------------------------------

def _marks(out):
    return dict((line.split()[1], float(line.split()[2])) for line in out.splitlines() if line.startswith("T "))


def test_restore(edge):
    edge.prepared()
    edge.set_state("STOPPED")
    with restored_container() as pid:
        edge.fake_file("restored-pid", str(pid))
        rc, out, err = edge.run("restore ramsim --ifname eth0 --timeout 30")
        assert rc == 0, (out, err)
        # the net fix ran in the container's network namespace: the source's inbound-only lock, left there because
        # criu's post-restore hook did not run here, is gone; TX offload is off
        assert "tx-checksumming: off" in in_netns(pid, "ethtool", "-k", "eth0")
        assert criu.INBOUND_LOCK_TABLE not in in_netns(pid, "nft", "list", "tables")
    marks = _marks(out)
    assert list(marks) == ["start", "restored", "netfix"]
    assert "PID %d" % pid in out and "INBOUND_LOCK_LEFT" in out and "garp %s" % ADDRESS in out
    assert "kicked 2" in out and "_FAILED" not in out
    assert "THAWED" not in out.split()          # it came running: nothing to thaw, nothing said
    calls = edge.calls()
    assert "nsenter" not in calls
    images = os.path.join(edge.work, "images")
    assert "lxc-checkpoint -n ramsim -D %s -P %s -r -d" % (images, edge.lxcpath) in calls
    hook = os.path.join(images, ".post-restore.sh")
    assert open(os.path.join(edge.fake, "criu-config")).read() == \
        "action-script %s\nnetwork-lock nftables\nenable-fs ramfs\n" % hook
    assert "nft delete table inet arnab_lock" in open(hook).read() and os.stat(hook).st_mode & 0o777 == 0o700
    assert open(os.path.join(edge.work, "restore.rc")).read() == "0\n"
    assert open(os.path.join(edge.work, "restore.trace")).read().splitlines() == out.splitlines()
    assert edge.ok("status ramsim") == "STATE RUNNING\nRESTORE 0\n"
    # a second restore over the running copy is refused
    rc, _out, err = edge.run("restore ramsim --ifname eth0")
    assert rc == 1 and "RUNNING" in err


FREEZER_V1 = "/sys/fs/cgroup/freezer"


@contextlib.contextmanager
def frozen_payload_cgroup(pid):
    """``pid`` in a real cgroup v1 freezer named as LXC names a container's (lxc.payload.*), frozen: as criu
    restores a copy whose dump found it frozen. Thawed and removed afterwards, whatever happened."""
    if not os.path.isfile(os.path.join(FREEZER_V1, "cgroup.procs")):
        pytest.skip("no cgroup v1 freezer on this host")
    path = os.path.join(FREEZER_V1, "lxc.payload.arnab-unit-%d" % pid)
    os.mkdir(path)
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)
        with open(os.path.join(path, "freezer.state"), "w") as f:
            f.write("FROZEN")
        yield os.path.join(path, "freezer.state")
    finally:
        with open(os.path.join(path, "freezer.state"), "w") as f:
            f.write("THAWED")
        with open(os.path.join(FREEZER_V1, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)
        os.rmdir(path)


def test_restore_thaws_a_copy_restored_frozen(edge):
    """A prefrozen dump (the engine's pre-dump hook) restores frozen: the receiver thaws it before the net fix."""
    edge.prepared()
    edge.set_state("STOPPED")
    with restored_container() as pid:
        edge.fake_file("restored-pid", str(pid))
        with frozen_payload_cgroup(pid) as state:
            rc, out, err = edge.run("restore ramsim --ifname eth0 --timeout 30")
            assert rc == 0, (out, err)
            assert open(state).read().strip() == "THAWED"
            assert "THAWED" in out.split() and "kicked 2" in out     # the net fix found it running


def test_restore_whose_post_restore_hook_ran_does_not_look_for_the_lock_again(edge):
    """criu's post-restore hook removed the source's inbound-only lock and says so beside itself: the net fix skips its
    own look (an nft start in the frozen window). Here the hook's nsenter is the edge's fake, so the stand-in's table
    is still there afterwards: the net fix did not touch it."""
    edge.prepared()
    edge.set_state("STOPPED")
    edge.fake_file("run-hooks", "")
    with restored_container() as pid:
        edge.fake_file("restored-pid", str(pid))
        rc, out, err = edge.run("restore ramsim --ifname eth0 --timeout 30")
        assert rc == 0, (out, err)
        assert "nsenter -t %d -n nft delete table inet %s" % (pid, criu.INBOUND_LOCK_TABLE) in edge.calls()
        assert "INBOUND_LOCK_LEFT" not in out and "kicked 2" in out
        assert criu.INBOUND_LOCK_TABLE in in_netns(pid, "nft", "list", "tables")
    assert os.path.exists(os.path.join(edge.work, "images", criu.POST_RESTORE_RAN))


def _tcp_stream_image(edge, data):
    images = os.path.join(edge.work, "images")
    os.makedirs(images, exist_ok=True)
    path = os.path.join(images, "tcp-stream-5.img")
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_restore_moves_the_sockets_timestamp_clocks_forward_first(edge):
    """--ts-shift-ms (the engine's, with the inbound-only lock): each tcp-stream image's clock moves before criu
    restores."""
    edge.prepared()
    edge.set_state("STOPPED")
    entry = criu.encode_varint(9 << 3) + criu.encode_varint(1000)
    path = _tcp_stream_image(edge, struct.pack("<III", criu.IMG_COMMON_MAGIC, criu.TCP_STREAM_MAGIC, len(entry))
                             + entry)
    rc, out, err = edge.run("restore ramsim --ifname eth0 --ts-shift-ms 482")
    assert rc == 0 and "TS_SHIFTED 1 482" in out.splitlines(), (out, err)
    with open(path, "rb") as f:
        assert f.read()[12:] == criu.encode_varint(9 << 3) + criu.encode_varint(1482)


def test_a_tcp_stream_image_that_cannot_be_shifted_is_reported_and_the_restore_goes_on(edge):
    edge.prepared()
    edge.set_state("STOPPED")
    _tcp_stream_image(edge, b"garbage")
    rc, out, err = edge.run("restore ramsim --ifname eth0 --ts-shift-ms 482")
    assert rc == 0 and "TS_SHIFT_FAILED not a tcp-stream image" in out and "T restored" in out, (out, err)


@pytest.mark.parametrize("bad", ["0", "600001", "1;touch x", "$(id)", "-5", "1.5", "`id`"])
def test_restore_refuses_a_bad_ts_shift(edge, bad):
    edge.prepared()
    rc, _out, err = edge.run("restore ramsim --ifname eth0 --ts-shift-ms '%s'" % bad)
    assert rc == 126 and "ms" in err, (bad, err)
    assert "lxc-checkpoint" not in edge.calls()


def test_restore_failure_reports_criu_error(edge):
    edge.prepared()
    edge.fake_file("restore-rc", "1")
    rc, out, _err = edge.run("restore ramsim --ifname eth0 --verbose")
    assert rc == 1 and "fake restore failure" in out and "restored" not in _marks(out)
    assert " -v" in edge.calls()
    assert edge.ok("status ramsim") == "STATE ABSENT\nRESTORE 1\n"


def test_restore_timeout_kills_and_reports_137(edge):
    edge.prepared()
    edge.fake_file("restore-sleep", "20")
    rc, _out, _err = edge.run("restore ramsim --ifname eth0 --timeout 1")
    assert rc == 137


def test_after_a_restore_nothing_fails_it(edge):
    edge.prepared()
    with restored_container() as pid:
        edge.fake_file("restored-pid", str(pid))
        rc, out, _err = edge.run("restore ramsim --ifname nosuch0")
    assert rc == 0 and "TXOFF_FAILED" in out and "GARP_FAILED" in out and "netfix" in _marks(out)
    # nor a container that is gone before its net fix
    edge.set_state("STOPPED")
    rc, out, _err = edge.run("restore ramsim --ifname eth0")
    assert rc == 0 and "GARP_FAILED" in out and "netfix" in _marks(out)


def test_restore_without_pid_still_succeeds(edge):
    edge.prepared()
    with open(os.path.join(edge.bin, "lxc-checkpoint"), "a"):
        pass
    # the fake restore writes RUNNING and a pid; take the pid away
    with open(os.path.join(edge.bin, "lxc-checkpoint")) as f:
        text = f.read().replace('cat "$F/restored-pid" > "$F/pid-$n"', "true")
    with open(os.path.join(edge.bin, "lxc-checkpoint"), "w") as f:
        f.write(text)
    rc, out, _err = edge.run("restore ramsim --ifname eth0")
    assert rc == 0 and "NO_PID" in out


@pytest.mark.parametrize("options,page_server", [
    ("--lazy --address 10.79.0.1 --port 27100", " --page-server --address 10.79.0.1 --port 27100"),
    ("--lazy --local", ""),    # criu's daemon serves the pages from this edge's images dir: no page server, no peer
], ids=["src", "local"])
def test_lazy_restore(edge, options, page_server):
    edge.prepared()
    rc, out, err = edge.run("restore ramsim --ifname eth0 " + options)
    assert rc == 0, (out, err)
    assert list(_marks(out)) == ["start", "lazyd", "restored", "netfix"]
    images = os.path.join(edge.work, "images")
    daemon = [c for c in edge.calls().splitlines() if "criu lazy-pages" in c]
    assert daemon == ["criu lazy-pages -D %s%s -o lazy-pages.log" % (images, page_server)], daemon
    assert "lazy-pages" in open(os.path.join(edge.fake, "criu-config")).read()
    deadline = time.time() + 10
    while edge.ok("lazy-status ramsim").strip() == "PENDING" and time.time() < deadline:
        time.sleep(0.1)
    assert edge.ok("lazy-status ramsim").strip() == "0"


def test_probe_says_the_receiver_restores_lazily_from_local_images(edge):
    assert json.loads(edge.ok("probe ramsim"))["receiver"] >= precopy.RECEIVER_PATCH_PARENT


# -- post-copy's TLS channel: certificates pinned per migration ---------------------------------------------------

def test_tls_pins_the_sources_certificate_and_answers_with_a_fresh_one_of_its_own(edge, tmp_path):
    edge.prepared()
    source_cert = criu.tls_identity(str(tmp_path / "source"))
    out = edge.ok("tls ramsim", source_cert.encode())
    own = criu.check_pem_cert(out.strip() + "\n")
    tls = os.path.join(edge.work, "tls")
    assert open(os.path.join(tls, criu.TLS_PEER)).read() == source_cert
    assert open(os.path.join(tls, criu.TLS_CERT)).read() == own != source_cert
    assert stat.S_IMODE(os.stat(tls).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(tls, criu.TLS_KEY)).st_mode) == 0o600
    assert edge.ok("tls ramsim", source_cert.encode()) != out     # every exchange: a new key


@pytest.mark.parametrize("payload", [
    "", "$(touch /tmp/x)", "-----BEGIN CERTIFICATE-----\n`touch x`\n-----END CERTIFICATE-----\n",
    "{cert}tls-key /etc/shadow\n", "{cert}{cert}", "{crlf}", "A" * 9000])
def test_tls_refuses_anything_but_one_certificate(edge, tmp_path, payload):
    edge.prepared()
    cert = criu.tls_identity(str(tmp_path / "source"))
    payload = payload.replace("{cert}", cert).replace("{crlf}", cert.replace("\n", "\r\n"))
    rc, out, err = edge.run("tls ramsim", payload.encode())
    assert rc == 1 and "not one PEM certificate" in err and out == ""
    assert not os.path.exists(os.path.join(edge.work, "tls"))


def test_tls_lazy_restore(edge, tmp_path):
    """The lazy-pages daemon gets the pinned files (a short name: the daemon's socket path must fit)."""
    edge.prepared()
    edge.ok("tls ramsim", criu.tls_identity(str(tmp_path / "source")).encode())
    rc, out, err = edge.run("restore ramsim --ifname eth0 --lazy --address 10.79.0.1 --port 27100 --tls")
    assert rc == 0, (out, err)
    tls = os.path.join(edge.work, "tls")
    assert ("--page-server --address 10.79.0.1 --port 27100 -o lazy-pages.log --tls --tls-cacert {t}/peer.pem "
            "--tls-cert {t}/own.pem --tls-key {t}/own.key --tls-no-cn-verify".format(t=tls)) in edge.calls()


def test_tls_restore_needs_the_exchange_first(edge):
    edge.prepared()
    rc, out, _err = edge.run("restore ramsim --ifname eth0 --lazy --address 10.79.0.1 --port 27100 --tls")
    assert rc == 1 and "no certificate pinned" in out
    assert "criu lazy-pages" not in edge.calls()


def test_lazy_daemon_that_never_starts(edge):
    edge.prepared()
    edge.fake_file("lazy-never", "")
    edge.write_config(lazy_start_wait_s=1)
    rc, out, _err = edge.run("restore ramsim --ifname eth0 --lazy --address 10.79.0.1 --port 27100", timeout=90)
    assert rc == 3 and "did not start" in out
    assert edge.ok("lazy-status ramsim").strip() == "1"


@pytest.mark.parametrize("line", [
    "lxc.hook.pre-start = /bin/sh -c 'touch /tmp/x'", "lxc.hook.start-host = /tmp/evil",
    "lxc.mount.entry = / host none bind 0 0", "lxc.net.0.script.up = /tmp/evil", "lxc.include = /tmp/evil.conf",
    "lxc.include = /etc/lxc/../../tmp/evil.conf", "lxc.rootfs.path = dir:/", "lxc.cgroup.devices.allow = a",
    "lxc.cap.drop =", "lxc.apparmor.profile = unconfined", "lxc.console.path = /dev/tty1", "lxc.seccomp.profile =",
    "lxc.idmap = u 0 0 1", "not a config line",
])
def test_restore_refuses_a_config_that_reaches_the_host(edge, line):
    edge.prepared(CONFIG.format(lxcpath="") + line + "\n")
    with open(os.path.join(edge.cdir, "config"), "w") as f:
        f.write(CONFIG.format(lxcpath=edge.lxcpath) + line + "\n")
    rc, _out, err = edge.run("restore ramsim --ifname eth0")
    assert rc == 1 and "refusing to restore" in err
    assert "lxc-checkpoint" not in edge.calls()


def test_restore_refuses_linked_config_or_rootfs(edge):
    edge.prepared()
    os.rename(os.path.join(edge.cdir, "config"), os.path.join(edge.outside, "config"))
    os.symlink(os.path.join(edge.outside, "config"), os.path.join(edge.cdir, "config"))
    assert edge.run("restore ramsim --ifname eth0")[0] == 1
    os.remove(os.path.join(edge.cdir, "config"))
    os.rename(os.path.join(edge.outside, "config"), os.path.join(edge.cdir, "config"))
    shutil.rmtree(os.path.join(edge.cdir, "rootfs"))
    os.symlink("/", os.path.join(edge.cdir, "rootfs"))
    assert edge.run("restore ramsim --ifname eth0")[0] == 1
    assert "lxc-checkpoint" not in edge.calls()


def test_check_lxc_config_accepts_the_roles_configs():
    assert mr.check_lxc_config(CONFIG.format(lxcpath="/var/lib/lxc"), "/var/lib/lxc", "ramsim") == []
    assert mr.check_lxc_config("lxc.rootfs.path = /var/lib/lxc/ramsim/rootfs\nlxc.net.0.type = empty\n"
                               "lxc.cgroup.dir = arnab-edge1\nlxc.console.path = none\n", "/var/lib/lxc", "ramsim") == []
    assert mr.check_lxc_config("lxc.custom.key = 1\n", "/l", "c", extra_keys=[r"lxc\.custom\.key"]) == []


def test_restore_removes_planted_links_first(edge):
    edge.prepared()
    images = os.path.join(edge.work, "images")
    victim = os.path.join(edge.outside, "victim")
    with open(victim, "w") as f:
        f.write("host\n")
    for n in ("restore.log", ".criu-restore.conf", "restore.out", "pages-1.img"):
        os.symlink(victim, os.path.join(images, n))
    os.mkfifo(os.path.join(images, "fifo"))
    os.makedirs(os.path.join(edge.work, "final"))
    os.makedirs(os.path.join(edge.work, "it-1"))
    os.symlink("../it-1", os.path.join(edge.work, "final", "parent"))
    os.symlink("/etc", os.path.join(edge.work, "it-1", "parent"))
    edge.fake_file("restore-rc", "1")       # the fake writes restore.log: it must not reach the victim
    edge.run("restore ramsim --ifname eth0")
    assert open(victim).read() == "host\n"
    assert not any(os.path.islink(os.path.join(images, n)) for n in os.listdir(images))
    assert not os.path.exists(os.path.join(images, "fifo"))
    assert os.readlink(os.path.join(edge.work, "final", "parent")) == "../it-1"
    assert not os.path.lexists(os.path.join(edge.work, "it-1", "parent"))


def test_restore_from_a_native_chain_dir(edge):
    edge.prepared()
    os.makedirs(os.path.join(edge.work, "final"))
    rc, out, _err = edge.run("restore ramsim --ifname eth0 --dir final")
    assert rc == 0
    assert "-D %s" % os.path.join(edge.work, "final") in edge.calls()
    assert edge.ok("status ramsim").endswith("RESTORE 0\n")


# ---------------------------------------------------------------------------------------------------------------
# clean
# ---------------------------------------------------------------------------------------------------------------

def _argv_holder(path):
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", path])


def test_clean_stops_and_removes_the_copy(edge):
    edge.prepared()
    edge.ok("restore ramsim --ifname eth0")
    other = os.path.join(edge.lxcpath, ".arnab-migrate", "video", "images")
    ours, theirs = _argv_holder(os.path.join(edge.work, "images")), _argv_holder(other)
    try:
        assert edge.ok("clean ramsim --ifname eth0").strip() == "cleaned"
        assert ours.wait(timeout=10) == -9
        assert theirs.poll() is None            # another container's migration is not touched
    finally:
        theirs.kill()
        theirs.wait()
    calls = edge.calls()
    assert "nsenter -t %d -n ip link set eth0 down" % NO_SUCH_PID in calls and "lxc-stop -k -n ramsim" in calls
    assert calls.index("ip link set eth0 down") < calls.index("lxc-stop -k")
    assert not os.path.exists(edge.work) and not os.path.exists(edge.cdir)


def test_clean_never_says_cleaned_while_it_runs(edge):
    edge.prepared()
    edge.set_state("RUNNING")
    edge.fake_file("stop-fails", "")
    rc, out, err = edge.run("clean ramsim")
    assert rc == 1 and "cleaned" not in out and "still RUNNING" in err
    assert os.path.exists(edge.cdir)


def test_clean_leaves_a_committed_container_alone(edge):
    edge.prepared()
    edge.set_state("RUNNING")
    edge.ok("commit ramsim")
    rc, out, err = edge.run("clean ramsim")
    assert rc == 1 and "cleaned" not in out and "no migration's copy" in err
    assert "lxc-stop" not in edge.calls() and os.path.isdir(os.path.join(edge.cdir, "rootfs"))


def test_clean_without_a_copy_removes_only_the_work_dir(edge):
    os.makedirs(os.path.join(edge.cdir, "rootfs"))
    edge.set_state("STOPPED")
    os.makedirs(os.path.join(edge.work, "images"))
    assert edge.ok("clean ramsim").strip() == "cleaned"
    assert not os.path.exists(edge.work) and os.path.isdir(os.path.join(edge.cdir, "rootfs"))
    assert "lxc-stop" not in edge.calls()


# ---------------------------------------------------------------------------------------------------------------
# session: framed requests on one connection
# ---------------------------------------------------------------------------------------------------------------

def _frame(argv, payload=b""):
    return json.dumps({"argv": argv, "size": len(payload)}).encode() + b"\n" + payload


def _answers(out):
    return [json.loads(line) for line in out.splitlines()]


def test_session(edge):
    edge.prepared()
    with open(os.path.join(edge.work, "images", "stale.img"), "w"):
        pass
    data = b"".join([
        _frame(["ping"]),
        _frame(["put", "images"], tar_of([("core-1.img", "file", b"core")])),
        _frame(["put", "fs"], tar_of([("rootfs/etc/hostname", "file", b"ramsim\n")])),
        _frame(["rm", "stale.img"]),
        _frame(["prepare"]),                                # not a session operation
        _frame(["rm", "../../etc/passwd"]),                 # refused, the session goes on
        _frame(["restore", "--ifname", "eth0"]),
        _frame(["status"]),
    ])
    rc, out, err = edge.run("session ramsim", data)
    assert rc == 0, err
    a = _answers(out)
    assert [x["rc"] for x in a] == [0, 0, 0, 0, 126, 126, 0, 0]
    assert a[0]["out"] == "pong %d\n" % mr.VERSION and a[1]["out"] == "ok files=1 bytes=4\n"
    assert "T restored" in a[6]["out"] and a[7]["out"] == "STATE RUNNING\nRESTORE 0\n"
    assert os.listdir(os.path.join(edge.work, "images")) != [] and \
        not os.path.exists(os.path.join(edge.work, "images", "stale.img"))
    assert open(os.path.join(edge.cdir, "rootfs", "etc", "hostname")).read() == "ramsim\n"


@pytest.mark.parametrize("data", [b"not json\n", b'{"argv": "put", "size": 0}\n', b'{"argv": ["ping"], "size": -1}\n',
                                  b'{"argv": [], "size": 0}\n', b"x" * 70000])
def test_session_ends_on_a_broken_frame(edge, data):
    edge.prepared()
    rc, out, _err = edge.run("session ramsim", data + _frame(["ping"]))
    assert rc == 126 and len(_answers(out)) == 1 and _answers(out)[0]["rc"] == 126


def test_session_short_payload_ends_it(edge):
    edge.prepared()
    rc, out, _err = edge.run("session ramsim", b'{"argv": ["put", "images"], "size": 100}\nabc')
    assert rc == 126 and out == ""


def test_session_name_is_the_sessions(edge):
    edge.prepared()
    rc, out, _err = edge.run("session ramsim", _frame(["status", "video"]))
    assert _answers(out)[0]["rc"] == 126


# ---------------------------------------------------------------------------------------------------------------
# rsync through rrsync: a real rsync, its remote shell a wrapper that plays sshd's forced command
# ---------------------------------------------------------------------------------------------------------------
needs_rrsync = pytest.mark.skipif(not (os.path.exists("/usr/bin/rrsync") and shutil.which("rsync")),
                                  reason="rsync/rrsync not installed")


def _ssh_wrapper(edge):
    path = os.path.join(edge.root, "fake-ssh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nshift\nSSH_ORIGINAL_COMMAND=\"$*\" exec %s --config %s\n" % (edge.launcher, edge.config))
    os.chmod(path, 0o755)
    return path


def _rsync(edge, src, dest, rsync_path, extra=()):
    argv = ["rsync", "-a", "-H", "--numeric-ids", "--delete", "--exclude=/.arnab-migrating"] + list(extra) + \
        ["-e", _ssh_wrapper(edge), "--rsync-path=" + rsync_path, src, "peer:" + dest]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    return p.returncode, p.stdout.decode() + p.stderr.decode()


@needs_rrsync
def test_rsync_fs_is_confined_to_the_container_dir(edge, tmp_path):
    edge.prepared()
    src = tmp_path / "src"
    (src / "rootfs" / "etc").mkdir(parents=True)
    (src / "rootfs" / "etc" / "hostname").write_text("ramsim\n")
    (src / "config").write_text(CONFIG.format(lxcpath=edge.lxcpath))
    os.symlink("/proc/self/mounts", str(src / "rootfs" / "etc" / "mtab"))
    rc, out = _rsync(edge, str(src) + "/", "./", "arnab-rsync fs ramsim rsync")
    assert rc == 0, out
    assert open(os.path.join(edge.cdir, "rootfs", "etc", "hostname")).read() == "ramsim\n"
    assert os.readlink(os.path.join(edge.cdir, "rootfs", "etc", "mtab")) == "/proc/self/mounts"
    assert os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))     # excluded from --delete
    for dest in ("../../outside/", "/etc/", "../", "rootfs/../../../outside/"):
        rc, out = _rsync(edge, str(src) + "/", dest, "arnab-rsync fs ramsim rsync")
        assert os.listdir(edge.outside) == [], (dest, out)
    assert "rrsync" in out or rc != 0


@needs_rrsync
def test_rsync_images_into_a_work_subdir(edge, tmp_path):
    edge.prepared()
    src = tmp_path / "it"
    src.mkdir()
    (src / "pages-1.img").write_bytes(b"p" * 100)
    os.symlink("../it-1", str(src / "parent"))
    rc, out = _rsync(edge, str(src) + "/", "./", "arnab-rsync images ramsim it-2 rsync")
    assert rc == 0, out
    assert open(os.path.join(edge.work, "it-2", "pages-1.img"), "rb").read() == b"p" * 100
    assert stat.S_IMODE(os.stat(os.path.join(edge.work, "it-2")).st_mode) == 0o700
    rc, out = _rsync(edge, str(src) + "/", "./", "arnab-rsync images ramsim rsync")
    assert rc == 0 and os.path.exists(os.path.join(edge.work, "images", "pages-1.img"))


@needs_rrsync
@pytest.mark.parametrize("rsync_path", ["sh -c 'touch {m}'", "rsync", "arnab-rsync fs ramsim;touch {m} rsync",
                                        "arnab-rsync fs ../outside rsync", "arnab-rsync images ramsim .. rsync",
                                        "arnab-rsync fs $(touch {m}) rsync"])
def test_rsync_refused(edge, tmp_path, rsync_path):
    edge.prepared()
    mark = os.path.join(edge.root, "PWNED")
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("x")
    rc, out = _rsync(edge, str(src) + "/", "./", rsync_path.replace(MARK, mark))
    assert rc != 0 and not os.path.exists(mark) and os.listdir(edge.outside) == []


@needs_rrsync
def test_rsync_fs_refused_while_the_copy_runs(edge, tmp_path):
    edge.prepared()
    edge.set_state("RUNNING")
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("x")
    rc, out = _rsync(edge, str(src) + "/", "./", "arnab-rsync fs ramsim rsync")
    assert rc != 0 and "RUNNING" in out and not os.path.exists(os.path.join(edge.cdir, "x"))


# ---------------------------------------------------------------------------------------------------------------
# pages: post-copy's page channel inside the SSH session
# ---------------------------------------------------------------------------------------------------------------
def _start_pages(edge):
    env = {"PATH": "/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": "pages ramsim",
           "SSH_CONNECTION": "10.79.0.1 5555 10.79.0.2 22"}
    proc = subprocess.Popen([edge.launcher, "--config", edge.config], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stderr.readline().decode()
    assert line.startswith("LISTEN "), line
    return proc, int(line.split()[1])


def test_pages_relays_the_daemons_connection_to_the_session(edge):
    edge.prepared()
    proc, port = _start_pages(edge)
    try:
        assert open(os.path.join(edge.work, mr.PAGES_PID)).read().strip() == str(proc.pid)
        daemon = socket.create_connection(("127.0.0.1", port), timeout=10)
        daemon.sendall(b"GET page 42\n")                        # the lazy-pages daemon's request ...
        assert proc.stdout.read(12) == b"GET page 42\n"          # ... reaches the source's page server
        pages = os.urandom(3 * mr.RELAY_CHUNK + 5)
        proc.stdin.write(pages)                                  # the pages come back
        proc.stdin.flush()
        assert recv_exactly(daemon, len(pages)) == pages
        daemon.close()                                           # every page arrived: the daemon leaves
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert not os.path.exists(os.path.join(edge.work, mr.PAGES_PID))
    assert "relayed %d bytes to the source" % len(b"GET page 42\n") in open(edge.log).read()


def test_pages_ends_when_the_source_leaves_first(edge):
    edge.prepared()
    proc, _port = _start_pages(edge)
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_pages_needs_a_prepared_migration(edge):
    rc, _out, err = edge.run("pages ramsim")
    assert rc != 0 and "prepare first" in err


def test_pages_takes_no_arguments():
    with pytest.raises(mr.Refused):
        mr.parse(["pages", "ramsim", "--port", "1"])
    with pytest.raises(mr.Refused):
        mr.parse(["pages", "ramsim", "127.0.0.1"])


def test_pages_refuses_a_connection_of_another_user(edge, monkeypatch):
    """A local user who connects first gets nothing; the daemon's connection that follows is relayed."""
    edge.prepared()
    cfg = mr.load_config(edge.config)
    recv = mr.Receiver(cfg, mr.Logger(cfg))
    owners = iter([os.geteuid() + 1000, os.geteuid()])
    monkeypatch.setattr(mr, "tcp_owner_uid", lambda peer, port: next(owners))
    src_r, eng_w = os.pipe()
    eng_r, src_w = os.pipe()
    err = io.StringIO()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("rc", recv.pages(NAME, src_r, src_w, err, accept_s=20)))
    t.start()
    try:
        deadline = time.time() + 10
        while "LISTEN" not in err.getvalue() and time.time() < deadline:
            time.sleep(0.01)
        port = int(err.getvalue().split()[1])
        intruder = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert intruder.recv(10) == b""                      # closed without a byte
        daemon = socket.create_connection(("127.0.0.1", port), timeout=10)
        os.write(eng_w, b"page")
        assert recv_exactly(daemon, 4) == b"page"
        daemon.close()
        t.join(10)
        assert box.get("rc") == 0
    finally:
        for fd in (src_r, eng_w, eng_r, src_w):
            try:
                os.close(fd)
            except OSError:
                pass
        t.join(10)
    assert "refused a connection" in open(edge.log).read()


def test_pages_gives_up_without_a_daemon(edge):
    edge.prepared()
    recv = mr.Receiver(mr.load_config(edge.config))
    r, w = os.pipe()
    try:
        assert recv.pages(NAME, r, w, io.StringIO(), accept_s=0.3) == 1
    finally:
        os.close(r)
        os.close(w)


def test_tcp_owner_uid_reads_proc_net_tcp(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:9C40 0100007F:6978 01 00000000:00000000 00:00000000 00000000  1000        0 1 1\n"
        "   1: 0100007F:9C41 0100007F:6978 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n")
    assert mr.tcp_owner_uid(("127.0.0.1", 0x9C40), 0x6978, str(table)) == 1000
    assert mr.tcp_owner_uid(("127.0.0.1", 0x9C41), 0x6978, str(table)) == 0
    assert mr.tcp_owner_uid(("127.0.0.1", 0x9C42), 0x6978, str(table)) is None


def test_clean_ends_the_page_relay(edge):
    edge.prepared()
    proc, _port = _start_pages(edge)
    try:
        assert edge.ok("clean ramsim --ifname eth0").strip() == "cleaned"
        assert proc.wait(timeout=10) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------------------------
# wait_exit: the restore's wait for lxc-checkpoint
# ---------------------------------------------------------------------------------------------------------------
def test_wait_exit_gives_the_exit_status_and_reaps():
    proc = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 3"])
    assert mr.wait_exit(proc, 10) == 3
    assert proc.returncode == 3


def test_wait_exit_times_out_on_a_process_still_running():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            mr.wait_exit(proc, 0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_wait_exit_does_not_poll_when_it_can_be_told(monkeypatch):
    """With a pidfd, the exit is seen when it happens: never Popen.wait's sleeping loop (timeout=...)."""
    calls = []
    real_wait = subprocess.Popen.wait

    def wait(self, timeout=None):
        calls.append(timeout)
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", wait)
    proc = subprocess.Popen(["true"])
    assert mr.wait_exit(proc, 10) == 0
    assert calls == [None]
