"""CRIU driver: varints, stats-dump parsing (own encoder + a real criu 4.2.1 capture), argv building."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu

from netns_standin import ADDRESS, NETNS_SETUP, NO_SUCH_PID, in_netns, restored_container

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16384, 2 ** 32 - 1, 2 ** 63])
def test_varint_roundtrip(value):
    enc = criu.encode_varint(value)
    assert criu.decode_varint(enc, 0) == (value, len(enc))


def test_varint_known_bytes():
    assert criu.encode_varint(300) == b"\xac\x02"
    assert criu.decode_varint(b"\x00\xac\x02", 1) == (300, 3)


def test_varint_truncated():
    with pytest.raises(ValueError):
        criu.decode_varint(b"\x80\x80", 0)


def test_iter_fields_all_wire_types():
    buf = (criu.encode_varint(1 << 3 | 0) + criu.encode_varint(7)
           + criu.encode_varint(2 << 3 | 1) + struct.pack("<Q", 9)
           + criu.encode_varint(3 << 3 | 2) + criu.encode_varint(3) + b"abc"
           + criu.encode_varint(4 << 3 | 5) + struct.pack("<I", 11))
    assert list(criu.iter_fields(buf)) == [(1, 0, 7), (2, 1, 9), (3, 2, b"abc"), (4, 5, 11)]


DUMP = {"freezing_time": 139, "frozen_time": 130217, "memdump_time": 121625, "memwrite_time": 116714,
        "pages_scanned": 10019, "pages_skipped_parent": 0, "pages_written": 9920, "irmap_resolve": 0,
        "pages_lazy": 0, "page_pipes": 8, "page_pipe_bufs": 8, "shpages_scanned": 0,
        "shpages_skipped_parent": 0, "shpages_written": 0}


def test_stats_roundtrip_with_own_encoder():
    data = criu.encode_stats(dump=DUMP)
    assert struct.unpack_from("<II", data) == (criu.IMG_SERVICE_MAGIC, criu.STATS_MAGIC)
    assert criu.parse_stats(data) == {"dump": DUMP}


def test_stats_restore_entry():
    restore = {"pages_compared": 5, "pages_skipped_cow": 2, "forking_time": 1000, "restore_time": 250000,
               "pages_restored": 16384}
    assert criu.parse_stats(criu.encode_stats(restore=restore)) == {"restore": restore}


def test_stats_real_criu_421_capture():
    """stats-dump written by criu 4.2.1 on this machine (a 40 MB python process, --leave-stopped)."""
    with open(os.path.join(FIXTURES, "stats-dump-criu-4.2.1"), "rb") as f:
        parsed = criu.parse_stats(f.read())
    assert parsed["dump"] == DUMP


def test_read_stats_and_summary(tmp_path):
    (tmp_path / "stats-dump").write_bytes(criu.encode_stats(dump=DUMP))
    s = criu.summarize_dump_stats(criu.read_stats(str(tmp_path)))
    assert s["frozen_time_s"] == pytest.approx(0.130217)
    assert s["bytes_written"] == 9920 * 4096
    assert criu.read_stats(str(tmp_path), "restore") == {}


def test_stats_rejects_other_images():
    with pytest.raises(ValueError):
        criu.parse_stats(struct.pack("<III", criu.IMG_COMMON_MAGIC, 0x12345678, 0))
    with pytest.raises(ValueError):
        criu.parse_stats(b"\x00")


def test_unknown_fields_are_kept():
    body = criu.encode_varint(99 << 3 | 0) + criu.encode_varint(5)
    entry = criu.encode_varint(1 << 3 | 2) + criu.encode_varint(len(body)) + body
    data = struct.pack("<III", criu.IMG_SERVICE_MAGIC, criu.STATS_MAGIC, len(entry)) + entry
    assert criu.parse_stats(data) == {"dump": {"field_99": 5}}


# ---- argv -----------------------------------------------------------------------------------------

def test_lxc_predump_parent_relative_to_images_dir():
    argv, opts = criu.build_argv("pre-dump", images_dir="/w/it-2", container="ct", lxcpath="/var/lib/lxc",
                                 parent_dir="/w/it-1", network_lock="nftables")
    assert argv == ["lxc-checkpoint", "-n", "ct", "-D", "/w/it-2", "-P", "/var/lib/lxc", "-p",
                    "--predump-dir=../it-1"]
    assert opts == [("network-lock", "nftables")]


def test_lxc_dump_leave_running_has_no_stop_flag():
    argv, opts = criu.build_argv("dump", images_dir="/w/d", container="ct", leave="running")
    assert "-s" not in argv and opts == []


def test_lxc_dump_leave_stopped_goes_through_config():
    argv, opts = criu.build_argv("dump", images_dir="/w/final", container="ct", leave="stopped",
                                 parent_dir="../it-3", track_mem=True, enable_fs=("ramfs",))
    assert "-s" in argv and "--predump-dir=../it-3" in argv
    assert ("leave-stopped", None) in opts and ("track-mem", None) in opts and ("enable-fs", "ramfs") in opts
    assert criu.config_text(opts).splitlines()[:2] == ["track-mem", "leave-stopped"]


def test_lxc_lazy_dump_and_restore():
    argv, opts = criu.build_argv("dump", images_dir="/w/lazy", container="ct", leave="stopped", lazy_pages=True,
                                 address="10.79.0.1", port=27100)
    assert opts[:4] == [("leave-stopped", None), ("lazy-pages", None), ("address", "10.79.0.1"),
                        ("port", "27100")]
    argv, opts = criu.build_argv("restore", images_dir="/w/images", container="ct", lazy_pages=True)
    assert argv[-2:] == ["-r", "-d"] and opts == [("lazy-pages", None)]


def test_lazy_dump_cannot_leave_running():
    with pytest.raises(ValueError):
        criu.build_argv("dump", images_dir="/w", container="ct", lazy_pages=True, port=1, leave="running")


def test_criu_backend_argv():
    argv, opts = criu.build_argv("dump", images_dir="/w/2", pid=42, parent_dir="/w/1", backend="criu",
                                 leave="running", page_server=True, address="10.0.0.2", port=9000)
    assert opts == []
    assert argv[:6] == ["criu", "dump", "-D", "/w/2", "-t", "42"]
    assert argv[argv.index("--prev-images-dir") + 1] == "../1"
    assert "--leave-running" in argv and "--tcp-established" in argv
    assert argv[-5:] == ["--page-server", "--address", "10.0.0.2", "--port", "9000"]
    argv, dummy = criu.build_argv("pre-dump", images_dir="/w/1", pid=42, backend="criu", track_mem=True)
    assert "--track-mem" in argv


def test_standalone_commands():
    argv, dummy = criu.build_argv("lazy-pages", images_dir="/d", address="10.79.0.1", port=27100, criu="/x/criu",
                                  log_file="lazy-pages.log")
    assert argv == ["/x/criu", "lazy-pages", "-D", "/d", "--page-server", "--address", "10.79.0.1", "--port",
                    "27100", "-o", "lazy-pages.log"]
    assert criu.build_argv("page-server", images_dir="/d", port=1234)[0] == [
        "criu", "page-server", "-D", "/d", "--port", "1234"]
    assert criu.build_argv("check", feature="mem_dirty_track")[0] == ["criu", "check", "--feature", "mem_dirty_track"]


@pytest.mark.parametrize("kw", [dict(action="bogus"), dict(action="dump", leave="frozen", images_dir="/d"),
                                dict(action="dump"), dict(action="dump", images_dir="/d", container=None)])
def test_argv_errors(kw):
    action = kw.pop("action")
    with pytest.raises(ValueError):
        criu.build_argv(action, **kw)


def test_parse_lxc_info():
    text = "Name:           ramsim\nState:          RUNNING\nPID:            10394\nIP:             10.78.0.201\n" \
           "Link:           veth2TDcZl\n TX bytes:      266 bytes\n"
    info = criu.parse_lxc_info(text)
    assert info["state"] == "RUNNING" and info["pid"] == 10394 and info["ips"] == ["10.78.0.201"]
    assert info["link"] == "veth2TDcZl"


def test_find_criu_error_skips_harmless_noise():
    log = ("Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n"
           "Error (criu/sk-inet.c:123): inet: Can't bind: Cannot assign requested address\n")
    assert "Cannot assign requested address" in criu.find_criu_error(log)


def test_netfix_argv():
    tx, netfix = criu.netfix_argv(4242)
    assert tx == ["nsenter", "-t", "4242", "-n", "ethtool", "-K", "eth0", "tx", "off"]
    assert netfix[:6] == ["nsenter", "-t", "4242", "-n", "python3", "-c"] and netfix[7:] == ["eth0", "4242"]
    compile(netfix[6], "netfix", "exec")
    assert criu.netfix_argv(4242, tx_off=False) == [netfix]


def test_check_features_with_fake_runner():
    calls = []

    def run(argv, env=None, timeout=None):
        calls.append(argv)
        if argv[1] == "--version":
            return 0, "Version: 4.2.1\n", ""
        return (0, "", "") if argv[-1] == "uffd-noncoop" else (1, "", "Dirty tracking is OFF")

    feats = criu.check_features(run, "criu")
    assert feats["criu_version"] == "4.2.1"
    assert feats["mem_dirty_track"] is False and feats["uffd_noncoop"] is True


# Runs in a network namespace of its own (nothing else's sockets are touched): a loopback connection, the net fix
# on this process (its gratuitous ARP goes out on a veth), then the kernel's TCPWinProbe counter and the
# connection still carrying data.
NETFIX_CHECK = r"""
import json, os, socket, subprocess, sys
def probes():
    with open("/proc/net/netstat") as f:
        head, values = [line.split() for line in f if line.startswith("TcpExt:")][:2]
    return int(values[head.index("TCPWinProbe")])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname())
peer = server.accept()[0]
before = probes()
out = subprocess.run([sys.executable, "-c", sys.argv[1], "eth0", str(os.getpid())], capture_output=True,
                     text=True).stdout
client.sendall(b"still here")
print(json.dumps({"out": out, "probes": probes() - before, "echo": peer.recv(100).decode()}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace, TCP_REPAIR and pidfd_getfd need root")
def test_netfix_announces_the_address_and_kicks_each_established_socket_which_lives_on():
    snippet = criu.netfix_argv(1)[-1][6]
    proc = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP + ' && exec "$0" -c "$1" "$2"',
                           sys.executable, NETFIX_CHECK, snippet], capture_output=True, text=True, check=True)
    res = json.loads(proc.stdout)
    assert res["out"].split("\n")[0].split()[:2] == ["garp", ADDRESS]
    assert res["out"].split()[-2:] == ["kicked", "2"]      # both ends of the connection live in that process
    assert res["probes"] == 2
    assert res["echo"] == "still here"


@pytest.fixture
def restored():
    with restored_container() as pid:
        yield pid


def test_after_restore_in_netns_does_the_whole_net_fix_in_the_containers_namespace(restored):
    ours = os.readlink("/proc/self/ns/net")
    rc, lines = criu.after_restore_in_netns(restored, "eth0")
    assert rc == 0, lines
    assert lines[0] == "INBOUND_LOCK_LEFT"
    assert criu.INBOUND_LOCK_TABLE not in in_netns(restored, "nft", "list", "tables")
    assert "TXOFF_FAILED" not in lines and "tx-checksumming: off" in in_netns(restored, "ethtool", "-k", "eth0")
    assert lines[1].split()[:2] == ["garp", ADDRESS] and lines[-1] == "kicked 2"
    assert os.readlink("/proc/self/ns/net") == ours     # only the child entered the namespace
    # a second run finds no lock left
    assert "INBOUND_LOCK_LEFT" not in criu.after_restore_in_netns(restored, "eth0")[1]


def test_after_restore_in_netns_reports_what_it_could_not_do(restored):
    rc, lines = criu.after_restore_in_netns(restored, "nosuch0")
    assert rc == 0 and "TXOFF_FAILED" in lines and [line for line in lines if line.startswith("GARP_FAILED")]
    assert lines[-1] == "kicked 2"      # the sockets are kicked all the same
    rc, lines = criu.after_restore_in_netns(NO_SUCH_PID, "eth0")
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("GARP_FAILED") and "No such file" in lines[0]


def test_lazy_dump_on_an_inherited_socket():
    """Post-copy over the SSH page channel: criu serves on the fd it inherits, it listens on nothing."""
    _argv, opts = criu.build_argv("dump", images_dir="/w/lazy", container="ct", leave="stopped", lazy_pages=True,
                                  ps_socket=5)
    assert ("lazy-pages", None) in opts and ("ps-socket", "5") in opts
    assert not [k for k, _v in opts if k in ("address", "port")]


# ---- post-copy's TLS page channel --------------------------------------------------------------------------------

TLS_OPTIONS = ["--tls", "--tls-cacert", "/w/tls/peer.pem", "--tls-cert", "/w/tls/own.pem", "--tls-key",
               "/w/tls/own.key", "--tls-no-cn-verify"]


def test_tls_goes_to_the_lazy_dumps_page_server_and_to_the_daemon_it_serves():
    _argv, opts = criu.build_argv("dump", images_dir="/w/lazy", container="ct", leave="stopped", lazy_pages=True,
                                  address="10.79.0.1", port=27100, tls_dir="/w/tls")
    assert criu.config_text(opts).split("\n")[-6:-1] == [
        "tls", "tls-cacert /w/tls/peer.pem", "tls-cert /w/tls/own.pem", "tls-key /w/tls/own.key", "tls-no-cn-verify"]
    argv, _o = criu.build_argv("lazy-pages", images_dir="/d", address="10.79.0.1", port=27100, tls_dir="/w/tls")
    assert argv[-len(TLS_OPTIONS):] == TLS_OPTIONS
    for bad in (dict(action="dump", ps_socket=5, lazy_pages=True), dict(action="restore", lazy_pages=True),
                dict(action="dump", lazy_pages=False, port=1)):
        with pytest.raises(ValueError, match="TLS applies"):
            criu.build_argv(images_dir="/w", container="ct", leave="stopped", tls_dir="/w/tls", **bad)
    with pytest.raises(ValueError, match="plain path"):      # criu reads it from a config line
        criu.build_argv("lazy-pages", images_dir="/d", address="a", port=1, tls_dir="/w/tls\ntls-key /etc/shadow")


def test_each_side_makes_its_own_key_and_pins_only_the_peers_certificate(tmp_path):
    cert = criu.tls_identity(str(tmp_path / "tls"))
    assert criu.check_pem_cert(cert) == cert
    assert oct(os.stat(str(tmp_path / "tls")).st_mode & 0o777) == "0o700"
    assert oct(os.stat(str(tmp_path / "tls" / criu.TLS_KEY)).st_mode & 0o777) == "0o600"
    assert criu.tls_identity(str(tmp_path / "tls")) != cert         # a new key every time
    other = criu.tls_identity(str(tmp_path / "other"))
    criu.pin_tls_peer(str(tmp_path / "tls"), other)
    assert (tmp_path / "tls" / criu.TLS_PEER).read_text() == other
    os.symlink("/etc/hostname", str(tmp_path / "link"))
    os.rename(str(tmp_path / "link"), str(tmp_path / "other" / criu.TLS_PEER))
    with pytest.raises(OSError):                                    # never written through a planted link
        criu.pin_tls_peer(str(tmp_path / "other"), cert)
    for bad in ("", cert + cert, cert + "tls-key /etc/shadow\n", cert.replace("MI", "$(touch x)", 1), None):
        with pytest.raises(ValueError, match="not one PEM certificate"):
            criu.check_pem_cert(bad)
    with pytest.raises(criu.CriuError, match="openssl could not"):
        criu.tls_identity(str(tmp_path / "x"), openssl="false")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "planted"))
    criu.tls_identity(str(tmp_path / "planted"))             # a link in its place is replaced, not followed
    assert not os.path.islink(str(tmp_path / "planted")) and os.listdir(str(tmp_path / "elsewhere")) == []


CRIU_BIN = shutil.which("criu") or ("/usr/local/sbin/criu" if os.path.exists("/usr/local/sbin/criu") else None)


@pytest.mark.skipif(CRIU_BIN is None or os.geteuid() != 0, reason="needs criu, as root")
def test_criu_serves_pages_only_to_the_pinned_peer(tmp_path):
    """criu's own page server with the pinned options: a client with the pinned certificate is served, one without
    a certificate or with another one is cut off; and the server shows the certificate the client pinned."""
    server, client, stranger = (str(tmp_path / n) for n in ("server", "client", "stranger"))
    server_cert = criu.tls_identity(server)
    client_cert = criu.tls_identity(client)
    criu.tls_identity(stranger)
    criu.pin_tls_peer(server, client_cert)

    def session(identity):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        images = tmp_path / ("images-%d" % port)
        images.mkdir()
        argv = [CRIU_BIN, "page-server", "-D", str(images), "--address", "127.0.0.1", "--port", str(port)]
        for key, value in criu.tls_options(server):
            argv += ["--" + key] + ([value] if value else [])
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    assert time.time() < deadline and proc.poll() is None, "criu page-server did not listen"
                    time.sleep(0.05)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(cadata=server_cert)
            if identity:
                ctx.load_cert_chain(os.path.join(identity, criu.TLS_CERT), os.path.join(identity, criu.TLS_KEY))
            with ctx.wrap_socket(raw) as tls:
                tls.settimeout(1.0)
                try:
                    return "cut off" if tls.recv(1) == b"" else "answered"
                except socket.timeout:
                    return "served"            # the page server waits for our requests
                except (ssl.SSLError, ConnectionError):
                    return "cut off"
        finally:
            proc.kill()
            proc.wait()
    assert session(client) == "served"
    assert session(None) == "cut off"
    assert session(stranger) == "cut off"


# ---- pagemap images ---------------------------------------------------------------------------------------------

def test_pagemap_real_criu_421_capture():
    """pagemap-<pid>.img and pagemap-shmem-<id>.img written by criu 4.2.1 on this machine (a python process with
    an 8 MiB shared anonymous mapping: shmem, its own pages image); criu 4.2.1 puts the page count in field 5
    (nr_pages) and 0 in field 2 (compat_nr_pages); some entries are PE_PRESENT | PE_LAZY."""
    with open(os.path.join(FIXTURES, "pagemap-criu-4.2.1.img"), "rb") as f:
        pages_id, entries = criu.parse_pagemap(f.read())
    assert pages_id == 3 and len(entries) == 65 and all(present for _v, _n, present in entries)
    assert sum(n for _v, n, _p in entries) * 4096 == 7090176       # the size of its pages-3.img
    assert entries[:2] == [(0x5638a2dfa000, 1, True), (0x5638a2dfc000, 2, True)]
    assert [v for v, _n, _p in entries] == sorted(v for v, _n, _p in entries)
    with open(os.path.join(FIXTURES, "pagemap-shmem-criu-4.2.1.img"), "rb") as f:
        data = f.read()
    assert criu.parse_pagemap(data) == (2, [(0, 1024, True), (4194304, 1024, True)])
    assert criu.encode_pagemap(2, [(0, 1024, criu.PE_PRESENT), (4194304, 1024, criu.PE_PRESENT)]) == data


def test_pagemap_flags_and_old_images():
    entries = [(0x1000, 2, criu.PE_PRESENT), (0x5000, 1, criu.PE_PARENT), (0x9000, 3, criu.PE_LAZY),
               (0xa000, 1, criu.PE_PRESENT | criu.PE_LAZY)]
    assert criu.parse_pagemap(criu.encode_pagemap(7, entries)) == (
        7, [(0x1000, 2, True), (0x5000, 1, False), (0x9000, 3, False), (0xa000, 1, True)])
    # criu before flags and nr_pages: the count in compat_nr_pages, present unless in_parent
    old = criu.encode_pagemap(1, [(0x1000, 4, None)], compat=True)
    assert criu.parse_pagemap(old) == (1, [(0x1000, 4, True)])
    assert criu.parse_pagemap(old[4:]) == (1, [(0x1000, 4, True)])      # without the common magic


@pytest.mark.parametrize("data", [b"", b"\x19\x43\x56\x54", criu.encode_stats(dump={"pages_written": 1}),
                                  criu.encode_pagemap(1, [(0x1000, 1, 4)])[:-2],
                                  struct.pack("<III", criu.IMG_COMMON_MAGIC, criu.PAGEMAP_MAGIC, 0)])
def test_pagemap_rejects_other_and_truncated_images(data):
    with pytest.raises(ValueError):
        criu.parse_pagemap(data)


def test_page_layouts_of_a_dump_dir(tmp_path):
    (tmp_path / "pagemap-42.img").write_bytes(criu.encode_pagemap(2, [(0x1000, 2, 4), (0x8000, 1, 1), (0x9000, 1, 4)]))
    (tmp_path / "pagemap-shmem-9.img").write_bytes(criu.encode_pagemap(1, [(0, 3, 4)]))
    (tmp_path / "pagemap-43.img").write_bytes(b"garbage")
    (tmp_path / "pages-1.img").write_bytes(b"")
    assert criu.page_layouts(str(tmp_path)) == {
        "pages-2.img": ("pagemap-42.img", [(0x1000, 2), (0x9000, 1)]),
        "pages-1.img": ("pagemap-shmem-9.img", [(0, 3)])}
    assert criu.page_layouts(str(tmp_path / "missing")) == {}


def test_the_restore_hook_removes_the_inbound_lock_at_post_restore_only(tmp_path):
    """criu runs the restore's action script at every hook with CRTOOLS_SCRIPT_ACTION and CRTOOLS_INIT_PID: only
    post-restore (before criu lifts its own lock) removes the source's table, in the restored init's namespace."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    (bindir / "nsenter").write_text('#!/bin/sh\necho "$*" >> %s\n' % log)
    (bindir / "nsenter").chmod(0o755)
    hook = tmp_path / "hook.sh"
    hook.write_text(criu.INBOUND_UNLOCK_SH)
    hook.chmod(0o700)
    for action, pid in (("setup-namespaces", "4242"), ("post-restore", "4242"), ("post-restore", "1;touch x"),
                        ("post-restore", "")):
        env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), CRTOOLS_SCRIPT_ACTION=action,
                   CRTOOLS_INIT_PID=pid)
        assert subprocess.run(["sh", "-c", str(hook)], env=env, cwd=str(tmp_path), check=False).returncode == 0
    assert log.read_text() == "-t 4242 -n nft delete table inet arnab_lock\n"
    assert not (tmp_path / "x").exists()


def _tcp_stream(timestamp=None, tail=b"QUEUED-DATA"):
    """A tcp-stream image as criu writes it: magics, u32 size, tcp_stream_entry (varints), then the queues."""
    fields = [(1, 11), (2, 3000000000), (3, 0), (4, 123456), (5, 0x7), (6, 7), (7, 1448), (8, 7)]
    if timestamp is not None:
        fields.append((9, timestamp))
    fields += [(12, 0), (13, 55), (14, 65535), (15, 65535), (16, 65483), (17, 99)]
    entry = b"".join(criu.encode_varint(f << 3) + criu.encode_varint(v) for f, v in fields)
    return struct.pack("<III", criu.IMG_COMMON_MAGIC, criu.TCP_STREAM_MAGIC, len(entry)) + entry + tail


def _entry(image):
    size = struct.unpack_from("<I", image, 8)[0]
    return dict((f, v) for f, _w, v in criu.iter_fields(image[12:12 + size])), image[12 + size:]


@pytest.mark.parametrize("old,shift,new", [
    (1000, 482, 1482),                      # the usual case
    (2 ** 28 - 100, 482, 2 ** 28 + 382),    # the varint grows by a byte: the entry's size follows
    (2 ** 32 - 100, 482, 382),              # TCP timestamps wrap
])
def test_the_tcp_timestamp_clock_moves_forward_and_nothing_else_changes(old, shift, new):
    image = _tcp_stream(old)
    moved, was, now = criu.shift_tcp_stream_timestamp(image, shift)
    assert (was, now) == (old, new)
    fields, tail = _entry(moved)
    want = _entry(image)[0]
    want[9] = new
    assert fields == want and tail == b"QUEUED-DATA"
    assert moved[:8] == image[:8]


def test_a_socket_without_timestamps_is_left_as_it_is():
    image = _tcp_stream(None)
    assert criu.shift_tcp_stream_timestamp(image, 500) == (image, None, None)


@pytest.mark.parametrize("image", [
    b"",
    struct.pack("<III", criu.IMG_COMMON_MAGIC, criu.PAGEMAP_MAGIC, 0),                # another image
    _tcp_stream(1000)[:20],                                                            # truncated entry
    struct.pack("<III", criu.IMG_COMMON_MAGIC, criu.TCP_STREAM_MAGIC, 5) + b"\x4a\x03abc",   # not a varint
])
def test_anything_but_a_tcp_stream_entry_is_refused(image):
    with pytest.raises(ValueError):
        criu.shift_tcp_stream_timestamp(image, 500)


def test_every_tcp_stream_image_of_a_dump_moves_and_nothing_else(tmp_path):
    (tmp_path / "tcp-stream-1a.img").write_bytes(_tcp_stream(1000))
    (tmp_path / "tcp-stream-2b.img").write_bytes(_tcp_stream(None))
    (tmp_path / "tcp-stream-3c.img").write_bytes(_tcp_stream(7))
    (tmp_path / "tcp-stream-3c.img").chmod(0o600)
    (tmp_path / "core-1.img").write_bytes(b"core")
    assert criu.shift_tcp_timestamps(str(tmp_path), 300) == 2
    assert _entry((tmp_path / "tcp-stream-1a.img").read_bytes())[0][9] == 1300
    assert _entry((tmp_path / "tcp-stream-3c.img").read_bytes())[0][9] == 307
    assert (tmp_path / "tcp-stream-3c.img").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tcp-stream-2b.img").read_bytes() == _tcp_stream(None)
    assert (tmp_path / "core-1.img").read_bytes() == b"core"
    assert sorted(os.listdir(str(tmp_path))) == ["core-1.img", "tcp-stream-1a.img", "tcp-stream-2b.img",
                                                 "tcp-stream-3c.img"]


# ---- the container's cgroup freezer (the final dump's pre-dump hook) ---------------------------------

def _cgroup_tree(tmp_path, lines, files):
    """A /proc/PID/cgroup with ``lines`` and a cgroup mount with ``files`` (paths under it) present."""
    proc = tmp_path / "proc" / "42"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("".join(line + "\n" for line in lines))
    root = tmp_path / "cg"
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("THAWED\n")
    return str(tmp_path / "proc"), str(root)


def test_freezer_of_finds_the_lxc_payload_cgroup_v1_and_v2(tmp_path):
    proc, root = _cgroup_tree(tmp_path / "v1", ["6:freezer:/arnab-edge1/lxc.payload.video-4", "0::/other"],
                              ["freezer/arnab-edge1/lxc.payload.video-4/freezer.state"])
    fz = criu.freezer_of(42, proc=proc, cgroup_root=root)
    assert fz == {"file": root + "/freezer/arnab-edge1/lxc.payload.video-4/freezer.state", "frozen": "FROZEN",
                  "thawed": "THAWED", "events": None}
    # v2: init sits in a cgroup systemd made inside the container; the payload is the first lxc.payload.* (one the
    # container made deeper down does not count)
    proc, root = _cgroup_tree(tmp_path / "v2", ["0::/lxc.payload.video/init.scope/lxc.payload.mine"],
                              ["lxc.payload.video/cgroup.freeze"])
    fz = criu.freezer_of(42, proc=proc, cgroup_root=root)
    assert fz["file"] == root + "/lxc.payload.video/cgroup.freeze" and (fz["frozen"], fz["thawed"]) == ("1", "0")
    assert fz["events"] == root + "/lxc.payload.video/cgroup.events"


@pytest.mark.parametrize("line,present", [
    ("6:freezer:/user.slice/session-1.scope", "freezer/user.slice/session-1.scope/freezer.state"),   # no payload
    ("6:freezer:/lxc.payload.a b", "freezer/lxc.payload.a b/freezer.state"),                          # not plain
    ("6:freezer:/lxc.payload.$(touch x)", "freezer/lxc.payload.$(touch x)/freezer.state"),
    ("6:freezer:/lxc.payload.gone", "freezer/elsewhere/freezer.state"),                               # no file
])
def test_freezer_of_says_none_when_it_cannot_tell_the_payload(tmp_path, line, present):
    proc, root = _cgroup_tree(tmp_path, [line], [present])
    assert criu.freezer_of(42, proc=proc, cgroup_root=root) is None
    assert criu.freezer_of(2 ** 22 + 7) is None and criu.freezer_of(None) is None


def _run_prefreeze(fz, tries=criu.PREFREEZE_TRIES, cwd=None):
    return subprocess.run(["sh", "-c", criu.prefreeze_sh(fz, tries=tries)], cwd=cwd, timeout=30,
                          check=False).returncode


def test_prefreeze_freezes_and_waits_until_frozen(tmp_path):
    state = tmp_path / "freezer.state"
    state.write_text("THAWED\n")
    assert _run_prefreeze({"file": str(state), "frozen": "FROZEN", "thawed": "THAWED", "events": None}) == 0
    assert state.read_text().strip() == "FROZEN"
    freeze, events = tmp_path / "cgroup.freeze", tmp_path / "cgroup.events"
    freeze.write_text("0\n")
    events.write_text("populated 1\nfrozen 1\n")
    assert _run_prefreeze({"file": str(freeze), "frozen": "1", "thawed": "0", "events": str(events)}) == 0
    assert freeze.read_text().strip() == "1"


def test_prefreeze_that_does_not_complete_thaws_again_and_leaves_it_to_criu(tmp_path):
    freeze, events = tmp_path / "cgroup.freeze", tmp_path / "cgroup.events"
    freeze.write_text("0\n")
    events.write_text("populated 1\nfrozen 0\n")      # a task that never freezes
    assert _run_prefreeze({"file": str(freeze), "frozen": "1", "thawed": "0", "events": str(events)}, tries=3) == 0
    assert freeze.read_text().strip() == "0"
    # a file that cannot be written (no such cgroup): the hook passes, the dump goes on as criu's own
    assert _run_prefreeze({"file": str(tmp_path / "gone" / "freezer.state"), "frozen": "FROZEN", "thawed": "THAWED",
                           "events": None}) == 0


@pytest.mark.parametrize("name", ["$(touch pwned)", "`touch pwned`", "a;touch pwned", "a\ntouch pwned", "a b"])
def test_prefreeze_quotes_the_paths(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    state, events = d / "cgroup.freeze", d / "cgroup.events"
    state.write_text("0\n")
    events.write_text("frozen 1\n")
    assert _run_prefreeze({"file": str(state), "frozen": "1", "thawed": "0", "events": str(events)},
                          cwd=str(tmp_path)) == 0
    assert state.read_text().strip() == "1"
    assert not (tmp_path / "pwned").exists() and not (d / "pwned").exists()
