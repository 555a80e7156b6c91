"""Emulated radio for the emulated lab: who hears whom, on which channel, and the air switch flows.

    python -m arnab_lab.radio --inventory-json INV.json [--socket /run/arnab-lab/radio.sock]
        [--air unix:/run/arnab-lab/nodes/air/ovs-run/br-air.mgmt | --air none]

INV.json is `ansible-inventory -i inventories/lab --list` output: APs are the hosts of group `aps`
(ap_mac, ap_channel, ap_position), clients the hosts of group `clients` (client_mac, client_position,
client_ap, optional client_trace [[t_s, x, y], ...], client_ssid); `lab.radio` (optional) overrides Model.

What an AP hears of a client is the path-loss model at the client's position (`move`, `trace`), or, while the
client replays a signal timeline (`signal`: [[t_s, {ap: dBm}], ...], linear between points, held after the last),
the timeline's level for the APs it names; an AP it does not name hears nothing of that client. The sensitivity
floor applies to both. `replay` starts a scenario (arnab_lab.scenario) for all or some clients at once.

Rule enforced on the real data path (OpenFlow on br-air): a client's frames reach only an AP that holds its
vAP, is on the channel the client is tuned to and hears it above the sensitivity. During a channel switch
the client's frames are held, not dropped (Model.hold_during_switch): a real station stops its TX queues for
the switch and the AP buffers for an absent station, so the frames go out when the client arrives on the new
channel. The air flows already point at the new channel's AP; tc queues on the client's two ends (its own
`wlan0` and its air port) hold the frames (`tbf` at a crawl, then released and kicked). Without a hold the
frames are dropped and TCP waits for a retransmission timeout (200 ms at least) after every switch.
Everything but `AirSwitch` and `serve` is pure and unit-tested.
"""
import argparse
import ctypes
import ipaddress
import json
import logging
import math
import os
import signal
import socket
import socketserver
import subprocess
import threading
import time
from dataclasses import dataclass, field

from arnab_lab import collection_utils, real_agent, scenario

openflow = collection_utils.load("openflow")
ofp13 = collection_utils.load("ofp13")
odin = collection_utils.load("odin")
click_control = collection_utils.load("click_control")   # here, once: threads loading it at once see half a module

LOG = logging.getLogger("emulated-radio")
DEFAULT_SOCKET = "/run/arnab-lab/radio.sock"
DEFAULT_AIR = "unix:/run/arnab-lab/nodes/air/ovs-run/br-air.mgmt"
AIR_COOKIE = 0xA1A1  # every br-air flow the radio installs carries this cookie
TICK = 0.01          # seconds between advances of time (CSA countdowns, traces)
FLOW_LEAD_INITIAL = 0.05  # first guess of one ovs-ofctl run on br-air (measured 50-90 ms on the lab machine)
HOLD_LEAD_INITIAL = 0.01  # first guess of one `tc` run (hold or release)
MULTICAST = "01:00:00:00:00:00/01:00:00:00:00:00"
# A held queue: tbf at a crawl (one frame fits the burst, the rest wait); released: tbf wide open, queue kept.
HOLD_TBF = ["rate", "8kbit", "burst", "1600", "limit", "8000000"]
OPEN_TBF = ["rate", "10gbit", "burst", "8000000", "limit", "8000000"]
KICK_ETHERTYPE = 0x88B5   # IEEE 802 local experimental: every receiver drops it
CLONE_NEWNET = 0x40000000
AGENT_POLL = 0.02         # seconds between reads of a real agent's table (lab.agent: real)


@dataclass
class Model:
    """Log-distance path loss: rssi = tx_power - (ref_loss + 10 n log10(d / 1 m))."""
    tx_power_dbm: float = 20.0
    ref_loss_db: float = 40.0          # free-space loss at 1 m, 2.4 GHz
    exponent: float = 3.0              # indoor path-loss exponent
    sensitivity_dbm: float = -85.0     # below this nothing is heard
    channel_switch_delay_ms: float = 100.0
    hold_during_switch: bool = True    # frames wait for the switch's end (real hardware) instead of being lost


@dataclass
class AP:
    name: str
    mac: str
    channel: int
    position: tuple
    port: str


@dataclass
class Client:
    name: str
    mac: str
    position: tuple
    channel: int
    port: str
    ssid: str = ""
    trace: list = field(default_factory=list)   # [(t_s, x, y)] relative to trace_start
    trace_start: float = 0.0
    switch_at: float = None        # CSA countdown ends (link goes down)
    switch_done_at: float = None   # channel-switch delay ends (link up on new channel)
    switch_channel: int = None
    associated: bool = False
    home_ap: str = None            # inventory client_ap: where it associates as plain WiFi before Odin runs
    signal: list = field(default_factory=list)  # [(t_s, {ap: dBm})] relative to signal_start; [] = path loss
    signal_start: float = 0.0
    levels: dict = None            # the signal timeline's levels now {ap: dBm} (advance() keeps it current)
    home_position: tuple = None    # where the inventory puts it (`reset`)
    home_trace: list = field(default_factory=list)


@dataclass
class State:
    aps: dict = field(default_factory=dict)       # name -> AP
    clients: dict = field(default_factory=dict)   # mac -> Client
    vaps: dict = field(default_factory=dict)      # client mac -> set of AP names holding its vAP
    agents: set = field(default_factory=set)      # APs whose Odin agent has said hello
    events: list = field(default_factory=list)    # [{"seq", "t", "event", ...}]

    def log(self, now, event, **details):
        self.events.append(dict(details, seq=len(self.events) + 1, t=round(now, 4), event=event))
        LOG.info("%s %s", event, json.dumps(details, sort_keys=True))


# -- pure radio logic ------------------------------------------------------------------------------------

def rssi(model, ap_position, client_position):
    distance = max(1.0, math.dist(ap_position, client_position))
    return round(model.tx_power_dbm - (model.ref_loss_db + 10 * model.exponent * math.log10(distance)), 1)


def position_at(trace, elapsed, default):
    """Linear interpolation along [(t, x, y)]; before/after the trace: its first/last point."""
    if not trace:
        return default
    if elapsed <= trace[0][0]:
        return (trace[0][1], trace[0][2])
    for (t0, x0, y0), (t1, x1, y1) in zip(trace, trace[1:]):
        if t0 <= elapsed <= t1:
            f = (elapsed - t0) / (t1 - t0) if t1 > t0 else 1.0
            return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))
    return (trace[-1][1], trace[-1][2])


def signal_at(timeline, elapsed):
    """Levels {ap: dBm} along a signal timeline [(t, {ap: dBm})] (every point names the same APs), linear
    between points; before/after the timeline: its first/last point."""
    if not timeline:
        return {}
    if elapsed <= timeline[0][0]:
        return dict(timeline[0][1])
    for (t0, l0), (t1, l1) in zip(timeline, timeline[1:]):
        if t0 <= elapsed <= t1:
            f = (elapsed - t0) / (t1 - t0) if t1 > t0 else 1.0
            return dict((ap, round(l0[ap] + f * (l1[ap] - l0[ap]), 1)) for ap in l0)
    return dict(timeline[-1][1])


def level(model, ap, client):
    """The client's signal at `ap` before channels and sensitivity: its signal timeline's level while it replays
    one (None for an AP the timeline does not name), else the path-loss model at its position."""
    if client.signal:
        return (client.levels or {}).get(ap.name)
    return rssi(model, ap.position, client.position)


def hears(model, ap, client, channel=None, client_channel=None):
    """RSSI at which `ap` (its radio on `channel`, default its own) hears `client` (tuned to
    `client_channel`, default its current channel), or None."""
    tuned = client.channel if client_channel is None else client_channel
    if tuned is None or tuned != (ap.channel if channel is None else channel):
        return None
    heard = level(model, ap, client)
    return heard if heard is not None and heard >= model.sensitivity_dbm else None


def audible(model, ap, client):
    """What `ap` hears of `client` on the client's channel, whatever channel the AP serves (an active scan)."""
    heard = level(model, ap, client)
    return heard if heard is not None and heard >= model.sensitivity_dbm else None


def switching(client):
    """In the channel-switch delay: off the old channel, not yet on the new one."""
    return client.channel is None and client.switch_channel is not None


def link_ap(state, model, client):
    """The AP that carries the client's frames now: holds its vAP, same channel, in range; best RSSI.
    During a channel switch: none if frames are dropped, else the AP the held frames will go to (the one
    serving the client on the channel it is switching to)."""
    tuned = client.channel
    if tuned is None:
        if not (model.hold_during_switch and switching(client)):
            return None
        tuned = client.switch_channel
    candidates = []
    # Before an Odin agent runs on its inventory AP (and before any agent held its vAP), the client is on
    # plain WiFi there: the lab's network works without Odin.
    plain_wifi = client.mac not in state.vaps and client.home_ap and client.home_ap not in state.agents
    holders = [client.home_ap] if plain_wifi else state.vaps.get(client.mac, ())
    for name in holders:
        level = hears(model, state.aps[name], client, client_channel=tuned)
        if level is not None:
            candidates.append((level, name))
    return max(candidates)[1] if candidates else None


def schedule_csa(state, model, ap_name, sta_mac, new_channel, count, beacon_interval_ms, now):
    """The client hears a CSA from its serving AP: switch after count x beacon interval, then the
    channel-switch delay without a link. -> (ok, reason)."""
    client = state.clients.get(sta_mac)
    if client is None:
        return False, "unknown client %s" % sta_mac
    ap = state.aps[ap_name]
    if hears(model, ap, client) is None:
        return False, "%s does not hear %s on channel %s" % (ap_name, client.name, ap.channel)
    client.switch_at = now + count * beacon_interval_ms / 1000.0
    client.switch_done_at = client.switch_at + model.channel_switch_delay_ms / 1000.0
    client.switch_channel = int(new_channel)
    state.log(now, "csa_received", client=client.name, ap=ap_name, channel=int(new_channel),
              switch_in_ms=count * beacon_interval_ms)
    return True, "switch at +%d ms" % (count * beacon_interval_ms)


def advance(state, model, now):
    """Move clients along their traces and progress channel switches to `now`."""
    for client in state.clients.values():
        if client.trace:
            client.position = position_at(client.trace, now - client.trace_start, client.position)
        if client.signal:
            client.levels = signal_at(client.signal, now - client.signal_start)
        if client.switch_at is not None and now >= client.switch_at and client.channel is not None:
            state.log(now, "channel_switch_start", client=client.name, old_channel=client.channel)
            client.channel = None
        if client.switch_done_at is not None and now >= client.switch_done_at and client.channel is None:
            client.channel = client.switch_channel
            client.switch_at = client.switch_done_at = client.switch_channel = None
            state.log(now, "channel_switch_done", client=client.name, channel=client.channel)


def links(state, model):
    """{client mac: AP name or None}."""
    return dict((mac, link_ap(state, model, c)) for mac, c in state.clients.items())


def held(state, model):
    """Clients whose frames are held now (in a channel switch, with holding on): sorted MACs."""
    if not model.hold_during_switch:
        return []
    return sorted(mac for mac, client in state.clients.items() if switching(client))


def air_flows(state, model):
    """The complete br-air flow table the radio wants, as openflow.Flow objects (ports by name)."""
    flows = [openflow.Flow("", "drop", AIR_COOKIE, 0)]   # unheard frames go nowhere
    listeners = {}
    for mac, ap_name in sorted(links(state, model).items()):
        if ap_name is None:
            continue
        client, ap = state.clients[mac], state.aps[ap_name]
        flows.append(openflow.Flow("in_port=%s" % client.port, "output:%s" % ap.port, AIR_COOKIE, 100))
        flows.append(openflow.Flow("in_port=%s,dl_dst=%s" % (ap.port, mac), "output:%s" % client.port,
                                   AIR_COOKIE, 100))
        listeners.setdefault(ap.port, []).append(client.port)
    for ap_port, client_ports in sorted(listeners.items()):
        # broadcast/multicast from an AP reaches every client linked to it
        flows.append(openflow.Flow("in_port=%s,dl_dst=%s" % (ap_port, MULTICAST),
                                   ",".join("output:%s" % p for p in sorted(client_ports)), AIR_COOKIE, 90))
    return flows


def flow_changes(old, new):
    """-> (to_add, to_delete) from flow list `old` to `new` without a gap (see openflow.diff_flows)."""
    return openflow.diff_flows(new, old)


def hold_devices(inventory):
    """{client mac: [(netns, device)]}: where a client's frames queue in the lab (its own `wlan0`, the TX
    queue a real station stops during a switch, and its port on the air, where the AP's frames wait)."""
    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    prefix = None
    for name in hostvars:
        prefix = prefix or (hostvars[name].get("lab") or {}).get("prefix")
    if not prefix:
        return {}
    devices = {}
    for name in inventory.get("clients", {}).get("hosts", []):
        hv = hostvars[name]
        devices[odin.normalize_mac(hv["client_mac"])] = [
            ("%s-%s" % (prefix, name), "wlan0"), ("%s-air" % prefix, hv.get("air_port", name))]
    return devices


def hold_commands(devices, hold):
    """tc argvs (one per network namespace, in batch mode) that hold or release the given devices ->
    [(argv, stdin)]."""
    per_ns = {}
    for netns, dev in devices:
        per_ns.setdefault(netns, []).append("qdisc replace dev %s root tbf %s\n"
                                            % (dev, " ".join(HOLD_TBF if hold else OPEN_TBF)))
    return [(["tc", "-n", netns, "-force", "-batch", "-"], "".join(lines)) for netns, lines in sorted(per_ns.items())]


def kick_frame():
    """A minimal frame that gets a released queue moving (a queue only runs when something is sent)."""
    return b"\x02\x00\x00\x00\x00\x00" * 2 + KICK_ETHERTYPE.to_bytes(2, "big") + bytes(46)


def state_from_inventory(inventory):
    """`ansible-inventory --list` JSON -> (State, Model)."""
    hostvars = inventory.get("_meta", {}).get("hostvars", {})

    def hosts(group):
        return inventory.get(group, {}).get("hosts", [])

    model_overrides = {}
    for name in hostvars:
        model_overrides.update((hostvars[name].get("lab") or {}).get("radio") or {})
    model = Model(**model_overrides)
    state = State()
    for name in hosts("aps"):
        hv = hostvars[name]
        state.aps[name] = AP(name, odin.normalize_mac(hv["ap_mac"]), int(hv["ap_channel"]),
                             tuple(hv.get("ap_position", (0, 0))), hv.get("air_port", name))
    for name in hosts("clients"):
        hv = hostvars[name]
        serving = state.aps.get(hv.get("client_ap"))
        trace = [tuple(p) for p in hv.get("client_trace", [])]
        position = tuple(hv.get("client_position", (0, 0)))
        state.clients[odin.normalize_mac(hv["client_mac"])] = Client(
            name, odin.normalize_mac(hv["client_mac"]), position,
            int(hv.get("client_channel", serving.channel if serving else 1)), hv.get("air_port", name),
            hv.get("client_ssid", ""), trace, home_ap=serving.name if serving else None,
            home_position=position, home_trace=list(trace))
    return state, model


def find_ap(state, ap_mac):
    mac = odin.normalize_mac(ap_mac)
    for ap in state.aps.values():
        if ap.mac == mac:
            return ap
    raise KeyError("no AP with MAC %s in the radio's inventory" % mac)


def find_client(state, ref):
    """By MAC or by inventory name."""
    for client in state.clients.values():
        if ref in (client.mac, client.name) or (":" in str(ref) and client.mac == odin.normalize_mac(ref)):
            return client
    raise KeyError("no client %s" % ref)


def replay(state, model, request, now):
    """Start a scenario (arnab_lab.scenario's form, checked here against the radio's APs and clients) for all the
    radio's clients or those in `clients`: each named one replays its timeline, the others go back to where the
    inventory puts them (`reset`). Everything is checked before anything changes; `check` changes nothing."""
    checked = scenario.validate(request.get("scenario"), str(request.get("source") or "scenario"),
                                aps=state.aps, clients=[c.name for c in state.clients.values()])
    requests = scenario.start_requests(checked, request.get("clients"),
                                       sorted(c.name for c in state.clients.values()))
    if not request.get("check"):
        for one in requests:
            handle(state, model, one, now)
    return {"ok": True, "requests": requests, "t": now, "duration_s": checked["duration_s"],
            "check": bool(request.get("check"))}


def handle(state, model, request, now):
    """One radio request (a dict with "op") -> reply dict. Pure apart from the clock passed in."""
    op = request.get("op")
    if op == "state":
        return {"ok": True, "state": snapshot(state, model, now)}
    if op == "events":
        since = int(request.get("since", 0))
        return {"ok": True, "events": [e for e in state.events if e["seq"] > since]}
    if op == "replay":
        return replay(state, model, request, now)
    if op in ("move", "trace", "tune", "signal", "reset"):
        client = find_client(state, request["client"])
        details = {}
        if op == "move":
            position = scenario.check_position(request["position"], "position of %s" % client.name)
            client.position, client.trace, client.signal = position, [], []
        elif op == "trace":
            trace = scenario.check_positions(request["trace"], "trace of %s" % client.name, allow_empty=True)
            client.trace, client.trace_start, client.signal = trace, now, []
        elif op == "signal":
            client.signal = scenario.check_signal(request["signal"], "signal of %s" % client.name, aps=state.aps)
            client.signal_start, client.trace = now, []
            client.levels = signal_at(client.signal, 0.0)
            details["levels"] = client.levels
        elif op == "reset":
            client.position, client.trace, client.signal = client.home_position, list(client.home_trace), []
            client.trace_start = now
        else:
            client.channel = odin.validate_channel(request["channel"])
        state.log(now, op, client=client.name, position=list(client.position), channel=client.channel, **details)
        return {"ok": True}
    ap = find_ap(state, request["ap_mac"])
    if op == "hello":
        state.agents.add(ap.name)
        return {"ok": True, "ap": ap.name, "channel": ap.channel}
    if op == "set_channel":
        ap.channel = odin.validate_channel(request["channel"])
        state.log(now, "ap_channel", ap=ap.name, channel=ap.channel)
        return {"ok": True}
    if op == "scan_aps":
        channel = int(request.get("channel") or ap.channel)
        heard = [{"ap_mac": other.mac, "rssi": rssi(model, ap.position, other.position)}
                 for other in state.aps.values() if other is not ap and other.channel == channel]
        return {"ok": True, "aps": [h for h in heard if h["rssi"] >= model.sensitivity_dbm]}
    if op == "poll":
        served = links(state, model)
        clients = []
        for mac, client in sorted(state.clients.items()):
            level = hears(model, ap, client)
            if level is not None:
                clients.append({"sta_mac": mac, "rssi": level, "channel": client.channel,
                                "linked": served[mac] == ap.name, "served": served[mac] is not None,
                                "associated": client.associated, "ssid": client.ssid})
        return {"ok": True, "clients": clients}
    client = state.clients.get(odin.normalize_mac(request["sta_mac"]))
    if client is None:
        return {"ok": False, "error": "unknown client %s" % request["sta_mac"]}
    if op == "rssi":
        channel = request.get("channel")
        return {"ok": True, "rssi": hears(model, ap, client, int(channel) if channel else None)}
    if op == "vap_add":
        state.vaps.setdefault(client.mac, set()).add(ap.name)
        state.log(now, "vap_add", client=client.name, ap=ap.name)
        return {"ok": True}
    if op == "vap_remove":
        state.vaps.get(client.mac, set()).discard(ap.name)
        state.log(now, "vap_remove", client=client.name, ap=ap.name)
        return {"ok": True}
    if op == "associate":
        newly = not client.associated
        client.associated = True
        if newly:
            state.log(now, "association", client=client.name, ap=ap.name)
        return {"ok": True, "newly": newly}
    if op == "csa":
        ok, reason = schedule_csa(state, model, ap.name, client.mac, request["channel"],
                                  int(request.get("count", 4)), float(request.get("beacon_interval_ms", 100)), now)
        return {"ok": ok, "detail": reason} if ok else {"ok": False, "error": reason}
    return {"ok": False, "error": "unknown op %r" % op}


# -- real agents (lab.agent: real): the radio reads what real Click + OdinAgent did -------------------------

def real_agents(inventory):
    """{AP name: (ControlSocket IP, port)} when the lab runs real Click on its APs (lab.agent: real), else {}."""
    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    lab = next((hv["lab"] for hv in hostvars.values() if "lab" in hv), {}) or {}
    if lab.get("agent", "emulated") != "real":
        return {}
    return dict((name, (hostvars[name]["ansible_host"], int(hostvars[name].get("ap_agent_port", odin.CONTROL_PORT))))
                for name in inventory.get("aps", {}).get("hosts", []))


def apply_agent_table(state, ap_name, table, channel, now):
    """What a real agent's READ table and channel say, as the radio's state: the AP's agent runs, the vAPs of known
    clients on this AP are exactly the table's (vap_add / vap_remove events as the emulated agent causes them),
    the AP's channel is the agent's. -> True if anything changed."""
    changed = False
    if ap_name not in state.agents:
        state.agents.add(ap_name)
        state.log(now, "agent_seen", ap=ap_name)
        changed = True
    macs = set(odin.normalize_mac(mac) for mac in table)
    for mac, client in sorted(state.clients.items()):
        holders = state.vaps.setdefault(mac, set())
        if mac in macs and ap_name not in holders:
            holders.add(ap_name)
            state.log(now, "vap_add", client=client.name, ap=ap_name)
            changed = True
        elif mac not in macs and ap_name in holders:
            holders.discard(ap_name)
            state.log(now, "vap_remove", client=client.name, ap=ap_name)
            changed = True
    ap = state.aps[ap_name]
    if channel is not None and channel != ap.channel:
        try:
            ap.channel = odin.validate_channel(channel)
            state.log(now, "ap_channel", ap=ap_name, channel=ap.channel)
            changed = True
        except odin.OdinValueError:
            LOG.warning("%s: channel %s is not a Wi-Fi channel: the radio keeps its channel", ap_name, channel)
    return changed


def agent_csa(state, model, ap_name, csa, beacon_interval_ms, now):
    """A CSA beacon (real_agent.parse_csa_beacon) that AP's real agent sent: the client switches after `count`
    beacon intervals of the agent (its `interval`), as with the emulated agent's `csa`. OdinAgent sends the whole
    countdown (count 4 .. 0) at once; only the first beacon of a switch not yet scheduled counts. -> (ok, reason)."""
    client = state.clients.get(odin.normalize_mac(csa["sta_mac"]))
    if client is None:
        return False, "unknown client %s" % csa["sta_mac"]
    if client.switch_at is not None or switching(client):
        return False, "%s already switching" % client.name
    return schedule_csa(state, model, ap_name, client.mac, csa["channel"], csa["count"], beacon_interval_ms, now)


class RealAgents:
    """Reads each AP's real agent: its ControlSocket (table, channel, interval) every AGENT_POLL seconds, and the
    serving radio's frames (UDP from Click's `to_dev`, see arnab_lab.real_agent) for channel switch announcements.
    Last known state is kept while an agent does not answer (as the emulated radio keeps what a dead agent said)."""

    def __init__(self, radio_, agents, listen):
        self.radio, self.agents, self.listen = radio_, agents, listen
        self.intervals = dict((name, 100) for name in agents)
        self.by_ip = dict((ip, name) for name, (ip, dummy) in agents.items())
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)

    def start(self, stop):
        for name in sorted(self.agents):
            threading.Thread(target=self._poll, args=(name, stop), daemon=True).start()
        threading.Thread(target=self._frames, args=(stop,), daemon=True).start()

    def _poll(self, name, stop):
        ip, port = self.agents[name]
        client = click_control.ClickControlClient(ip, port, timeout=1.0, connect_timeout=1.0)
        failing = False
        while not stop.wait(AGENT_POLL):
            try:
                table = odin.parse_table(client.read("%s.table" % odin.ELEMENT))
                channel = int(client.read("%s.channel" % odin.ELEMENT).strip())
                self.intervals[name] = int(client.read("%s.interval" % odin.ELEMENT).strip())
            except (click_control.ClickControlError, ValueError) as exc:
                client.close(send_quit=False)
                if not failing:   # once per outage
                    LOG.warning("real agent %s: %s (read again every 0.2 s; the radio keeps what it last read)",
                                name, exc)
                failing = True
                stop.wait(0.2)
                continue
            except Exception:   # a poller that dies leaves the radio blind to that AP: log, go on
                LOG.exception("real agent %s", name)
                stop.wait(0.2)
                continue
            if failing:
                LOG.info("real agent %s answers again", name)
                failing = False
            with self.radio.lock:
                changed = apply_agent_table(self.radio.state, name, table, channel, self.radio.now())
            if changed:
                self.radio.sync()

    def _frames(self, stop):
        self.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                frame, (src, dummy) = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            name = self.by_ip.get(src)
            csa = real_agent.parse_csa_beacon(frame)
            if name is None or csa is None:
                continue
            with self.radio.lock:
                ok, reason = agent_csa(self.radio.state, self.radio.model, name, csa, self.intervals[name],
                                       self.radio.now())
            LOG.info("CSA beacon from %s's real agent (%s -> channel %d, count %d): %s", name, csa["sta_mac"],
                     csa["channel"], csa["count"], reason)
            if ok:
                self.radio.sync()


def replay_info(client, now):
    """What the client replays: {"kind": "signal"|"trace", "elapsed_s", "length_s"}, or None."""
    if client.signal:
        kind, start, length = "signal", client.signal_start, client.signal[-1][0]
    elif client.trace:
        kind, start, length = "trace", client.trace_start, client.trace[-1][0]
    else:
        return None
    return {"kind": kind, "elapsed_s": None if now is None else round(now - start, 3), "length_s": length}


def snapshot(state, model, now=None):
    """The radio's state. Per client: `rssi` is its signal at each AP before sensitivity and channels (path loss,
    or its signal timeline: null for an AP the timeline does not name), `heard` what each AP's radio hears of it
    on the client's channel (null: nothing), `replay` what it replays."""
    linked = links(state, model)
    return {
        "emulated": True,
        "model": model.__dict__,
        "aps": dict((n, {"mac": a.mac, "channel": a.channel, "position": list(a.position)})
                    for n, a in state.aps.items()),
        "clients": dict((c.name, {"mac": c.mac, "channel": c.channel, "position": [round(v, 2) for v in c.position],
                                  "link": linked[m], "vaps": sorted(state.vaps.get(m, ())),
                                  "rssi": dict((n, level(model, a, c)) for n, a in state.aps.items()),
                                  "heard": dict((n, audible(model, a, c)) for n, a in state.aps.items()),
                                  "replay": replay_info(c, now),
                                  "switching": c.channel is None or c.switch_at is not None,
                                  "held": m in held(state, model)})
                        for m, c in state.clients.items()),
    }


# -- OVS adapter and server (thin) ------------------------------------------------------------------------------

def _packet_socket(netns, dev):
    """An AF_PACKET socket on `dev` inside network namespace `netns` (made in a thread that enters it)."""
    made = {}

    def enter_and_open():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open("/run/netns/" + netns) as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns %s" % netns)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind((dev, 0))
            made["sock"] = sock
        except OSError as exc:
            made["error"] = exc

    thread = threading.Thread(target=enter_and_open)
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]
    return made["sock"]


class AirSwitch:
    """Keeps br-air's radio-cookie flows equal to air_flows(): one ovs-ofctl per change, adds first; and
    the queues of switching clients held (tc), when hold devices are given."""

    def __init__(self, target, version="1.3", hold_devices=None):
        self.target, self.version, self.installed = target, version, []
        self.hold_devices = hold_devices or {}
        self.holding = set()
        self.sockets = {}
        self.wire, self.ports = None, {}

    def connect_wire(self):
        """Flow changes over one OpenFlow 1.3 connection (port names resolved once) instead of an ovs-ofctl
        run each: a switch's hold, flows and release then take one `tc` run, not tens of ms more."""
        if not self.target or self.version != "1.3" or not ofp13.Connection.supports(self.target):
            return False
        result = subprocess.run(openflow.ofctl_argv("dump-ports-desc", self.target, version=self.version),
                                capture_output=True, text=True, timeout=10, check=False)
        self.ports = openflow.parse_port_desc(result.stdout) if result.returncode == 0 else {}
        try:
            self.wire = ofp13.Connection(self.target).connect() if self.ports else None
        except ofp13.WireError as exc:
            LOG.warning("no OpenFlow connection to br-air (%s): ovs-ofctl per change", exc)
            self.wire = None
        return self.wire is not None

    def _send_wire(self, to_add, to_delete):
        if self.wire is None:
            return False
        resolved = [[openflow.resolve_ports(f, self.ports) for f in flows] for flows in (to_add, to_delete)]
        if not all(ofp13.encodable(f) for f in resolved[0] + resolved[1]):
            return False
        try:
            self.wire.apply(resolved[0], resolved[1])
            return True
        except ofp13.WireError as exc:
            LOG.warning("OpenFlow connection to br-air: %s; ovs-ofctl from now on", exc)
            self.wire.close()
            self.wire = None
            return False

    def _kick(self, netns, dev):
        try:
            if (netns, dev) not in self.sockets:
                self.sockets[(netns, dev)] = _packet_socket(netns, dev)
            self.sockets[(netns, dev)].send(kick_frame())
        except OSError as exc:
            LOG.warning("kick %s/%s: %s", netns, dev, exc)

    def set_holds(self, macs, hold):
        """Hold (True) or release (False) the queues of these clients; a release kicks each queue."""
        devices = [d for mac in macs for d in self.hold_devices.get(mac, [])]
        if not devices:
            return None
        started = time.monotonic()
        commands = hold_commands(devices, hold)
        # one tc per namespace, all at once
        procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for argv, dummy in commands]
        for proc, (argv, stdin) in zip(procs, commands):
            dummy, err = proc.communicate(stdin, timeout=10)
            if proc.returncode != 0:
                LOG.error("%s: %s", openflow.command_text(argv), err.strip())
        if not hold:
            for netns, dev in devices:
                self._kick(netns, dev)
        return time.monotonic() - started

    def _run(self, argv, stdin=None):
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10, check=False)
        if result.returncode != 0:
            LOG.error("%s: %s", openflow.command_text(argv), result.stderr.strip())

    def reset(self):
        if self.target:
            self._run(openflow.delete_cookie_command(self.target, AIR_COOKIE, self.version).argv)
        self.installed = []

    def sync(self, flows, holds=()):
        """Holds first (frames wait before the flows move), flows, releases last. -> (to_add, to_delete)."""
        holds = set(holds) & set(self.hold_devices)
        self.timings = {"hold": self.set_holds(sorted(holds - self.holding), True), "flows": None}
        to_add, to_delete = flow_changes(self.installed, flows)
        if self.target and (to_add or to_delete):
            # one process, flow-mods applied in order: the link moves without a window of no flows
            started = time.monotonic()
            if not self._send_wire(to_add, to_delete):
                command = openflow.batch_command(self.target, to_add, to_delete, self.version)
                self._run(command.argv, command.stdin)
            self.timings["flows"] = time.monotonic() - started
        self.installed = list(flows)
        self.timings["release"] = self.set_holds(sorted(self.holding - holds), False)
        self.changed_holds = (sorted(holds - self.holding), sorted(self.holding - holds))
        self.holding = holds
        return to_add, to_delete


class Radio:
    """State + model + air switch behind one lock; a ticker advances time and syncs flows."""

    def __init__(self, state, model, air):
        self.state, self.model, self.air = state, model, air
        self.lock = threading.Lock()
        self.sync_lock = threading.Lock()
        self.t0 = time.monotonic()
        # Programming br-air takes tens of ms (one ovs-ofctl run). Scheduled events (channel switches)
        # are applied that much early so the flows change at the nominal time; an EWMA of measured runs.
        self.lead = FLOW_LEAD_INITIAL
        # With frames held during a switch, only the holds have to be on time (frames wait while the flows
        # move): the switch is applied early by the measured latency of one `tc` run instead.
        self.hold_lead = HOLD_LEAD_INITIAL
        for client in state.clients.values():
            client.trace_start = 0.0

    def now(self):
        return time.monotonic() - self.t0

    def request(self, request):
        with self.lock:
            try:
                reply = handle(self.state, self.model, request, self.now())
            except (KeyError, ValueError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            if request.get("op") == "events":
                # to line the radio's clock up with others: t (seconds since the radio started) <-> epoch
                reply["clock"] = {"t": self.now(), "epoch": time.time()}
        self.sync()
        return reply

    def holding(self):
        return bool(self.model.hold_during_switch and getattr(self.air, "hold_devices", None))

    def sync(self):
        with self.sync_lock:
            with self.lock:
                advance(self.state, self.model, self.now() + (self.hold_lead if self.holding() else self.lead))
                flows = air_flows(self.state, self.model)
                holds = held(self.state, self.model)
            to_add, to_delete = self.air.sync(flows, holds)
            timings = getattr(self.air, "timings", {})
            for key in ("hold", "release"):
                if timings.get(key) is not None:
                    self.hold_lead = 0.7 * self.hold_lead + 0.3 * timings[key]
                    with self.lock:
                        self.state.log(self.now(), "frames_held" if key == "hold" else "frames_released",
                                       clients=[self.state.clients[m].name
                                                for m in self.air.changed_holds[0 if key == "hold" else 1]],
                                       tc_ms=round(timings[key] * 1000, 1))
            if to_add or to_delete:
                if self.air.target and timings.get("flows") is not None:
                    self.lead = 0.7 * self.lead + 0.3 * timings["flows"]
                with self.lock:
                    self.state.log(self.now(), "air_flows", added=len(to_add), deleted=len(to_delete),
                                   lead_ms=round(self.lead * 1000, 1),
                                   links=dict((self.state.clients[m].name, a)
                                              for m, a in links(self.state, self.model).items()))

    def tick_forever(self, stop):
        while not stop.wait(TICK):
            self.sync()


def serve(radio, path):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                try:
                    reply = radio.request(json.loads(line))
                except ValueError as exc:
                    reply = {"ok": False, "error": "bad JSON: %s" % exc}
                self.wfile.write((json.dumps(reply) + "\n").encode())
                self.wfile.flush()

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    if os.path.exists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return Server(path, Handler)


def ask(path, request, timeout=None):
    """A client's side of serve(): one request to the radio at `path`, one JSON line each way -> the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        handle = sock.makefile("rwb")
        handle.write((json.dumps(request) + "\n").encode())
        handle.flush()
        return json.loads(handle.readline())


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.radio", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--inventory-json", required=True, help="ansible-inventory --list output")
    parser.add_argument("--socket", default=DEFAULT_SOCKET)
    parser.add_argument("--air", default=DEFAULT_AIR, help="br-air OpenFlow target, or 'none' (no OVS)")
    parser.add_argument("--openflow-version", default="1.3", choices=sorted(openflow.PROTOCOLS))
    parser.add_argument("--hold", default="auto", choices=("auto", "off"),
                        help="hold a switching client's frames with tc in the lab's namespaces (auto: when they exist)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s emulated-radio %(message)s")
    with open(args.inventory_json) as handle:
        inventory = json.load(handle)
    state, model = state_from_inventory(inventory)
    devices = {} if args.air == "none" or args.hold == "off" else dict(
        (mac, found) for mac, found in hold_devices(inventory).items()
        if all(os.path.exists("/run/netns/" + netns) for netns, dummy in found))
    if not devices:
        model.hold_during_switch = False   # nowhere to hold frames: a switch drops them
    air = AirSwitch(None if args.air == "none" else args.air, args.openflow_version, devices)
    air.reset()
    air.connect_wire()
    air.set_holds(sorted(devices), False)   # every client's queues open, whatever a previous radio left
    radio = Radio(state, model, air)
    server = serve(radio, args.socket)
    stop = threading.Event()
    threading.Thread(target=radio.tick_forever, args=(stop,), daemon=True).start()
    agents = real_agents(inventory)
    if agents:
        hostvars = inventory["_meta"]["hostvars"]
        cidr = next(hv["lab"] for hv in hostvars.values() if "lab" in hv)["control"]["cidr"]
        listen = (str(next(ipaddress.ip_network(cidr).hosts())), real_agent.FRAMES_PORT)
        RealAgents(radio, agents, listen).start(stop)
        LOG.info("REAL agents (Click + OdinAgent) on %s: vAP tables read over their ControlSockets, CSA beacons "
                 "received on %s:%d", ", ".join(sorted(agents)), listen[0], listen[1])
    signal.signal(signal.SIGTERM, _exit_on_signal)  # labctl stops us with SIGTERM: still remove the socket
    LOG.info("EMULATED radio: %d APs, %d clients, socket %s, air %s, model %s",
             len(state.aps), len(state.clients), args.socket, args.air, model)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        if os.path.exists(args.socket):
            os.unlink(args.socket)


if __name__ == "__main__":
    main()
