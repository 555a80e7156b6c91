#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done by the action plugin plugins/action/odin_agent_config.py on the
# controller, because APs have no Python.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: odin_agent_config
short_description: Render an Odin agent's Click configuration and write it on a Python-less AP
version_added: 0.1.0
description:
  - Renders the agent's Click configuration (C(agent.cli)) on the controller from named parameters
    covering every parameter of the Wi-5 generator (C(agent-click-file-gen.py)) plus the ports and
    interfaces it hard-codes, then writes it on the AP only when it differs from the file there.
  - The AP needs no Python; the current file is read with C(cat) and the new one written with a shell
    here-document through the connection, then moved into place.
  - The element is always named C(odinagent); the master address and ports are those of the C(Socket),
    C(ControlSocket) and C(ChatterSocket) elements.
  - The graph is the Wi-5 generator's, as real Click with the OdinAgent element loads it - the receive paths
    push straight into the agent, its 3 inputs and 5 outputs are all connected, and the ARP responders
    C(fh_arpr) and C(arp_resp) are there for OdinAgent to keep on C(add_vap)/C(remove_vap).
  - Where Click is installed on the AP (C(command -v click), see O(click_path)), the new configuration is
    loaded with C(click -q) before anything is written (in check mode too); a configuration Click refuses is
    never installed, the task fails with Click's errors and the running configuration stays as it was.
    Click reads it from its standard input with the radios, the tap and the sockets replaced by C(Idle) and
    C(Discard) (C(click -q) initializes the router, and the running agent holds those), so the check covers
    the elements, their arguments, the ports and push/pull contexts, not the devices.
options:
  dest:
    description: Path of the configuration on the AP.
    type: path
    default: /etc/odin/agent.cli
  title:
    description: Name written in the file's header comment; default the inventory host name.
    type: str
  click_path:
    description:
      - Click on the AP (a program name looked up on the AP's PATH, or an absolute path). When C(command -v)
        finds it, a new configuration is checked with C(click -q) before it replaces the old one; when not, it
        is written unchecked (RV(click_check) says so).
    type: str
    default: click
  channel:
    description:
      - AP channel (1-14 or 5 GHz).
      - Click variable C($CHANNEL) of the rendered configuration.
    type: int
    default: 6
  queue_size_in:
    description:
      - The Wi-5 generator's QUEUE_SIZE_IN, headroom of the radios' C(FromDevice) elements (the receive
        path has no queue; it is push into the agent).
      - Click variable C($QUEUE_IN) of the rendered configuration.
    type: int
    default: 50
  queue_size_out:
    description:
      - Size of each radio's transmit queue.
      - Click variable C($QUEUE_OUT) of the rendered configuration.
    type: int
    default: 50
  ap_mac:
    description:
      - MAC address of the AP's radio (HWADDR).
      - Click variable C($HW_ADDR) of the rendered configuration.
    type: str
    required: true
  master_ip:
    description:
      - IP address of the Odin master.
      - Click variable C($MASTER_IP) of the rendered configuration.
    type: str
    required: true
  master_port:
    description:
      - UDP port of the Odin master.
      - Click variable C($MASTER_PORT) of the rendered configuration.
    type: int
    default: 2819
  debugfs_path:
    description:
      - debugfs file of the patched ath9k driver that holds the BSSID mask.
      - Click variable C($DEBUGFS) of the rendered configuration.
    type: str
    default: "/sys/kernel/debug/ieee80211/phy0/ath9k/bssid_extra"
  ssid:
    description:
      - SSID the agent announces (measurement beacons).
      - Click variable C($SSIDAGENT) of the rendered configuration.
    type: str
    default: "odin"
  agent_ip:
    description:
      - IP address of the AP (agent) on the control network.
      - Click variable C($DEFAULT_GW) of the rendered configuration.
    type: str
    required: true
  click_debug:
    description:
      - Click debug level (0 = none, 1-2 = Print elements on the paths; not an OdinAgent keyword).
      - Click variable C($DEBUG_CLICK) of the rendered configuration.
    type: int
    default: 0
  odin_debug:
    description:
      - Odin debug level (0 none, 1 info, 2 debug, x1 = demo appearance).
      - Click variable C($DEBUG_ODIN) of the rendered configuration.
    type: int
    default: 0
  tx_rate:
    description:
      - TX rate in 500 kbit/s units (108 = 54 Mbit/s).
      - Click variable C($TX_RATE) of the rendered configuration.
    type: int
    default: 108
  tx_power:
    description:
      - TX power in dBm (reported by the agent only).
      - Click variable C($TX_POWER) of the rendered configuration.
    type: int
    default: 20
  hidden:
    description:
      - Hidden mode (do not answer broadcast probe requests).
      - Click variable C($HIDDEN) of the rendered configuration.
    type: bool
    default: false
  multichannel:
    description:
      - Multichannel agent (CSA-based handoff between channels).
      - Click variable C($MULTICHANNEL) of the rendered configuration.
    type: bool
    default: true
  default_beacon_interval:
    description:
      - Beacon interval in ms.
      - Click variable C($DEFAULT_BEACON_INTERVAL) of the rendered configuration.
    type: int
    default: 100
  burst_beacon_interval:
    description:
      - Beacon interval during a CSA burst, ms.
      - Click variable C($BURST_BEACON_INTERVAL) of the rendered configuration.
    type: int
    default: 10
  burst_length:
    description:
      - Number of beacons in a burst.
      - Click variable C($BURST) of the rendered configuration.
    type: int
    default: 10
  measurement_beacon_interval:
    description:
      - Interval of measurement beacons, ms.
      - Click variable C($MEASUREMENT_BEACON_INTERVAL) of the rendered configuration.
    type: int
    default: 100
  capture_mode:
    description:
      - Capture mode (log the frames of one station).
      - Click variable C($CAPTURE_MODE) of the rendered configuration.
    type: bool
    default: false
  capture_mac:
    description:
      - Station captured in capture mode.
      - Click variable C($MAC_CAPTURE) of the rendered configuration.
    type: str
    default: "ff:ff:ff:ff:ff:ff"
  control_port:
    description:
      - ControlSocket TCP port.
      - Click variable C($CONTROL_PORT) of the rendered configuration.
    type: int
    default: 6777
  chatter_port:
    description:
      - ChatterSocket TCP port.
      - Click variable C($CHATTER_PORT) of the rendered configuration.
    type: int
    default: 6778
  ping_interval:
    description:
      - Seconds between pings to the master.
      - Click variable C($PING_INTERVAL) of the rendered configuration.
    type: float
    default: 2.0
  monitor_interface:
    description:
      - Monitor interface of the serving radio.
      - Click variable C($MON_DEV) of the rendered configuration.
    type: str
    default: "mon0"
  scan_interface:
    description:
      - Monitor interface of the scanning radio (multichannel).
      - Click variable C($SCAN_DEV) of the rendered configuration.
    type: str
    default: "mon1"
  tap_interface:
    description:
      - Tap interface toward the host network stack.
      - Click variable C($TAP_DEV) of the rendered configuration.
    type: str
    default: "ap"
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff is the configuration before and after.
  platform:
    description: Target OS/families that can be operated against.
    platforms: posix
    support: full
    details: Needs only a POSIX shell, C(cat), C(mkdir) and C(mv) on the AP (and Click for the check).
notes:
  - Restart the agent (C(click agent.cli)) after a change; the C(ap) role does it with a handler.
author:
  - arnab.testbed developers (@arnab-testbed)
"""

EXAMPLES = r"""
- name: Agent configuration for each AP
  arnab.testbed.odin_agent_config:
    ap_mac: "{{ ap_mac }}"
    agent_ip: "{{ ansible_host }}"
    master_ip: "{{ hostvars[groups['ocs_servers'][0]].ansible_host }}"
    channel: "{{ ap_channel }}"
    ssid: arnab
  notify: Restart Odin agent
"""

RETURN = r"""
dest:
  description: Path written.
  returned: always
  type: str
  sample: /etc/odin/agent.cli
checksum:
  description: SHA-1 of the rendered configuration.
  returned: always
  type: str
config:
  description: The parameters after defaults and validation.
  returned: always
  type: dict
click_check:
  description:
    - "C(passed) when C(click -q) loaded the new configuration, C(skipped: no click on the AP) when Click is not
      there, C(unchanged) when nothing had to be written, C(refused) (with the task failed) when Click refused it."
  returned: always
  type: str
  sample: passed
click_errors:
  description: Click's error lines for a refused configuration.
  returned: when Click refused the configuration
  type: list
  elements: str
  sample: ["<stdin>:36: 'odinagent :: OdinAgent' output 4 unused", "Router could not be initialized!"]
commands:
  description: Shell commands run (or, in check mode, to be run) on the AP to write the file (empty when unchanged).
  returned: always
  type: list
  elements: str
"""
