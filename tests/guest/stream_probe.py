"""A client's TCP stream to ramsim (one connection, `ping` every INTERVAL s) until SIGTERM; prints one JSON line.
Runs in the lab's client namespace: python3 stream_probe.py HOST PORT [INTERVAL]."""
import json
import signal
import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
res = {"host": host, "port": port, "pings": 0, "max_gap_ms": 0.0, "gaps_over_1s": 0, "error": None}
t_start = time.monotonic()
try:
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(60)
    f = s.makefile("rwb", buffering=0)
    last = time.monotonic()
    while not stop:
        f.write(b"ping\n")
        line = f.readline()
        if not line.startswith(b"pong"):
            raise RuntimeError("bad answer %r" % line[:60])
        now = time.monotonic()
        gap = now - last
        if gap > res["max_gap_ms"] / 1000.0:
            res["max_gap_ms"] = round(gap * 1000, 1)
            res["max_gap_at_s"] = round(now - t_start, 2)
        res["gaps_over_1s"] += gap > 1.0
        res["pings"] += 1
        last = now
        time.sleep(interval)
except Exception as exc:  # the stream broke: that is the result
    res["error"] = "%s: %s" % (type(exc).__name__, exc)
res["seconds"] = round(time.monotonic() - t_start, 1)
res["survived"] = res["error"] is None and res["pings"] > 0
print(json.dumps(res))
sys.stdout.flush()
