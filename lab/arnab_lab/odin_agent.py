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
import math
import re
import socket
import socketserver
import sys
import threading
import time

from arnab_lab import collection_utils

odin = collection_utils.load("odin")

BANNER = "Click::ControlSocket/1.3"
VERSION = "2.0.1 (emulated: arnab_lab.odin_agent, not Click)"
# Seconds between radio polls (stats, subscription publishes, probes). A real OdinAgent publishes per received frame,
# at most once per THRESHOLD_PUBLISH_SENT (1 s in the Wi-5 source, a compile-time constant whose own comment gives
# 0.1 s as its example); the OCS's decision latency is bounded below by this period (docs/ocs.md).
POLL_INTERVAL = 0.1
PROBE_REPEAT = 2.0            # seconds between probes of one unserved client
LOG = logging.getLogger("emulated-odin-agent")


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


class HandlerError(Exception):
    """A handler failed: ControlSocket answers 520 with these lines (Click's own words), or one line without."""

    def __init__(self, *messages):
        super(HandlerError, self).__init__("; ".join(messages))
        self.messages = list(messages)


# -- Click's argument parsing, as OdinAgent's handlers use it (Args(...).push_back_words(str).read_mp(...)) -----

class _Bad(Exception):
    """One argument did not parse; the text is Click's (after the KEYWORD: prefix)."""


def click_words(text):
    """cp_spacevec: the words of a handler argument, split at ASCII white space."""
    return text.split()


def parse_ether(word):
    """EtherAddressArg: six groups of 1-2 hex digits separated by one of ':' or '-' throughout."""
    data, d, p, sep = [0] * 6, 0, 0, None
    for ch in word:
        if ch in "0123456789abcdefABCDEF":
            if p == 2 or d == 6:
                raise _Bad("parse error")
            data[d] = (data[d] << 4 if p else 0) + int(ch, 16)
            p += 1
            continue
        if sep is None and ch in "-:":
            sep = ch
        if ch == sep and p in (1, 2) and d < 5:
            p, d = 0, d + 1
            continue
        raise _Bad("parse error")
    if p == 0 or d != 5:
        raise _Bad("parse error")
    return ":".join("%02x" % b for b in data)


def parse_ip(word):
    """IPAddressArg: a dotted quad, each part 0-255."""
    parts = word.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts):
        raise _Bad("parse error")
    return ".".join(str(int(p)) for p in parts)


_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|0[bB][01](?:_?[01])*|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)")


def parse_int(word, bits=32):
    """IntArg (base 0: 0x.. hex, 0b.. binary, 0.. octal) of a signed integer of `bits` bits."""
    if not _INT.fullmatch(word):
        raise _Bad("invalid number")
    body = word.lstrip("+-").replace("_", "")
    base = 16 if body[:2] in ("0x", "0X") else 2 if body[:2] in ("0b", "0B") else 8 if body[:1] == "0" else 10
    value = int(body[2:] if base in (16, 2) else body or "0", base) * (-1 if word.startswith("-") else 1)
    bound = (1 << (bits - 1)) - 1
    if value > bound:
        raise _Bad("out of range, bound %d" % bound)
    if value < -bound - 1:
        raise _Bad("out of range, bound %d" % (-bound - 1))
    return value


_DOUBLE = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")


def parse_double(word):
    if not _DOUBLE.fullmatch(word):
        raise _Bad("parse error")
    return float(word)


def parse_bool(word):
    """BoolArg."""
    if word in ("0", "n", "f", "false", "no"):
        return False
    if word in ("1", "y", "t", "true", "yes"):
        return True
    raise _Bad("parse error")


class ClickArgs:
    """Args(agent, errh).push_back_words(text): positional read_mp(), consume() and complete() as Click words
    their errors (``KEYWORD: required argument missing``, ``KEYWORD: parse error``, ``too many arguments``)."""

    def __init__(self, text):
        self.words, self.pos, self.errors = click_words(text), 0, []

    def read_mp(self, keyword, parse=str):
        if self.pos >= len(self.words):
            self.errors.append("%s: required argument missing" % keyword)
            return None
        word = self.words[self.pos]
        self.pos += 1
        try:
            return parse(word)
        except _Bad as exc:
            self.errors.append("%s: %s" % (keyword, exc))
            return None

    def empty(self):
        return self.pos >= len(self.words)

    def consume(self):
        if self.errors:
            raise HandlerError(*self.errors)

    def complete(self):
        if not self.empty():
            self.errors.append("too many arguments")
        self.consume()


def _g(value):
    """StringAccum << double (%.12g)."""
    text = "%.12g" % value
    return {"nan": "-nan" if math.copysign(1, value) < 0 else "nan", "inf": "inf", "-inf": "-inf"}.get(text, text)


def click_timestamp(ns):
    """Timestamp's unparse: seconds.nanoseconds, or microseconds when the nanoseconds are whole ones."""
    sec, nsec = divmod(int(ns), 1000000000)
    return "%d.%06d" % (sec, nsec // 1000) if nsec % 1000 == 0 else "%d.%09d" % (sec, nsec)


def _frequency(channel):
    """OdinAgent::convert_channel_to_frequency."""
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    if channel == 14:
        return 2484
    if channel >= 36:
        return 5000 + 5 * channel
    return 0


# -- the agent ---------------------------------------------------------------------------------------

class Agent:
    """OdinAgent state and handlers, as real OdinAgent (Wi-5 b7791948) behaves. A handler takes the argument
    text and returns the data (READ) or None (WRITE); it raises HandlerError where OdinAgent returns -1."""

    def __init__(self, conf, config_text="", radio=None, name=None):
        self.conf = conf
        self.config_text = config_text
        self.name = name or conf["agent_ip"]
        self.radio = radio or RadioLink(None)
        self.lock = threading.RLock()
        self.vaps = {}                 # lower-case sta_mac -> odin.Vap, in insertion order
        self.channel = conf["channel"]
        self.interval = conf["default_beacon_interval"]
        self.debug = conf["odin_debug"]
        self.txpower = conf["tx_power"]
        self.mean, self.num_mean, self.m2 = 0.0, 0, 0.0   # report_mean: probe request -> beacon delays
        self.mean_table = {}              # sta_mac -> when testing_send_probe_request named it
        self.signal_offset = 0
        self.subscriptions = []
        self.scanning_flags = [0, 0, 0]   # client scanning, AP scanning, measurement beacon
        self.scan_request = None          # (sta_mac, channel) of the last WRITE scan_client
        self.scan_channel = None
        self.scanning_ssid = None         # SSID of the last WRITE scan_APs ('*' = stations)
        self.measurement_ssid = None
        self.scanned_stations = {}        # filled by an AP scan for '*': sta_mac -> dBm (sta_rssi)
        self.rx_stats, self.tx_stats = {}, {}
        self.rssi_override = {}
        self.associated = set()
        self.last_probe = {}
        self.send_to_master = lambda text: None
        self.read_handlers = {
            "table": self.read_table, "channel": lambda: "%d\n" % self.channel,
            "interval": lambda: "%d\n" % self.interval, "rxstats": lambda: self._read_stats(self.rx_stats, refresh=True),
            "txstats": lambda: self._read_stats(self.tx_stats), "subscriptions": self.read_subscriptions,
            "debug": lambda: "%d\n" % self.debug, "report_mean": self.read_report_mean,
            "scan_client": self.read_scan_client, "scan_APs": self.read_scan_aps,
            "scanning_flags": lambda: "%d %d %d\n" % tuple(self.scanning_flags),
            "txpower": lambda: "%d\n" % self.txpower, "sta_rssi": self.read_sta_rssi,
        }
        self.write_handlers = {
            "add_vap": self.write_add_vap, "set_vap": self.write_set_vap, "remove_vap": self.write_remove_vap,
            "channel": self.write_channel, "interval": self.write_interval,
            "subscriptions": self.write_subscriptions, "debug": self.write_debug,
            "send_probe_response": self.write_probe_response,
            "testing_send_probe_request": self.write_probe_request,
            "handler_update_signal_strength": self.write_update_signal_strength,
            "signal_strength_offset": self.write_signal_strength_offset,
            "channel_switch_announcement": self.write_csa, "scan_client": self.write_scan_client,
            "scan_APs": self.write_scan_aps, "send_measurement_beacon": self.write_measurement_beacon,
            "scanning_flags": self.write_scanning_flags,
        }

    # READ handlers (each answers exactly what OdinAgent::read_handler prints)
    def read_table(self):
        with self.lock:
            return "".join("%s %s %s%s\n" % (v.sta_mac.upper(), v.sta_ip, v.bssid.upper(),
                                             "".join(" " + s for s in v.ssids)) for v in self.vaps.values())

    def read_subscriptions(self):
        with self.lock:
            return odin.format_subscription_lines(self.subscriptions)

    def read_report_mean(self):
        with self.lock:
            for sta_mac in [m for m in self.mean_table if m in self.vaps]:
                self._beacon_sent(sta_mac)   # the periodic beacon to each vAP's client has gone out since
            if self.num_mean == 1:
                variance = "-nan"            # 0.0 / 0 in C on this CPU
            else:
                variance = _g(self.m2 / (self.num_mean - 1))   # -0 for none
            return "%s %d %s\n" % (_g(self.mean), self.num_mean, variance)

    def _beacon_sent(self, sta_mac):
        """OdinAgent::send_beacon's bookkeeping: the delay since a probe request for this station, in its
        units (seconds * 1e9 + microseconds), into a running mean and variance."""
        with self.lock:
            started = self.mean_table.pop(sta_mac, None)
            if started is None:
                return
            elapsed = min(time.monotonic() - started, self.interval / 1000.0)
            new_val = int(elapsed) * 1000000000 + int(elapsed % 1 * 1000000)
            self.num_mean += 1
            delta = new_val - self.mean
            self.mean += delta / self.num_mean
            self.m2 += delta * (new_val - self.mean)

    def _read_stats(self, stats, refresh=False):
        if refresh:   # the real agent counts every frame as it arrives: count what the radio hears right now
            self._hear_vap_clients(time.time())
        with self.lock:  # a read resets the counters, as on the real agent
            text = "".join(odin.format_station_stats(mac.upper(), s) + "\n" for mac, s in stats.items())
            for mac, s in stats.items():
                stats[mac] = dict(self._fresh_stats(), first_received=s["last_received"],
                                  last_received=s["last_received"])
            return text

    @staticmethod
    def _fresh_stats():
        return {"packets": 0, "avg_rate": 0, "avg_signal": 0, "avg_len_pkt": 0, "air_time": 0,
                "first_received": click_timestamp(0), "last_received": click_timestamp(0), "equipment": ""}

    def read_scan_client(self):
        with self.lock:
            self.scanning_flags[0] = 0
            request = self.scan_request
        if not request:
            return "0\n"
        sta_mac, channel = request
        reply = self.radio.request("rssi", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac, channel=channel) or {}
        rssi = reply.get("rssi")
        return "%d\n" % (0 if rssi is None else round(rssi) + 256)

    def read_scan_aps(self):
        with self.lock:
            self.scanning_flags[1] = 0
            ssid, channel = self.scanning_ssid, self.scan_channel or self.channel
        if ssid is None:
            return ""
        if ssid == "*":
            self._collect_scanned_stations(channel)
            with self.lock:
                heard = [(mac, dict(self._fresh_stats(), avg_signal=rssi, packets=1, equipment="STA"))
                         for mac, rssi in self.scanned_stations.items()]
            return "".join(odin.format_station_stats(mac.upper(), stats) + "\n" for mac, stats in heard)
        reply = self.radio.request("scan_aps", ap_mac=self.conf["ap_mac"], channel=channel) or {}
        return "".join("%s avg_signal:%s\n" % (odin.vap_bssid(ap["ap_mac"]).upper(), _g(ap["rssi"]))
                       for ap in reply.get("aps", []))

    def read_sta_rssi(self):
        """Stations the AP scan ('*') heard; empty until such a scan has run. Reading ends the AP scan."""
        with self.lock:
            scanning = self.scanning_flags[1] and self.scanning_ssid == "*"
        if scanning:
            self._collect_scanned_stations(self.scan_channel or self.channel)
        with self.lock:
            self.scanning_flags[1] = 0
            scanned = list(self.scanned_stations.items())
        return "".join("%s %s\n" % (mac.upper(), _g(math.floor(rssi * 100 + 0.5) / 100)) for mac, rssi in scanned)

    def _collect_scanned_stations(self, channel):
        reply = self.radio.request("poll", ap_mac=self.conf["ap_mac"], channel=channel) or {}
        with self.lock:
            for client in reply.get("clients", []):
                self.scanned_stations[client["sta_mac"]] = client["rssi"] + self.signal_offset

    # WRITE handlers
    @staticmethod
    def _vap_args(text):
        args = ClickArgs(text)
        sta_mac = args.read_mp("STA_MAC", parse_ether)
        sta_ip = args.read_mp("STA_IP", parse_ip)
        bssid = args.read_mp("VAP_BSSID", parse_ether)
        args.consume()
        ssids = []
        while not args.empty():
            ssids.append(args.read_mp("VAP_SSID"))
        return odin.Vap(sta_mac, sta_ip, bssid, tuple(ssids))

    def write_add_vap(self, args):
        vap = self._vap_args(args)
        with self.lock:
            if vap.sta_mac in self.vaps:
                raise HandlerError()   # "already assigned a slot": -1 without a message
            self.vaps[vap.sta_mac] = vap
        self.radio.request("vap_add", ap_mac=self.conf["ap_mac"], sta_mac=vap.sta_mac, bssid=vap.bssid)
        LOG.info("add_vap %s", vap.to_line())

    def write_set_vap(self, args):
        vap = self._vap_args(args)
        with self.lock:
            if vap.sta_mac not in self.vaps:
                raise HandlerError()
            self.vaps[vap.sta_mac] = vap
        LOG.info("set_vap %s", vap.to_line())

    def write_remove_vap(self, args):
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        parsed.complete()
        with self.lock:
            if sta_mac not in self.vaps:
                raise HandlerError()
            del self.vaps[sta_mac]
            self.associated.discard(sta_mac)
        self.radio.request("vap_remove", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac)
        LOG.info("remove_vap %s", sta_mac)

    def write_channel(self, args):
        parsed = ClickArgs(args)
        channel = parsed.read_mp("CHANNEL", parse_int)
        parsed.complete()
        with self.lock:
            if channel == self.channel:
                return
            self.channel = channel
        self._hostapd_cli("wlan0", odin.CSA_COUNT, _frequency(channel))
        try:
            odin.validate_channel(channel)
            self.radio.request("set_channel", ap_mac=self.conf["ap_mac"], channel=channel)
        except odin.OdinValueError:
            LOG.warning("channel %d is not a Wi-Fi channel: the radio keeps its channel", channel)
        LOG.info("channel %d", channel)

    def write_interval(self, args):
        parsed = ClickArgs(args)
        interval = parsed.read_mp("INTERVAL", parse_int)
        parsed.complete()
        with self.lock:
            self.interval = interval

    def write_subscriptions(self, args):
        with self.lock:
            self.subscriptions = []      # OdinAgent clears them first, whatever follows
        parsed = ClickArgs(args)
        rows = parsed.read_mp("NUM_ROWS", parse_int)
        parsed.consume()
        for _row in range(max(rows, 0)):
            sub_id = parsed.read_mp("sub_id", lambda w: parse_int(w, 64))
            addr = parsed.read_mp("addr", parse_ether)
            stat = parsed.read_mp("stat")
            rel = parsed.read_mp("rel", parse_int)
            val = parsed.read_mp("val", parse_double)
            parsed.consume()
            with self.lock:
                self.subscriptions.append(odin.Subscription(sub_id, addr, stat, odin.relation_name(rel), val))
        parsed.complete()
        LOG.info("subscriptions %s", odin.format_subscriptions(self.subscriptions))

    def write_debug(self, args):
        try:
            debug = parse_bool(args)
        except _Bad:
            raise HandlerError()
        with self.lock:
            self.debug = int(debug)

    def write_probe_response(self, args):
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        parsed.read_mp("VAP_BSSID", parse_ether)
        parsed.consume()
        ssids = []
        while not parsed.empty():
            ssids.append(parsed.read_mp("VAP_SSID"))
        for _ssid in ssids:
            self._beacon_sent(sta_mac)
        LOG.info("send_probe_response %s (emulated: nothing sent on air)", args.strip())

    def write_probe_request(self, args):
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        parsed.consume()
        ssid = parsed.read_mp("SSID") if not parsed.empty() else ""
        parsed.consume()
        with self.lock:
            self.mean_table[sta_mac] = time.monotonic()
        self.send_to_master("probe %s %s\n" % (sta_mac.upper(), ssid))

    def write_update_signal_strength(self, args):
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        value = parsed.read_mp("VALUE", parse_int)
        parsed.consume()
        with self.lock:
            self.rssi_override[sta_mac] = value
            stats = self.rx_stats.setdefault(sta_mac, self._fresh_stats())
            stats["packets"] += 1
            stats["last_received"] = click_timestamp(time.time_ns())

    def write_signal_strength_offset(self, args):
        parsed = ClickArgs(args)
        value = parsed.read_mp("VALUE", parse_int)
        parsed.consume()
        with self.lock:
            self.signal_offset = value

    def write_csa(self, args):
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        bssid = parsed.read_mp("VAP_BSSID", parse_ether)
        channel = parsed.read_mp("CHANNEL", parse_int)
        parsed.consume()
        ssids = []
        while not parsed.empty():
            ssids.append(parsed.read_mp("VAP_SSID"))
        for _beacon in range(odin.CSA_COUNT + 1):
            for _ssid in ssids:
                self._beacon_sent(sta_mac)
        reply = self.radio.request("csa", ap_mac=self.conf["ap_mac"], sta_mac=sta_mac, bssid=bssid,
                                   channel=channel, count=odin.CSA_COUNT, beacon_interval_ms=self.interval)
        LOG.info("channel_switch_announcement %s -> channel %d (%d beacons of %d ms): radio %s",
                 sta_mac, channel, odin.CSA_COUNT, self.interval, reply)

    def _scanning(self):
        with self.lock:
            return any(self.scanning_flags)

    def write_scan_client(self, args):
        if self._scanning():
            return   # OdinAgent ignores it (and its arguments) while any scan is on
        parsed = ClickArgs(args)
        sta_mac = parsed.read_mp("STA_MAC", parse_ether)
        channel = parsed.read_mp("CHANNEL", parse_int)
        parsed.complete()
        self._retune_scanner(channel)
        with self.lock:
            self.scan_request = (sta_mac, channel)
            self.scanning_flags[0] = 1

    def write_scan_aps(self, args):
        if self._scanning():
            return
        parsed = ClickArgs(args)
        ssid = parsed.read_mp("SSID")
        channel = parsed.read_mp("CHANNEL", parse_int)
        parsed.complete()
        self._retune_scanner(channel)
        with self.lock:
            self.scanning_flags[1] = 1
            self.scanning_ssid = ssid
            if ssid == "*":
                self.scanned_stations = {}

    def write_measurement_beacon(self, args):
        if self._scanning():
            return
        parsed = ClickArgs(args)
        ssid = parsed.read_mp("SSID")
        channel = parsed.read_mp("CHANNEL", parse_int)
        parsed.complete()
        self._retune_scanner(channel)
        with self.lock:
            self.scanning_flags[2] = 1
            self.measurement_ssid = ssid
        LOG.info("send_measurement_beacon %s on channel %d (emulated: nothing sent on air)", ssid, channel)

    def write_scanning_flags(self, args):
        parsed = ClickArgs(args)
        keys = ("ClientScanningFlag", "APScanningFlag", "measurementBeaconFlag")
        flags = [parsed.read_mp(k, parse_int) for k in keys]
        parsed.complete()
        with self.lock:
            self.scanning_flags = flags

    def _retune_scanner(self, channel):
        with self.lock:
            if self.scan_channel == channel:
                return
            self.scan_channel = channel
        self._hostapd_cli("wlan1", 0, _frequency(channel))

    @staticmethod
    def _hostapd_cli(interface, count, frequency):
        LOG.info("hostapd_cli -i %s chan_switch %d %d (emulated: not run)", interface, count, frequency)

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

    def _hear_vap_clients(self, now):
        reply = self.radio.request("poll", ap_mac=self.conf["ap_mac"])
        with self.lock:
            vaps = set(self.vaps)
        for client in (reply or {}).get("clients", []):
            if client["sta_mac"] in vaps:
                rssi = self.rssi_override.get(client["sta_mac"], client["rssi"] + self.signal_offset)
                self._count(client["sta_mac"], rssi, now)

    def _count(self, mac, rssi, now):
        with self.lock:
            stats = self.rx_stats.setdefault(mac, dict(self._fresh_stats(),
                                                       first_received=click_timestamp(now * 1e9)))
            stats["packets"] += 1
            stats["avg_rate"] = self.conf["tx_rate"] * 500
            stats["avg_len_pkt"] = 100
            stats["equipment"] = "STA"
            stats["avg_signal"] = round(stats["avg_signal"] + (rssi - stats["avg_signal"]) / stats["packets"], 1)
            stats["air_time"] = round(stats["packets"] * 0.0002, 4)
            stats["last_received"] = click_timestamp(now * 1e9)


# -- the ControlSocket server: Click's ControlSocket element, byte for byte ---------------------------------

HELP_LINES = (
    "Commands supported:",
    "READ handler [arg...]   call read handler, return DATA",
    "READDATA handler len    call read handler with len data bytes, return DATA",
    "READUNTIL handler term  call read handler, take data until term, return DATA",
    "WRITE handler [arg...]  call write handler",
    "WRITEDATA handler len   call write handler, pass len data bytes",
    "WRITEUNTIL handler term call write handler, take data until term",
    "CHECKREAD handler       check if read handler is valid",
    "CHECKWRITE handler      check if write handler is valid",
    "LLRPC elt#number [len]  call LLRPC, pass len data bytes, return DATA",
    "QUIT                    close connection",
)
CLICK_VERSION = "2.1"
_WORD = re.compile(rb"[^ \t\n\r\x0b\x0c]+")   # C isspace()


def printable(data):
    """String::printable(): control characters as ^X, bytes above 126 as \\ooo."""
    out = []
    for byte in data:
        if 32 <= byte < 127:
            out.append(chr(byte))
        elif byte < 32:
            out.append("^" + chr(byte + 64))
        else:
            out.append("\\%03o" % byte)
    return "".join(out)


class _More(Exception):
    """The command needs bytes that have not arrived yet (and the client may still send them)."""


class ControlSession:
    """One connection, as Click's ControlSocket serves it: lines end at CR, LF or CRLF; one command at a time;
    the client's half-close runs what is left (a last line without its end too) before the server closes."""

    def __init__(self, agent, sock):
        self.agent, self.sock = agent, sock
        self.buffer, self.closed, self.quit = b"", False, False
        self.out = []

    # replies
    def message(self, code, text, more=False):
        self.out.append(("%d%s%s\r\n" % (code, "-" if more else " ", printable(text.encode("latin-1")))).encode(
            "latin-1"))
        return -1

    def transfer(self, code, text, messages):
        if text is not None:
            self.message(code, text + ":" if messages else text, bool(messages))
        for n, line in enumerate(messages):
            self.message(code, line, n + 1 < len(messages))
        return -1

    def flush(self):
        if self.out:
            self.sock.sendall(b"".join(self.out))
            self.out = []

    # the loop
    def run(self):
        self.sock.sendall(("Click::ControlSocket/1.3\r\n").encode())
        while True:
            if not self.closed and (not self.buffer or self._blocked):
                chunk = self.sock.recv(2048)
                if chunk:
                    self.buffer += chunk
                else:
                    self.closed = True
            self._blocked = False
            if self.buffer:
                end = next((i for i, b in enumerate(self.buffer) if b in (10, 13)), None)
                if end is None and not self.closed:
                    self._blocked = True
                else:
                    if end is None:
                        end = len(self.buffer)
                    elif self.buffer[end:end + 2] == b"\r\n":
                        end += 2
                    else:
                        end += 1
                    line, rest = self.buffer[:end], self.buffer[end:]
                    self.buffer = rest
                    try:
                        self.parse_command(line)
                    except _More:
                        self.buffer = line + self.buffer   # wait for the rest, then run the command again
                        self._blocked = True
            self.flush()
            if self.quit or (self.closed and not self.buffer):
                return

    _blocked = False

    def take(self, size):
        """`size` bytes after the command line: Not enough data once the client has closed, else wait."""
        if len(self.buffer) < size:
            if self.closed:
                return None
            raise _More()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def parse_command(self, line):
        matches = list(_WORD.finditer(line))
        if not matches:
            return 0
        words = [m.group(0) for m in matches]
        command = words[0].upper()
        if command in (b"READ", b"GET", b"WRITE", b"SET"):
            if len(words) < 2:
                return self.message(500, "Wrong number of arguments")
            data = line[matches[2].start():matches[-1].end()] if len(words) > 2 else b""
            return (self.read if command[0] in b"RG" else self.write)(words[1], data)
        if command in (b"READDATA", b"WRITEDATA", b"SETDATA"):
            if len(words) != 3:
                return self.message(500, "Wrong number of arguments")
            try:
                size = parse_int(words[2].decode("latin-1"))
            except _Bad:
                size = -1
            if size < 0:
                return self.message(500, "Syntax error in '%s'", True)   # sic: Click's format is never filled
            data = self.take(size)
            if data is None:
                return self.message(500, "Not enough data")
            return (self.read if command[0] == ord("R") else self.write)(words[1], data)
        if command in (b"READUNTIL", b"WRITEUNTIL"):
            if len(words) < 2:
                return self.message(500, "Wrong number of arguments")
            until = line[matches[2].start():matches[-1].end()] if len(words) > 2 else b""
            pos = 0
            while True:
                end = next((i for i in range(pos, len(self.buffer)) if self.buffer[i] in (10, 13)), None)
                if end is None:
                    if self.closed:
                        return self.message(500, "Not enough data")
                    raise _More()
                text = self.buffer[pos:end].rstrip(b" \t\x0b\x0c")
                nxt = end + 2 if self.buffer[end:end + 2] == b"\r\n" else end + 1
                if text == until:
                    data, self.buffer = self.buffer[:pos], self.buffer[nxt:]
                    return (self.read if command[0] == ord("R") else self.write)(words[1], data)
                pos = nxt
        if command in (b"CHECKREAD", b"CHECKWRITE"):
            if len(words) != 2:
                return self.message(500, "Wrong number of arguments")
            return self.check(words[1], command == b"CHECKWRITE")
        if command == b"LLRPC":
            if len(words) not in (2, 3):
                return self.message(500, "Wrong number of arguments")
            size = 0
            if len(words) == 3:
                try:
                    size = parse_int(words[2].decode("latin-1"))
                except _Bad:
                    size = -1
                if size < 0:
                    return self.message(500, "Syntax error in 'llrpc'")
            if self.take(size) is None:
                return self.message(500, "Not enough data")
            return self.llrpc(words[1])
        if command in (b"CLOSE", b"QUIT"):
            if len(words) != 1:
                self.message(500, "Bad command syntax")
            self.message(200, "Goodbye!")
            self.quit, self.buffer = True, b""
            return 0
        if command == b"HELP":
            for n, text in enumerate(HELP_LINES):
                self.message(200, text, n + 1 < len(HELP_LINES))
            return 0
        return self.message(501, "Command '%s' unimplemented" % command.decode("latin-1"))

    # handlers
    def find(self, full_name):
        """parse_handler: -> (kind, element, handler name) or None once the error is answered."""
        name = full_name.decode("latin-1")
        dot = name.find(".")
        if dot == 0 or (dot == 1 and name[0] == "0"):
            name = name[dot + 1:]
        dot = name.find(".")
        if dot >= 0:
            element, hname = name[:dot], name[dot + 1:]
            if element != odin.ELEMENT:
                self.message(510, "No element named '%s'" % element)
                return None
        else:
            element, hname = "", name
        handlers = self.handlers(element)
        if hname not in handlers:
            self.message(511, "No handler named '%s'" % full_name.decode("latin-1"))
            return None
        return handlers[hname], element, hname

    def handlers(self, element):
        """{name: (read function or None, write function or None)} of the root or of the agent element."""
        if not element:
            return {"version": (lambda: CLICK_VERSION, None)}
        agent = self.agent
        table = {"name": (lambda: odin.ELEMENT, None), "class": (lambda: "OdinAgent", None)}
        for hname in set(agent.read_handlers) | set(agent.write_handlers):
            table[hname] = (agent.read_handlers.get(hname), agent.write_handlers.get(hname))
        return table

    def read(self, full_name, param):
        found = self.find(full_name)
        if not found:
            return -1
        (reader, _writer), element, hname = found
        shown = full_name.decode("latin-1")
        if reader is None:
            return self.message(530, "Handler '%s' write-only" % shown)
        if param:
            return self.transfer(590, "Read handler '%s' error" % shown,
                                 ["read handler '%s' does not take parameters" % self.unparse(element, hname)])
        data = reader().encode("latin-1")
        self.message(200, "Read handler '%s' OK" % shown)
        self.out.append(b"DATA %d\r\n" % len(data) + data)
        return 0

    def write(self, full_name, data):
        found = self.find(full_name)
        if not found:
            return -1
        (_reader, writer), _element, _hname = found
        shown = full_name.decode("latin-1")
        if writer is None:
            return self.message(530, "Handler '%s' read-only" % shown)
        try:
            writer(data.decode("latin-1"))
        except HandlerError as exc:
            return self.transfer(520, "Write handler '%s' error" % shown, exc.messages)
        self.message(200, "Write handler '%s' OK" % shown)
        return 0

    def check(self, full_name, write):
        found = self.find(full_name)
        if not found:
            return 0
        (reader, writer), _element, _hname = found
        shown = full_name.decode("latin-1")
        if (writer if write else reader) is not None:
            return self.message(200, "%s handler '%s' OK" % ("Write" if write else "Read", shown))
        return self.message(511, "Handler '%s' %s" % (shown, "not writable" if write else "not readable"))

    def llrpc(self, name):
        text = name.decode("latin-1")
        element, _sep, number = text.partition("#")
        if not re.fullmatch(r"\+?(?:0[xX])?[0-9a-fA-F](?:_?[0-9a-fA-F])*", number):   # IntArg(16)
            return self.message(500, "Syntax error in LLRPC name '%s'" % text)
        if not self.find((element + ".name").encode("latin-1")):
            return -1
        return self.message(501, "Cannot call LLRPC '%s' remotely" % text)   # OdinAgent has none

    @staticmethod
    def unparse(element, hname):
        return "%s.%s" % (element, hname) if element else hname


class _ControlServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def make_control_server(agent, bind, port):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                ControlSession(agent, self.request).run()
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
