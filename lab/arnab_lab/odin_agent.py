"""Emulated Odin agent (OdinAgent behind a Click ControlSocket), for the emulated lab only.

    python -m arnab_lab.odin_agent --config /etc/odin/agent.cli --bind 10.77.0.11 \
        [--radio /run/arnab-lab/radio.sock] [--name ap1]

It is NOT Click: it serves the real ControlSocket protocol (banner, READ/WRITE/..., DATA framing, status
codes) on the TCP port of the configuration's ControlSocket element, with the OdinAgent handlers of element
`odinagent`; it sends `ping` every PING_INTERVAL and probe/publish/association to the master address of
the configuration's UDP Socket element. Radio facts (RSSI, which clients are in range, CSA, vAP
changes, channel) come from the emulated radio (arnab_lab.radio) over its JSON-lines Unix socket.
"""
import argparse
import json
import logging
import socket
import socketserver
import sys
import threading
import time

from arnab_lab import collection_utils

odin = collection_utils.load("odin")

BANNER = "Click::ControlSocket/1.3"
VERSION = "2.0.1 (emulated: arnab_lab.odin_agent, not Click)"
POLL_INTERVAL = 0.5           # seconds between radio polls (stats, subscriptions, probes)
PROBE_REPEAT = 2.0            # seconds between probes of one unserved client
LOG = logging.getLogger("emulated-odin-agent")


class HandlerError(Exception):
    """A handler refused its arguments: ControlSocket answers 520 with this text."""


# -- the radio link ---------------------------------------------------------------------------------

class RadioLink:
    """Requests to the emulated radio; without a radio every answer is 'nothing heard'."""

    def __init__(self, path):
        self.path = path
        self._sock = None
        self._file = None
        self._lock = threading.Lock()

    def request(self, op, **fields):
        if not self.path:
            return None
        with self._lock:
            for _attempt in (1, 2):  # one reconnect: the radio may have restarted
                try:
                    if self._sock is None:
                        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        self._sock.settimeout(2.0)
                        self._sock.connect(self.path)
                        self._file = self._sock.makefile("rwb")
                    self._file.write((json.dumps(dict(fields, op=op)) + "\n").encode())
                    self._file.flush()
                    line = self._file.readline()
                    if not line:
                        raise OSError("radio closed the connection")
                    reply = json.loads(line)
                    if not reply.get("ok", False):
                        LOG.warning("radio refused %s: %s", op, reply.get("error"))
                    return reply
                except (OSError, ValueError) as exc:
                    LOG.debug("radio %s: %s", self.path, exc)
                    self._close()
            return None

    def _close(self):
        try:
            if self._sock:
                self._sock.close()
        finally:
            self._sock = self._file = None


# -- the agent ---------------------------------------------------------------------------------------

class Agent:
    """OdinAgent state and handlers. Handlers take the argument text and return text (READ) or None."""

    def __init__(self, conf, config_text="", radio=None, name=None):
        self.conf = conf
        self.config_text = config_text
        self.name = name or conf["agent_ip"]
        self.radio = radio or RadioLink(None)
        self.lock = threading.RLock()
        self.vaps = {}
        self.channel = conf["channel"]
        self.interval = conf["default_beacon_interval"]
        self.debug = conf["odin_debug"]
        self.txpower = conf["tx_power"]
        self.report_mean = int(POLL_INTERVAL * 1000)
        self.signal_offset = 0
        self.subscriptions = []
        self.scanning_flags = [0, 0, 0]
        self.scan_request = None      # (sta_mac, channel) of the last WRITE scan_client
        self.scan_aps_channel = None
        self.rx_stats, self.tx_stats = {}, {}
        self.rssi_override = {}
        self.associated = set()
        self.last_probe = {}
        self.send_to_master = lambda text: None
        self.read_handlers = {
            "table": self.read_table, "channel": lambda a: str(self.channel),
            "interval": lambda a: str(self.interval), "rxstats": lambda a: self._read_stats(self.rx_stats),
            "txstats": lambda a: self._read_stats(self.tx_stats),
            "subscriptions": lambda a: odin.format_subscriptions(self.subscriptions),
            "debug": lambda a: str(self.debug), "report_mean": lambda a: str(self.report_mean),
            "scan_client": self.read_scan_client, "scan_APs": self.read_scan_aps,
            "scanning_flags": lambda a: " ".join(str(f) for f in self.scanning_flags),
            "txpower": lambda a: str(self.txpower), "sta_rssi": self.read_sta_rssi,
            "emulated": lambda a: "true: arnab_lab.odin_agent emulates OdinAgent; radio is arnab_lab.radio\n",
        }
        self.write_handlers = {
            "add_vap": self.write_add_vap, "set_vap": self.write_set_vap, "remove_vap": self.write_remove_vap,
            "channel": self.write_channel, "interval": self._int_setter("interval"),
            "subscriptions": self.write_subscriptions, "debug": self._int_setter("debug"),
            "send_probe_response": self._logged("send_probe_response"),
            "testing_send_probe_request": self._logged("testing_send_probe_request"),
            "handler_update_signal_strength": self.write_update_signal_strength,
            "signal_strength_offset": self._int_setter("signal_offset"),
            "channel_switch_announcement": self.write_csa, "scan_client": self.write_scan_client,
            "scan_APs": self.write_scan_aps, "send_measurement_beacon": self._logged("send_measurement_beacon"),
            "scanning_flags": self.write_scanning_flags,
        }

    # READ handlers
    def read_table(self, _args):
        with self.lock:
            return odin.format_table(self.vaps)

    def _read_stats(self, stats):
        with self.lock:  # a read resets the counters, as on the real agent
            text = "".join(odin.format_station_stats(mac, s) + "\n" for mac, s in sorted(stats.items()))
            stats.clear()
            return text

    def read_scan_client(self, _args):
        if not self.scan_request:
            return "0\n"
        sta_mac, channel = self.scan_request
        reply = self.radio.request("rssi", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac, channel=channel) or {}
        rssi = reply.get("rssi")
        with self.lock:
            self.scanning_flags[0] = 0
        return "%d\n" % (0 if rssi is None else round(rssi) + 256)

    def read_scan_aps(self, _args):
        channel = self.scan_aps_channel or self.channel
        reply = self.radio.request("scan_aps", ap_mac=self.conf["ap_mac"], channel=channel) or {}
        return "".join("%s %d\n" % (ap["ap_mac"], round(ap["rssi"]) + 256) for ap in reply.get("aps", []))

    def read_sta_rssi(self, _args):
        with self.lock:
            macs = sorted(self.vaps)
        lines = []
        for mac in macs:
            rssi = self._rssi_of(mac)
            if rssi is not None:
                lines.append("%s %d\n" % (mac, round(rssi)))
        return "".join(lines)

    # WRITE handlers
    def write_add_vap(self, args):
        vap = self._parse_vap(args)
        with self.lock:
            self.vaps[vap.sta_mac] = vap
        self.radio.request("vap_add", ap_mac=self.conf["ap_mac"], sta_mac=vap.sta_mac, bssid=vap.bssid)
        LOG.info("add_vap %s", vap.to_line())

    def write_set_vap(self, args):
        vap = self._parse_vap(args)
        with self.lock:
            if vap.sta_mac not in self.vaps:
                raise HandlerError("no vAP for %s" % vap.sta_mac)
            self.vaps[vap.sta_mac] = vap
        LOG.info("set_vap %s", vap.to_line())

    def write_remove_vap(self, args):
        sta_mac = self._mac(args.split()[0] if args.split() else "")
        with self.lock:
            if sta_mac not in self.vaps:
                raise HandlerError("no vAP for %s" % sta_mac)
            del self.vaps[sta_mac]
            self.associated.discard(sta_mac)
        self.radio.request("vap_remove", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac)
        LOG.info("remove_vap %s", sta_mac)

    def write_channel(self, args):
        channel = self._value(odin.validate_channel, args)
        with self.lock:
            self.channel = channel
        self.radio.request("set_channel", ap_mac=self.conf["ap_mac"], channel=channel)
        LOG.info("channel %d", channel)

    def write_subscriptions(self, args):
        subscriptions = self._value(odin.parse_subscriptions, args)
        with self.lock:
            self.subscriptions = subscriptions
        LOG.info("subscriptions %s", odin.format_subscriptions(subscriptions))

    def write_update_signal_strength(self, args):
        words = args.split()
        if len(words) != 2:
            raise HandlerError("expected '<sta_mac> <rssi>'")
        with self.lock:
            self.rssi_override[self._mac(words[0])] = self._value(int, words[1])

    def write_csa(self, args):
        words = args.split()
        if len(words) < 4:
            raise HandlerError("expected '<sta_mac> <vap_bssid> <new_channel> <ssid>...'")
        sta_mac, bssid = self._mac(words[0]), self._mac(words[1])
        channel = self._value(odin.validate_channel, words[2])
        reply = self.radio.request("csa", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac, bssid=bssid,
                                   channel=channel, count=odin.CSA_COUNT, beacon_interval_ms=self.interval)
        LOG.info("channel_switch_announcement %s -> channel %d (%d beacons of %d ms): radio %s",
                 sta_mac, channel, odin.CSA_COUNT, self.interval, reply)

    def write_scan_client(self, args):
        words = args.split()
        if len(words) != 2:
            raise HandlerError("expected '<sta_mac> <channel>'")
        with self.lock:
            self.scan_request = (self._mac(words[0]), self._value(odin.validate_channel, words[1]))
            self.scanning_flags[0] = 1

    def write_scan_aps(self, args):
        words = args.split()
        with self.lock:
            self.scan_aps_channel = self._value(odin.validate_channel, words[-1]) if words else None
            self.scanning_flags[1] = 1

    def write_scanning_flags(self, args):
        words = args.split()
        if len(words) != 3:
            raise HandlerError("expected '<client_scanning> <ap_scanning> <measurement_beacon>'")
        with self.lock:
            self.scanning_flags = [self._value(int, w) for w in words]

    def _int_setter(self, attribute):
        def setter(args):
            value = self._value(int, args.strip())
            with self.lock:
                setattr(self, attribute, value)
        return setter

    def _logged(self, name):
        def handler(args):
            LOG.info("%s %s (emulated: nothing sent on air)", name, args.strip())
        return handler

    @staticmethod
    def _parse_vap(args):
        try:
            return odin.Vap.parse(args)
        except odin.OdinValueError as exc:
            raise HandlerError(str(exc))

    @staticmethod
    def _mac(text):
        try:
            return odin.normalize_mac(text)
        except odin.OdinValueError as exc:
            raise HandlerError(str(exc))

    @staticmethod
    def _value(convert, text):
        try:
            return convert(text.strip() if isinstance(text, str) else text)
        except (ValueError, TypeError) as exc:
            raise HandlerError(str(exc))

    def _rssi_of(self, sta_mac):
        if sta_mac in self.rssi_override:
            return self.rssi_override[sta_mac]
        reply = self.radio.request("rssi", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac, channel=self.channel) or {}
        rssi = reply.get("rssi")
        return None if rssi is None else rssi + self.signal_offset

    # -- periodic work: what the real agent does per received frame, here per radio poll -------------

    def poll_once(self, now=None):
        """Update per-station statistics, publish subscription matches, send probes and associations."""
        now = time.time() if now is None else now
        reply = self.radio.request("poll", ap_mac=self.conf["ap_mac"])
        heard = (reply or {}).get("clients", [])
        with self.lock:
            vaps = dict(self.vaps)
            subscriptions = list(self.subscriptions)
        messages = []
        for client in heard:
            mac, rssi = client["sta_mac"], client["rssi"] + self.signal_offset
            rssi = self.rssi_override.get(mac, rssi)
            if mac in vaps:
                self._count(mac, rssi, now)
                if client.get("linked") and mac not in self.associated:
                    answer = self.radio.request("associate", ap_mac=self.conf["ap_mac"], sta_mac=mac) or {}
                    self.associated.add(mac)
                    if answer.get("newly"):
                        messages.append("association %s" % mac)
                matches = [(s.id, rssi) for s in subscriptions if s.stat == "signal" and s.matches(mac, rssi)]
                if matches:
                    messages.append(odin.format_publish(mac, matches))
            elif not client.get("served") and now - self.last_probe.get(mac, 0) >= PROBE_REPEAT:
                self.last_probe[mac] = now
                messages.append("probe %s %s" % (mac, client.get("ssid") or ""))
        for text in messages:
            self.send_to_master(text.rstrip() + "\n")
        return messages

    def _count(self, mac, rssi, now):
        with self.lock:
            stats = self.rx_stats.setdefault(mac, {"packets": 0, "avg_rate": self.conf["tx_rate"] * 500,
                                                   "avg_signal": rssi, "avg_len_pkt": 100, "air_time": 0,
                                                   "first_received": "%.3f" % now, "equipment": "emulated"})
            stats["packets"] += 1
            stats["avg_signal"] = round(stats["avg_signal"] + (rssi - stats["avg_signal"]) / stats["packets"], 1)
            stats["air_time"] = round(stats["packets"] * 0.0002, 4)
            stats["last_received"] = "%.3f" % now


# -- the ControlSocket server -------------------------------------------------------------------------

class ControlSession:
    """One connection: parse command lines, answer with status lines and DATA, as Click's ControlSocket."""

    def __init__(self, agent, rfile, wfile):
        self.agent, self.rfile, self.wfile = agent, rfile, wfile

    def send(self, text):
        self.wfile.write(text.encode("utf-8") if isinstance(text, str) else text)
        self.wfile.flush()

    def status(self, code, *lines):
        out = "".join("%d-%s\r\n" % (code, line) for line in lines[:-1]) + "%d %s\r\n" % (code, lines[-1])
        self.send(out)

    def run(self):
        self.send(BANNER + "\r\n")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").strip("\r\n")
            if not self.dispatch(line):
                return

    def dispatch(self, line):
        words = line.split()
        if not words:
            return True
        command = words[0].upper()
        rest = line.split(None, 2)[2] if len(words) > 2 else ""
        if command in ("READ", "GET", "WRITE", "SET"):
            if len(words) < 2:
                self.status(500, "Wrong number of arguments")
            elif command in ("READ", "GET"):
                self.read(words[1], rest)
            else:
                self.write(words[1], rest)
        elif command in ("READDATA", "WRITEDATA", "SETDATA"):
            if len(words) != 3 or not words[2].isdigit():
                self.status(500, "Wrong number of arguments")
                return True
            data = self.rfile.read(int(words[2]))
            if len(data) < int(words[2]):
                self.status(500, "Not enough data")
                return False
            data = data.decode("utf-8", "replace")
            (self.read if command == "READDATA" else self.write)(words[1], data)
        elif command in ("CHECKREAD", "CHECKWRITE"):
            if len(words) != 2:
                self.status(500, "Wrong number of arguments")
            else:
                self.check(words[1], command == "CHECKWRITE")
        elif command == "LLRPC":
            self.status(501, "Cannot call LLRPC '%s' remotely" % (words[1] if len(words) > 1 else ""))
        elif command in ("QUIT", "CLOSE"):
            self.status(200, "Goodbye!")
            return False
        else:
            self.status(501, "Command '%s' unimplemented" % command)
        return True

    def find(self, name, write):
        """-> (handler function, None) or (None, (code, message)) as Click's parse_handler."""
        element, dot, hname = name.rpartition(".")
        if not dot:  # global handlers
            handlers = {"version": lambda a: VERSION + "\n", "config": lambda a: self.agent.config_text,
                        "list": lambda a: "1\nodinagent\n", "classes": lambda a: "OdinAgent\nControlSocket\n"}
            found = handlers.get(hname) if not write else None
            if found:
                return found, None
            if hname in handlers:
                return None, (530, "Handler '%s' read-only" % name)
            return None, (511, "No handler named '%s'" % name)
        if element != odin.ELEMENT:
            return None, (510, "No element named '%s'" % element)
        table = self.agent.write_handlers if write else self.agent.read_handlers
        other = self.agent.read_handlers if write else self.agent.write_handlers
        if hname in table:
            return table[hname], None
        if hname in other:
            return None, (530, "Handler '%s' %s" % (name, "read-only" if write else "write-only"))
        return None, (511, "No handler named '%s'" % name)

    def read(self, name, args):
        handler, error = self.find(name, write=False)
        if error:
            return self.status(*error)
        try:
            data = handler(args).encode("utf-8")
        except HandlerError as exc:
            return self.status(520, "Read handler '%s' error:" % name, str(exc))
        self.status(200, "Read handler '%s' OK" % name)
        self.send(b"DATA %d\r\n" % len(data) + data)

    def write(self, name, args):
        handler, error = self.find(name, write=True)
        if error:
            return self.status(*error)
        try:
            handler(args)
        except HandlerError as exc:
            return self.status(520, "Write handler '%s' error:" % name, str(exc))
        self.status(200, "Write handler '%s' OK" % name)

    def check(self, name, write):
        _handler, error = self.find(name, write)
        if error:
            return self.status(*error)
        self.status(200, "%s handler '%s' OK" % ("Write" if write else "Read", name))


class _ControlServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def make_control_server(agent, bind, port):
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                ControlSession(agent, self.rfile, self.wfile).run()
            except (ConnectionError, OSError):
                pass  # a client that vanished mid-reply is its own problem
    return _ControlServer((bind, port), Handler)


# -- running ----------------------------------------------------------------------------------------------

class MasterChannel:
    """UDP from the agent's own address to the master (the master registers agents by source IP)."""

    def __init__(self, bind, master_ip, master_port):
        self.address = (master_ip, master_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))

    def send(self, text):
        try:
            self.sock.sendto(text.encode("utf-8"), self.address)
        except OSError as exc:
            LOG.debug("master %s:%d unreachable: %s", self.address[0], self.address[1], exc)
        if not text.startswith("ping"):
            LOG.info("-> master %s", text.strip())


def start(config_path, bind, radio_path=None, name=None, port=None):
    """Start the agent's threads; returns (agent, control server). Used by main() and the tests."""
    with open(config_path) as handle:
        text = handle.read()
    conf = odin.parse_agent_config(text)
    radio = RadioLink(radio_path)
    agent = Agent(conf, text, radio, name)
    master = MasterChannel(bind, conf["master_ip"], conf["master_port"])
    agent.send_to_master = master.send
    server = make_control_server(agent, bind, conf["control_port"] if port is None else port)
    stop = threading.Event()
    server.stop_event = stop

    def pinger():
        while not stop.wait(conf["ping_interval"]):
            master.send("ping\n")

    def poller():
        while not stop.wait(POLL_INTERVAL):
            try:
                agent.poll_once()
            except Exception as exc:  # keep serving the ControlSocket whatever the radio says
                LOG.warning("poll failed: %s", exc)

    radio.request("hello", ap_mac=conf["ap_mac"], channel=conf["channel"], agent_ip=conf["agent_ip"])
    for target in (server.serve_forever, pinger, poller):
        threading.Thread(target=target, daemon=True).start()
    master.send("ping\n")
    LOG.info("EMULATED Odin agent %s (not Click): ControlSocket %s:%d, master %s:%d, channel %d, radio %s",
             agent.name, bind, server.server_address[1], conf["master_ip"], conf["master_port"],
             conf["channel"], radio_path or "none")
    return agent, server


def stop(server):
    server.stop_event.set()
    server.shutdown()
    server.server_close()


def check(config_path):
    """`click -q` of the emulation: the agent's parameters must read back from the configuration."""
    try:
        if config_path == "-":
            text = sys.stdin.read()
        else:
            with open(config_path) as handle:
                text = handle.read()
        odin.parse_agent_config(text)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print("%s: emulated Odin agent cannot use this configuration: %s" % (config_path, exc), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.odin_agent", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="agent Click configuration (.cli) rendered by odin.py")
    parser.add_argument("--bind", help="IP address to serve the ControlSocket on and ping from (required to run)")
    parser.add_argument("--radio", default=None, help="emulated radio socket (e.g. /run/arnab-lab/radio.sock)")
    parser.add_argument("--name", default=None, help="AP name for logs")
    parser.add_argument("--port", type=int, default=None, help="override the ControlSocket port")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--check", action="store_true",
                        help="only read the configuration ('-' = stdin) as the agent would, like `click -q`")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.config)
    if not args.bind:
        parser.error("--bind is required to run the agent")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s emulated-odin-agent[" + (args.name or args.bind) + "] %(message)s")
    _agent, server = start(args.config, args.bind, args.radio, args.name, args.port)
    try:
        server.stop_event.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(server)


if __name__ == "__main__":
    raise SystemExit(main())
