"""roles/edge/files/arnab_workload.c: compiled with gcc and run on loopback (ramsim proof, video stream)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..", "..", "..", "roles", "edge", "files", "arnab_workload.c")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("wl") / "arnab-workload")
    # -static as the role builds it; fall back to dynamic where libc.a is missing
    rc = subprocess.call(["gcc", "-O2", "-Wall", "-Werror", "-static", "-o", out, SRC])
    if rc != 0:
        subprocess.check_call(["gcc", "-O2", "-Wall", "-Werror", "-o", out, SRC])
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ctl(binary, port, command):
    p = subprocess.run([binary, "ctl", "127.0.0.1", str(port), command], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30, check=False)
    return p.returncode, p.stdout.decode().strip()


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("port %d never opened" % port)


@pytest.fixture
def ramsim(binary):
    port = free_port()
    p = subprocess.Popen([binary, "ramsim", "--size-mib", "8", "--dirty-pct", "50", "--period-ms", "200",
                          "--port", str(port)], stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield p, port
    finally:
        p.kill()
        p.wait()


def read_until_closed(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def kv(line):
    return dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)


def test_ramsim_verifies_and_keeps_writing(binary, ramsim):
    p, port = ramsim
    rc, out = ctl(binary, port, "status")
    assert rc == 0 and out.startswith("ok ramsim pages=2048 ")
    time.sleep(0.5)
    rc, out = ctl(binary, port, "verify")
    assert rc == 0 and out.startswith("ok pages=2048 "), out
    first = int(kv(out)["writes"])
    assert first > 0
    time.sleep(0.5)
    rc, out = ctl(binary, port, "verify")
    assert rc == 0 and int(kv(out)["writes"]) > first
    assert kv(out)["gen_sum"] == kv(out)["writes"]


def test_ramsim_catches_corrupted_memory(binary, ramsim):
    p, port = ramsim
    rc, out = ctl(binary, port, "dirty 0")
    assert rc == 0 and out == "ok dirty_pct=0.00"
    # find the 8 MiB anonymous mapping and flip bytes in one page through /proc/PID/mem
    region = None
    with open("/proc/%d/maps" % p.pid) as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if hi - lo >= 8 << 20 and len(fields) < 6:
                region = lo
                break
    if region is None:
        pytest.skip("mapping not found")
    try:
        with open("/proc/%d/mem" % p.pid, "r+b", buffering=0) as mem:
            mem.seek(region + 5 * 4096 + 100)
            mem.write(b"\0\1\2\3")
    except OSError as e:
        pytest.skip("cannot write /proc/PID/mem here: %s" % e)
    rc, out = ctl(binary, port, "verify")
    assert rc == 1 and out.startswith("bad pages=2048 mismatches=1 first=5 "), out


def test_ramsim_control_protocol(binary, ramsim):
    _p, port = ramsim
    rc, out = ctl(binary, port, "ping")
    assert rc == 0 and out.startswith("pong now_ms=")
    rc, out = ctl(binary, port, "dirty 101")
    assert rc == 1 and out.startswith("error")
    rc, out = ctl(binary, port, "bogus")
    assert rc == 1 and out.startswith("error unknown command")
    # several commands on one connection, answered in order
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"ping\r\nstatus\nquit\n")
    lines = read_until_closed(s).decode().splitlines()
    assert lines[0].startswith("pong") and lines[1].startswith("ok ramsim") and len(lines) == 2


def test_ramsim_signal_verify(binary, ramsim):
    p, _port = ramsim
    import signal
    p.send_signal(signal.SIGUSR1)
    deadline = time.time() + 10
    text = b""
    os.set_blocking(p.stderr.fileno(), False)
    while time.time() < deadline and b"ok pages=" not in text:
        try:
            text += p.stderr.read() or b""
        except (BlockingIOError, TypeError):
            pass
        time.sleep(0.05)
    assert b"ok pages=2048" in text


def test_video_stream_is_checked_end_to_end(binary):
    port = free_port()
    p = subprocess.Popen([binary, "video", "--port", str(port), "--kbps", "2000", "--rss-mib", "2"],
                         stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        out = subprocess.run([binary, "videocheck", "127.0.0.1", str(port), "1.5"], stdout=subprocess.PIPE,
                             timeout=30, check=False).stdout.decode()
        assert out.startswith("ok "), out
        v = kv(out)
        assert v["bad_packets"] == "0" and int(v["packets"]) > 100
        assert 1500 < float(v["kbps"]) < 2500
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = read_until_closed(s)
        assert resp.startswith(b"HTTP/1.1 200 OK") and b'"clients_total": 1' in resp
    finally:
        p.kill()
        p.wait()


def test_videocheck_detects_a_wrong_stream(binary):
    port = free_port()
    p = subprocess.Popen([binary, "video", "--port", str(port), "--seed", "7", "--rss-mib", "0"],
                         stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        r = subprocess.run([binary, "videocheck", "127.0.0.1", str(port), "0.5"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, check=False)
        assert r.returncode == 1 and r.stdout.decode().startswith("bad ")
    finally:
        p.kill()
        p.wait()


def test_clients_fail_cleanly_without_server(binary):
    port = free_port()
    rc, out = ctl(binary, port, "ping")
    assert rc == 1 and out == "error connect failed"
    r = subprocess.run([binary, "videocheck", "127.0.0.1", str(port), "0.2"], stdout=subprocess.PIPE, timeout=10, check=False)
    assert r.returncode == 1
    r = subprocess.run([binary, "ctl", "no-such-host", "1", "ping"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, check=False)
    assert r.returncode == 1
