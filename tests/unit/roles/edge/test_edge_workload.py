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


def ram_region(pid, size_mib=8):
    """Start address of ramsim's anonymous mapping of size_mib MiB (None when not found)."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if hi - lo >= size_mib << 20 and len(fields) < 6:
                return lo
    return None


def poke(pid, address, data):
    """Write bytes into the process's memory through /proc/PID/mem (skips the test where that is refused)."""
    try:
        with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
            mem.seek(address)
            mem.write(data)
    except OSError as e:
        pytest.skip("cannot write /proc/PID/mem here: %s" % e)


def peek_pages(pid, region, pages):
    """{page: its 4096 bytes} read through /proc/PID/mem."""
    out = {}
    try:
        with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
            for page in pages:
                mem.seek(region + page * 4096)
                out[page] = mem.read(4096)
    except OSError as e:
        pytest.skip("cannot read /proc/PID/mem here: %s" % e)
    return out


def test_ramsim_catches_corrupted_memory(binary, ramsim):
    p, port = ramsim
    rc, out = ctl(binary, port, "dirty 0")
    assert rc == 0 and out == "ok dirty_pct=0.00"
    # find the 8 MiB anonymous mapping and flip bytes in one page through /proc/PID/mem
    region = ram_region(p.pid)
    if region is None:
        pytest.skip("mapping not found")
    poke(p.pid, region + 5 * 4096 + 100, b"\0\1\2\3")
    rc, out = ctl(binary, port, "verify")
    assert rc == 1 and out.startswith("bad pages=2048 mismatches=1 first=5 "), out


# -- working-set mode (--hot-pct): the paper's "20% of the in-memory data frequently changes" ----------------------

def start_ramsim(binary, *args):
    port = free_port()
    p = subprocess.Popen([binary, "ramsim", "--size-mib", "8", "--period-ms", "200", "--port", str(port)] + list(args),
                         stderr=subprocess.PIPE)
    try:
        wait_port(port)
    except AssertionError:
        p.kill()
        p.wait()
        raise
    return p, port


@pytest.fixture
def hot20(binary):
    """8 MiB (2048 pages), hot set 20% (410 pages), 50% of the WHOLE memory rewritten per 200 ms."""
    p, port = start_ramsim(binary, "--dirty-pct", "50", "--hot-pct", "20")
    try:
        yield p, port
    finally:
        p.kill()
        p.wait()


def ask_many(port, commands):
    """Several control lines on one connection; their answers in order."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall("".join(c + "\n" for c in commands).encode() + b"quit\n")
    lines = read_until_closed(s).decode().splitlines()
    s.close()
    assert len(lines) == len(commands), lines[-3:]
    return lines


def hot_pages_of(port, pages=2048):
    """The set of pages ramsim says are in its hot set (`page I` for every page)."""
    answers = ask_many(port, ["page %d" % i for i in range(pages)])
    return {i for i, line in enumerate(answers) if kv(line)["hot"] == "1"}


def test_ramsim_default_is_every_page_hot(binary, ramsim):
    _p, port = ramsim
    rc, out = ctl(binary, port, "status")
    assert rc == 0 and out.startswith("ok ramsim pages=2048 ")
    assert kv(out)["hot_pct"] == "100.00" and kv(out)["hot_pages"] == "2048"
    time.sleep(0.5)
    info = kv(ctl(binary, port, "hotinfo")[1])
    assert info["hot_pages"] == "2048" and info["rewritten_cold"] == "0" and int(info["rewritten"]) > 410


def test_ramsim_working_set_rewrites_only_the_hot_set(binary, hot20):
    _p, port = hot20
    rc, out = ctl(binary, port, "status")
    assert rc == 0 and kv(out)["hot_pct"] == "20.00" and kv(out)["hot_pages"] == "410"
    assert kv(out)["dirty_pct"] == "50.00"
    time.sleep(1.2)      # six periods: 6 x 1024 page writes, all within 410 hot pages
    rc, out = ctl(binary, port, "hotinfo")
    assert rc == 0, out
    info = {k: int(float(v)) for k, v in kv(out).items()}
    assert info["pages"] == 2048 and info["hot_pages"] == 410
    assert info["rewritten_cold"] == 0
    assert info["rewritten"] == info["rewritten_hot"] <= 0.2 * 2048 + 1
    assert info["rewritten_hot"] >= 0.95 * 410        # the whole hot set is in use, not a corner of it
    rc, out = ctl(binary, port, "verify")
    assert rc == 0 and out.startswith("ok pages=2048 "), out
    # --dirty-pct is the share of the WHOLE memory per period: 50% of 2048 pages per 200 ms, i.e. the 20% hot set
    # rewritten 2.5 times per period
    assert int(kv(out)["writes"]) >= 3 * 1024 and kv(out)["gen_sum"] == kv(out)["writes"]
    hot = hot_pages_of(port)
    assert len(hot) == 410
    assert all(kv(line)["gen"] == "0" for line in ask_many(port, ["page %d" % i for i in range(2048) if i not in hot]))


def test_ramsim_cold_pages_keep_their_bytes(binary, hot20):
    p, port = hot20
    region = ram_region(p.pid)
    if region is None:
        pytest.skip("mapping not found")
    hot = hot_pages_of(port)
    cold = sorted(set(range(2048)) - hot)
    before = peek_pages(p.pid, region, cold + sorted(hot))
    time.sleep(1.0)
    after = peek_pages(p.pid, region, cold + sorted(hot))
    assert [i for i in cold if before[i] != after[i]] == []
    assert sum(before[i] != after[i] for i in hot) >= 0.9 * len(hot)
    # and the hot set is scattered over the mapping, not its first pages
    assert min(hot) < 2048 // 4 and max(hot) > 3 * 2048 // 4


def test_ramsim_hot_set_comes_from_the_seed(binary, hot20):
    _p, port = hot20
    first = hot_pages_of(port)
    p2, port2 = start_ramsim(binary, "--dirty-pct", "0")
    try:
        # picked at runtime by `hot P` in a process started at 100%: the same set as --hot-pct P at start
        rc, out = ctl(binary, port2, "hot 20")
        assert rc == 0 and out == "ok hot_pct=20.00 hot_pages=410"
        assert hot_pages_of(port2) == first
        # a larger set holds the smaller one; back to 100% every page is hot again
        assert ctl(binary, port2, "hot 50") == (0, "ok hot_pct=50.00 hot_pages=1024")
        assert first < hot_pages_of(port2)
        assert ctl(binary, port2, "hot 100") == (0, "ok hot_pct=100.00 hot_pages=2048")
        assert kv(ctl(binary, port2, "status")[1])["hot_pages"] == "2048"
    finally:
        p2.kill()
        p2.wait()
    p3, port3 = start_ramsim(binary, "--dirty-pct", "0", "--hot-pct", "20", "--seed", "99")
    try:
        assert len(hot_pages_of(port3)) == 410 and hot_pages_of(port3) != first
    finally:
        p3.kill()
        p3.wait()


def test_ramsim_hot_command_moves_the_writer(binary, hot20):
    _p, port = hot20
    assert ctl(binary, port, "dirty 0")[0] == 0
    old = hot_pages_of(port)
    rc, out = ctl(binary, port, "hot 5")
    assert rc == 0 and out == "ok hot_pct=5.00 hot_pages=102"
    new = hot_pages_of(port)
    assert new < old
    before = [kv(line)["gen"] for line in ask_many(port, ["page %d" % i for i in sorted(old - new)])]
    assert ctl(binary, port, "dirty 50")[0] == 0
    time.sleep(0.6)
    info = kv(ctl(binary, port, "hotinfo")[1])
    # pages rewritten while they were hot now count as cold ones; none of them was written again
    assert int(info["rewritten_cold"]) > 0 and info["hot_pages"] == "102"
    assert [kv(line)["gen"] for line in ask_many(port, ["page %d" % i for i in sorted(old - new)])] == before
    rc, out = ctl(binary, port, "verify")
    assert rc == 0, out


def test_ramsim_working_set_catches_corrupted_pages(binary, hot20):
    p, port = hot20
    region = ram_region(p.pid)
    if region is None:
        pytest.skip("mapping not found")
    hot = hot_pages_of(port)
    cold = min(set(range(2048)) - hot)
    # a cold page is never rewritten, so its corruption stays while the writer runs, and verify finds it
    poke(p.pid, region + cold * 4096 + 8, b"\xff\xfe")
    time.sleep(0.3)
    rc, out = ctl(binary, port, "verify")
    assert rc == 1 and out.startswith("bad pages=2048 mismatches=1 first=%d gen=0 " % cold), out
    # a hot page too, with the writer paused (else it would be rewritten and heal)
    assert ctl(binary, port, "dirty 0")[0] == 0
    page = max(hot)
    gen = kv(ctl(binary, port, "page %d" % page)[1])["gen"]
    poke(p.pid, region + page * 4096 + 4000, b"\x00\x01")
    rc, out = ctl(binary, port, "verify")
    assert rc == 1 and "mismatches=2 " in out and "first=%d " % min(cold, page) in out, out
    assert kv(ctl(binary, port, "page %d" % page)[1])["gen"] == gen


def test_ramsim_working_set_arguments(binary):
    for bad in ("0", "-5", "101"):
        r = subprocess.run([binary, "ramsim", "--size-mib", "1", "--hot-pct", bad, "--port", str(free_port())],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10, check=False)
        assert r.returncode == 2 and b"bad arguments" in r.stderr


def test_ramsim_working_set_control_errors(binary, hot20):
    _p, port = hot20
    assert ctl(binary, port, "hot 0") == (1, "error hot_pct must be > 0 and <= 100")
    assert ctl(binary, port, "hot 100.5") == (1, "error hot_pct must be > 0 and <= 100")
    assert ctl(binary, port, "page 2048") == (1, "error page must be 0..2047")
    assert ctl(binary, port, "page x") == (1, "error page must be 0..2047")
    assert ctl(binary, port, "page 7")[1].startswith("ok page=7 gen=")
    # dirty keeps working in working-set mode
    assert ctl(binary, port, "dirty 10") == (0, "ok dirty_pct=10.00")
    assert kv(ctl(binary, port, "status")[1])["dirty_pct"] == "10.00"


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
