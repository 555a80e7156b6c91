# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Odin agent as the modules use it: OdinAgent handlers over one ControlSocket connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlClient
from ansible_collections.arnab.testbed.plugins.module_utils import odin, validate

# Options shared by every module that talks to an agent (documented in doc_fragments/odin_agent.py).
AGENT_ARGUMENT_SPEC = dict(
    agent=dict(type="str", required=True),
    port=dict(type="int", default=odin.CONTROL_PORT),
    timeout=dict(type="float", default=5.0),
)

INFO_ITEMS = ("table", "channel", "interval", "rxstats", "txstats", "subscriptions", "sta_rssi",
              "scanning_flags", "txpower", "debug")


def check_params(params, agent_keys=("agent",)):
    """Before anything is sent: no control character in any string option (a CR or LF would end the ControlSocket
    command and start another), and each agent address an IP or host name. Raises validate.ValidationError."""
    validate.strings(params)
    for key in agent_keys:
        if params.get(key) is not None:
            validate.host(params[key], key)


class OdinAgentClient:
    """``with OdinAgentClient("10.77.0.11") as agent: agent.table()``."""

    def __init__(self, host, port=odin.CONTROL_PORT, timeout=5.0):
        self.control = ClickControlClient(host, port, timeout=timeout, connect_timeout=timeout)

    @property
    def endpoint(self):
        return self.control.endpoint

    def connect(self):
        self.control.connect()
        return self

    def close(self):
        self.control.close()

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc_info):
        self.close()

    def _read(self, name, *args):
        return self.control.read(odin.handler(name), *args)

    def _write(self, name, text):
        self.control.write(odin.handler(name), text)
        return "WRITE %s %s" % (odin.handler(name), text)

    # vAPs
    def table(self):
        return odin.parse_table(self._read("table"))

    def add_vap(self, vap):
        return self._write("add_vap", vap.to_line())

    def set_vap(self, vap):
        return self._write("set_vap", vap.to_line())

    def remove_vap(self, sta_mac):
        return self._write("remove_vap", odin.normalize_mac(sta_mac))

    # radio
    def channel(self):
        return int(self._read("channel").strip())

    def beacon_interval(self):
        return int(self._read("interval").strip())

    def channel_switch_announcement(self, vap, new_channel):
        return self._write("channel_switch_announcement", odin.csa_args(vap, new_channel))

    def start_scan(self, sta_mac, channel):
        return self._write("scan_client", "%s %d" % (odin.normalize_mac(sta_mac), odin.validate_channel(channel)))

    def scan_result(self):
        """dBm at which this agent's scanning radio heard the client, or None."""
        return odin.parse_scan_client(self._read("scan_client"))

    def sta_rssi(self):
        return odin.parse_sta_rssi(self._read("sta_rssi"))

    def rxstats(self):
        """Per-station receive statistics (the read resets the agent's counters, as the master's reads do)."""
        return odin.parse_station_stats(self._read("rxstats"))

    def serving_rssi(self, sta_mac):
        """dBm at which this (serving) agent hears the client: its sta_rssi, which real OdinAgent fills only
        once an AP scan has run, else the average signal of the client's received frames (rxstats)."""
        sta_mac = odin.normalize_mac(sta_mac)
        level = self.sta_rssi().get(sta_mac)
        if level is None:
            level = self.rxstats().get(sta_mac, {}).get("avg_signal")
        return level if isinstance(level, (int, float)) else None

    def info(self, items=INFO_ITEMS):
        """Structured view of the agent's read handlers (rxstats/txstats reset the agent's counters)."""
        result = {"endpoint": self.endpoint, "protocol": self.control.banner}
        for item in items:
            text = self._read(item)
            if item == "table":
                result["table"] = [vap.to_dict() for vap in self.table_from(text)]
            elif item == "channel":
                result["channel"] = int(text.strip())
                result["frequency_mhz"] = odin.channel_to_frequency(result["channel"])
            elif item == "interval":
                result["beacon_interval_ms"] = int(text.strip())
            elif item in ("rxstats", "txstats"):
                result[item] = odin.parse_station_stats(text)
            elif item == "subscriptions":
                result["subscriptions"] = [s._asdict() for s in odin.parse_subscription_lines(text)]
            elif item == "sta_rssi":
                result["sta_rssi"] = odin.parse_sta_rssi(text)
            elif item == "scanning_flags":
                flags = [int(w) for w in text.split()] + [0, 0, 0]
                result["scanning_flags"] = {"client_scanning": flags[0], "ap_scanning": flags[1],
                                            "measurement_beacon": flags[2]}
            else:
                result[item] = odin._parse_number(text.strip())
        return result

    @staticmethod
    def table_from(text):
        return list(odin.parse_table(text).values())
