"""Fuzz: thousands of random and malformed datagrams on 127.0.0.1. The source survives, counts every one, moves
nobody, and still hands off on good input afterwards. Bounded count and time."""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ocs_harness import C1, Harness, run  # noqa: E402

SEEDS = [b"ping\n", b"publish %s 1 1:-80\n" % C1.encode(), b"probe %s arnab\n" % C1.encode(),
         b"association %s\n" % C1.encode(), b"deauthentication %s\n" % C1.encode()]
MALFORMED = [b"", b"\x00" * 9, b"ping " * 300, b"publish %s 2 1:-80\n" % C1.encode(), b"publish %s 1 1:nan" %
             C1.encode(), b"association ff:ff:ff:ff:ff:ff", b"publish 02:c0:00:00:00 1 1:-80", b"PUBLISH x",
             b"probe %s %s" % (C1.encode(), b"s" * 40), b"publish %s 1 1:-80\x00" % C1.encode(),
             b"publish %s 0" % C1.encode(), b"association %s extra" % C1.encode()]


def mutate(rng):
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.randrange(256) for dummy in range(rng.randint(0, 64)))
    if kind < 0.35:
        return bytes(rng.randrange(256) for dummy in range(rng.randint(1025, 1400)))
    data = bytearray(rng.choice(SEEDS))
    for dummy in range(rng.randint(1, 5)):
        pos = rng.randrange(len(data) + 1)
        op = rng.random()
        if op < 0.4 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op < 0.7:
            data[pos:pos] = bytes([rng.choice(b" :-0123456789abcdef\n\x00\xff")])
        else:
            del data[pos:pos + rng.randint(1, 6)]
    return bytes(data)


def test_fuzz_survives_counts_and_moves_nobody():
    async def scenario():
        import asyncio
        h = Harness()
        await h.start()
        rng = random.Random(12)
        for agent in h.agents:
            agent.send("ping\n")
        for dummy in range(3):
            await h.wait("agent_up")
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.1", 0))
        sent, started = 0, time.monotonic()
        # 1. random and mutated datagrams from an address that is no AP: none may move anybody
        for i in range(4000):
            stranger.sendto(mutate(rng), h.agents[0].master)
            sent += 1
            if i % 20 == 19:
                await asyncio.sleep(0.002)     # let the loop read: the test counts every datagram
        # 2. malformed forms from a live AP: all counted as errors
        for i in range(1200):
            h.agents[0].send(MALFORMED[i % len(MALFORMED)])
            sent += 1
            if i % 20 == 19:
                await asyncio.sleep(0.002)
        deadline = time.monotonic() + 10
        while h.ocs.stats()["master"].get("datagrams", 0) < sent + 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert time.monotonic() - started < 30
        stats = h.ocs.stats()
        master = stats["master"]
        assert master["datagrams"] == sent + 3                  # every one seen (3 pings)
        assert not h.task.done()                                # still running
        assert master.get("internal_errors", 0) == 0
        errors = sum(v for k, v in master.items() if k.startswith("error_"))
        assert errors == master["errors"] >= 1200
        handled = errors + master.get("unknown_agent", 0) + master["msg_ping"]
        assert handled == master["datagrams"]                   # each counted exactly once
        await h.settle()
        assert h.of("handoff") == [] and stats["policy"].get("decisions", 0) == 0
        assert h.ocs.policy.serving("client1") == "ap1"
        # 3. it still works
        h.agents[1].send("publish %s 1 1:-50\n" % C1)
        h.agents[0].send("publish %s 1 1:-80\n" % C1)
        event = await h.wait("handoff")
        assert event["to_ap"] == "ap2"
        stranger.close()
        await h.stop()
    run(scenario())
