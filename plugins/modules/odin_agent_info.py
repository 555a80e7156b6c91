#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: odin_agent_info
short_description: Read an Odin agent's state through its Click ControlSocket
version_added: 0.1.0
description:
  - Reads the OdinAgent read handlers of one agent (vAP table, channel, beacon interval, per-station
    statistics, subscriptions, per-station RSSI, scanning flags, TX power, debug level) and returns them
    as structured data.
  - Runs where Ansible runs it (normally the control node); the AP needs no Python.
extends_documentation_fragment:
  - arnab.testbed.odin_agent
options:
  gather:
    description:
      - Which handlers to read.
      - Reading C(rxstats) or C(txstats) resets the agent's counters, as on a real OdinAgent.
    type: list
    elements: str
    choices: [table, channel, interval, rxstats, txstats, subscriptions, sta_rssi, scanning_flags, txpower, debug]
    default: [table, channel, interval, rxstats, txstats, subscriptions, sta_rssi, scanning_flags, txpower, debug]
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Only reads; behaves the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
author:
  - arnab.testbed developers (@arnab-testbed)
"""

EXAMPLES = r"""
- name: Read ap1's agent
  arnab.testbed.odin_agent_info:
    agent: 10.77.0.11
  delegate_to: localhost
  register: ap1_agent

- name: Only the vAP table and the channel
  arnab.testbed.odin_agent_info:
    agent: "{{ hostvars['ap2'].ansible_host }}"
    gather: [table, channel]
  delegate_to: localhost
"""

RETURN = r"""
agent_info:
  description: What the agent reported; keys present depend on O(gather).
  returned: success
  type: dict
  contains:
    endpoint:
      description: host:port of the ControlSocket.
      type: str
      sample: "10.77.0.11:6777"
    protocol:
      description: The ControlSocket banner.
      type: str
      sample: "Click::ControlSocket/1.3"
    table:
      description: One entry per vAP.
      type: list
      elements: dict
      sample: [{"sta_mac": "02:c0:00:00:00:01", "sta_ip": "10.78.0.100", "bssid": "00:1b:b3:00:00:01", "ssids": ["arnab"]}]
    channel:
      description: The AP's channel.
      type: int
      sample: 6
    frequency_mhz:
      description: Centre frequency of that channel.
      type: int
      sample: 2437
    beacon_interval_ms:
      description: Beacon interval (handler C(interval)).
      type: int
      sample: 100
    rxstats:
      description: Per-station receive statistics since the last read (packets, avg_rate, avg_signal, ...).
      type: dict
    txstats:
      description: Per-station transmit statistics since the last read.
      type: dict
    subscriptions:
      description: Active subscriptions (id, sta_mac, stat, relation, value).
      type: list
      elements: dict
    sta_rssi:
      description: Last RSSI (dBm) per station with a vAP here.
      type: dict
      sample: {"02:c0:00:00:00:01": -41}
    scanning_flags:
      description: client_scanning, ap_scanning, measurement_beacon flags.
      type: dict
    txpower:
      description: TX power the agent reports (dBm).
      type: int
    debug:
      description: Odin debug level.
      type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlError
from ansible_collections.arnab.testbed.plugins.module_utils.odin import OdinValueError
from ansible_collections.arnab.testbed.plugins.module_utils.validate import ValidationError
from ansible_collections.arnab.testbed.plugins.module_utils.odin_client import (
    AGENT_ARGUMENT_SPEC, INFO_ITEMS, OdinAgentClient, check_params)


def main():
    argument_spec = dict(AGENT_ARGUMENT_SPEC,
                         gather=dict(type="list", elements="str", choices=list(INFO_ITEMS), default=list(INFO_ITEMS)))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        check_params(params)
    except ValidationError as exc:
        module.fail_json(msg=str(exc))
    try:
        with OdinAgentClient(params["agent"], params["port"], params["timeout"]) as agent:
            info = agent.info(params["gather"])
    except ClickControlError as exc:
        module.fail_json(msg="Odin agent %s: %s" % (params["agent"], exc), code=exc.code)
    except OdinValueError as exc:
        module.fail_json(msg="Odin agent %s sent something unexpected: %s" % (params["agent"], exc))
    module.exit_json(changed=False, agent_info=info)


if __name__ == "__main__":
    main()
