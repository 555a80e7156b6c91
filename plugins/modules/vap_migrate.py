#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vap_migrate
short_description: Move a client's vAP and flows to another AP (tier 1, connectivity migration)
version_added: 0.1.0
description:
  - Finds the AP serving O(sta_mac) by reading every candidate agent's vAP table, then moves the client to
    O(target) as the Odin master's multichannel handoff does, and closes Odin's gap of leaving the client's
    flows on the old AP.
  - "Steps: C(channel_switch_announcement) on the serving agent when the channels differ; the client's flow
    pair (IPv4 and ARP) on the new AP's switch; on O(data_switch), the client's traffic toward the new AP's
    port; C(add_vap) on the new agent; after a CSA, a wait until the client has left the old channel
    (see O(wait_for_channel_switch)); C(remove_vap) on the old one; the client's flows (by cookie) off the
    old AP's switch."
  - With O(target=auto) every other agent scans the client on the serving channel (WRITE/READ
    C(scan_client)), the serving agent reports its C(sta_rssi), and the AP with the best RSSI wins
    (the serving AP on a tie, so no needless move).
  - Before changing anything it checks the MAC and IP, that O(target) is known, that every agent and
    switch answers and that the client has a vAP somewhere. If a later step fails, the steps done are
    undone in reverse order (a channel switch announcement cannot be undone).
  - Idempotent, when the client is already on O(target) with its flows in place nothing is sent.
options:
  sta_mac:
    description: MAC address of the client.
    type: str
    required: true
  sta_ip:
    description: IPv4 address of the client; default from the serving agent's vAP table.
    type: str
  ssids:
    description: SSIDs of the vAP; default from the serving agent's vAP table.
    type: list
    elements: str
  target:
    description: Name of the AP (from O(aps)) to move to, or V(auto) for the best AP by RSSI.
    type: str
    required: true
  aps:
    description: The candidate APs (the serving one included).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: AP name (inventory host name).
        type: str
        required: true
      agent:
        description: Address of its Odin agent.
        type: str
        required: true
      port:
        description: Agent ControlSocket port.
        type: int
        default: 6777
      switch:
        description: OpenFlow target of its Open vSwitch (e.g. C(tcp:10.77.0.11:6634)); no flows there if unset.
        type: str
      ap_port:
        description: Its switch port toward the radio.
        type: str
        default: ap
      uplink_port:
        description: Its switch uplink port.
        type: str
        default: eth1
      data_switch_port:
        description: Port of O(data_switch) toward this AP; default the AP's name.
        type: str
  data_switch:
    description: OpenFlow target of the data switch joining the APs' uplinks (e.g. C(tcp:10.77.0.5:6634)).
    type: str
  openflow_version:
    description:
      - OpenFlow version for every switch.
      - With V(1.3), the flow changes of the move go over one OpenFlow connection per C(tcp:)/C(unix:) switch,
        opened before the move starts, instead of one C(ovs-ofctl) run each (reads still use C(ovs-ofctl)).
    type: str
    choices: ['1.0', '1.3']
    default: '1.0'
  cookie:
    description: Cookie of the client's flows; default C(0x0d1a) followed by the client's MAC.
    type: int
  arp:
    description: Include the ARP flow pair for the client.
    type: bool
    default: true
  scan_time:
    description: Seconds between asking agents to scan and reading their result (O(target=auto)).
    type: float
    default: 0.2
  wait_for_channel_switch:
    description:
      - After a channel switch announcement, wait 4 beacon intervals of the serving AP (the CSA count) before
        removing the old vAP, so the old AP serves the client until it leaves the channel (the ARNAB paper's
        order). With V(false) the old vAP goes at once, as the Odin master does, and the client has no link
        from then until its switch completes.
    type: bool
    default: true
  timeout:
    description: Seconds for each agent connection and reply.
    type: float
    default: 5.0
  ofctl:
    description: Path of C(ovs-ofctl).
    type: path
    default: ovs-ofctl
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: With O(target=auto), agents still scan (a measurement; it changes no vAP or flow).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff shows which AP holds the client's vAP before and after.
requirements:
  - C(ovs-ofctl) where the module runs, when switches are given.
author:
  - arnab.testbed developers (@arnab-testbed)
"""

EXAMPLES = r"""
- name: Move client1 to ap2
  arnab.testbed.vap_migrate:
    sta_mac: "02:c0:00:00:00:01"
    target: ap2
    aps:
      - {name: ap1, agent: 10.77.0.11, switch: "tcp:10.77.0.11:6634"}
      - {name: ap2, agent: 10.77.0.12, switch: "tcp:10.77.0.12:6634"}
    data_switch: tcp:10.77.0.5:6634
  delegate_to: localhost
  register: handoff

- name: Let RSSI decide (agents only, no flows)
  arnab.testbed.vap_migrate:
    sta_mac: "{{ hostvars['client1'].client_mac }}"
    target: auto
    aps:
      - {name: ap1, agent: "{{ hostvars['ap1'].ansible_host }}"}
      - {name: ap2, agent: "{{ hostvars['ap2'].ansible_host }}"}
  delegate_to: localhost
"""

RETURN = r"""
from_ap:
  description: AP that served the client before.
  returned: success
  type: str
  sample: ap1
to_ap:
  description: AP that serves the client now.
  returned: success
  type: str
  sample: ap2
channel_switch:
  description: Whether a channel switch announcement was (or would be) sent.
  returned: success
  type: bool
commands:
  description: Agent (ControlSocket) and switch (ovs-ofctl) commands, in order.
  returned: always
  type: list
  elements: str
timeline:
  description: Steps with their start (ms since the task started, time.monotonic) and duration.
  returned: success
  type: list
  elements: dict
  sample: [{"step": "preflight", "start_ms": 0.1, "duration_ms": 12.3}, {"step": "add_vap", "start_ms": 40.2, "duration_ms": 1.1}]
control_path_ms:
  description:
    - The control path, from the start of the move to the new AP serving the vAP with its flows in place (flows at
      the new AP, CSA, vAP added, data switch steered); the CSA countdown the client sits out and the clean-up at
      the old AP are not on it. 0 when nothing changed.
  returned: success
  type: float
total_ms:
  description: From the start of the first change to the end of the last one, countdown and clean-up included.
  returned: success
  type: float
started:
  description: When the migration started (seconds since the epoch), to line it up with other clocks.
  returned: success
  type: float
scan:
  description: RSSI (dBm, null = not heard) per AP when O(target=auto).
  returned: success
  type: dict
vap:
  description: The client's vAP.
  returned: success
  type: dict
cookie:
  description: Cookie of the client's flows.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils import ofp13, openflow
from ansible_collections.arnab.testbed.plugins.module_utils.odin import OdinValueError
from ansible_collections.arnab.testbed.plugins.module_utils.odin_client import OdinAgentClient, check_params
from ansible_collections.arnab.testbed.plugins.module_utils import validate
from ansible_collections.arnab.testbed.plugins.module_utils.validate import ValidationError
from ansible_collections.arnab.testbed.plugins.module_utils.vap_migration import ApSpec, MigrationError, VapMigration


def main():
    argument_spec = dict(
        sta_mac=dict(type="str", required=True),
        sta_ip=dict(type="str"),
        ssids=dict(type="list", elements="str"),
        target=dict(type="str", required=True),
        aps=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True), agent=dict(type="str", required=True),
            port=dict(type="int", default=6777), switch=dict(type="str"),
            ap_port=dict(type="str", default="ap"), uplink_port=dict(type="str", default="eth1"),
            data_switch_port=dict(type="str"))),
        data_switch=dict(type="str"),
        openflow_version=dict(type="str", choices=list(openflow.PROTOCOLS), default="1.0"),
        cookie=dict(type="int"),
        arp=dict(type="bool", default=True),
        scan_time=dict(type="float", default=0.2),
        timeout=dict(type="float", default=5.0),
        wait_for_channel_switch=dict(type="bool", default=True),
        ofctl=dict(type="path", default="ovs-ofctl"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:   # before any agent or switch is touched
        check_params(p, agent_keys=())
        validate.command(p["ofctl"], "ofctl")
        for ap in p["aps"]:
            check_params(ap)
            validate.word(ap["name"], "aps[].name")
            for key in ("ap_port", "uplink_port", "data_switch_port"):
                if ap[key] is not None:
                    validate.ifname(ap[key], "aps[%s].%s" % (ap["name"], key))
    except ValidationError as exc:
        module.fail_json(msg="nothing changed: %s" % exc)

    def run(argv, stdin=None):
        argv = [p["ofctl"]] + argv[1:]
        return module.run_command(argv, data=stdin, binary_data=True) if stdin else module.run_command(argv)

    try:
        migration = VapMigration(
            p["sta_mac"], [ApSpec(**ap) for ap in p["aps"]], p["target"],
            agent_factory=OdinAgentClient,
            flow_table_factory=lambda target: openflow.FlowTable(run, target, p["openflow_version"], wire=ofp13),
            data_switch=p["data_switch"], sta_ip=p["sta_ip"], ssids=p["ssids"], cookie=p["cookie"],
            arp=p["arp"], scan_time=p["scan_time"], timeout=p["timeout"],
            wait_for_channel_switch=p["wait_for_channel_switch"])
        result = migration.run(check_mode=module.check_mode)
    except MigrationError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except (OdinValueError, openflow.OpenFlowError) as exc:
        module.fail_json(msg="nothing changed: %s" % exc)
    if module._diff:
        result["diff"] = dict(before="vAP of %s on %s\n" % (result["sta_mac"], result["from_ap"]),
                              after="vAP of %s on %s\n" % (result["sta_mac"], result["to_ap"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
