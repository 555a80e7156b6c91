"""odin_master: the OCS's Odin master side as an Event-Driven Ansible event source.

Listens for the Odin agents' UDP messages (port 2819: ping, probe, publish, association, deauthentication), tracks
which agents are alive (dropped after 6 s without a ping), keeps each agent's ``subscriptions`` (one ``signal``
subscription for any station) over its Click ControlSocket, runs the mobility policy (Wi-5 MobilityManager
semantics, plugins/module_utils/mobility.py) and puts typed events on the queue:

  ocs_started   {port, done_port, aps, clients}
  agent_up      {agent, ap}                         first ping (or first after a drop)
  agent_down    {agent, ap, silent_s}               no ping for agent_timeout_s
  client_seen   {sta_mac, client, ap, kind, ssid}   probe / association / deauthentication (a probe once per
                                                     seen_interval_s per client and AP); client null = unknown MAC
  handoff       {seq, client, sta_mac, from_ap, to_ap, from_edge, to_edge, container, t_trigger, t_decision,
                 decision_ms, reason, from_dbm, to_dbm, coalesced, waited_s, report, done_port}
  handoff_coalesced {client, to_ap, t_trigger, replaced_by | reason}   a waiting decision that will not run
  handoff_done  {seq, client, ok, ap}
  ocs_stats     {counters}                          every stats_interval_s (if set) and when the source stops

One handoff per client runs at a time: the rulebook reports its end with a JSON datagram
``{"seq": N, "client": NAME, "ok": BOOL, "ap": AP|null}`` to 127.0.0.1:done_port (extensions/eda/playbooks/
ocs_done.yml); decisions made meanwhile wait, the latest target wins.

Arguments (all optional but aps/clients, which also come from ``inventory``):
  host (0.0.0.0), port (2819), done_port (port + 1; 0 = any free port; null = no done channel),
  inventory: an Ansible inventory path read once with ansible-inventory (aps: ansible_host/odin_agent_ip,
    ap_edge, ap_channel, odin_control_port; clients: client_mac, client_ap, client_service; ocs_mobility),
  aps {name: {agent, edge, channel, control_port}}, clients {name: {mac, ap, container}}, policy {...},
  identify_by (ip | address: ip:port, for several agents on one address), agent_timeout_s (6),
  subscribe (true), control_port (6777), control_timeout_s (2), resubscribe_s (10),
  seen_interval_s (10), migration_timeout_s (900), report_dir, state_file, stats_interval_s (0),
  duration_s (none: run until cancelled), tick_s (0.2), event_log (a file: every event appended as a JSON line when
  it is made, before the rules engine sees it; "" or none = no log).
"""

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time

try:
    from ansible_collections.arnab.testbed.plugins.module_utils import click_control, mobility, odin, odin_master
except ImportError:  # ansible-rulebook loads this file by path: put the collection's root on sys.path
    _here = os.path.abspath(__file__).split(os.sep)
    if "ansible_collections" in _here:
        sys.path.insert(0, os.sep.join(_here[:len(_here) - _here[::-1].index("ansible_collections") - 1]))
    else:  # a checkout: setup links .collections/ansible_collections/arnab/testbed to it
        sys.path.insert(0, os.path.join(os.sep.join(_here[:-5]), ".collections"))
    from ansible_collections.arnab.testbed.plugins.module_utils import click_control, mobility, odin, odin_master

LOG = logging.getLogger("arnab.testbed.odin_master")
SIGNAL_SUBSCRIPTION_ID = 1
OUTBOX_LIMIT = 10000
DONE_MAX = 4096
RCVBUF = 4 << 20
WARN_PER_REASON = 5


def inventory_topology(data):
    """``ansible-inventory --list`` output -> (aps, clients, policy) for the OCS."""
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}

    def hosts(group):
        found, todo = [], [group]
        while todo:
            entry = data.get(todo.pop(0)) or {}
            found.extend(h for h in entry.get("hosts", []) if h not in found)
            todo.extend(entry.get("children", []))
        return found

    aps = {}
    for name in hosts("aps"):
        hv = hostvars.get(name, {})
        aps[name] = {"agent": hv.get("odin_agent_ip") or hv.get("ansible_host") or name, "edge": hv.get("ap_edge"),
                     "channel": hv.get("ap_channel"), "control_port": hv.get("odin_control_port", odin.CONTROL_PORT)}
    clients = {}
    for name in hosts("clients"):
        hv = hostvars.get(name, {})
        if hv.get("client_mac"):
            clients[name] = {"mac": hv["client_mac"], "ap": hv.get("client_ap"), "container": hv.get("client_service")}
    policy = {}
    for name in hosts("ocs_servers") + list(hostvars):
        if "ocs_mobility" in hostvars.get(name, {}):
            policy = hostvars[name]["ocs_mobility"]
            break
    return aps, clients, policy or (data.get("all", {}).get("vars", {}) or {}).get("ocs_mobility", {})


def read_inventory(path):
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    out = subprocess.run([exe if os.path.exists(exe) else "ansible-inventory", "-i", path, "--list"],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return inventory_topology(json.loads(out))


def _flag(value):
    """A boolean argument, also as a rulebook renders it (text)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "none")
    return bool(value)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handle):
        self.handle = handle

    def datagram_received(self, data, addr):
        self.handle(data, addr)

    def error_received(self, exc):
        LOG.debug("UDP error: %s", exc)


class OdinMaster:
    def __init__(self, queue, args, clock=time.time):
        args = dict(args or {})
        self.queue = queue
        self.clock = clock
        self.args = args
        self.host = args.get("host", "0.0.0.0")
        self.port = int(args.get("port", odin_master.MASTER_PORT))
        done = args.get("done_port", self.port + 1 if self.port else 0)
        self.done_port = None if done is None else int(done)
        self.identify_by = args.get("identify_by", "ip")
        if self.identify_by not in ("ip", "address"):
            raise ValueError("identify_by must be ip or address, not %r" % self.identify_by)
        self.subscribe = _flag(args.get("subscribe", True))
        self.control_port = int(args.get("control_port", odin.CONTROL_PORT))
        self.control_timeout = float(args.get("control_timeout_s", 2.0))
        self.resubscribe_s = float(args.get("resubscribe_s", 10.0))
        self.seen_interval = float(args.get("seen_interval_s", 10.0))
        self.migration_timeout = float(args.get("migration_timeout_s", 900.0))
        self.stats_interval = float(args.get("stats_interval_s", 0) or 0)
        self.duration = args.get("duration_s")
        self.tick_s = float(args.get("tick_s", 0.2))
        self.report_dir = args.get("report_dir")
        self.state_file = args.get("state_file")
        self.event_log = args.get("event_log") or None
        self.event_log_file = None
        self.counters = odin_master.Counters()
        self.tracker = odin_master.AgentTracker(args.get("agent_timeout_s", odin_master.AGENT_TIMEOUT_S))
        self.outbox = []
        self.sending = None
        self.wakeup = None
        self.tasks = set()
        self.seen = {}
        self.seq = 0
        self.running_seq = {}
        self.journal = []
        self.warned = odin_master.Counters()
        self.subscribed = {}
        self.configure(args.get("aps") or {}, args.get("clients") or {}, args.get("policy") or {})

    def configure(self, aps, clients, policy):
        self.aps = dict((str(k), dict(v or {})) for k, v in aps.items())
        self.ap_of = {}
        for name, ap in self.aps.items():
            key = str(ap.get("agent", name))
            if self.identify_by == "ip":
                key = key.rsplit(":", 1)[0] if key.count(":") == 1 else key
            self.ap_of[key] = name
        self.policy = mobility.MobilityPolicy(policy, self.aps, clients, now=self.clock())
        self.handoffs = mobility.HandoffQueue(dict((n, a.get("edge")) for n, a in self.aps.items()))

    # -- events ---------------------------------------------------------------------------------------------------

    def emit(self, event_type, **fields):
        event = {"type": event_type, "time": round(self.clock(), 6)}
        event.update(fields)
        if len(self.outbox) >= OUTBOX_LIMIT and event_type in ("client_seen", "ocs_stats"):
            self.counters.add("events_dropped")
            return
        self.outbox.append(event)
        self.counters.add("event_" + event_type)
        self.log_event(event)
        if self.wakeup is not None:
            self.wakeup.set()

    def log_event(self, event):
        if not self.event_log:
            return
        try:
            if self.event_log_file is None:
                self.event_log_file = open(self.event_log, "a")
            self.event_log_file.write(json.dumps(event, default=str) + "\n")
            self.event_log_file.flush()
        except (OSError, ValueError) as exc:
            self.counters.add("event_log_errors")
            LOG.debug("event log: %s", exc)

    async def pump(self):
        """Events go out in order; the rulebook's queue holds one at a time (back pressure stays here)."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.outbox:
                self.sending = self.outbox.pop(0)
                await self.queue.put(self.sending)
                self.sending = None

    def stats(self):
        return {"master": dict(self.counters), "policy": dict(self.policy.counters),
                "handoffs": dict(self.handoffs.counters), "agents_up": self.tracker.agents()}

    # -- agent datagrams -----------------------------------------------------------------------------------------

    def agent_key(self, addr):
        return addr[0] if self.identify_by == "ip" else "%s:%d" % (addr[0], addr[1])

    def handle(self, data, addr, now=None):
        """One datagram: never raises; every outcome is counted."""
        now = self.clock() if now is None else now
        self.counters.add("datagrams")
        try:
            msg = odin_master.parse_datagram(data)
        except odin_master.ProtocolError as exc:
            self.counters.add("errors")
            if self.warned.add(exc.reason) <= WARN_PER_REASON:
                LOG.warning("bad datagram from %s:%s: %s", addr[0], addr[1], exc)
            self.counters.add("error_" + exc.reason)
            return
        try:
            self._message(msg, addr, now)
        except Exception as exc:  # a bug must not stop the master: count it, log it, go on
            self.counters.add("internal_errors")
            LOG.exception("message %r from %s: %s", msg, addr, exc)

    def _message(self, msg, addr, now):
        key = self.agent_key(addr)
        ap = self.ap_of.get(key) if self.aps else key
        if ap is None:
            self.counters.add("unknown_agent")
            if self.warned.add("unknown_agent") <= WARN_PER_REASON:
                LOG.warning("datagram from %s, which is no AP of the inventory", key)
            return
        self.counters.add("msg_" + msg.kind)
        if msg.kind == "ping":
            if self.tracker.ping(key, now):
                LOG.info("agent %s (%s) up", key, ap)
                self.emit("agent_up", agent=key, ap=ap)
                if self.subscribe and self.aps:
                    self.spawn(self.keep_subscribed(key, ap))
            return
        if msg.kind in odin_master.IGNORED_KINDS:
            return
        if not self.tracker.alive(key):
            self.counters.add("agent_not_up")  # the master registers agents by their pings
            return
        if msg.kind == "publish":
            for sub_id, value in msg.values:
                if sub_id != SIGNAL_SUBSCRIPTION_ID:
                    self.counters.add("unknown_subscription")
                    continue
                for out in self.policy.observe(ap, msg.sta_mac, value, now):
                    self.outcome(out, now)
            return
        client = self.policy.client_of(msg.sta_mac)
        if client is None:
            self.counters.add("unknown_client")
        if msg.kind == "association" and client is not None and not self.handoffs.busy(client):
            self.policy.assigned(client, ap, now)
        last = self.seen.get((msg.sta_mac, ap, msg.kind))
        if msg.kind != "probe" or last is None or now - last >= self.seen_interval:
            if len(self.seen) > 100000:
                self.seen.clear()
            self.seen[(msg.sta_mac, ap, msg.kind)] = now
            self.emit("client_seen", sta_mac=msg.sta_mac, client=client, ap=ap, agent=key, kind=msg.kind,
                      ssid=msg.ssid)

    # -- decisions -----------------------------------------------------------------------------------------------

    def outcome(self, out, now):
        if isinstance(out, mobility.ScanRequest):
            self.spawn(self.scan(out))
        else:
            self.decided(out, now)

    def decided(self, decision, now):
        start, replaced = self.handoffs.offer(decision, now)
        self.journal.append(dict(decision._asdict(), state="started" if start else "waiting"))
        if replaced is not None:
            self.emit("handoff_coalesced", client=replaced.client, to_ap=replaced.to_ap, t_trigger=replaced.t_trigger,
                      replaced_by=decision.to_ap)
        if start is not None:
            self.start(start, [], now)

    def start(self, decision, coalesced, now):
        self.seq += 1
        self.running_seq[decision.client] = self.seq
        report = None
        if self.report_dir:
            report = os.path.join(os.path.abspath(self.report_dir), "handoff-%d-%s.json" % (self.seq, decision.client))
        event = dict(decision._asdict())
        event.update(seq=self.seq, decision_ms=round((decision.t_decision - decision.t_trigger) * 1000.0, 1),
                     waited_s=round(now - decision.t_decision, 3), report=report, done_port=self.done_port,
                     coalesced=[{"to_ap": d.to_ap, "t_trigger": d.t_trigger, "t_decision": d.t_decision}
                                for d in coalesced])
        LOG.info("handoff %d: %s %s -> %s (%s)", self.seq, decision.client, decision.from_ap, decision.to_ap,
                 decision.reason)
        self.emit("handoff", **event)

    async def scan(self, req):
        """Active scan (Wi-5): every other live agent scans the client on the serving AP's channel."""
        loop = asyncio.get_running_loop()
        channel = req.channel
        try:
            if channel is None:
                channel = await loop.run_in_executor(None, self._read_channel, req.from_ap)
            live = [ap for ap in req.candidates if self.tracker.alive(self._key_of(ap))]
            results = await asyncio.gather(*[loop.run_in_executor(None, self._scan_one, ap, req.sta_mac, channel,
                                                                  req.scan_time_s) for ap in live],
                                           return_exceptions=True)
        except Exception as exc:
            self.counters.add("scan_errors")
            LOG.warning("scan of %s failed: %s", req.client, exc)
            live, results = [], []
        heard = {}
        for ap, result in zip(live, results):
            if isinstance(result, Exception):
                self.counters.add("scan_errors")
                LOG.warning("scan of %s by %s failed: %s", req.client, ap, result)
            else:
                heard[ap] = result
        now = self.clock()
        decision = self.policy.scan_done(req.client, heard, now)
        if decision is not None:
            self.decided(decision, now)

    def _key_of(self, ap):
        for key, name in self.ap_of.items():
            if name == ap:
                return key
        return None

    def _control(self, ap):
        info = self.aps[ap]
        host = str(info.get("agent", ap))
        if host.count(":") == 1:
            host = host.split(":", maxsplit=1)[0]
        return click_control.ClickControlClient(host, int(info.get("control_port") or self.control_port),
                                                timeout=self.control_timeout, connect_timeout=self.control_timeout)

    def _read_channel(self, ap):
        with self._control(ap) as control:
            return int(control.read(odin.handler("channel")).strip())

    def _scan_one(self, ap, sta_mac, channel, scan_time):
        with self._control(ap) as control:
            control.write(odin.handler("scan_client"), "%s %d" % (sta_mac, int(channel)))
            time.sleep(scan_time)
            return odin.parse_scan_client(control.read(odin.handler("scan_client")))

    # -- subscriptions -------------------------------------------------------------------------------------------

    def wanted_subscriptions(self):
        units = self.policy.params["signal_units"]
        return [odin.Subscription.build(SIGNAL_SUBSCRIPTION_ID, odin.ANY_MAC, "signal", "greater_than",
                                        0 if units == "raw" else -256)]

    def _sync_subscriptions(self, ap):
        """READ the agent's subscriptions; WRITE ours when they differ. Returns True if it wrote."""
        want = self.wanted_subscriptions()
        with self._control(ap) as control:
            text = control.read(odin.handler("subscriptions"))
            try:   # real OdinAgent answers one line per subscription, not the WRITE format
                have = odin.parse_subscription_lines(text)
            except odin.OdinValueError:
                have = odin.parse_subscriptions(text)
            if sorted(have) == sorted(want):
                return False
            control.write(odin.handler("subscriptions"), odin.format_subscriptions(want))
            return True

    async def keep_subscribed(self, key, ap):
        loop = asyncio.get_running_loop()
        while self.tracker.alive(key):
            try:
                wrote = await loop.run_in_executor(None, self._sync_subscriptions, ap)
                self.counters.add("subscriptions_written" if wrote else "subscriptions_checked")
                self.subscribed[ap] = self.clock()
            except (click_control.ClickControlError, odin.OdinValueError, ValueError, OSError) as exc:
                self.counters.add("control_errors")
                LOG.warning("subscriptions of %s (%s): %s", ap, key, exc)
            await asyncio.sleep(self.resubscribe_s)

    # -- handoff completion (the rulebook's done datagram) -------------------------------------------------------

    def handle_done(self, data, addr, now=None):
        now = self.clock() if now is None else now
        try:
            if len(data) > DONE_MAX:
                raise ValueError("oversized")
            note = json.loads(data.decode("utf-8"))
            client, seq, ok = str(note["client"]), int(note["seq"]), bool(note["ok"])
            ap = note.get("ap") or None
            if ap is not None and ap not in self.aps:
                ap = None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            self.counters.add("done_errors")
            LOG.warning("bad done datagram from %s: %s", addr, exc)
            return
        if self.running_seq.get(client) != seq:
            self.counters.add("stale_done")
            return
        self.finish(client, seq, ok, ap, now)

    def finish(self, client, seq, ok, ap, now):
        del self.running_seq[client]
        where, nxt, dropped = self.handoffs.done(client, ok, now, ap)
        for entry in reversed(self.journal):
            if entry["client"] == client and entry["state"] == "started":
                entry.update(state="done", ok=ok, seq=seq, ended=now)
                break
        self.policy.assigned(client, nxt.to_ap if nxt else where, now)
        self.emit("handoff_done", seq=seq, client=client, ok=ok, ap=where)
        if dropped is not None:
            self.emit("handoff_coalesced", client=client, to_ap=dropped.to_ap, t_trigger=dropped.t_trigger,
                      reason="the client is already on %s" % where)
        if nxt is not None:
            self.start(nxt, self.handoffs.coalesced_of(client), now)

    # -- time ----------------------------------------------------------------------------------------------------

    def tick(self, now):
        for key, silent in self.tracker.expire(now):
            LOG.warning("agent %s (%s) down: no ping for %.1f s", key, self.ap_of.get(key, key), silent)
            self.emit("agent_down", agent=key, ap=self.ap_of.get(key, key), silent_s=round(silent, 1))
        for client in self.handoffs.overdue(now, self.migration_timeout):
            self.counters.add("migration_timeouts")
            LOG.warning("handoff of %s: no completion after %.0f s; taken as failed", client, self.migration_timeout)
            self.finish(client, self.running_seq.get(client), False, None, now)

    def write_state(self):
        if not self.state_file:
            return
        state = {"time": self.clock(), "stats": self.stats(), "handoffs": self.journal,
                 "clients": dict((c, {"serving": s["serving"], "busy": self.handoffs.busy(c)})
                                 for c, s in self.policy.clients.items())}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(state, handle, default=str)
        os.replace(tmp, self.state_file)

    def spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run(self):
        loop = asyncio.get_running_loop()
        self.wakeup = asyncio.Event()
        if self.args.get("inventory") and not (self.args.get("aps") and self.args.get("clients")):
            aps, clients, policy = await loop.run_in_executor(None, read_inventory, self.args["inventory"])
            self.configure(self.args.get("aps") or aps, self.args.get("clients") or clients,
                           self.args.get("policy") or policy)
        transports = []
        pump = asyncio.ensure_future(self.pump())
        try:
            transport, dummy = await loop.create_datagram_endpoint(lambda: _Datagrams(self.handle),
                                                                   local_addr=(self.host, self.port))
            transports.append(transport)
            self.port = transport.get_extra_info("sockname")[1]
            try:  # bursts of 100 agents: a larger receive buffer (the kernel caps it at net.core.rmem_max)
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except (OSError, AttributeError):
                pass
            if self.done_port is not None:
                transport, dummy = await loop.create_datagram_endpoint(lambda: _Datagrams(self.handle_done),
                                                                       local_addr=("127.0.0.1", self.done_port))
                transports.append(transport)
                self.done_port = transport.get_extra_info("sockname")[1]
            LOG.info("Odin master on %s:%d (done on 127.0.0.1:%s): APs %s, clients %s", self.host, self.port,
                     self.done_port, ", ".join(sorted(self.aps)), ", ".join(sorted(self.policy.clients)))
            self.emit("ocs_started", port=self.port, done_port=self.done_port, aps=sorted(self.aps),
                      clients=sorted(self.policy.clients))
            started = last_stats = loop.time()
            while self.duration is None or loop.time() - started < float(self.duration):
                await asyncio.sleep(self.tick_s)
                self.tick(self.clock())
                if self.stats_interval and loop.time() - last_stats >= self.stats_interval:
                    last_stats = loop.time()
                    self.emit("ocs_stats", counters=self.stats())
                try:
                    self.write_state()
                except OSError as exc:
                    self.counters.add("state_file_errors")
                    LOG.debug("state file: %s", exc)
        finally:
            for transport in transports:
                transport.close()
            for task in list(self.tasks):
                task.cancel()
            self.emit("ocs_stats", counters=self.stats(), final=True)
            try:
                self.write_state()
            except OSError:
                pass
            try:
                await asyncio.wait_for(self._flush(), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
            pump.cancel()
            if self.event_log_file is not None:
                self.event_log_file.close()
                self.event_log_file = None

    async def _flush(self):
        self.wakeup.set()
        while self.outbox or self.sending is not None:
            await asyncio.sleep(0.01)


async def main(queue, args):
    """EDA entry point."""
    await OdinMaster(queue, args).run()


if __name__ == "__main__":
    # python odin_master.py '{"port": 2819, "inventory": "inventories/lab"}': print the events
    class _Printer:
        async def put(self, event):
            print(json.dumps(event, default=str), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_Printer(), json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
