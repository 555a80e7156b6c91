"""Real 802.11 channel switch (CSA) gap, measured inside a Debian guest with mac80211_hwsim (issue #6 c).

Runs as root in the radio guest (stdlib only; python >= 3.12 for os.setns):
  three hwsim radios, one per network namespace ap1, ap2, client; hostapd on ap1 (channel 6, SSID arnab-csa) and
  ap2 (channel 1, SSID arnab-ap2); wpa_supplicant in client associates to ap1. A steady UDP probe stream runs
  both ways between the client and ap1 (one datagram every --interval-ms each way, sequence-numbered). Each
  repetition: a quiet baseline window, then `hostapd_cli chan_switch CS_COUNT FREQ` (ap1 announces the switch
  for CS_COUNT beacons, then AP and client move), alternating channel 1 (2412 MHz) and channel 6 (2437 MHz).
  The gap is the longest time between two received probes in the window after the command, per direction;
  the client's gap is the larger of the two. Prints one JSON line (the last line of stdout).

mac80211_hwsim only delivers frames between radios tuned to the same channel, so the gap is the real one of
the switch: while the AP has moved and the client has not (or the other way round), nothing gets through.
"""
import argparse
import json
import os
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

NS = ["ap1", "ap2", "client"]
AP_IP, CLIENT_IP = "192.168.77.1", "192.168.77.100"
UP_PORT, DOWN_PORT = 5001, 5002      # client->AP, AP->client
PKT = struct.Struct("!QdI")          # seq, send time, direction
FREQ = {1: 2412, 6: 2437}
WORK = "/run/arnab-csa"


def sh(argv, check=True, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError("%s: rc=%d %s" % (" ".join(argv), proc.returncode, (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def nsx(ns, argv, **kw):
    return sh(["ip", "netns", "exec", ns] + argv, **kw)


def teardown():
    for name in ("hostapd-ap1", "hostapd-ap2", "wpa-client"):
        try:
            pid = int(open("%s/%s.pid" % (WORK, name)).read())
            os.kill(pid, 15)
        except (OSError, ValueError):
            pass
    time.sleep(0.5)
    for ns in NS:
        sh(["ip", "netns", "del", ns], check=False)
    sh(["modprobe", "-r", "mac80211_hwsim"], check=False)


def wlan_of(ns):
    names = nsx(ns, ["ls", "/sys/class/net"]).split()
    wl = [n for n in names if n.startswith("wlan")]
    if not wl:
        raise RuntimeError("no wlan interface in %s: %s" % (ns, names))
    return wl[0]


def setup():
    teardown()
    os.makedirs(WORK, exist_ok=True)
    sh(["modprobe", "mac80211_hwsim", "radios=3"])
    for _ in range(50):
        phys = sorted(os.listdir("/sys/class/ieee80211"), key=lambda p: int(re.sub(r"\D", "", p) or 0))
        if len(phys) >= 3:
            break
        time.sleep(0.1)
    ifs = {}
    for ns, phy in zip(NS, phys):
        sh(["ip", "netns", "add", ns])
        sh(["iw", "phy", phy, "set", "netns", "name", ns])
        nsx(ns, ["ip", "link", "set", "lo", "up"])
        ifs[ns] = wlan_of(ns)
    conf = ("interface={ifname}\ndriver=nl80211\nssid={ssid}\nhw_mode=g\nchannel={ch}\nbeacon_int=100\n"
            "ctrl_interface={work}/{name}\nctrl_interface_group=0\n")
    for ns, ssid, ch in (("ap1", "arnab-csa", 6), ("ap2", "arnab-ap2", 1)):
        name = "hostapd-" + ns
        with open("%s/%s.conf" % (WORK, name), "w") as f:
            f.write(conf.format(ifname=ifs[ns], ssid=ssid, ch=ch, work=WORK, name=name))
        nsx(ns, ["hostapd", "-B", "-t", "-P", "%s/%s.pid" % (WORK, name), "-f", "%s/%s.log" % (WORK, name),
                 "%s/%s.conf" % (WORK, name)])
    with open(WORK + "/wpa-client.conf", "w") as f:
        f.write('ctrl_interface=%s/wpa-client\nnetwork={\n ssid="arnab-csa"\n key_mgmt=NONE\n}\n' % WORK)
    nsx("client", ["wpa_supplicant", "-B", "-t", "-D", "nl80211", "-i", ifs["client"], "-c", WORK + "/wpa-client.conf",
                   "-P", WORK + "/wpa-client.pid", "-f", WORK + "/wpa-client.log"])
    t0 = time.monotonic()
    while True:
        st = nsx("client", ["wpa_cli", "-p", WORK + "/wpa-client", "-i", ifs["client"], "status"], check=False)
        if "wpa_state=COMPLETED" in st:
            break
        if time.monotonic() - t0 > 60:
            raise RuntimeError("client did not associate in 60 s: %s" % st)
        time.sleep(0.2)
    assoc_s = time.monotonic() - t0
    nsx("ap1", ["ip", "addr", "add", AP_IP + "/24", "dev", ifs["ap1"]])
    nsx("client", ["ip", "addr", "add", CLIENT_IP + "/24", "dev", ifs["client"]])
    # No ARP in the measurement: static neighbours both ways.
    mac = {ns: open_ns_file(ns, "/sys/class/net/%s/address" % ifs[ns]) for ns in ("ap1", "client")}
    nsx("ap1", ["ip", "neigh", "replace", CLIENT_IP, "lladdr", mac["client"], "dev", ifs["ap1"], "nud", "permanent"])
    nsx("client", ["ip", "neigh", "replace", AP_IP, "lladdr", mac["ap1"], "dev", ifs["client"], "nud", "permanent"])
    return ifs, assoc_s


def open_ns_file(ns, path):
    return nsx(ns, ["cat", path]).strip()


def ns_socket(ns, bind_ip, port):
    """A UDP socket that lives in network namespace NS (os.setns on this thread, then back)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((bind_ip, port))
        s.setblocking(False)
    finally:
        os.setns(own, os.CLONE_NEWNET)
        os.close(own)
        os.close(target)
    return s


def channel(ns, ifname):
    m = re.search(r"channel (\d+)", nsx(ns, ["iw", "dev", ifname, "info"]))
    return int(m.group(1)) if m else None


def run_probe(up_tx, up_rx, down_tx, down_rx, seconds, interval, action_at=None, action=None):
    """Send both ways every INTERVAL s for SECONDS; call ACTION once at ACTION_AT s. Returns arrivals and the
    action's start/end (monotonic)."""
    arrivals = {"up": [], "down": []}
    seq = 0
    t0 = time.monotonic()
    next_send = t0
    acted = None
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if action and acted is None and now - t0 >= action_at:
            # Started, not waited for: the probe stream must not stall while the command runs.
            acted = [time.monotonic(), None, action()]
        if acted and acted[1] is None and acted[2].poll() is not None:
            acted[1] = time.monotonic()
        if now >= next_send:
            up_tx.sendto(PKT.pack(seq, now, 0), (AP_IP, UP_PORT))
            down_tx.sendto(PKT.pack(seq, now, 1), (CLIENT_IP, DOWN_PORT))
            seq += 1
            next_send += interval
            if next_send < now:          # fell behind (emulation hiccup): do not burst to catch up
                next_send = now + interval
        wait = max(0.0, min(next_send - time.monotonic(), 0.005))
        ready, _, _ = select.select([up_rx, down_rx], [], [], wait)
        for s in ready:
            while True:
                try:
                    data = s.recv(64)
                except BlockingIOError:
                    break
                q, sent, d = PKT.unpack(data[:PKT.size])
                arrivals["down" if d else "up"].append((time.monotonic(), q, sent))
    return arrivals, seq, acted


def max_gap(arr, start, end):
    """Longest time between consecutive arrivals within [start, end] (bounded by the window edges)."""
    times = [start] + [t for t, _, _ in arr if start <= t <= end] + [end]
    gaps = [(b - a, a) for a, b in zip(times, times[1:])]
    return max(gaps) if gaps else (end - start, start)


def events(path, pattern, after):
    """Timestamps (wall clock, -t logs) of lines matching PATTERN after wall time AFTER."""
    out = []
    try:
        for line in open(path, errors="replace"):
            m = re.match(r"(\d+\.\d+): (.*)", line)
            if m and float(m.group(1)) >= after and re.search(pattern, m.group(2)):
                out.append((float(m.group(1)), m.group(2).strip()))
    except OSError:
        pass
    return out


def pct(values, p):
    vals = sorted(values)
    if not vals:
        return None
    k = (len(vals) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--cs-count", type=int, default=5)
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--baseline-s", type=float, default=1.5)
    ap.add_argument("--after-s", type=float, default=3.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    interval = args.interval_ms / 1000.0
    report = {"tool": "lab/guest/csa_measure.py", "kernel": os.uname().release, "reps": args.reps,
              "cs_count": args.cs_count, "interval_ms": args.interval_ms, "beacon_int_tu": 100}
    try:
        proc = subprocess.run(["hostapd", "-v"], capture_output=True, text=True)
        report["hostapd"] = (proc.stdout + proc.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        pass
    ifs, assoc_s = setup()
    report["associate_s"] = round(assoc_s, 2)
    up_tx = ns_socket("client", CLIENT_IP, 0)
    up_rx = ns_socket("ap1", AP_IP, UP_PORT)
    down_tx = ns_socket("ap1", AP_IP, 0)
    down_rx = ns_socket("client", CLIENT_IP, DOWN_PORT)
    ctl = ["hostapd_cli", "-p", WORK + "/hostapd-ap1", "-i", ifs["ap1"]]
    reps = []
    try:
        # warm-up: the stream flows before any switch
        run_probe(up_tx, up_rx, down_tx, down_rx, 1.0, interval)
        for i in range(args.reps):
            cur = channel("ap1", ifs["ap1"])
            target = 1 if cur != 1 else 6
            wall0 = time.time()
            cmd = ctl + ["chan_switch", str(args.cs_count), str(FREQ[target])]

            def act():
                return subprocess.Popen(["ip", "netns", "exec", "ap1"] + cmd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)

            total = args.baseline_s + args.after_s
            off = time.time() - time.monotonic()     # wall clock (daemon logs) -> monotonic (probe arrivals)
            arrivals, sent, acted = run_probe(up_tx, up_rx, down_tx, down_rx, total, interval,
                                              action_at=args.baseline_s, action=act)
            a0, a1, proc = acted
            out = proc.communicate()[0].strip()
            a1 = a1 or time.monotonic()
            t_start = min(t for arr in arrivals.values() for t, _, _ in arr) if any(arrivals.values()) else a0
            end = a0 + args.after_s
            rep = {"rep": i + 1, "from": cur, "to": target, "cmd_out": out,
                   "cmd_ms": round((a1 - a0) * 1000, 1), "sent": sent}
            for d in ("up", "down"):
                g, at = max_gap(arrivals[d], a0, end)
                base, _ = max_gap(arrivals[d], max(t_start, a0 - args.baseline_s + 0.2), a0)
                seqs = {q for _, q, _ in arrivals[d]}
                rep["gap_%s_ms" % d] = round(g * 1000, 1)
                rep["gap_%s_starts_ms" % d] = round((at - a0) * 1000, 1)
                rep["baseline_%s_ms" % d] = round(base * 1000, 1)
                rep["lost_%s" % d] = sent - len(seqs)
            rep["gap_ms"] = max(rep["gap_up_ms"], rep["gap_down_ms"])
            rep["ap_channel"] = channel("ap1", ifs["ap1"])
            rep["client_channel"] = channel("client", ifs["client"])
            ap_ev = events(WORK + "/hostapd-ap1.log", r"AP-CSA-FINISHED|CHANNEL-SWITCH", wall0)
            cl_ev = events(WORK + "/wpa-client.log", r"CHANNEL-SWITCH|DISCONNECTED|CONNECTED", wall0)
            rep["ap_events"] = [[round((t - wall0) * 1000 - args.baseline_s * 1000, 1), e[:90]] for t, e in ap_ev]
            rep["client_events"] = [[round((t - wall0) * 1000 - args.baseline_s * 1000, 1), e[:90]] for t, e in cl_ev]
            rep["client_disconnected"] = any("DISCONNECTED" in e for _, e in cl_ev)
            # The gap AT the switch: the longest silence between just before the first of AP and client to report
            # the completed switch and just after the last (the other maxima can be emulation jitter anywhere).
            done = [t - off for t, e in ap_ev + cl_ev if "CHANNEL-SWITCH" in e and "STARTED" not in e]
            started = [t - off for t, e in ap_ev if "STARTED-CHANNEL-SWITCH" in e]
            if done:
                w0, w1 = min(done) - 0.15, max(done) + 0.15
                rep["gap_switch_ms"] = round(max(max_gap(arrivals[d], w0, w1)[0] for d in ("up", "down")) * 1000, 1)
                rep["switch_skew_ms"] = round((max(done) - min(done)) * 1000, 1)
                if started:
                    rep["announce_to_switch_ms"] = round((min(done) - min(started)) * 1000, 1)
            reps.append(rep)
            print(json.dumps(rep), file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            teardown()
    ok = [r for r in reps if r["ap_channel"] == r["to"] and r["client_channel"] == r["to"]]
    gaps = [r["gap_ms"] for r in ok]
    at_switch = [r["gap_switch_ms"] for r in ok if "gap_switch_ms" in r]
    announce = [r["announce_to_switch_ms"] for r in ok if "announce_to_switch_ms" in r]
    report.update({
        "gap_switch_ms_median": round(statistics.median(at_switch), 1) if at_switch else None,
        "gap_switch_ms_p90": round(pct(at_switch, 90), 1) if at_switch else None,
        "gap_switch_ms_max": max(at_switch) if at_switch else None,
        "announce_to_switch_ms_median": round(statistics.median(announce), 1) if announce else None,
        "switched_ok": len(ok), "disconnects": sum(r["client_disconnected"] for r in reps),
        "gap_ms_median": round(statistics.median(gaps), 1) if gaps else None,
        "gap_ms_p90": round(pct(gaps, 90), 1) if gaps else None,
        "gap_ms_min": min(gaps) if gaps else None, "gap_ms_max": max(gaps) if gaps else None,
        "baseline_ms_median": round(statistics.median(
            [max(r["baseline_up_ms"], r["baseline_down_ms"]) for r in reps]), 1) if reps else None,
        "runs": reps,
    })
    print(json.dumps(report))


if __name__ == "__main__":
    main()
