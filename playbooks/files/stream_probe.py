"""The client's view of service continuity: read the `video` workload's stream, verify every byte, and sample
throughput in fixed bins (default 10 ms).

Runs on the client with the standard library only. Stops after --duration seconds or on SIGTERM/SIGINT, then
writes one JSON object to --out: per-bin byte counts, the gaps (stretches with no byte), whether the stream
stayed intact (no reset, no lost, duplicated, reordered or corrupted byte) and the totals.

Stream format (roles/edge/files/arnab_workload.c): 1316-byte packets: "ARNB", u32 flags, u32 reserved,
u64 sequence, u64 byte offset, u64 send time (us), then a PRNG(seed, sequence) payload.
"""
import argparse
import json
import os
import signal
import socket
import struct
import sys
import time

PKT, HDR = 1316, 36
MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def mix3(a, b, c):
    return splitmix64(a ^ ((b * 0xD6E8FEB86659FD93) & MASK) ^ ((c * 0xA0761D6478BD642F) & MASK))


def payload(seed, seq):
    """The payload bytes of packet `seq` (xorshift128+ seeded from (seed, seq, 0), little-endian words)."""
    s0, s1 = mix3(seed, seq, 0) | 1, mix3(seed ^ 0x5BD1E995, seq, 0) | 2
    words = []
    for dummy in range((PKT - HDR + 7) // 8):
        x, y = s0, s1
        s0 = y
        x = (x ^ (x << 23)) & MASK
        s1 = x ^ y ^ (x >> 17) ^ (y >> 26)
        words.append((s1 + y) & MASK)
    return struct.pack("<%dQ" % len(words), *words)[:PKT - HDR]


class Stream:
    """Checks packets in order and keeps the first problem found."""

    def __init__(self, seed):
        self.seed, self.seq, self.problem = seed, 0, None

    def check(self, pkt):
        magic, seq, offset = pkt[:4], struct.unpack_from("<Q", pkt, 12)[0], struct.unpack_from("<Q", pkt, 20)[0]
        if self.problem is None:
            if magic != b"ARNB":
                self.problem = "packet %d: bad magic" % self.seq
            elif seq != self.seq or offset != self.seq * PKT:
                self.problem = "expected packet %d, got %d (offset %d): bytes lost or reordered" % (self.seq, seq, offset)
            elif pkt[HDR:] != payload(self.seed, seq):
                self.problem = "packet %d: payload corrupted" % seq
        self.seq += 1


def probe(host, port, duration, bin_ms, seed, stop):
    started = time.time()
    bins, stream, total, reset = {}, Stream(seed), 0, None
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: video\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    sock.settimeout(0.2)
    deadline = started + duration
    while not stop and time.time() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError as exc:
            reset = str(exc)
            break
        if not data:
            reset = "connection closed by the server"
            break
        now = time.time()
        bins[int((now - started) * 1000 // bin_ms)] = bins.get(int((now - started) * 1000 // bin_ms), 0) + len(data)
        total += len(data)
        buf += data
        while len(buf) >= PKT:
            stream.check(buf[:PKT])
            buf = buf[PKT:]
    sock.close()
    ended = time.time()
    nbins = int((ended - started) * 1000 // bin_ms) + 1
    samples = [bins.get(i, 0) for i in range(nbins)]
    return {"started": started, "ended": ended, "bin_ms": bin_ms, "bytes": total, "packets": stream.seq,
            "samples": samples, "gaps": gaps(samples, started, bin_ms), "reset": reset,
            "problem": stream.problem, "ok": reset is None and stream.problem is None and stream.seq > 0}


def gaps(samples, started, bin_ms, min_ms=20):
    """Stretches of at least min_ms with no byte received: [start epoch, duration ms]."""
    found, run = [], 0
    for i, count in enumerate(samples + [1]):
        if count == 0:
            run += 1
            continue
        if run * bin_ms >= min_ms:
            found.append([round(started + (i - run) * bin_ms / 1000.0, 3), run * bin_ms])
        run = 0
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--bin-ms", type=int, default=10)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pidfile", help="write this process's PID here (whoever started it stops it by PID)")
    args = parser.parse_args()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.append(True))
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pidfile + ".tmp", args.pidfile)
    result = probe(args.host, args.port, args.duration, args.bin_ms, args.seed, stop)
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f)
    # Renamed into place so a reader never sees half a report.
    os.replace(args.out + ".tmp", args.out)
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
