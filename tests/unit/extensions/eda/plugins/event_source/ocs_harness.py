"""Run the odin_master event source on 127.0.0.1 with a fake queue, and agents that are plain UDP sockets."""
import asyncio
import json
import socket

from ansible_collections.arnab.testbed.extensions.eda.plugins.event_source import odin_master as source

C1 = "02:c0:00:00:00:01"
C2 = "02:c0:00:00:00:02"


class Agent:
    """A synthetic agent: a UDP socket on 127.0.0.1 whose port identifies it (identify_by: address)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.master = None

    def send(self, data):
        self.sock.sendto(data if isinstance(data, bytes) else data.encode(), self.master)

    def close(self):
        self.sock.close()


class Harness:
    def __init__(self, n_agents=3, **args):
        self.agents = [Agent() for dummy in range(n_agents)]
        aps = dict(("ap%d" % (i + 1), {"agent": a.address, "edge": "edge%d" % (1 + i % 2), "channel": 1 + 5 * i})
                   for i, a in enumerate(self.agents))
        base = dict(host="127.0.0.1", port=0, done_port=0, identify_by="address", subscribe=False, tick_s=0.05,
                    aps=aps, clients={"client1": {"mac": C1, "ap": "ap1", "container": "video"},
                                      "client2": {"mac": C2, "ap": "ap2", "container": "game"}},
                    policy={"scan": "passive", "triggers": 1, "hysteresis_s": 0, "flap_window_s": 0})
        base.update(args)
        self.queue = asyncio.Queue()
        self.ocs = source.OdinMaster(self.queue, base)
        self.events = []
        self.task = None

    async def start(self):
        self.task = asyncio.ensure_future(self.ocs.run())
        started = await self.wait("ocs_started")
        for agent in self.agents:
            agent.master = ("127.0.0.1", started["port"])
        return started

    async def wait(self, kind, timeout=5.0, where=None):
        """The next event of this type (earlier events of other types are kept in self.events)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for event in self.events:
            if event["type"] == kind and not event.get("_taken") and (where is None or where(event)):
                event["_taken"] = True
                return event
        while True:
            event = await asyncio.wait_for(self.queue.get(), max(0.01, deadline - loop.time()))
            self.events.append(event)
            if event["type"] == kind and (where is None or where(event)):
                event["_taken"] = True
                return event

    async def settle(self, seconds=0.2):
        await asyncio.sleep(seconds)
        while not self.queue.empty():
            self.events.append(self.queue.get_nowait())

    def of(self, kind):
        return [e for e in self.events if e["type"] == kind]

    def done(self, seq, client, ok, ap=None):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(json.dumps({"seq": seq, "client": client, "ok": ok, "ap": ap}).encode(),
                        ("127.0.0.1", self.ocs.done_port))

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        await self.settle(0)
        for agent in self.agents:
            agent.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))
