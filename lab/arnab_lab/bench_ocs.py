"""Load benchmark of the OCS's event source (issue 12): N synthetic Odin agents on 127.0.0.1 publish R times a
second each to the odin_master source for a bounded time; some clients "walk" (their serving AP's signal drops
below the threshold while the next AP hears them well). Prints the source's CPU share and the decision latency
(the first datagram below the threshold leaves the agent -> the handoff event reaches the queue), median and p90.

    PYTHONPATH=lab .venv/bin/python -m arnab_lab.bench_ocs [--agents 100] [--rate 10] [--duration 15]
        [--walkers 20] [--triggers 1] [--json reports/bench-ocs.json]

Loopback only; stops by itself. The agents run in a child process; the source and its consumer in this one, so
this process's CPU time is the source's (the consumer only timestamps events).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.arnab.testbed.extensions.eda.plugins.event_source import odin_master as source  # noqa: E402

GOOD, WEAK, LOW = -50, -75, -82   # dBm: serving AP, the next AP before a walk, the serving AP after it


def client_mac(i):
    return "02:c1:00:00:%02x:%02x" % (i // 256, i % 256)


def agents_main(socks, master, rate, duration, walk_at, out):
    """Child: every agent pings every 2 s and publishes `rate` times a second, alternating its own client and its
    neighbour's; a walker's serving AP drops to LOW at its walk time and its next AP rises to GOOD."""
    n = len(socks)
    start = time.time()
    crossed = {}
    sent = 0
    period = 1.0 / rate
    tick = 0
    for sock in socks:
        sock.sendto(b"ping\n", master)
    while True:
        now = time.time()
        if now - start >= duration:
            break
        for i, sock in enumerate(socks):
            # alternate: own client i (served here), then client i-1 (served by the previous agent)
            c = i if tick % 2 == 0 else (i - 1) % n
            walked = c in walk_at and now - start >= walk_at[c]
            if c == i:
                level = LOW if walked else GOOD
            else:
                level = GOOD if walked else WEAK
            sock.sendto(("publish %s 1 1:%d\n" % (client_mac(c), level)).encode(), master)
            sent += 1
            if c == i and walked and c not in crossed:
                crossed[c] = time.time()
            if tick % (2 * rate) == 0:
                sock.sendto(b"ping\n", master)
                sent += 1
        tick += 1
        time.sleep(max(0.0, start + tick * period - time.time()))
    out.put({"crossed": crossed, "sent": sent + n})


async def run_source(args, socks):
    aps = dict(("ap%d" % i, {"agent": "127.0.0.1:%d" % s.getsockname()[1], "edge": "edge%d" % (i % 2 + 1)})
               for i, s in enumerate(socks))
    # client i is served by ap(i+1) in the alternation above: agent i+1 publishes its neighbour's (client i) signal
    # as the "next" AP; agent i serves client i.
    clients = dict(("client%d" % i, {"mac": client_mac(i), "ap": "ap%d" % i, "container": "svc%d" % i})
                   for i in range(len(socks)))
    queue = asyncio.Queue()
    ocs = source.OdinMaster(queue, dict(
        host="127.0.0.1", port=0, done_port=None, identify_by="address", subscribe=False, aps=aps, clients=clients,
        policy={"scan": "passive", "triggers": args.triggers, "hysteresis_s": 3, "trigger_reset_s": 1,
                "average_window_s": 1}, duration_s=args.duration + 1.0, tick_s=0.2))
    task = asyncio.ensure_future(ocs.run())
    handoffs = {}
    started = None
    while True:
        event = await queue.get()
        if event["type"] == "ocs_started":
            started = event
            break
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    walkers = list(range(0, len(socks), max(1, len(socks) // max(1, args.walkers))))[:args.walkers]
    span = max(0.5, args.duration - 4.0)
    walk_at = dict((c, 2.0 + span * k / max(1, len(walkers))) for k, c in enumerate(walkers))
    child = ctx.Process(target=agents_main, args=(socks, ("127.0.0.1", started["port"]), args.rate, args.duration,
                                                  walk_at, out))
    cpu0, wall0 = time.process_time(), time.time()
    child.start()
    final = None
    while True:
        event = await queue.get()
        if event["type"] == "handoff":
            handoffs[event["client"]] = (time.time(), event)
        elif event["type"] == "ocs_stats" and event.get("final"):
            final = event
            break
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    await task
    result = out.get(timeout=10)
    child.join(10)
    return ocs, final, handoffs, result, walk_at, cpu, wall


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10, help="publishes per second per agent")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds the agents send (bounded: max 300)")
    parser.add_argument("--walkers", type=int, default=20, help="clients that walk to the next AP")
    parser.add_argument("--triggers", type=int, default=1, help="the policy's trigger count")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    args.duration = min(max(args.duration, 3.0), 300.0)
    socks = []
    for _ in range(args.agents):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    ocs, final, handoffs, result, walk_at, cpu, wall = asyncio.run(run_source(args, socks))
    latencies, decision_ms, wrong = [], [], []
    for i, crossed in result["crossed"].items():
        name = "client%d" % i
        if name in handoffs:
            got, event = handoffs[name]
            latencies.append((got - crossed) * 1000.0)
            decision_ms.append(event["decision_ms"])
            if event["to_ap"] != "ap%d" % ((i + 1) % args.agents):
                wrong.append(name)
    unexpected = sorted(set(handoffs) - set("client%d" % i for i in walk_at))
    master = final["counters"]["master"]
    figures = {
        "agents": args.agents, "rate_per_agent": args.rate, "duration_s": args.duration,
        "datagrams_sent": result["sent"], "datagrams_received": master.get("datagrams", 0),
        "errors": master.get("errors", 0), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
        "cpu_share_pct": round(100.0 * cpu / wall, 1),
        "walkers": len(walk_at), "handoffs": len(handoffs), "unexpected_handoffs": unexpected, "wrong_target": wrong,
        "latency_ms": {"median": _r(statistics.median(latencies) if latencies else None),
                       "p90": _r(percentile(latencies, 90)), "max": _r(max(latencies) if latencies else None)},
        "decision_ms": {"median": _r(statistics.median(decision_ms) if decision_ms else None),
                        "p90": _r(percentile(decision_ms, 90))},
        "triggers": args.triggers,
    }
    print("OCS load: %d agents x %d publishes/s for %.0f s on 127.0.0.1" % (args.agents, args.rate, args.duration))
    print("  datagrams sent %d, received %d, errors %d" % (figures["datagrams_sent"], figures["datagrams_received"],
                                                          figures["errors"]))
    print("  source CPU: %.2f s over %.2f s = %.1f %% of one core" % (cpu, wall, figures["cpu_share_pct"]))
    print("  handoffs %d of %d walkers (unexpected %d, wrong target %d)" % (len(handoffs), len(walk_at),
                                                                            len(unexpected), len(wrong)))
    print("  decision latency (crossing datagram sent -> handoff event), ms: median %s, p90 %s, max %s"
          % (figures["latency_ms"]["median"], figures["latency_ms"]["p90"], figures["latency_ms"]["max"]))
    print("  of which the policy (first trigger -> decision, %d trigger(s)), ms: median %s, p90 %s"
          % (args.triggers, figures["decision_ms"]["median"], figures["decision_ms"]["p90"]))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    ok = len(handoffs) == len(walk_at) and not unexpected and not wrong
    return 0 if ok else 1


def _r(value):
    return None if value is None else round(value, 2)


if __name__ == "__main__":
    sys.exit(main())
