"""lab/video: the live playlist's advancer (sh + awk, run at given times) and `run` (nginx + advancer, on 127.0.0.1)."""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
VIDEO = os.path.join(REPO, "lab", "video")
ADVANCER = os.path.join(VIDEO, "advancer")


def vod(tmp_path, durations, name="index.m3u8"):
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    for i, d in enumerate(durations):
        lines += ["#EXTINF:%.6f," % d, "seg%05d.ts" % i]
    lines.append("#EXT-X-ENDLIST")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def live_at(tmp_path, playlist, now, *options):
    out = tmp_path / "live.m3u8"
    subprocess.run([ADVANCER, "--once", "--now", repr(now)] + list(options) + [str(playlist), str(out)], check=True)
    assert not (tmp_path / "live.m3u8.tmp").exists()
    return parse(out.read_text())


def parse(text):
    """{"seq", "dseq", "target", "segments": [(sequence number, discontinuity number, uri, duration)]}."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    head = dict(re.match(r"#EXT-X-([A-Z-]+):(.*)", line).groups() for line in lines if
                line.startswith("#EXT-X-") and ":" in line)
    seq, dseq = int(head["MEDIA-SEQUENCE"]), int(head["DISCONTINUITY-SEQUENCE"])
    segments, disc, duration = [], dseq, None
    for line in lines[1:]:
        if line == "#EXT-X-DISCONTINUITY":
            assert segments, "a discontinuity before the first segment"
            disc += 1
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].rstrip(","))
        elif not line.startswith("#"):
            segments.append((seq + len(segments), disc, line, duration))
    assert "#EXT-X-ENDLIST" not in lines
    return {"seq": seq, "dseq": dseq, "target": int(head["TARGETDURATION"]), "segments": segments}


def test_the_window_follows_the_clock(tmp_path):
    playlist = vod(tmp_path, [1.0] * 20)
    live = live_at(tmp_path, playlist, 1000000019.5)
    # at t the segment covering t mod 20 s is being "recorded"; the 4 before it are live
    assert live["seq"] == 1000000015 and live["target"] == 1
    assert [s[2] for s in live["segments"]] == ["seg/seg00015.ts", "seg/seg00016.ts", "seg/seg00017.ts",
                                                "seg/seg00018.ts"]
    assert live_at(tmp_path, playlist, 1000000020.2)["seq"] == 1000000016
    assert live_at(tmp_path, playlist, 1000000020.999)["seq"] == 1000000016


def test_the_loop_wraps_with_a_discontinuity(tmp_path):
    playlist = vod(tmp_path, [1.0] * 20)
    live = live_at(tmp_path, playlist, 1000000021.0)
    assert [(s[0], s[1], s[2]) for s in live["segments"]] == [
        (1000000017, 50000000, "seg/seg00017.ts"), (1000000018, 50000000, "seg/seg00018.ts"),
        (1000000019, 50000000, "seg/seg00019.ts"), (1000000020, 50000001, "seg/seg00000.ts")]


def test_sequence_and_discontinuity_numbers_hold_across_playlists(tmp_path):
    """Every segment keeps its sequence number, URI and discontinuity number in every playlist it appears in,
    the media sequence rises by one per segment, and the discontinuity sequence counts the wraps that left."""
    playlist = vod(tmp_path, [1.0, 0.5, 2.0, 1.5])    # uneven segments: 5 s a loop
    seen = {}
    previous = None
    t = 1800000000.0
    while t < 1800000000.0 + 12.0:
        live = live_at(tmp_path, playlist, t, "--window", "3", "--prefix", "v/")
        assert len(live["segments"]) == 3 and live["target"] == 2
        for number, disc, uri, duration in live["segments"]:
            assert seen.setdefault(number, (disc, uri, duration)) == (disc, uri, duration)
        if previous is not None:
            assert live["seq"] - previous in (0, 1)
        previous = live["seq"]
        t += 0.25
    numbers = sorted(seen)
    assert numbers == list(range(numbers[0], numbers[-1] + 1))
    uris = [seen[n][1] for n in numbers]
    for a, b in zip(numbers, numbers[1:]):
        index_a, index_b = int(seen[a][1][-8:-3]), int(seen[b][1][-8:-3])
        assert index_b == (index_a + 1) % 4
        assert seen[b][0] == seen[a][0] + (1 if index_b == 0 else 0)
    assert all(u.startswith("v/seg") for u in uris)


def test_a_restart_or_a_restore_lands_on_the_same_playlist(tmp_path):
    """No state but the clock: two runs at the same time write the same playlist."""
    playlist = vod(tmp_path, [1.0] * 7)
    assert live_at(tmp_path, playlist, 1750000123.4) == live_at(tmp_path, playlist, 1750000123.4)


def test_the_origin_keeps_the_numbers_small_and_the_first_playlist_full(tmp_path):
    playlist = vod(tmp_path, [1.0] * 20)
    origin = tmp_path / "origin"
    now = 1795945488.25
    live = live_at(tmp_path, playlist, now, "--origin-file", str(origin))
    assert origin.read_text() == "%d\n" % (int(now) - 5)        # window + 1 segments before
    assert live["seq"] == 1 and live["dseq"] == 0 and len(live["segments"]) == 4
    # the file is kept: later playlists (a restart, a restored copy) count from it
    later = live_at(tmp_path, playlist, now + 30, "--origin-file", str(origin))
    assert later["seq"] == 31 and later["dseq"] == 1
    assert later == live_at(tmp_path, playlist, now + 30, "--origin", str(int(now) - 5))
    # hls.js walks an array up to the discontinuity sequence on each load: from the Unix epoch it would be huge
    assert live_at(tmp_path, playlist, now, "--origin", "0")["dseq"] == (int(now) - 4) // 20


def test_without_an_origin_the_loop_counts_from_its_start(tmp_path):
    playlist = vod(tmp_path, [1.0] * 20)
    out = tmp_path / "live.m3u8"
    proc = subprocess.Popen([ADVANCER, str(playlist), str(out)], start_new_session=True)
    try:
        deadline = time.time() + 5
        while not out.exists() and time.time() < deadline:
            time.sleep(0.05)
        live = parse(out.read_text())
        assert live["seq"] in (1, 2) and live["dseq"] == 0 and len(live["segments"]) == 4
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)


@pytest.mark.parametrize("content, message", [
    ("#EXTM3U\n#EXT-X-ENDLIST\n", "no segments"),
    ("#EXTM3U\nseg0.ts\n", "no #EXTINF"),
])
def test_a_bad_vod_playlist_is_an_error(tmp_path, content, message):
    playlist = tmp_path / "index.m3u8"
    playlist.write_text(content)
    run = subprocess.run([ADVANCER, "--once", str(playlist), str(tmp_path / "live.m3u8")], capture_output=True,
                         text=True, check=False)
    assert run.returncode != 0 and message in run.stderr
    assert not (tmp_path / "live.m3u8").exists()


def test_the_loop_rewrites_the_playlist_each_segment_and_stops_on_term(tmp_path):
    playlist = vod(tmp_path, [0.5] * 40)
    out = tmp_path / "live.m3u8"
    proc = subprocess.Popen([ADVANCER, "--origin", "0", str(playlist), str(out)], start_new_session=True)
    try:
        deadline = time.time() + 5
        while not out.exists() and time.time() < deadline:
            time.sleep(0.05)
        first = parse(out.read_text())["seq"]
        time.sleep(1.6)
        now = time.time()
        second = parse(out.read_text())["seq"]
        assert second - first >= 2
        assert abs(second - (int(now / 0.5) - 4)) <= 1      # derived from the clock, 0.5 s segments
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    assert not (tmp_path / "live.m3u8.tmp").exists()


# --- run: nginx and the advancer together --------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def open_dir():
    """A directory nginx's worker (nobody, when the test runs as root) can read: not under pytest's 0700 tmp_path."""
    path = tempfile.mkdtemp(prefix="arnab-video-test-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not os.path.exists("/usr/sbin/nginx"), reason="needs Debian's nginx (make setup)")
def test_run_serves_the_page_the_live_playlist_and_the_segments(open_dir):
    tmp_path = open_dir
    video = tmp_path / "video"
    video.mkdir()
    vod(video, [1.0] * 6)
    for i in range(6):
        (video / ("seg%05d.ts" % i)).write_bytes(b"G" * 188 * (i + 1))
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(os.path.join(VIDEO, "www", "index.html"), str(www))
    (www / "hls.min.js").write_text("// stand-in\n")
    for d in (video, www):
        d.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen([os.path.join(VIDEO, "run"), "--listen", "127.0.0.1:%d" % port, "--video", str(video),
                             "--www", str(www), "--run-dir", str(tmp_path / "run")], start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    base = "http://127.0.0.1:%d/" % port
    try:
        deadline = time.time() + 10
        while True:
            try:
                page = urllib.request.urlopen(base, timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "run did not come up"
                time.sleep(0.1)
        assert b"arnabEvents" in page.read() and page.headers["Cache-Control"] == "no-store"
        live = urllib.request.urlopen(base + "live.m3u8", timeout=2)
        assert live.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert live.headers["Cache-Control"] == "no-store"
        segments = parse(live.read().decode())["segments"]
        assert len(segments) == 4
        uri = segments[-1][2]
        seg = urllib.request.urlopen(base + uri, timeout=2)
        assert seg.headers["Content-Type"] == "video/mp2t" and seg.headers["Cache-Control"] == "no-store"
        assert seg.read() == (video / uri[4:]).read_bytes()
        assert urllib.request.urlopen(base + "hls.min.js", timeout=2).read() == b"// stand-in\n"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=10)
        err = proc.stderr.read()
    assert rc == 143, err
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "live.m3u8", timeout=2)


@pytest.mark.parametrize("option, payload", [
    ("--listen", "127.0.0.1:8081;touch {mark}"), ("--listen", "$(touch {mark})"), ("--listen", "`touch {mark}`"),
    ("--listen", "127.0.0.1:8081\nuser root;"), ("--user", "root;touch {mark}"), ("--user", "$(touch {mark})"),
    ("--user", "nobody\ndaemon on;"),
])
def test_run_refuses_what_would_reach_nginx_s_config_or_a_shell(tmp_path, option, payload):
    """--listen and --user end up in nginx.conf (sed) and on a unit's command line (roles/edge sets --listen from
    the inventory's hls_port): anything but plain words is refused before any file is written."""
    video, www = tmp_path / "video", tmp_path / "www"
    video.mkdir()
    www.mkdir()
    vod(video, [1.0] * 2)
    (www / "index.html").write_text("<html></html>\n")
    (www / "hls.min.js").write_text("// stand-in\n")
    mark = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    proc = subprocess.run([os.path.join(VIDEO, "run"), option, payload.format(mark=mark), "--video", str(video),
                           "--www", str(www), "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=20,
                          check=False)
    assert proc.returncode == 2 and ("bad %s" % option) in proc.stderr, (proc.returncode, proc.stderr)
    assert not mark.exists() and not run_dir.exists()
