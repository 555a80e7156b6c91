"""The client probe verifies the real `video` workload's stream (compiled from roles/edge/files) on loopback."""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
spec = importlib.util.spec_from_file_location("stream_probe", os.path.join(REPO, "playbooks", "files", "stream_probe.py"))
stream_probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stream_probe)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the workload")
    binary = str(tmp_path_factory.mktemp("bin") / "arnab-workload")
    subprocess.run(["gcc", "-O2", "-o", binary, os.path.join(REPO, "roles", "edge", "files", "arnab_workload.c")],
                   check=True)
    return binary


@pytest.fixture
def video(workload):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([workload, "video", "--port", str(port), "--rss-mib", "1"], stderr=subprocess.DEVNULL)
    for dummy in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield proc, port
    proc.kill()
    proc.wait()


def test_an_intact_stream_is_ok_and_sampled_every_bin(video):
    proc, port = video
    result = stream_probe.probe("127.0.0.1", port, 1.0, 10, 4242, [])
    assert result["ok"], result
    assert result["packets"] > 200                     # 4 Mbit/s for 1 s is about 380 packets
    assert sum(result["samples"]) == result["bytes"]
    assert len(result["samples"]) in range(100, 106)   # one bin per 10 ms


def test_a_wrong_seed_is_reported_as_corruption(video):
    proc, port = video
    result = stream_probe.probe("127.0.0.1", port, 0.3, 10, 1, [])
    assert not result["ok"]
    assert "payload corrupted" in result["problem"]


def test_a_server_that_dies_is_a_reset(video):
    proc, port = video
    subprocess.Popen(["sh", "-c", "sleep 0.4; kill -9 %d" % proc.pid])
    result = stream_probe.probe("127.0.0.1", port, 3.0, 10, 4242, [])
    assert not result["ok"]
    assert result["reset"]


def test_a_stopped_server_shows_as_a_gap(video):
    proc, port = video
    subprocess.Popen(["sh", "-c", "sleep 0.3; kill -STOP %d; sleep 0.3; kill -CONT %d" % (proc.pid, proc.pid)])
    result = stream_probe.probe("127.0.0.1", port, 1.2, 10, 4242, [])
    assert result["ok"], result                        # a pause loses nothing
    assert any(250 <= duration <= 400 for start, duration in result["gaps"]), result["gaps"]


def test_gaps_are_runs_of_empty_bins():
    assert stream_probe.gaps([5, 0, 0, 0, 0, 0, 7, 0, 3], 100.0, 10, min_ms=50) == [[100.01, 50]]
    assert stream_probe.gaps([0] * 6, 100.0, 10, min_ms=50) == [[100.0, 60]]


def test_the_pidfile_names_the_probe_and_goes_with_it(video, tmp_path):
    proc, port = video
    out, pidfile = tmp_path / "probe.json", tmp_path / "probe.pid"
    probe = subprocess.Popen([sys.executable, os.path.join(REPO, "playbooks", "files", "stream_probe.py"), "--host", "127.0.0.1", "--port", str(port),
                              "--out", str(out), "--pidfile", str(pidfile)])
    for dummy in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    assert int(pidfile.read_text()) == probe.pid
    time.sleep(0.3)
    os.kill(int(pidfile.read_text()), signal.SIGTERM)
    assert probe.wait(10) == 0
    assert json.loads(out.read_text())["ok"] and not pidfile.exists()
