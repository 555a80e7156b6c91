# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Odin semantics: vAP tables, BSSIDs, channels, subscriptions, station statistics, agent Click config.

Pure standard library (``re``, ``ipaddress``) so the same file serves the control node's modules and
the emulated agent (which parses the Click configuration rendered here).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
from collections import namedtuple

ELEMENT = "odinagent"          # the OdinAgent element's name in every rendered configuration
CONTROL_PORT = 6777            # ControlSocket (TCP)
CHATTER_PORT = 6778            # ChatterSocket (TCP)
MASTER_PORT = 2819             # the master's UDP port for ping/probe/publish/association
BSSID_OUI = "00:1b:b3"         # vAP BSSID = client MAC with its first three octets replaced by this
ANY_MAC = "00:00:00:00:00:00"  # "any station" in subscriptions
CSA_COUNT = 4                  # beacons carrying a channel switch announcement before the client switches


class OdinValueError(ValueError):
    """A value that Odin would not accept (bad MAC, IP, channel, SSID, line format...)."""


def handler(name):
    """Full handler name of an OdinAgent handler, e.g. ``odinagent.table``."""
    return "%s.%s" % (ELEMENT, name)


# -- addresses -------------------------------------------------------------------------------------

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def normalize_mac(value, what="MAC address"):
    """``02-C0-00-00-00-01`` -> ``02:c0:00:00:00:01``; raises OdinValueError if it is not a MAC."""
    text = str(value).strip()
    if not _MAC.match(text):
        raise OdinValueError("%s %r is not a MAC address like 02:c0:00:00:00:01" % (what, value))
    return text.replace("-", ":").lower()


def normalize_ip(value, what="IPv4 address"):
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise OdinValueError("%s %r is not an IPv4 address" % (what, value))


def vap_bssid(sta_mac):
    """Odin's BSSID convention: the client's MAC with the OUI replaced by 00:1b:b3."""
    return BSSID_OUI + normalize_mac(sta_mac, "client MAC")[8:]


def mac_to_int(mac):
    return int(normalize_mac(mac).replace(":", ""), 16)


# -- text that goes onto a ControlSocket line ---------------------------------------------------------

def check_line_safe(value, what):
    """A value bound for a ControlSocket command line (or a Click configuration) must hold no control character:
    a newline or CR would end the command and start another. Raises OdinValueError; returns the value."""
    text = str(value)
    bad = [ch for ch in text if ord(ch) < 32 or ord(ch) == 127]
    if bad:
        raise OdinValueError("%s %r contains a control character (%r): a line break would inject another "
                             "ControlSocket command" % (what, text, bad[0]))
    return value


# -- SSIDs -----------------------------------------------------------------------------------------

_SSID_FORBIDDEN = "\"'\\$"   # quoting, escapes and variables of Click's configuration language


def normalize_ssid(value):
    """An SSID as one word on the control channel and in a Click configuration: 1-32 printable ASCII
    characters, no whitespace, none of " ' \\ $ (Click would unquote or expand them)."""
    text = str(value)
    if not 1 <= len(text) <= 32 or not all(33 <= ord(ch) < 127 for ch in text) \
            or any(ch in _SSID_FORBIDDEN for ch in text):
        raise OdinValueError("SSID %r must be 1-32 printable ASCII characters without spaces, quotes, "
                             "backslashes or $" % (value,))
    return text


# -- vAP table ---------------------------------------------------------------------------------------

class Vap(namedtuple("Vap", "sta_mac sta_ip bssid ssids")):
    """One light virtual AP: the line ``<sta_mac> <sta_ip> <vap_bssid> <ssid> [<ssid>...]``."""

    __slots__ = ()

    @classmethod
    def build(cls, sta_mac, sta_ip, ssids, bssid=None):
        if isinstance(ssids, str):
            ssids = [ssids]
        if not ssids:
            raise OdinValueError("a vAP needs at least one SSID")
        sta_mac = normalize_mac(sta_mac, "client MAC")
        return cls(sta_mac, normalize_ip(sta_ip, "client IP"),
                   normalize_mac(bssid, "vAP BSSID") if bssid else vap_bssid(sta_mac),
                   tuple(normalize_ssid(s) for s in ssids))

    @classmethod
    def parse(cls, line):
        words = line.split()
        if len(words) < 4:
            raise OdinValueError("vAP line %r needs '<sta_mac> <sta_ip> <vap_bssid> <ssid>...'" % line)
        return cls.build(words[0], words[1], words[3:], bssid=words[2])

    def to_line(self):
        return " ".join((self.sta_mac, self.sta_ip, self.bssid) + tuple(self.ssids))

    def to_dict(self):
        return {"sta_mac": self.sta_mac, "sta_ip": self.sta_ip, "bssid": self.bssid, "ssids": list(self.ssids)}


def parse_table(text):
    """READ table -> {sta_mac: Vap}."""
    vaps = {}
    for line in text.splitlines():
        if line.strip():
            vap = Vap.parse(line)
            vaps[vap.sta_mac] = vap
    return vaps


def format_table(vaps):
    """Inverse of parse_table (one line per vAP, each ending in a newline)."""
    items = vaps.values() if isinstance(vaps, dict) else vaps
    return "".join(vap.to_line() + "\n" for vap in items)


def csa_args(vap, new_channel):
    """WRITE channel_switch_announcement arguments: ``<sta_mac> <vap_bssid> <new_channel> <ssid>...``."""
    return " ".join((vap.sta_mac, vap.bssid, str(validate_channel(new_channel))) + tuple(vap.ssids))


# -- channels ----------------------------------------------------------------------------------------

CHANNELS_24GHZ = tuple(range(1, 15))
CHANNELS_5GHZ = tuple(range(34, 197))


def validate_channel(channel):
    try:
        channel = int(channel)
    except (TypeError, ValueError):
        raise OdinValueError("channel %r is not a number" % (channel,))
    if channel not in CHANNELS_24GHZ and channel not in CHANNELS_5GHZ:
        raise OdinValueError("channel %d is neither a 2.4 GHz (1-14) nor a 5 GHz (34-196) channel" % channel)
    return channel


def channel_to_frequency(channel):
    """MHz: 2.4 GHz f = 2412 + 5 (ch - 1), ch 14 = 2484; 5 GHz f = 5170 + 5 (ch - 34)."""
    channel = validate_channel(channel)
    if channel == 14:
        return 2484
    if channel <= 13:
        return 2412 + 5 * (channel - 1)
    return 5170 + 5 * (channel - 34)


def frequency_to_channel(frequency):
    frequency = int(frequency)
    if frequency == 2484:
        return 14
    if 2412 <= frequency <= 2472 and (frequency - 2412) % 5 == 0:
        return (frequency - 2412) // 5 + 1
    if 5170 <= frequency <= 5980 and (frequency - 5170) % 5 == 0:
        return (frequency - 5170) // 5 + 34
    raise OdinValueError("%d MHz is not a Wi-Fi channel centre frequency" % frequency)


# -- subscriptions -----------------------------------------------------------------------------------

RELATIONS = {"equals": 0, "greater_than": 1, "less_than": 2}
_RELATION_NAMES = dict((v, k) for k, v in RELATIONS.items())


def relation_name(number):
    """0/1/2 -> equals/greater_than/less_than; any other integer (an agent accepts it) stays a number."""
    return _RELATION_NAMES.get(number, number)


class Subscription(namedtuple("Subscription", "id sta_mac stat relation value")):
    """``<id> <sta_mac|00:00:00:00:00:00> <stat> <relation 0|1|2> <value>``; relation kept by name."""

    __slots__ = ()

    @classmethod
    def build(cls, id, sta_mac, stat, relation, value):
        if relation in RELATIONS:
            pass
        elif re.match(r"^-?\d+$", str(relation)):
            relation = relation_name(int(relation))   # an agent keeps any number; only 0/1/2 have a name
        else:
            raise OdinValueError("relation %r must be one of %s or 0/1/2" % (relation, ", ".join(RELATIONS)))
        if not re.match(r"^\w+$", str(stat)):
            raise OdinValueError("statistic name %r must be one word" % (stat,))
        return cls(int(id), normalize_mac(sta_mac or ANY_MAC), str(stat), relation, float(value))

    def matches(self, sta_mac, value):
        if self.sta_mac not in (ANY_MAC, sta_mac):
            return False
        if self.relation == "equals":
            return value == self.value
        if self.relation == "greater_than":
            return value > self.value
        return self.relation == "less_than" and value < self.value

    def to_words(self):
        return [str(self.id), self.sta_mac, self.stat, str(RELATIONS.get(self.relation, self.relation)),
                _number(self.value)]


def format_subscriptions(subscriptions):
    words = [str(len(subscriptions))]
    for sub in subscriptions:
        words.extend(sub.to_words())
    return " ".join(words)


def parse_subscriptions(text):
    words = text.split()
    if not words:
        return []
    try:
        count = int(words[0])
    except ValueError:
        raise OdinValueError("subscriptions %r must start with their count" % text)
    if len(words) != 1 + 5 * count:
        raise OdinValueError("subscriptions %r: count %d needs %d words" % (text, count, 1 + 5 * count))
    return [Subscription.build(*words[1 + 5 * i:6 + 5 * i]) for i in range(count)]


_SUB_LINE = re.compile(r"^sub_id (\S+) addr (\S+) stat (\S+) rel (\S+) val (\S+)$")


def parse_subscription_lines(text):
    """READ subscriptions as real OdinAgent answers it (NOT the WRITE format): one line per subscription,
    ``sub_id <id> addr <sta_mac> stat <stat> rel <relation> val <value>``; empty text = none."""
    subscriptions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SUB_LINE.match(line.strip())
        if not match:
            raise OdinValueError("subscription line %r is not 'sub_id <id> addr <mac> stat <stat> rel <rel> val <val>'"
                                 % line)
        try:
            subscriptions.append(Subscription.build(*match.groups()))
        except ValueError as exc:
            raise OdinValueError("subscription line %r: %s" % (line, exc))
    return subscriptions


def format_subscription_lines(subscriptions):
    """Inverse of parse_subscription_lines, byte for byte as OdinAgent prints it (upper-case MACs, %.12g)."""
    return "".join("sub_id %d addr %s stat %s rel %d val %s\n" % (
        s.id, s.sta_mac.upper(), s.stat, RELATIONS.get(s.relation, s.relation), "%.12g" % s.value)
        for s in subscriptions)


def format_publish(sta_mac, matches):
    """Agent -> master: ``publish <sta_mac> <count> <sub_id>:<value> ...``."""
    return "publish %s %d %s" % (normalize_mac(sta_mac), len(matches),
                                 " ".join("%d:%s" % (sid, _number(v)) for sid, v in matches))


def _number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


# -- statistics --------------------------------------------------------------------------------------

STAT_FIELDS = ("packets", "avg_rate", "avg_signal", "avg_len_pkt", "air_time",
               "first_received", "last_received", "equipment")


def format_station_stats(sta_mac, stats):
    """One rxstats/txstats line: ``<mac> packets:.. avg_rate:.. ... equipment:..``."""
    return " ".join([sta_mac] + ["%s:%s" % (f, stats.get(f, 0)) for f in STAT_FIELDS])


def parse_station_stats(text):
    """READ rxstats/txstats -> {sta_mac: {field: number or text}}."""
    result = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        mac = normalize_mac(words[0], "station MAC in statistics")
        fields = {}
        for word in words[1:]:
            key, sep, value = word.partition(":")
            if not sep:
                raise OdinValueError("statistics word %r is not <field>:<value>" % word)
            fields[key] = _parse_number(value)
        result[mac] = fields
    return result


def parse_sta_rssi(text):
    """READ sta_rssi -> {sta_mac: rssi dBm}."""
    result = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2:
            result[normalize_mac(words[0])] = _parse_number(words[1])
    return result


def parse_scan_client(text):
    """READ scan_client returns RSSI + 256 (0 = not heard): -> dBm or None."""
    value = int(text.strip() or "0")
    return None if value == 0 else value - 256


def _parse_number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# -- agent Click configuration ----------------------------------------------------------------------

def _flag(value):
    return 1 if value in (True, 1, "1", "true", "True", "yes") else 0


# Every parameter of the Wi-5 generator (agent-click-file-gen.py, 21 positional parameters) by name,
# plus the ports and interfaces the generator hard-codes. One table: the action plugin's argument spec,
# the defaults, and the renderer all read it. (type, default, Click variable, description)
AGENT_CONFIG_PARAMS = {
    "channel": ("int", 6, "CHANNEL", "AP channel (1-14 or 5 GHz)."),
    "queue_size_in": ("int", 50, "QUEUE_IN", "The Wi-5 generator's QUEUE_SIZE_IN: headroom of the radios' "
                      "FromDevice elements (the receive path has no queue: it is push into the agent)."),
    "queue_size_out": ("int", 50, "QUEUE_OUT", "Size of each radio's transmit queue."),
    "ap_mac": ("str", None, "HW_ADDR", "MAC address of the AP's radio (HWADDR). Required."),
    "master_ip": ("str", None, "MASTER_IP", "IP address of the Odin master. Required."),
    "master_port": ("int", MASTER_PORT, "MASTER_PORT", "UDP port of the Odin master."),
    "debugfs_path": ("str", "/sys/kernel/debug/ieee80211/phy0/ath9k/bssid_extra", "DEBUGFS",
                     "debugfs file of the patched ath9k driver that holds the BSSID mask."),
    "ssid": ("str", "odin", "SSIDAGENT", "SSID the agent announces (measurement beacons)."),
    "agent_ip": ("str", None, "DEFAULT_GW", "IP address of the AP (agent) on the control network. Required."),
    "click_debug": ("int", 0, "DEBUG_CLICK", "Click debug level (0 = none, 1-2 = Print elements on the "
                    "paths; not an OdinAgent keyword)."),
    "odin_debug": ("int", 0, "DEBUG_ODIN", "Odin debug level (0 none, 1 info, 2 debug, x1 = demo appearance)."),
    "tx_rate": ("int", 108, "TX_RATE", "TX rate in 500 kbit/s units (108 = 54 Mbit/s)."),
    "tx_power": ("int", 20, "TX_POWER", "TX power in dBm (reported by the agent only)."),
    "hidden": ("bool", False, "HIDDEN", "Hidden mode (do not answer broadcast probe requests)."),
    "multichannel": ("bool", True, "MULTICHANNEL", "Multichannel agent (CSA-based handoff between channels)."),
    "default_beacon_interval": ("int", 100, "DEFAULT_BEACON_INTERVAL", "Beacon interval in ms."),
    "burst_beacon_interval": ("int", 10, "BURST_BEACON_INTERVAL", "Beacon interval during a CSA burst, ms."),
    "burst_length": ("int", 10, "BURST", "Number of beacons in a burst."),
    "measurement_beacon_interval": ("int", 100, "MEASUREMENT_BEACON_INTERVAL",
                                    "Interval of measurement beacons, ms."),
    "capture_mode": ("bool", False, "CAPTURE_MODE", "Capture mode (log the frames of one station)."),
    "capture_mac": ("str", "ff:ff:ff:ff:ff:ff", "MAC_CAPTURE", "Station captured in capture mode."),
    "control_port": ("int", CONTROL_PORT, "CONTROL_PORT", "ControlSocket TCP port."),
    "chatter_port": ("int", CHATTER_PORT, "CHATTER_PORT", "ChatterSocket TCP port."),
    "ping_interval": ("float", 2.0, "PING_INTERVAL", "Seconds between pings to the master."),
    "monitor_interface": ("str", "mon0", "MON_DEV", "Monitor interface of the serving radio."),
    "scan_interface": ("str", "mon1", "SCAN_DEV", "Monitor interface of the scanning radio (multichannel)."),
    "tap_interface": ("str", "ap", "TAP_DEV", "Tap interface toward the host network stack."),
}


def agent_config_argument_spec():
    """AnsibleModule-style argument spec of the agent parameters (the action plugin validates with it)."""
    spec = {}
    for name, (kind, default, _var, _doc) in AGENT_CONFIG_PARAMS.items():
        spec[name] = {"type": kind, "required": True} if default is None else {"type": kind, "default": default}
    return spec


def agent_config_defaults():
    return dict((name, spec[1]) for name, spec in AGENT_CONFIG_PARAMS.items())


def validate_agent_config(params):
    """Fill defaults, check every value; returns a new dict or raises OdinValueError."""
    unknown = set(params) - set(AGENT_CONFIG_PARAMS)
    if unknown:
        raise OdinValueError("unknown agent parameter(s): %s" % ", ".join(sorted(unknown)))
    conf = agent_config_defaults()
    conf.update(dict((k, v) for k, v in params.items() if v is not None))
    for name in ("ap_mac", "master_ip", "agent_ip"):
        if conf[name] in (None, ""):
            raise OdinValueError("agent parameter %s is required" % name)
    conf["ap_mac"] = normalize_mac(conf["ap_mac"], "ap_mac")
    conf["capture_mac"] = normalize_mac(conf["capture_mac"], "capture_mac")
    conf["master_ip"] = normalize_ip(conf["master_ip"], "master_ip")
    conf["agent_ip"] = normalize_ip(conf["agent_ip"], "agent_ip")
    conf["channel"] = validate_channel(conf["channel"])
    conf["ssid"] = normalize_ssid(conf["ssid"])
    for name, (kind, _default, _var, _doc) in AGENT_CONFIG_PARAMS.items():
        if kind == "int":
            conf[name] = _int_param(name, conf[name])
        elif kind == "bool":
            conf[name] = bool(_flag(conf[name]))
        elif kind == "float":
            conf[name] = float(conf[name])
            if conf[name] <= 0:
                raise OdinValueError("%s must be positive" % name)
    for name in ("master_port", "control_port", "chatter_port"):
        if not 1 <= conf[name] <= 65535:
            raise OdinValueError("%s %d is not a port number" % (name, conf[name]))
    for name in ("queue_size_in", "queue_size_out", "default_beacon_interval", "burst_beacon_interval",
                 "burst_length", "measurement_beacon_interval", "tx_rate"):
        if conf[name] <= 0:
            raise OdinValueError("%s must be positive, got %d" % (name, conf[name]))
    for name in ("debugfs_path", "monitor_interface", "scan_interface", "tap_interface"):
        if not re.match(r"^[\w./-]+$", str(conf[name])):
            raise OdinValueError("%s %r may only contain letters, digits and . / - _" % (name, conf[name]))
    return conf


def _int_param(name, value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OdinValueError("%s %r is not an integer" % (name, value))


def _click_value(kind, value):
    if kind == "bool":
        return "1" if value else "0"   # OdinAgent's HIDDEN/MULTICHANNEL_AGENTS/CAPTURE_MODE are integers
    if kind == "str":
        return '"%s"' % value if name_needs_quotes(value) else str(value)
    if kind == "float":
        return _number(value)
    return str(value)


def name_needs_quotes(value):
    return not re.match(r"^[\w.:/-]+$", str(value))


# The graph is the Wi-5 generator's (agent-click-file-gen.py); every tunable comes from the define() block above
# it. What real Click requires of it (checked by loading every inventory's configs with `click -q`, docs/click.md):
# the receive paths are push all the way into [0]/[2]odinagent (no Queue before them), OdinAgent's 3 inputs and
# 5 outputs are all connected, HIDDEN/MULTICHANNEL_AGENTS/CAPTURE_MODE are integers, and the ARP responders are
# named fh_arpr and arp_resp: OdinAgent adds and removes each vAP's client in them on add_vap/remove_vap.
_AGENT_GRAPH = """\
// OdinAgent: the split-MAC agent. Its handlers are reached through the ControlSocket below.
// Inputs: 0 serving radio, 1 host (tap), 2 scanning radio. Outputs: 0 and 2 serving radio, 1 data frames
// toward the host, 3 messages to the master, 4 scanning radio.
odinagent :: OdinAgent(HWADDR $HW_ADDR, RT rates, CHANNEL $CHANNEL, DEFAULT_GW $DEFAULT_GW,
                       DEBUGFS $DEBUGFS, SSIDAGENT $SSIDAGENT, DEBUG_ODIN $DEBUG_ODIN,
                       TX_RATE $TX_RATE, TX_POWER $TX_POWER, HIDDEN $HIDDEN,
                       MULTICHANNEL_AGENTS $MULTICHANNEL,
                       DEFAULT_BEACON_INTERVAL $DEFAULT_BEACON_INTERVAL,
                       BURST_BEACON_INTERVAL $BURST_BEACON_INTERVAL, BURST $BURST,
                       MEASUREMENT_BEACON_INTERVAL $MEASUREMENT_BEACON_INTERVAL,
                       CAPTURE_MODE $CAPTURE_MODE, MAC_CAPTURE $MAC_CAPTURE);
rates :: AvailableRates(DEFAULT 2 4 11 12 18 22 24 36 48 72 96 108);

// Control channel to the master: pings, then probe/publish/association/deauthentication (output 3).
odinsocket :: Socket(UDP, $MASTER_IP, $MASTER_PORT, CLIENT true);
TimedSource($PING_INTERVAL, "ping\\n") -> odinsocket;
odinagent[3] -> odinsocket;

control :: ControlSocket("TCP", $CONTROL_PORT);
chatter :: ChatterSocket("TCP", $CHATTER_PORT);
to_host :: ToHost($TAP_DEV);

// Host -> stations: the host's ARP requests for a client are answered here (fh_arpr holds the vAPs' clients,
// kept by OdinAgent); everything else goes to the agent's input 1.
FromHost($TAP_DEV, HEADROOM 50) -> fhcl :: Classifier(12/0806 20/0001, -)
  @ARP_HOST@-> fh_arpr :: ARPResponder() @ARP_HOST_OK@-> to_host;
fhcl[1] @NON_ARP@-> [1]odinagent;
fh_arpr[1] @ARP_OTHER@-> [1]odinagent;

// Transmit: one queue per radio (outputs 0 and 2 serving radio, output 4 scanning radio).
q :: Queue($QUEUE_OUT) -> SetTXRate($TX_RATE) -> RadiotapEncap() -> to_dev :: ToDevice($MON_DEV);
q2 :: Queue($QUEUE_OUT) -> SetTXRate($TX_RATE) -> RadiotapEncap() -> to_dev2 :: ToDevice($SCAN_DEV);
odinagent[0] -> q;
odinagent[2] -> q;
odinagent[4] -> q2;

// Receive: serving radio into input 0, scanning radio (multichannel agents) into input 2, push all the way.
from_dev :: FromDevice($MON_DEV, HEADROOM $QUEUE_IN) -> RadiotapDecap() -> ExtraDecap()
  -> phyerr_filter :: FilterPhyErr() -> tx_filter :: FilterTX() -> dupe :: WifiDupeFilter() -> [0]odinagent;
from_dev1 :: FromDevice($SCAN_DEV, HEADROOM $QUEUE_IN) -> RadiotapDecap() -> ExtraDecap()
  -> phyerr_filter1 :: FilterPhyErr() -> tx_filter1 :: FilterTX() -> dupe1 :: WifiDupeFilter() -> [2]odinagent;

// Data frames from the stations (output 1): a client's ARP for the AP is answered by arp_resp (the fast path,
// kept by OdinAgent), other ARP and all other traffic go up to the host.
odinagent[1] -> decap :: WifiDecap() -> RXStats() -> arp_c :: Classifier(12/0806 20/0001, -)
  @ARP_STA@-> arp_resp :: ARPResponder($DEFAULT_GW $HW_ADDR) @ARP_STA_OK@-> [1]odinagent;
arp_c[1] @DATA@-> to_host;
arp_resp[1] @ARP_FAIL@-> to_host;
"""

# Click debug levels add Print elements on the paths, as the Wi-5 generator does: (placeholder, level, element).
_DEBUG_PRINTS = (
    ("ARP_HOST", 1, 'ARPPrint("[Click] ARP request from host to resolve STA\'s ARP")'),
    ("ARP_HOST_OK", 1, 'ARPPrint("[Click] Resolving client\'s ARP by myself")'),
    ("NON_ARP", 2, 'Print("[Click] Non-ARP request from host goes to Odin agent port 1")'),
    ("ARP_OTHER", 1, 'Print("[Click] ARP request to another STA goes to Odin agent port 1")'),
    ("ARP_STA", 1, 'Print("[Click] ARP request from the STA")'),
    ("ARP_STA_OK", 1, 'Print("[Click] ARP fast path for STA: the STA is asking for the MAC address of the AP")'),
    ("DATA", 2, 'Print("[Click] Non-ARP packet in arp_c classifier")'),
    ("ARP_FAIL", 1, 'Print("[Click] ARP Fast path fail")'),
)


def _agent_graph(click_debug):
    graph = _AGENT_GRAPH
    for placeholder, level, element in _DEBUG_PRINTS:
        graph = graph.replace("@%s@" % placeholder, "-> %s " % element if click_debug >= level else "")
    return graph


def render_agent_config(params, name=None):
    """Click configuration text (``agent.cli``) for one AP from named parameters."""
    conf = validate_agent_config(params)
    title = "for %s " % check_line_safe(name, "title") if name else ""
    lines = ["// Odin agent configuration %s-- rendered by arnab.testbed (module_utils/odin.py)." % title,
             "// Edit the parameters in Ansible, not here: this file is overwritten.",
             "define("]
    entries = []
    for pname, (kind, _default, var, _doc) in AGENT_CONFIG_PARAMS.items():
        entries.append("  $%s %s" % (var, _click_value(kind, conf[pname])))
    lines.append(",\n".join(entries))
    lines.append(");")
    lines.append("")
    return "\n".join(lines) + "\n" + _agent_graph(conf["click_debug"])


# Elements whose initialization touches the machine: devices, the tap, the listening and master sockets.
_SOURCES_TO_IDLE = re.compile(r"\b(FromDevice|FromHost|ControlSocket|ChatterSocket)\s*\([^()]*\)")
_SINKS_TO_DISCARD = re.compile(r"\b(ToDevice|ToHost|Socket)\s*\([^()]*\)")


def agent_config_for_check(text):
    """The configuration as ``click -q`` should check it: the same graph, elements, arguments and push/pull
    contexts, with the radios, the tap and the sockets idle (``Idle`` sources, ``Discard`` sinks).

    ``click -q`` does not run the router but does initialize it: with the real devices it would open the
    monitor interfaces, create the tap and bind TCP 6777/6778, which the running agent holds on the AP (and
    which do not exist on a build machine). Everything Click refused in the configurations this project used to
    render (push/pull mix, unused OdinAgent ports, non-integer flags, unknown keywords) is still caught."""
    return _SINKS_TO_DISCARD.sub("Discard", _SOURCES_TO_IDLE.sub("Idle", text))


# -- parsing a Click configuration (enough of the language for what render_agent_config writes) ----

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_DECLARATION = re.compile(r"(?:(\w+)\s*::\s*)?([A-Z]\w*)\s*\(")


def _split_args(text):
    """Split a Click argument list at top-level commas, respecting quotes and parentheses."""
    args, depth, quote, current = [], 0, None, ""
    for ch in text:
        if quote:
            current += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch == "(":
            depth += 1
            current += ch
        elif ch == ")":
            depth -= 1
            current += ch
        elif ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        args.append(current.strip())
    return args


def _unquote(word):
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


def _element_calls(text):
    """Yield (name or None, class, raw argument text) for every ``[name ::] Class(args)``."""
    pos = 0
    while True:
        match = _DECLARATION.search(text, pos)
        if not match:
            return
        depth, quote, index = 1, None, match.end()
        while index < len(text) and depth:
            ch = text[index]
            if quote:
                quote = None if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            index += 1
        yield match.group(1), match.group(2), text[match.end():index - 1]
        pos = index


def parse_click_config(text):
    """-> {"variables": {VAR: value}, "elements": [{"name", "class", "args"}]} with $VARs expanded."""
    text = _COMMENT.sub("", text)
    variables = {}
    elements = []
    for name, cls, raw in _element_calls(text):
        elements.append({"name": name, "class": cls, "args": _split_args(raw)})
    define = re.search(r"\bdefine\s*\((.*?)\)\s*;", text, re.S)
    if define:
        for arg in _split_args(define.group(1)):
            var, _sep, value = arg.partition(" ")
            variables[var.lstrip("$")] = _unquote(value.strip())

    def expand(word):
        return re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), word)

    for element in elements:
        element["args"] = [expand(a) for a in element["args"]]
    return {"variables": variables, "elements": elements}


def parse_agent_config(text):
    """Read back what render_agent_config wrote: -> the named parameters (typed).

    The master address comes from the UDP Socket element and the ports from the Control/ChatterSocket
    elements, as Click itself would use them; everything else from the OdinAgent keywords/define().
    """
    parsed = parse_click_config(text)
    variables = parsed["variables"]
    conf = {}
    for pname, (kind, _default, var, _doc) in AGENT_CONFIG_PARAMS.items():
        if var in variables:
            conf[pname] = _typed(kind, variables[var])
    for element in parsed["elements"]:
        args = [_unquote(a) for a in element["args"]]
        if element["class"] == "Socket" and args and args[0].upper() == "UDP":
            conf["master_ip"], conf["master_port"] = args[1], int(args[2])
        elif element["class"] == "ControlSocket":
            conf["control_port"] = int(args[1])
        elif element["class"] == "ChatterSocket":
            conf["chatter_port"] = int(args[1])
        elif element["class"] == "TimedSource":
            conf["ping_interval"] = float(args[0])
        elif element["class"] == "OdinAgent":
            keywords = dict(a.split(None, 1) for a in args if " " in a)
            conf["ap_mac"] = keywords.get("HWADDR", conf.get("ap_mac"))
            conf["channel"] = int(keywords.get("CHANNEL", conf.get("channel", 0)))
            conf["agent_ip"] = keywords.get("DEFAULT_GW", conf.get("agent_ip"))
            conf["ssid"] = _unquote(keywords.get("SSIDAGENT", conf.get("ssid", "")))
    return validate_agent_config(conf)


def _typed(kind, text):
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text in ("true", "1")
    return text
