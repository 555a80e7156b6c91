"""Real Click with OdinAgent on the lab's AP nodes (`lab.agent: real` in the lab inventory), for the lab only.

    python -m arnab_lab.real_agent --click BIN --config /etc/odin/agent.cli --radio IP:PORT --node-dir DIR [--name ap1]

What the lab's `click` on an AP node runs in real mode instead of the emulated agent: the AP's own rendered
configuration, made runnable on a node without radios (`lab_config`), then real Click (exec: the pid the `ap` role
records is Click's). The radio side is idle: FromDevice/FromHost are `Idle`, the scanning radio and the tap are
`Discard`. The serving radio's transmit path (`to_dev`, where OdinAgent's beacons, probe responses and channel
switch announcements go) is a UDP `Socket` to the emulated radio, which reads the CSA beacons from it; the radio
also reads each agent's vAP table, channel and beacon interval over its ControlSocket (`arnab_lab.radio`,
`RealAgents`). The ControlSocket, the ChatterSocket and the UDP socket to the master are the configuration's own.
OdinAgent runs `hostapd_cli` on channel and scan writes: the node's harmless one (written by labctl) logs them.

The parsing here (`lab_config`, `parse_csa_beacon`) is pure and unit-tested.
"""
import argparse
import os
import re
import struct
import sys

FRAMES_PORT = 2899            # UDP port of the emulated radio (control node) for the serving radios' frames
HOSTAPD_CLI = """#!/bin/sh
# Harmless hostapd_cli for real Click in the arnab lab: OdinAgent runs `hostapd_cli -i wlan0 chan_switch ...` on a
# channel change and `-i wlan1 ...` for scans; there is no hostapd here. Logs its arguments. Made by lab/labctl.
echo "$(date +%s.%N) $*" >> {log}
exit 0
"""

_TO_DEV = re.compile(r"\b(to_dev\s*::\s*)ToDevice\s*\([^()]*\)")
_SOURCES_TO_IDLE = re.compile(r"\b(FromDevice|FromHost)\s*\([^()]*\)")
_SINKS_TO_DISCARD = re.compile(r"\b(ToDevice|ToHost)\s*\([^()]*\)")
_DEBUGFS = re.compile(r"^(\s*\$DEBUGFS\s+)[^,\n]*", re.M)

WIFI_BEACON = 0x80            # frame control byte 0: version 0, type management, subtype beacon
ELEMENT_CSA = 37              # Channel Switch Announcement: mode, new channel, count
_FIXED = 24 + 8 + 2 + 2       # 802.11 header, timestamp, beacon interval, capability information


class RealAgentError(ValueError):
    """The configuration cannot be made runnable in the lab."""


def lab_config(text, radio_ip, radio_port, debugfs):
    """The AP's agent configuration as real Click runs it on a lab node: radio inputs and the tap idle, the serving
    radio's transmit queue sent to the emulated radio over UDP, the BSSID mask written to `debugfs` (a file of the
    node); everything else (OdinAgent and its arguments, the ControlSocket, the master's socket) unchanged."""
    text, found = _TO_DEV.subn(r"\1Socket(UDP, %s, %d, CLIENT true)" % (radio_ip, int(radio_port)), text)
    if found != 1:
        raise RealAgentError("the configuration has %d serving radio outputs (to_dev :: ToDevice(...)), not one"
                             % found)
    text = _SINKS_TO_DISCARD.sub("Discard", _SOURCES_TO_IDLE.sub("Idle", text))
    text, found = _DEBUGFS.subn(lambda m: m.group(1) + debugfs, text)
    if found != 1:
        raise RealAgentError("the configuration defines no $DEBUGFS")
    return text


def parse_csa_beacon(frame):
    """A frame from the serving radio's transmit path (radiotap + 802.11) -> {sta_mac, bssid, channel, count} for a
    beacon that carries a Channel Switch Announcement, None for any other frame."""
    if len(frame) < 4:
        return None
    radiotap_len = struct.unpack_from("<H", frame, 2)[0]
    if frame[0] != 0 or radiotap_len < 8 or len(frame) < radiotap_len + _FIXED:
        return None
    wifi = frame[radiotap_len:]
    if wifi[0] != WIFI_BEACON:
        return None
    pos = _FIXED
    while pos + 2 <= len(wifi):
        element, length = wifi[pos], wifi[pos + 1]
        if pos + 2 + length > len(wifi):
            return None
        if element == ELEMENT_CSA and length >= 3:
            body = wifi[pos + 2:pos + 2 + length]
            return {"sta_mac": _mac(wifi[4:10]), "bssid": _mac(wifi[10:16]), "channel": body[1], "count": body[2]}
        pos += 2 + length
    return None


def _mac(raw):
    return ":".join("%02x" % b for b in raw)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="arnab_lab.real_agent", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--click", required=True, help="real Click with OdinAgent (make click)")
    parser.add_argument("--config", required=True, help="the AP's agent configuration (odin_agent_config)")
    parser.add_argument("--radio", required=True, help="IP:PORT of the emulated radio's frame socket")
    parser.add_argument("--node-dir", required=True, help="the node's runtime directory (bin/hostapd_cli, files)")
    parser.add_argument("--name", default="ap", help="AP name for messages")
    args = parser.parse_args(argv)
    radio_ip, _sep, radio_port = args.radio.rpartition(":")
    with open(args.config) as handle:
        text = handle.read()
    try:
        runnable = lab_config(text, radio_ip, int(radio_port), os.path.join(args.node_dir, "bssid_extra"))
    except (RealAgentError, ValueError) as exc:
        print("real Click in the lab (%s): %s: %s" % (args.name, args.config, exc), file=sys.stderr)
        return 1
    path = os.path.join(args.node_dir, "agent-lab.cli")
    with open(path + ".tmp", "w") as handle:
        handle.write("// REAL Click in the arnab lab for %s: %s with the radio side idle (arnab_lab.real_agent)\n"
                     % (args.name, args.config) + runnable)
    os.replace(path + ".tmp", path)
    env = dict(os.environ, PATH=os.path.join(args.node_dir, "bin") + os.pathsep + os.environ.get("PATH", ""))
    print("REAL Click with OdinAgent for %s: %s %s" % (args.name, args.click, path), file=sys.stderr, flush=True)
    # Click takes a trailing NAME=VALUE as a configuration parameter (unused here): it keeps the AP's own configuration
    # path on the command line, where roles/ap looks for it to tell its agent from a process that reused the PID
    os.execve(args.click, [args.click, path, "ARNAB_AGENT_CONFIG=%s" % args.config], env)
    return 1   # not reached


if __name__ == "__main__":
    sys.exit(main())
