"""The engine's client of the migration receiver (module_utils/receiver.py): words checked before anything is sent,
one shlex-quoted command string, the session framing; end to end against the real receiver through a fake ssh
that plays sshd's forced command (no sshd), with real rsync pushes through rrsync."""
import json
import os
import shlex
import shutil
import socket
import stat
import sys
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu
from ansible_collections.arnab.testbed.plugins.module_utils import receiver as rc_mod
from ansible_collections.arnab.testbed.plugins.module_utils import state_transfer as st
from ansible_collections.arnab.testbed.plugins.module_utils.receiver import Receiver, ReceiverError

from receiver_edge import CONFIG, Edge, recv_exactly

PAYLOADS = ["$(touch {m})", "`touch {m}`", ";touch {m}", "\ntouch {m}", "'", '"', "';touch {m};'", "../x", "/etc",
            "a b", "-rf", "--lazy", ""]


class Runner(object):
    def __init__(self):
        self.calls = []

    def __call__(self, argv, env=None, timeout=None, input_text=None):
        self.calls.append(argv)
        return 0, "STATE RUNNING\nRESTORE 0\n", ""


def test_command_line_is_quoted_validated_words():
    cmd = rc_mod.command_line("restore", "ramsim", "--ifname", "eth0", "--lazy", "--address", "10.79.0.1",
                              "--port", 27100, "--timeout", 60)
    assert cmd == "restore ramsim --ifname eth0 --lazy --address 10.79.0.1 --port 27100 --timeout 60"
    assert shlex.split(cmd) == cmd.split()
    assert rc_mod.command_line("rm", "ramsim", "--dir", "it-3", "pages-1.img") == "rm ramsim --dir it-3 pages-1.img"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_never_reach_the_wire(tmp_path, payload):
    p = payload.replace("{m}", str(tmp_path / "PWNED"))
    runner = Runner()
    for build in (lambda: Receiver("10.79.0.2", p, runner=runner),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).restore(p),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).restore("eth0", lazy=True, address=p, port=1),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).rm([p]),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).rm(["x.img"], subdir=p),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).probe(link=p),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).probe(token=p or "../"),
                  lambda: Receiver("10.79.0.2", "ramsim", runner=runner).clean(p),
                  lambda: rc_mod.rsync_path("images", "ramsim", p),
                  lambda: rc_mod.rsync_path("fs", p)):
        with pytest.raises(ReceiverError):
            build()
    assert runner.calls == [] and not (tmp_path / "PWNED").exists()


def test_ops_not_in_the_receiver_are_refused_here():
    with pytest.raises(ReceiverError):
        rc_mod.command_line("sh", "ramsim", "-c", "id")
    with pytest.raises(ReceiverError):
        rc_mod.rsync_path("etc", "ramsim")
    with pytest.raises(ReceiverError):
        rc_mod.rsync_path("fs", "ramsim", "images")


def test_argv_verifies_host_keys_and_ends_with_one_command():
    r = Receiver("10.79.0.2", "ramsim", key="/root/.ssh/arnab_migrate", port=22, control_path="/x/.ssh-cp",
                 ssh_options=("-o", "ServerAliveInterval=2"))
    argv = r.argv("status")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "status ramsim"] and argv[-3] == "root@10.79.0.2"
    assert "StrictHostKeyChecking=yes" in argv and "StrictHostKeyChecking=no" not in argv
    assert not any("UserKnownHostsFile" in a for a in argv)
    assert "ControlPath=/x/.ssh-cp" in argv and "ServerAliveInterval=2" in argv
    assert not any("ControlPath" in a for a in r.argv("clean", "--ifname", "eth0", control=False))
    assert r.rsync_path("fs") == "arnab-rsync fs ramsim rsync"
    assert r.rsync_path("images", "it-2") == "arnab-rsync images ramsim it-2 rsync"


def test_status_parses_and_unreachable_is_none():
    runner = Runner()
    assert Receiver("h", "ramsim", runner=runner).status() == ("RUNNING", "0")
    assert Receiver("h", "ramsim", runner=lambda *a, **k: (255, "", "")).status() is None


# ---------------------------------------------------------------------------------------------------------------
# end to end: a fake ssh plays sshd (forced command: the installed receiver, SSH_ORIGINAL_COMMAND = the command)
# ---------------------------------------------------------------------------------------------------------------
FAKE_SSH = r"""#!%(python)s
import os, sys
args = sys.argv[1:]
i = 0
while i < len(args) and args[i].startswith("-") and args[i] != "--":
    i += 2 if args[i] in ("-o", "-i", "-p", "-l", "-F") else 1
if i < len(args) and args[i] == "--":
    i += 1
i += 1                          # the host
if i < len(args) and args[i] == "--":
    i += 1
env = {"SSH_ORIGINAL_COMMAND": " ".join(args[i:]), "PATH": "/usr/bin:/bin", "SSH_CONNECTION": "10.79.0.1 1 10.79.0.2 22"}
os.execve(%(launcher)r, [%(launcher)r, "--config", %(config)r], env)
"""


@pytest.fixture
def edge(tmp_path, monkeypatch):
    e = Edge(tmp_path / "dest")
    sshbin = tmp_path / "sshbin"
    sshbin.mkdir()
    (sshbin / "ssh").write_text(FAKE_SSH % {"python": sys.executable, "launcher": e.launcher, "config": e.config})
    os.chmod(str(sshbin / "ssh"), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (sshbin, os.environ.get("PATH", "/usr/bin:/bin")))
    return e


def test_end_to_end_ops(edge):
    r = Receiver("peer", "ramsim", key="/nonexistent", control_path=None)
    with open(os.path.join(edge.lxcpath, ".arnab-probe-7"), "w"):
        pass
    facts = r.probe(link="lo", token=".arnab-probe-7")
    assert facts["token_found"] and facts["bridge"] and facts["state"] == "ABSENT"
    r.prepare()
    assert r.status() == ("ABSENT", "none")
    os.makedirs(os.path.join(edge.cdir, "rootfs"))
    with open(os.path.join(edge.cdir, "config"), "w") as f:
        f.write(CONFIG.format(lxcpath=edge.lxcpath))
    rc, out, err = r.restore("eth0", timeout=30)
    assert rc == 0 and "T restored" in out, err
    assert r.status() == ("RUNNING", "0")
    assert "restore" not in r.logs()
    rc, out, _err = r.clean("eth0")
    assert rc == 0 and "cleaned" in out
    assert r.status() == ("STOPPED", "none")


def test_end_to_end_commit(edge):
    r = Receiver("peer", "ramsim")
    r.prepare()
    edge.set_state("RUNNING")
    assert r.commit()[0] == 0
    assert not os.path.exists(edge.work)
    rc, out, _err = r.clean()
    assert rc == 1 and "cleaned" not in out


def test_probe_of_a_refusing_host_raises(edge):
    os.chmod(edge.config, 0o666)
    with pytest.raises(ReceiverError) as e:
        Receiver("peer", "ramsim").probe()
    assert e.value.rc == 126


needs_rrsync = pytest.mark.skipif(not (os.path.exists("/usr/bin/rrsync") and shutil.which("rsync")),
                                  reason="rsync/rrsync not installed")


@needs_rrsync
def test_pusher_through_the_receiver(edge, tmp_path):
    r = Receiver("peer", "ramsim")
    r.prepare()
    src = tmp_path / "src" / "ramsim"
    (src / "rootfs" / "etc").mkdir(parents=True)
    (src / "rootfs" / "etc" / "hostname").write_text("ramsim\n")
    (src / "config").write_text(CONFIG.format(lxcpath=edge.lxcpath))
    pusher = st.Pusher("peer")
    res = pusher.push([str(src) + "/"], rc_mod.PUSH_DEST, mode="whole", delete=True,
                      archive_extras=("-H", "-A", "-X", "--numeric-ids"), excludes=["/.arnab-migrating"],
                      rsync_path=r.rsync_path("fs"))
    assert res["rc"] == 0 and "rootfs/etc/hostname" in res["changed_items"]
    assert open(os.path.join(edge.cdir, "rootfs", "etc", "hostname")).read() == "ramsim\n"
    assert os.path.exists(os.path.join(edge.cdir, ".arnab-migrating"))
    images = tmp_path / "it-1"
    images.mkdir()
    (images / "pages-1.img").write_bytes(os.urandom(4096 * 4))
    (images / "core-1.img").write_bytes(b"core")
    (images / "dump.log").write_text("log")
    res = pusher.push_images(str(images), rc_mod.PUSH_DEST, rsync_path=r.rsync_path("images"))
    got = sorted(os.listdir(os.path.join(edge.work, "images")))
    assert got == ["core-1.img", "pages-1.img"], res
    # the frozen window's page deltas through the patch channel opened before
    new = tmp_path / "final"
    new.mkdir()
    data = bytearray((images / "pages-1.img").read_bytes())
    data[4096:8192] = os.urandom(4096)
    (new / "pages-1.img").write_bytes(bytes(data))
    (new / "core-1.img").write_bytes(b"core2")
    dest_files = st.list_files(str(images))
    fig = pusher.push_page_delta(str(new), str(images), "./", dest_files, channel=r.open_patch(), all_files=True)
    assert fig["delta"] == ["pages-1.img"] and fig["literal_bytes"] == 4096 + 5
    assert open(os.path.join(edge.work, "images", "pages-1.img"), "rb").read() == bytes(data)
    # pages compared by address: a mapping added below the others shifts every page of the image; only its page
    # goes on the wire, the destination rebuilds the image from the one it holds
    (new / "pagemap-1.img").write_bytes(criu.encode_pagemap(1, [(0x10000, 4, criu.PE_PRESENT)]))
    again = tmp_path / "final2"
    again.mkdir()
    (again / "pagemap-1.img").write_bytes(criu.encode_pagemap(1, [(0x1000, 1, criu.PE_PRESENT),
                                                                  (0x10000, 4, criu.PE_PRESENT)]))
    (again / "pages-1.img").write_bytes(b"N" * 4096 + bytes(data))
    fig = pusher.push_page_delta(str(again), str(new), "./", st.list_files(str(new)), channel=r.open_patch())
    assert fig["literal_bytes"] == 4096 and fig["copied_bytes"] == 4 * 4096 and fig["aside"] == ["pages-1.img"]
    assert open(os.path.join(edge.work, "images", "pages-1.img"), "rb").read() == b"N" * 4096 + bytes(data)


def test_session_end_to_end(edge, tmp_path):
    r = Receiver("peer", "ramsim")
    r.prepare()
    os.makedirs(os.path.join(edge.cdir, "rootfs", "etc"))
    with open(os.path.join(edge.cdir, "config"), "w") as f:
        f.write(CONFIG.format(lxcpath=edge.lxcpath))
    src = tmp_path / "ramsim"
    (src / "rootfs" / "etc").mkdir(parents=True)
    (src / "rootfs" / "etc" / "hostname").write_text("moved\n")
    os.symlink("/proc/self/mounts", str(src / "rootfs" / "etc" / "mtab"))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    (imgs / "core-1.img").write_bytes(b"core")
    s = r.session()
    try:
        assert s.ping()
        res = s.put_files(str(src), ["rootfs/etc/hostname", "rootfs/etc/mtab"], kind="fs")
        assert res["files"] == 2
        s.put_files(str(imgs), ["core-1.img"])
        assert s.rm(["core-1.img", "gone.img"])[0] == 0
        assert s.status() == ("ABSENT", "none")
        rc, out, _err = s.restore("eth0", timeout=30)
        assert rc == 0 and "T netfix" in out
        assert s.status() == ("RUNNING", "0")
        with pytest.raises(ReceiverError):
            s.request("prepare")
        with pytest.raises(ReceiverError):
            s.rm(["../../x"])
        assert s.alive()
    finally:
        s.close()
    assert open(os.path.join(edge.cdir, "rootfs", "etc", "hostname")).read() == "moved\n"
    assert os.readlink(os.path.join(edge.cdir, "rootfs", "etc", "mtab")) == "/proc/self/mounts"
    assert not os.path.exists(os.path.join(edge.work, "images", "core-1.img"))


def test_session_put_refused_raises_transfer_error(edge, tmp_path):
    r = Receiver("peer", "ramsim")
    r.prepare()
    edge.set_state("RUNNING")
    (tmp_path / "x").write_text("x")
    s = r.session()
    try:
        with pytest.raises(st.TransferError):
            s.put_files(str(tmp_path), ["x"], kind="fs")
        assert s.alive()
    finally:
        s.close()


def test_session_gone_and_timeout(edge, tmp_path):
    s = Receiver("peer", "ramsim").session()
    s.close()
    assert s.request("status")[0] == 255
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    os.chmod(str(slow), 0o755)
    s = rc_mod.Session([str(slow), "session ramsim"])
    assert s.request("status", timeout=0.3)[0] == 124 and not s.alive()


def test_guard_argvs_are_json_ready():
    r = Receiver("10.79.0.2", "ramsim", key="/k")
    cfg = {"status_argv": r.argv("status", control=False),
           "clean_argv": r.argv("clean", "--ifname", "eth0", control=False)}
    assert json.loads(json.dumps(cfg))["clean_argv"][-1] == "clean ramsim --ifname eth0"
    assert stat.S_ISREG(os.stat(rc_mod.__file__).st_mode)


def test_page_tunnel_carries_pages_between_criu_and_the_daemon(edge):
    """criu's end of the tunnel <-> ssh <-> the receiver's `pages` <-> the lazy-pages daemon on its loopback."""
    r = Receiver("peer", "ramsim")
    r.prepare()
    tunnel = r.page_tunnel(ssh_options=("-o", "ServerAliveInterval=2"))
    try:
        assert tunnel.alive() and 0 < tunnel.port < 65536
        criu_end = socket.socket(fileno=os.dup(tunnel.criu_fd()))     # what criu inherits
        tunnel.criu_has_it()
        daemon = socket.create_connection(("127.0.0.1", tunnel.port), timeout=10)
        daemon.sendall(b"request")
        assert recv_exactly(criu_end, 7) == b"request"
        pages = os.urandom(1 << 20)
        criu_end.sendall(pages)
        assert recv_exactly(daemon, len(pages)) == pages
        daemon.close()                          # every page arrived: the channel ends, criu sees its client leave
        criu_end.settimeout(10)
        assert criu_end.recv(1) == b""
        criu_end.close()
    finally:
        tunnel.close()
    assert not tunnel.alive()


def test_page_tunnel_that_cannot_open_raises_and_leaves_nothing(edge):
    r = Receiver("peer", "ramsim")              # not prepared: the receiver refuses
    with pytest.raises(ReceiverError) as e:
        r.page_tunnel()
    assert "prepare first" in str(e.value)


def test_page_tunnel_without_an_answer_times_out(tmp_path):
    quiet = tmp_path / "quiet"
    quiet.write_text("#!/bin/sh\nexec sleep 30\n")
    os.chmod(str(quiet), 0o755)
    t0 = time.time()
    with pytest.raises(ReceiverError) as e:
        rc_mod.PageTunnel([str(quiet)], timeout=0.5)
    assert "no answer within 0.5s" in str(e.value) and time.time() - t0 < 10


def test_loopback_pair_is_connected():
    a, b = rc_mod.loopback_pair()
    try:
        a.sendall(b"x")
        assert b.recv(1) == b"x"
        assert a.getpeername() == b.getsockname()
    finally:
        a.close()
        b.close()
