#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: odin_vap
short_description: Make a client's light virtual AP (vAP) present or absent on an Odin agent
version_added: 0.1.0
description:
  - Reads the agent's vAP table (READ C(odinagent.table)) and writes only what differs
    (WRITE C(add_vap), C(set_vap) or C(remove_vap)), so a second run changes nothing.
  - The vAP BSSID defaults to Odin's convention, the client MAC with its first three octets set to C(00:1b:b3).
extends_documentation_fragment:
  - arnab.testbed.odin_agent
options:
  sta_mac:
    description: MAC address of the client (station).
    type: str
    required: true
  sta_ip:
    description: IPv4 address of the client. Required with O(state=present).
    type: str
  ssids:
    description: SSIDs the vAP announces (one word each). Required with O(state=present).
    type: list
    elements: str
    aliases: [ssid]
  bssid:
    description: BSSID of the vAP; default derived from O(sta_mac).
    type: str
  state:
    description: Whether the client's vAP should be on this agent.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff shows the vAP's table line before and after.
author:
  - arnab.testbed developers (@arnab-testbed)
"""

EXAMPLES = r"""
- name: Serve client1 from ap1
  arnab.testbed.odin_vap:
    agent: 10.77.0.11
    sta_mac: "02:c0:00:00:00:01"
    sta_ip: 10.78.0.100
    ssids: [arnab]
  delegate_to: localhost

- name: Remove client1's vAP from ap2
  arnab.testbed.odin_vap:
    agent: 10.77.0.12
    sta_mac: "02:c0:00:00:00:01"
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
commands:
  description: ControlSocket commands sent (or that would be sent in check mode).
  returned: always
  type: list
  elements: str
  sample: ["WRITE odinagent.add_vap 02:c0:00:00:00:01 10.78.0.100 00:1b:b3:00:00:01 arnab"]
vap:
  description: The vAP as it is now on the agent (null when absent).
  returned: always
  type: dict
  sample: {"sta_mac": "02:c0:00:00:00:01", "sta_ip": "10.78.0.100", "bssid": "00:1b:b3:00:00:01", "ssids": ["arnab"]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils.click_control import ClickControlError
from ansible_collections.arnab.testbed.plugins.module_utils.odin import OdinValueError, Vap, normalize_mac
from ansible_collections.arnab.testbed.plugins.module_utils.odin_client import (
    AGENT_ARGUMENT_SPEC, OdinAgentClient, check_params)
from ansible_collections.arnab.testbed.plugins.module_utils.validate import ValidationError


def main():
    argument_spec = dict(
        AGENT_ARGUMENT_SPEC,
        sta_mac=dict(type="str", required=True),
        sta_ip=dict(type="str"),
        ssids=dict(type="list", elements="str", aliases=["ssid"]),
        bssid=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ("sta_ip", "ssids"))])
    p = module.params
    # Validate everything before touching the agent.
    try:
        check_params(p)
        sta_mac = normalize_mac(p["sta_mac"], "sta_mac")
        want = Vap.build(sta_mac, p["sta_ip"], p["ssids"], p["bssid"]) if p["state"] == "present" else None
    except (OdinValueError, ValidationError) as exc:
        module.fail_json(msg=str(exc))

    commands = []
    try:
        with OdinAgentClient(p["agent"], p["port"], p["timeout"]) as agent:
            have = agent.table().get(sta_mac)
            action = None
            if want is not None and have != want:
                action = agent.set_vap if have else agent.add_vap
                commands.append("WRITE odinagent.%s %s" % ("set_vap" if have else "add_vap", want.to_line()))
            elif want is None and have is not None:
                action = agent.remove_vap
                commands.append("WRITE odinagent.remove_vap %s" % sta_mac)
            if commands and not module.check_mode:
                action(want if want is not None else sta_mac)
    except ClickControlError as exc:
        module.fail_json(msg="Odin agent %s: %s" % (p["agent"], exc), code=exc.code, commands=commands)
    except OdinValueError as exc:
        module.fail_json(msg="Odin agent %s: unexpected vAP table: %s" % (p["agent"], exc))

    # After this run the agent holds exactly `want` (None when absent).
    result = dict(changed=bool(commands), commands=commands, vap=want.to_dict() if want else None)
    if module._diff:
        result["diff"] = dict(before=(have.to_line() + "\n") if have else "",
                              after=(want.to_line() + "\n") if want else "",
                              before_header="%s vAP %s" % (p["agent"], sta_mac),
                              after_header="%s vAP %s" % (p["agent"], sta_mac))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
