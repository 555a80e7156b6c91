"""What the user sees (issue 11): a real browser plays the lab's live video and reports stalls, frames and screenshots.

Headless Chromium (Debian's `chromium`) driven by `selenium` through Debian's `chromium-driver` opens the player page
that lab/video serves (lab/video/www/index.html: hls.js, a live buffer of at most 2 s); the page records the player's
events in `window.arnabEvents`, which this module drains and turns into a result (`summarize`, a pure function).

    s = start("http://10.78.0.50:8080/", "reports/shots", wrap=["ip", "netns", "exec", "arnab-client1"])
    s.wait_playing(30)
    s.mark("before")      # a PNG screenshot and the decoder's frame count at that moment
    ...                   # migrate
    s.mark("after")
    result = s.stop()     # {"stalls": [{"t", "ms"}], "stalled_ms", "frames_decoded_before", ...}

Chromium, chromedriver and selenium all talk over the loopback of the namespace they run in, so the whole client runs
where the network is: `start(..., wrap=PREFIX)` runs `python -m arnab_lab.browser serve` under PREFIX (`ip netns
exec NS`, `lab/labctl exec NODE --`) and drives it over its stdin/stdout, one JSON object a line; `wrap=None` runs
it as a plain child. `Session` is the same client in this process (what `serve` uses).

    PYTHONPATH=lab .venv/bin/python -m arnab_lab.browser play URL --seconds 20 --shots DIR   # a quick look

Chromium runs with a private profile in a temporary directory (removed at the end), no GPU, muted, autoplay
allowed, --no-sandbox as root, and every host name but the page's resolved to nothing: it contacts nothing but the
video server.
"""

import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (640, 400)
STALL_START = ("waiting", "stalled")
HAVE_FUTURE_DATA = 3

# The frame number drawn by scripts/build-video.sh: 16x16 cells at y=16 in the video's own pixels, white markers
# at x=16 and x=288, bit b at x=272-16*b, on a black strip (x<320, y<48).
AFTER_WATCH_S = 2.0   # `play`: watched after the "after" screenshot, so that frames decoded after it are counted
BAR_Y = 16
BAR_CELL = 16
BAR_MARKERS = (16, 288)
BAR_BITS = 16
BAR_BLACK = (0, 0)   # a cell-sized square of the black strip, as a reference


def bar_bit_x(bit):
    return 272 - BAR_CELL * bit


# --- the result: pure functions -------------------------------------------------------------------------------

def _seconds(entry):
    return entry["w"] / 1000.0


def summarize(events, started_at, stopped_at, marks=(), cpu=None):
    """The viewer's account of a session from the page's raw events (pure).

    events: the page's entries ({"e": name, "w": wall clock ms, "ct": currentTime, "rs": readyState, "dec",
    "drop": decoded/dropped frames, "pl": seconds played}); started_at/stopped_at: wall clock seconds; marks:
    [{"label", "at", "frames", "screenshot", "picture_frame"}]; cpu: optional {"startup_s", "playing_s"}.

    - The wait before the first `playing` (or the first advance of the playhead) is the startup, not a stall.
    - A stall starts at `waiting` (or `stalled` while readyState < HAVE_FUTURE_DATA) and ends at the next
      `playing`, or when the playhead has moved on with readyState >= HAVE_FUTURE_DATA (a seek does not end it);
      one still open at stop runs to `stopped_at` and says `open`. `t` is seconds since `started_at`.
    - `frames_decoded_before`: frames decoded from the start to the mark labelled "before" (else the first mark);
      `frames_decoded_after`: frames decoded from the mark labelled "after" (else the last mark) to the stop;
      None without marks.
    - `longest_freeze_ms`: the longest time the playhead stood still after the startup, whatever the events said.
    """
    events = sorted(events, key=lambda ev: ev["w"])
    stalls = []
    first_play = None
    first_ct = None
    current = None          # [start wall s, playhead at start]
    last_move = None        # (wall s, playhead) of the last change of the playhead
    longest_freeze = 0.0
    for ev in events:
        name, at, ct = ev["e"], _seconds(ev), ev.get("ct", 0.0)
        if first_play is None:
            if first_ct is None and name != "start":
                first_ct = ct
            if name == "playing" or (first_ct is not None and ct > first_ct + 0.01):
                first_play = at
                last_move = (at, ct)
            continue
        if ct != last_move[1]:
            longest_freeze = max(longest_freeze, at - last_move[0])
            last_move = (at, ct)
        if current is None:
            if name == "waiting" or (name == "stalled" and ev.get("rs", 0) < HAVE_FUTURE_DATA):
                current = [at, ct]
        elif name in ("seeking", "seeked"):
            current[1] = ct
        elif name == "playing" or (ct > current[1] + 0.01 and ev.get("rs", 0) >= HAVE_FUTURE_DATA):
            stalls.append({"t": round(current[0] - started_at, 3), "ms": int(round((at - current[0]) * 1000))})
            current = None
    if current is not None:
        stalls.append({"t": round(current[0] - started_at, 3),
                       "ms": int(round((max(stopped_at, current[0]) - current[0]) * 1000)), "open": True})
    if last_move is not None:
        longest_freeze = max(longest_freeze, stopped_at - last_move[0])

    last = events[-1] if events else {}
    marks = list(marks)
    final_frames = last.get("dec", 0)
    before = next((m for m in marks if m["label"] == "before"), marks[0] if marks else None)
    after = next((m for m in reversed(marks) if m["label"] == "after"), marks[-1] if marks else None)
    result = {
        "started_at": round(started_at, 3),
        "duration_s": round(stopped_at - started_at, 3),
        "startup_ms": None if first_play is None else int(round((first_play - started_at) * 1000)),
        "played": first_play is not None,
        "stalls": stalls,
        "stall_count": len(stalls),
        "stalled_ms": sum(s["ms"] for s in stalls),
        "longest_freeze_ms": int(round(longest_freeze * 1000)),
        "played_s": last.get("pl", 0.0),
        "position_s": last.get("ct", 0.0),
        "frames_decoded": final_frames,
        "frames_dropped": last.get("drop", 0),
        "frames_decoded_before": None if before is None else before["frames"],
        "frames_decoded_after": None if after is None else final_frames - after["frames"],
        "marks": [dict(m, t=round(m["at"] - started_at, 3)) for m in marks],
        "screenshots": [m["screenshot"] for m in marks if m.get("screenshot")],
        "picture_frames": [m.get("picture_frame") for m in marks],
        "errors": [{"t": round(_seconds(ev) - started_at, 3), "details": ev.get("details"), "fatal": ev.get("fatal")}
                   for ev in events if ev["e"] == "hls_error"],
    }
    if cpu:
        result.update(cpu)
    return result


# --- the picture's own clock: the frame number's bar code, read from a PNG with zlib -------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_rows(data, count):
    """The first `count` rows of an 8-bit, non-interlaced grey/RGB/RGBA PNG: (width, channels, [bytearray per row])."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, interlace = header[0], header[1], header[2], header[3], header[6]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError("unsupported PNG (depth %d, colour type %d, interlace %d)" % (depth, color, interlace))
    count = min(count, height)
    stride = width * channels
    raw = zlib.decompressobj().decompress(b"".join(idat), count * (stride + 1))
    if len(raw) < count * (stride + 1):
        raise ValueError("truncated PNG")
    rows, prev = [], bytearray(stride)
    for r in range(count):
        base = r * (stride + 1)
        kind, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 255
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                upleft = prev[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 255
        elif kind != 0:
            raise ValueError("bad PNG filter %d" % kind)
        rows.append(line)
        prev = line
    return width, channels, rows


def picture_frame(png, x0=0.0, y0=0.0, scale=1.0):
    """The frame number drawn in the video's bar code, read from a screenshot (PNG bytes) where the video's top left
    corner is at (x0, y0) and one video pixel is `scale` screenshot pixels; None when no clean bar code is there
    (no video yet, a black screen, a half-drawn frame)."""
    bottom = int(y0 + (BAR_Y + BAR_CELL) * scale) + 2
    width, channels, rows = png_rows(png, bottom)

    def level(cx, cy):
        """Mean brightness (0-255) of the middle half of the cell whose top left corner is (cx, cy) in video px."""
        total = count = 0
        for vy in range(cy + BAR_CELL // 4, cy + 3 * BAR_CELL // 4):
            y = int(y0 + (vy + 0.5) * scale)
            for vx in range(cx + BAR_CELL // 4, cx + 3 * BAR_CELL // 4):
                x = int(x0 + (vx + 0.5) * scale)
                if not (0 <= y < len(rows) and 0 <= x < width):
                    return None
                px = rows[y][x * channels:x * channels + min(channels, 3)]
                total += sum(px) / float(len(px))
                count += 1
        return total / count

    markers = [level(x, BAR_Y) for x in BAR_MARKERS]
    black = level(*BAR_BLACK)
    bits = [level(bar_bit_x(b), BAR_Y) for b in range(BAR_BITS)]
    if None in markers or black is None or None in bits:
        return None
    if min(markers) < 160 or black > 96 or any(96 < v < 160 for v in bits):
        return None
    return sum(1 << b for b, v in enumerate(bits) if v >= 160)


# --- the browser --------------------------------------------------------------------------------------------

def chromium_args(profile_dir, host, window=WINDOW, root=None):
    """Chromium's command line: headless, private profile, no GPU, muted, autoplay, and no traffic of its own: every
    host name but `host` (the page's) resolves to nothing."""
    root = os.geteuid() == 0 if root is None else root
    args = [
        "--headless=new", "--user-data-dir=%s" % profile_dir, "--window-size=%d,%d" % window,
        "--force-device-scale-factor=1", "--disable-gpu", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
        "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage", "--disable-extensions",
        # no background traffic
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--no-pings",
        "--metrics-recording-only", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE %s" % host,
        "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication",
        # a headless window is never hidden: keep decoding and timers at full rate
        "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]
    if root:
        args.append("--no-sandbox")
    return args


def _proc_children():
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def descendants(pid):
    """Every process below `pid` (not itself)."""
    children, out, todo = _proc_children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pids):
    """CPU time of these processes and of their reaped children, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])   # utime stime cutime cstime
    return total / float(ticks)


class Session:
    """One browser playing one page, in this process (and this network namespace)."""

    def __init__(self, url, shots_dir, chromium=CHROMIUM, chromedriver=CHROMEDRIVER, window=WINDOW, prefix=""):
        self.url = url
        self.shots_dir = shots_dir
        self.prefix = prefix
        self.events = []
        self.marks = []
        self.started_at = time.time()
        self.first_play_at = None
        self.cpu_at_play = None
        self.profile = tempfile.mkdtemp(prefix="arnab-chromium-")
        self.driver = None
        self.driver_pid = None
        os.makedirs(shots_dir, exist_ok=True)
        # Selenium Manager must not look for drivers or browsers on the network: we name both.
        os.environ["SE_OFFLINE"] = "true"
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for arg in chromium_args(self.profile, urllib.parse.urlsplit(url).hostname or "localhost", window):
            options.add_argument(arg)
        try:
            self.driver = webdriver.Chrome(options=options,
                                           service=Service(executable_path=chromedriver, log_output=subprocess.DEVNULL))
            self.driver_pid = self.driver.service.process.pid
            self.launch_ms = int(round((time.time() - self.started_at) * 1000))
            # the viewport (not the window) is `window`: a headless window keeps room for a browser's frame
            inner = self.driver.execute_script("return [window.innerWidth, window.innerHeight];")
            if list(inner) != list(window):
                outer = self.driver.get_window_size()
                self.driver.set_window_size(outer["width"] + window[0] - inner[0],
                                            outer["height"] + window[1] - inner[1])
            self.driver.set_page_load_timeout(30)
            self.driver.get(url)
        except BaseException:
            self._quit()
            raise

    def _drain(self):
        # a dead renderer: keep what we have
        try:
            got = self.driver.execute_script("return window.arnabDrain ? window.arnabDrain() : [];") or []
        except Exception:   # pylint: disable=broad-except
            got = []
        self.events.extend(got)
        if self.first_play_at is None:
            for ev in got:
                if ev.get("e") == "playing":
                    self.first_play_at = ev["w"] / 1000.0
                    self.cpu_at_play = self._cpu()
                    break
        return got

    def _cpu(self):
        return cpu_seconds(descendants(self.driver_pid)) if self.driver_pid else 0.0

    def wait_playing(self, timeout=30.0):
        """True once the player has started playing (within `timeout` seconds)."""
        deadline = time.time() + timeout
        while self.first_play_at is None and time.time() < deadline:
            self._drain()
            time.sleep(0.1)
        return self.first_play_at is not None

    def status(self):
        """The latest entry of the page and the stalls so far (cheap)."""
        self._drain()
        last = self.events[-1] if self.events else {}
        return {"at": time.time(), "frames": last.get("dec", 0), "position_s": last.get("ct", 0.0),
                "ready_state": last.get("rs", 0),
                "stalls": summarize(self.events, self.started_at, time.time())["stall_count"]}

    def _geometry(self):
        """Where the video's pixels are in a screenshot: (x0, y0, scale)."""
        x, y, w, dpr, vw = self.driver.execute_script(
            "var v = document.querySelector('video'), r = v.getBoundingClientRect();"
            "return [r.left, r.top, r.width, window.devicePixelRatio || 1, v.videoWidth || r.width];")
        return x * dpr, y * dpr, (w * dpr / vw) if vw else dpr

    def _record(self, name):
        """Have the page record an entry now and drain: that entry (None if the page cannot)."""
        self.driver.execute_script("if (window.arnabRecord) window.arnabRecord(arguments[0]);", name)
        got = [ev for ev in self._drain() if ev.get("e") == name]
        return got[-1] if got else None

    def mark(self, label):
        """A screenshot (PNG under shots_dir) and the decoder's frame count now; returns the mark."""
        entry = self._record("mark")
        at = time.time() if entry is None else entry["w"] / 1000.0
        frames = 0 if entry is None else entry.get("dec", 0)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
        path = os.path.abspath(os.path.join(self.shots_dir, "%s%02d-%s.png" % (self.prefix, len(self.marks), safe)))
        png = self.driver.get_screenshot_as_png()
        with open(path, "wb") as f:
            f.write(png)
        # the mark stands without the picture's clock
        try:
            shown = picture_frame(png, *self._geometry())
        except Exception:   # pylint: disable=broad-except
            shown = None
        mark = {"label": label, "at": at, "frames": frames, "screenshot": path, "picture_frame": shown}
        self.marks.append(mark)
        return dict(mark, t=round(at - self.started_at, 3))

    def stop(self, events_path=None):
        """Stop the browser and return the result (`summarize`); the raw events go to `events_path` if given."""
        # a dead page: what was drained stands
        try:
            self._record("stop")
        except Exception:   # pylint: disable=broad-except
            pass
        stopped_at = time.time()
        cpu_now = self._cpu()
        cpu = {"launch_ms": self.launch_ms, "cpu_s": round(cpu_now, 2)}
        if self.cpu_at_play is not None and stopped_at > self.first_play_at:
            cpu["cpu_playing_cores"] = round((cpu_now - self.cpu_at_play) / (stopped_at - self.first_play_at), 3)
        self._quit()
        if events_path:
            with open(events_path, "w") as f:
                json.dump({"started_at": self.started_at, "stopped_at": stopped_at, "marks": self.marks,
                           "events": self.events}, f)
        return summarize(self.events, self.started_at, stopped_at, self.marks, cpu)

    def _quit(self):
        left = descendants(self.driver_pid) if self.driver_pid else []
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:   # pylint: disable=broad-except
                pass
            self.driver = None
        for pid in left:   # whatever chromium left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# --- the same client in a child process (in another network namespace) ---------------------------------------

class RemoteSession:
    """`Session`'s API over `python -m arnab_lab.browser serve` run under `wrap` (a command prefix)."""

    def __init__(self, url, shots_dir, wrap=None, python=None, timeout=60.0, **options):
        lab = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        argv = list(wrap or []) + [python or sys.executable, "-m", "arnab_lab.browser", "serve", url,
                                   "--shots", os.path.abspath(shots_dir)]
        for key, value in options.items():
            argv += ["--" + key.replace("_", "-"), str(value)]
        env = dict(os.environ, PYTHONPATH=lab + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.timeout = timeout
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                     start_new_session=True)
        self.started_at = time.time()
        try:
            self.ready = self._read()
        except BaseException:
            self.kill()
            raise
        if "error" in self.ready:
            self.kill()
            raise RuntimeError("browser: %s" % self.ready["error"])

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("browser: the client ended (exit %s)" % self.proc.wait(timeout=10))
        return json.loads(line)

    def _ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise RuntimeError("browser: %s" % reply["error"])
        return reply

    def wait_playing(self, timeout=30.0):
        return self._ask(cmd="wait_playing", timeout=timeout)["playing"]

    def status(self):
        return self._ask(cmd="status")

    def mark(self, label):
        return self._ask(cmd="mark", label=label)

    def stop(self, events_path=None):
        try:
            result = self._ask(cmd="stop", events=events_path)
            self.proc.wait(timeout=self.timeout)
            return result
        finally:
            self.kill()

    def kill(self):
        """Make sure nothing of the client is left (its process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def start(url, shots_dir, wrap=None, **options):
    """A browser playing `url` in a child process under `wrap` (e.g. ["ip", "netns", "exec", "arnab-client1"]);
    options: chromium, chromedriver, prefix (of the screenshots' names)."""
    return RemoteSession(url, shots_dir, wrap=wrap, **options)


def video_url(workload):
    """The player page of a workload item (edge_workloads) that serves the live web video, else None."""
    if "hls_port" not in workload:
        return None
    return "http://%s:%d/" % (workload["ip"], workload["hls_port"])


def watch(url, shots_dir, wrap=None, timeout=30.0, **options):
    """`start`, then wait until the player plays; RuntimeError, with nothing of the browser left running, when it
    does not play within `timeout` s."""
    session = start(url, shots_dir, wrap=wrap, **options)
    try:
        playing = session.wait_playing(timeout)
    except BaseException:
        session.kill()
        raise
    if not playing:
        session.kill()
        raise RuntimeError("the player did not start playing %s within %.0f s" % (url, timeout))
    return session


def finish(session, events_path, root):
    """Stop a session, leaving nothing of it running whatever happens: the player's result with its screenshots'
    paths relative to `root`, or {"error"} when the browser could not say."""
    try:
        player = session.stop(events_path)
        player["screenshots"] = [os.path.relpath(p, root) for p in player["screenshots"]]
        return player
    except RuntimeError as exc:
        return {"error": str(exc)}
    finally:
        session.kill()


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def serve(args):
    """The child's side: one JSON request a line on stdin, one JSON reply a line on stdout; stop or EOF ends it."""
    out = sys.stdout
    sys.stdout = sys.stderr   # nothing else may write on the protocol's stream

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        session = Session(args.url, args.shots, chromium=args.chromium, chromedriver=args.chromedriver,
                          prefix=args.prefix)
    except Exception as exc:   # pylint: disable=broad-except
        reply({"error": "could not start the browser: %s" % exc})
        return 1
    signal.signal(signal.SIGTERM, _exit_on_signal)
    reply({"ready": True, "launch_ms": session.launch_ms, "started_at": session.started_at})
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                cmd = request.get("cmd")
                if cmd == "mark":
                    reply(session.mark(request["label"]))
                elif cmd == "wait_playing":
                    reply({"playing": session.wait_playing(float(request.get("timeout", 30)))})
                elif cmd == "status":
                    reply(session.status())
                elif cmd == "stop":
                    reply(session.stop(request.get("events")))
                    return 0
                else:
                    reply({"error": "unknown request %r" % cmd})
            except Exception as exc:   # pylint: disable=broad-except
                reply({"error": "%s: %s" % (type(exc).__name__, exc)})
    finally:
        if session.driver is not None:
            session._quit()   # pylint: disable=protected-access
    return 0


def play(args):
    """Play the page until SIGTERM (or --seconds): a screenshot "before" once it plays, --marks more spread over
    --seconds, "after" at the end and AFTER_WATCH_S later the result, as JSON to --out (else stdout). With
    --pidfile, this process's PID goes there first, for whoever sends the SIGTERM (an Ansible play)."""
    ended = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: ended.append(signum))
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    session = Session(args.url, args.shots, chromium=args.chromium, chromedriver=args.chromedriver, prefix=args.prefix)
    try:
        if not session.wait_playing(30):
            raise RuntimeError("the player did not start playing %s within 30 s" % args.url)
        session.mark("before")
        started, shots = time.monotonic(), 0
        while not ended and time.monotonic() - started < args.seconds:
            time.sleep(0.2)
            if shots < args.marks and time.monotonic() - started >= args.seconds * (shots + 1) / (args.marks + 1):
                shots += 1
                session.mark("shot%d" % shots)
        session.mark("after")
        time.sleep(AFTER_WATCH_S)
    finally:
        result = session.stop(os.path.join(args.shots, "%sevents.json" % args.prefix))
    text = json.dumps(result, indent=1) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.browser", description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "play"):
        p = sub.add_parser(name)
        p.add_argument("url")
        p.add_argument("--shots", default="reports/browser")
        p.add_argument("--chromium", default=CHROMIUM)
        p.add_argument("--chromedriver", default=CHROMEDRIVER)
        p.add_argument("--prefix", default="")
        if name == "play":
            p.add_argument("--seconds", type=float, default=20.0, help="play at most this long (SIGTERM ends it "
                           "earlier)")
            p.add_argument("--marks", type=int, default=3, help="screenshots between before and after, spread over "
                           "--seconds")
            p.add_argument("--out", help="write the result there (default: stdout)")
            p.add_argument("--pidfile", help="write this process's PID there")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return play(args)


if __name__ == "__main__":
    sys.exit(main())
