"""Pure parts of arnab_lab.browser: the viewer's account of the page's events, and the picture's clock from a PNG."""
import os
import shutil
import struct
import subprocess
import zlib

import pytest

from arnab_lab import browser

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
T0 = 1700000000.0


def ev(name, at, ct, rs=4, dec=None, **extra):
    """A page entry `at` seconds after T0 with the playhead at `ct`."""
    entry = {"e": name, "w": int(round((T0 + at) * 1000)), "ct": ct, "rs": rs,
             "dec": int(ct * 25) if dec is None else dec, "drop": 0, "pl": ct}
    entry.update(extra)
    return entry


def playing_from(start, end, at0, ct0, step=0.25):
    """Samples of smooth playback from `start` to `end` (seconds after T0), the playhead at ct0 at `start`."""
    out, at = [], start
    while at <= end + 1e-9:
        out.append(ev("timeupdate", at, round(ct0 + (at - at0), 3)))
        at += step
    return out


def session_with_stall(stall_at=5.0, resume_at=6.5):
    events = [ev("start", 0.0, 0.0, rs=0), ev("waiting", 1.0, 0.0, rs=0), ev("playing", 2.0, 0.0)]
    events += playing_from(2.25, stall_at, 2.0, 0.0)
    frozen = round(stall_at - 2.0, 3)
    events += [ev("waiting", stall_at + 0.01, frozen, rs=2), ev("sample", stall_at + 0.5, frozen, rs=2),
               ev("hls_error", stall_at + 0.02, frozen, rs=2, details="bufferStalledError", fatal=False),
               ev("playing", resume_at, frozen)]
    events += playing_from(resume_at + 0.25, 10.0, resume_at, frozen)
    return events


def test_the_wait_before_the_first_frame_is_startup_not_a_stall():
    events = [ev("start", 0.0, 0.0, rs=0), ev("waiting", 0.5, 0.0, rs=0), ev("playing", 2.4, 0.0)]
    events += playing_from(2.5, 6.0, 2.4, 0.0)
    result = browser.summarize(events, T0, T0 + 6.0)
    assert result["played"] is True
    assert result["startup_ms"] == 2400
    assert result["stalls"] == [] and result["stall_count"] == 0 and result["stalled_ms"] == 0
    assert result["longest_freeze_ms"] == 250


def test_a_stall_runs_from_waiting_to_playing():
    result = browser.summarize(session_with_stall(5.0, 6.5), T0, T0 + 10.0)
    assert result["stalls"] == [{"t": 5.01, "ms": 1490}]
    assert result["stalled_ms"] == 1490
    assert result["longest_freeze_ms"] == 1750   # last move at 5.0, next at 6.75
    assert result["errors"] == [{"t": 5.02, "details": "bufferStalledError", "fatal": False}]
    assert result["played_s"] == pytest.approx(6.5)


def test_a_stall_ends_when_the_playhead_moves_on_without_a_playing_event():
    events = [ev("playing", 0.5, 0.0)] + playing_from(0.75, 3.0, 0.5, 0.0)
    events += [ev("waiting", 3.1, 2.5, rs=2), ev("sample", 3.6, 2.5, rs=2), ev("sample", 4.1, 2.5, rs=4),
               ev("timeupdate", 4.35, 2.75)]
    events += playing_from(4.6, 6.0, 4.35, 2.75)
    result = browser.summarize(events, T0, T0 + 6.0)
    assert result["stalls"] == [{"t": 3.1, "ms": 1250}]


def test_a_seek_during_a_stall_does_not_end_it():
    events = [ev("playing", 0.5, 0.0)] + playing_from(0.75, 3.0, 0.5, 0.0)
    events += [ev("waiting", 3.1, 2.5, rs=1), ev("seeking", 3.5, 9.0, rs=1), ev("seeked", 3.6, 9.0, rs=1),
               ev("sample", 3.7, 9.0, rs=1), ev("playing", 4.0, 9.0)]
    events += playing_from(4.25, 5.0, 4.0, 9.0)
    result = browser.summarize(events, T0, T0 + 5.0)
    assert result["stalls"] == [{"t": 3.1, "ms": 900}]


def test_stalled_counts_only_when_the_player_cannot_go_on():
    events = [ev("playing", 0.5, 0.0)] + playing_from(0.75, 6.0, 0.5, 0.0)
    events.append(ev("stalled", 2.1, 1.6, rs=4))          # the network is slow, the buffer still plays
    result = browser.summarize(events, T0, T0 + 6.0)
    assert result["stalls"] == []
    events = [ev("playing", 0.5, 0.0)] + playing_from(0.75, 2.0, 0.5, 0.0)
    events += [ev("stalled", 2.1, 1.5, rs=2), ev("playing", 2.6, 1.5)] + playing_from(2.85, 4.0, 2.6, 1.5)
    assert browser.summarize(events, T0, T0 + 4.0)["stalls"] == [{"t": 2.1, "ms": 500}]


def test_a_stall_still_open_at_the_stop_runs_to_the_stop():
    events = [ev("playing", 0.5, 0.0)] + playing_from(0.75, 3.0, 0.5, 0.0) + [ev("waiting", 3.2, 2.5, rs=2)]
    result = browser.summarize(events, T0, T0 + 5.0)
    assert result["stalls"] == [{"t": 3.2, "ms": 1800, "open": True}]
    assert result["stalled_ms"] == 1800
    assert result["longest_freeze_ms"] == 2000


def test_frames_before_and_after_the_marks():
    events = session_with_stall()
    marks = [{"label": "start", "at": T0 + 2.5, "frames": 10, "screenshot": "/r/00-start.png", "picture_frame": 1},
             {"label": "before", "at": T0 + 4.0, "frames": 50, "screenshot": "/r/01-before.png", "picture_frame": 40},
             {"label": "after", "at": T0 + 7.0, "frames": 90, "screenshot": "/r/02-after.png", "picture_frame": 80},
             {"label": "end", "at": T0 + 9.0, "frames": 130, "screenshot": None, "picture_frame": None}]
    result = browser.summarize(events, T0, T0 + 10.0, marks, cpu={"cpu_s": 1.5})
    final = events[-1]["dec"]
    assert result["frames_decoded"] == final
    assert result["frames_decoded_before"] == 50
    assert result["frames_decoded_after"] == final - 90
    assert result["screenshots"] == ["/r/00-start.png", "/r/01-before.png", "/r/02-after.png"]
    assert result["picture_frames"] == [1, 40, 80, None]
    assert [m["t"] for m in result["marks"]] == [2.5, 4.0, 7.0, 9.0]
    assert result["cpu_s"] == 1.5
    # without marks labelled before/after: the first and the last
    plain = [dict(m, label="m%d" % i) for i, m in enumerate(marks)]
    result = browser.summarize(events, T0, T0 + 10.0, plain)
    assert result["frames_decoded_before"] == 10
    assert result["frames_decoded_after"] == final - 130


def test_no_events_no_marks():
    result = browser.summarize([], T0, T0 + 3.0)
    assert result["played"] is False and result["startup_ms"] is None
    assert result["stalls"] == [] and result["frames_decoded"] == 0
    assert result["frames_decoded_before"] is None and result["frames_decoded_after"] is None
    assert result["duration_s"] == 3.0


def test_events_out_of_order_are_sorted():
    events = session_with_stall()
    assert browser.summarize(list(reversed(events)), T0, T0 + 10.0)["stalls"] == \
        browser.summarize(events, T0, T0 + 10.0)["stalls"]


# --- the picture's clock ---------------------------------------------------------------------------------------

def _filter(kind, line, prev, bpp):
    out = bytearray(len(line))
    for i, value in enumerate(line):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        upleft = prev[i - bpp] if i >= bpp else 0
        pred = {0: 0, 1: left, 2: up, 3: (left + up) >> 1, 4: browser._paeth(left, up, upleft)}[kind]  # pylint: disable=protected-access
        out[i] = (value - pred) & 255
    return bytes([kind]) + bytes(out)


def make_png(pixels, channels=3, filters=(0, 1, 2, 3, 4)):
    """An 8-bit PNG from rows of pixel tuples, cycling through the filter types row by row."""
    height, width = len(pixels), len(pixels[0])
    raw, prev = b"", bytes(width * channels)
    for y, row in enumerate(pixels):
        line = bytes(v for px in row for v in px[:channels])
        raw += _filter(filters[y % len(filters)], line, prev, channels)
        prev = line

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)

    color = {3: 2, 4: 6}[channels]
    return (browser.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bar_code_picture(frame, width=330, height=60, x0=0, y0=0, scale=1, background=(40, 160, 90)):
    """What scripts/build-video.sh draws for `frame`, at (x0, y0), `scale` screen pixels per video pixel."""
    white = [(x, browser.BAR_Y) for x in browser.BAR_MARKERS]
    white += [(browser.bar_bit_x(b), browser.BAR_Y) for b in range(browser.BAR_BITS) if frame >> b & 1]
    pixels = []
    for y in range(height):
        row = []
        for x in range(width):
            vx, vy = (x - x0) / float(scale), (y - y0) / float(scale)
            if 0 <= vx < 320 and 0 <= vy < 48:
                cell = any(cx <= vx < cx + browser.BAR_CELL and cy <= vy < cy + browser.BAR_CELL for cx, cy in white)
                row.append((255, 255, 255, 255) if cell else (0, 0, 0, 255))
            else:
                row.append(background + (255,))
        pixels.append(row)
    return pixels


@pytest.mark.parametrize("frame", [0, 1, 2, 300, 4459, 14999, 65535])
def test_the_bar_code_gives_the_frame_number(frame):
    assert browser.picture_frame(make_png(bar_code_picture(frame))) == frame


def test_the_bar_code_where_the_video_is_offset_and_scaled_rgba():
    png = make_png(bar_code_picture(12345, width=700, height=120, x0=17, y0=9, scale=2), channels=4)
    assert browser.picture_frame(png, 17, 9, 2.0) == 12345
    assert browser.picture_frame(png) is None         # looked for in the wrong place: no clean code there


def test_no_bar_code_no_frame_number():
    black = [[(0, 0, 0)] * 330 for y in range(60)]
    assert browser.picture_frame(make_png(black)) is None
    grey = [[(128, 128, 128)] * 330 for y in range(60)]
    assert browser.picture_frame(make_png(grey)) is None
    small = [[(255, 255, 255)] * 40 for y in range(10)]
    assert browser.picture_frame(make_png(small)) is None


def test_png_rows_undoes_every_filter():
    pixels = [[((x * 7 + y * 13) % 256, (x * y) % 256, (255 - x) % 256) for x in range(23)] for y in range(11)]
    width, channels, rows = browser.png_rows(make_png(pixels), 11)
    assert (width, channels) == (23, 3)
    assert [bytes(r) for r in rows] == [bytes(v for px in row for v in px) for row in pixels]
    assert len(browser.png_rows(make_png(pixels), 4)[2]) == 4
    with pytest.raises(ValueError):
        browser.png_rows(b"GIF89a" + bytes(40), 1)


SEGMENT3 = os.path.join(REPO, "build", "video", "seg00003.ts")


@pytest.mark.skipif(shutil.which("ffmpeg") is None or not os.path.isfile(SEGMENT3),
                    reason="needs ffmpeg and the rendered video (make setup)")
def test_the_rendered_video_carries_its_frame_number(tmp_path):
    """Segment 3 of the real render starts with frame 75; ffmpeg's own PNG encoder writes the picture."""
    out = tmp_path / "frame.png"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
                    SEGMENT3, "-frames:v", "1", "-update", "1", str(out)],
                   check=True)
    assert browser.picture_frame(out.read_bytes()) == 75


def test_chromium_args():
    args = browser.chromium_args("/tmp/p", "10.78.0.50", window=(640, 400), root=True)
    assert "--headless=new" in args and "--no-sandbox" in args and "--mute-audio" in args
    assert "--user-data-dir=/tmp/p" in args and "--window-size=640,400" in args
    assert "--autoplay-policy=no-user-gesture-required" in args
    assert "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 10.78.0.50" in args
    assert "--no-sandbox" not in browser.chromium_args("/tmp/p", "h", root=False)


def test_video_url_only_for_a_workload_that_serves_web_video():
    assert browser.video_url({"ip": "10.78.0.50", "port": 8080, "hls_port": 8081}) == "http://10.78.0.50:8081/"
    assert browser.video_url({"ip": "10.78.0.51", "port": 7000}) is None


class NeverPlays(object):
    def __init__(self, raises=False):
        self.raises, self.killed = raises, False

    def wait_playing(self, timeout):
        if self.raises:
            raise RuntimeError("browser: the client ended (exit 1)")
        return False

    def kill(self):
        self.killed = True


@pytest.mark.parametrize("raises", [False, True])
def test_watch_leaves_nothing_running_when_the_player_does_not_play(monkeypatch, raises):
    session = NeverPlays(raises)
    monkeypatch.setattr(browser, "start", lambda url, shots, wrap=None, **kw: session)
    with pytest.raises(RuntimeError, match="client ended" if raises else "did not start playing http://h:1/ within 5 s"):
        browser.watch("http://h:1/", "/tmp/shots", timeout=5)
    assert session.killed
