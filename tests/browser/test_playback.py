"""What a viewer sees (issue 11), on loopback: `make test-browser` (about 40 s; root, Debian's chromium,
chromium-driver, nginx and ffmpeg, the hls.js that setup fetches).

The rendered video (build/video, rendered if missing) is served by lab/video/run (nginx + the live playlist's
advancer) on 127.0.0.1 of a private network namespace, and headless Chromium plays it there through
arnab_lab.browser, exactly as the lab's client will (`ip netns exec NS python -m arnab_lab.browser serve`). In the
middle the server side stops for 3 s (SIGSTOP to nginx and the advancer, then SIGCONT); the test asserts what a
viewer would: playback went on, the picture's clock advanced, one stall around the pause of a plausible length, and
the screenshots are PNGs. Every process and the namespace go away, pass or fail.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from arnab_lab import browser

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIDEO_SRC = os.path.join(REPO, "lab", "video")
HLSJS = os.path.join(REPO, "build", "hls.min.js")
PAUSE_S = 3.0
PORT = 18080
FPS = 25

NEEDS = [("root", os.geteuid() == 0), ("chromium", os.path.exists(browser.CHROMIUM)),
         ("chromedriver", os.path.exists(browser.CHROMEDRIVER)), ("nginx", os.path.exists("/usr/sbin/nginx")),
         ("ffmpeg", shutil.which("ffmpeg") is not None), ("ip", shutil.which("ip") is not None)]
pytestmark = pytest.mark.skipif(not all(ok for name, ok in NEEDS),
                                reason="needs %s (make setup)" % ", ".join(name for name, ok in NEEDS if not ok))


@pytest.fixture(scope="module")
def video_dir():
    """build/video, rendered first if it is not there (scripts/build-video.sh, cached by recipe)."""
    path = os.path.join(REPO, "build", "video")
    if not os.path.isfile(os.path.join(path, "index.m3u8")):
        subprocess.run(["bash", os.path.join(REPO, "scripts", "build-video.sh")], check=True, stdout=subprocess.DEVNULL)
    return os.path.realpath(path)


@pytest.fixture
def netns():
    """A private network namespace with only its loopback: nothing in this test can reach anything else."""
    name = "arnab-bt-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def server(video_dir, netns):
    """lab/video/run on 127.0.0.1:PORT in the namespace; yields its process (a group of its own)."""
    if not os.path.isfile(HLSJS):
        pytest.skip("no build/hls.min.js: make setup fetches hls.js")
    top = tempfile.mkdtemp(prefix="arnab-browser-test-")
    os.chmod(top, 0o755)     # nginx's worker runs as nobody
    www = os.path.join(top, "www")
    os.mkdir(www)
    shutil.copy(os.path.join(VIDEO_SRC, "www", "index.html"), www)
    shutil.copy(HLSJS, www)
    log = open(os.path.join(top, "run.log"), "w+")
    proc = subprocess.Popen(netns + [os.path.join(VIDEO_SRC, "run"), "--listen", "127.0.0.1:%d" % PORT,
                                     "--video", video_dir, "--www", www, "--run-dir", os.path.join(top, "run")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe = netns + [sys.executable, "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:%d/live.m3u8', "
                                               "timeout=2).read()" % PORT]
        deadline = time.time() + 15
        while subprocess.run(probe, stderr=subprocess.DEVNULL, check=False).returncode != 0:
            assert proc.poll() is None and time.time() < deadline, "the video server did not come up"
            time.sleep(0.2)
        yield proc
    finally:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.killpg(proc.pid, sig)
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        sys.stdout.write(log.read())
        log.close()
        shutil.rmtree(top, ignore_errors=True)


def frames_in(video_dir):
    with open(os.path.join(video_dir, "index.m3u8")) as f:
        return int(round(sum(float(line[8:].split(",")[0]) for line in f if line.startswith("#EXTINF:")) * FPS))


def test_playback_goes_on_through_a_server_pause(server, netns, video_dir, tmp_path):
    shots = tmp_path / "shots"
    session = browser.start("http://127.0.0.1:%d/" % PORT, str(shots), wrap=netns)
    try:
        assert session.wait_playing(30), "the player never started"
        time.sleep(5)
        before = session.mark("before")
        paused_at = time.time()
        os.killpg(server.pid, signal.SIGSTOP)
        try:
            time.sleep(PAUSE_S)
        finally:
            os.killpg(server.pid, signal.SIGCONT)
        resumed_at = time.time()
        time.sleep(1.5)
        after = session.mark("after")
        time.sleep(5)
        result = session.stop(str(tmp_path / "events.json"))
    finally:
        session.kill()
    start = result["started_at"]
    pause = (round(paused_at - start, 3), round(resumed_at - start, 3))
    shown = {k: v for k, v in result.items() if k not in ("marks", "screenshots")}
    print("\nbrowser result (server paused %.2f-%.2f s): %s" % (pause[0], pause[1], json.dumps(shown)))

    # the player played, and went on after the pause
    assert result["played"] and result["startup_ms"] < 30000
    assert after["frames"] > before["frames"]
    seconds_after = result["duration_s"] - after["t"]
    assert result["frames_decoded_after"] >= FPS * seconds_after * 0.5
    assert result["frames_decoded_before"] == before["frames"] > 0
    assert result["played_s"] >= 8.0
    assert not [e for e in result["errors"] if e["fatal"]]

    # the picture's own clock advanced between the marks, by no more than the wall clock allows
    total = frames_in(video_dir)
    assert before["picture_frame"] is not None and after["picture_frame"] is not None, result["picture_frames"]
    advanced = (after["picture_frame"] - before["picture_frame"]) % total
    assert 0 < advanced <= (after["t"] - before["t"] + 1) * FPS

    # the pause reached the player as one stall around it, no longer than the pause plus a reconnect
    around = [s for s in result["stalls"] if pause[0] - 0.5 <= s["t"] <= pause[1] + 1.0]
    assert len(around) == 1, (pause, result["stalls"])
    assert 100 <= around[0]["ms"] <= PAUSE_S * 1000 + 2500 and not around[0].get("open")
    assert around[0]["t"] + around[0]["ms"] / 1000.0 >= pause[1] - 0.1    # it lasted until the server was back
    assert result["stalled_ms"] <= PAUSE_S * 1000 + 3000

    # the screenshots are there, and are PNGs
    assert [os.path.basename(p) for p in result["screenshots"]] == ["00-before.png", "01-after.png"]
    for path in result["screenshots"]:
        with open(path, "rb") as f:
            assert f.read(8) == browser.PNG_SIGNATURE
    assert (tmp_path / "events.json").exists()
