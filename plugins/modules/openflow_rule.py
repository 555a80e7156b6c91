#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: openflow_rule
short_description: OpenFlow flows present or absent on an Open vSwitch, owned by cookie
version_added: 0.1.0
description:
  - Manages flows with C(ovs-ofctl) on a local bridge or a remote switch (C(tcp:), C(ssl:), C(unix:)).
  - The module owns the flows carrying O(cookie); it reads only those (C(dump-flows cookie=C/-1)),
    compares them with the wanted ones (port names resolved to numbers, C(ip)/C(arp) shorthands
    expanded) and adds or deletes only the difference. Flows with other cookies are never touched.
  - Every option is checked before the switch is read or changed. No string option may hold a control character
    (newline, CR, NUL, tab, anything below 0x20, 0x7f); a match is C(key=value) words and shorthands separated by
    commas, without spaces, without C(cookie), C(table), C(priority) or C(actions) (options of their own); actions
    hold letters, digits and C(_.:/+-,()=[]>) only, without spaces inside an action. So each flow is one line of
    the flow mods that C(ovs-ofctl add-flows) reads, and no value can add another flow mod or reach another cookie.
  - O(odin_client_pair) is a shorthand for Odin's per-client flow pair at an AP (cookie, priority 200,
    C(in_port=<ap>,dl_type=0x0800,nw_src=<ip> -> output:<uplink>) and the reverse), plus the ARP pair
    C(arp_spa)/C(arp_tpa) that a client needs to resolve addresses.
options:
  target:
    description:
      - The switch, as C(ovs-ofctl) names it, a local bridge (C(br0)) or a connection string
        (C(tcp:10.77.0.11:6634), C(ssl:HOST:PORT), C(unix:/run/openvswitch/br0.mgmt)).
    type: str
    required: true
  openflow_version:
    description: OpenFlow version to speak.
    type: str
    choices: ['1.0', '1.3']
    default: '1.0'
  cookie:
    description:
      - Cookie of the flows this task owns.
      - Default with O(odin_client_pair) is the per-client cookie derived from its C(sta_mac)
        (C(0x0d1a) followed by the MAC), or Odin's C(12345) without a C(sta_mac). Required otherwise.
      - 1 to 2^64-2; C(0) is refused (every flow added without a cookie carries it, so the task would own them).
    type: int
  priority:
    description: Default priority of the flows in O(flows) (0 to 65535).
    type: int
    default: 32768
  flows:
    description: The flows (besides O(odin_client_pair)).
    type: list
    elements: dict
    default: []
    suboptions:
      match:
        description:
          - Match in C(ovs-ofctl) syntax, e.g. C(in_port=ap,ip,nw_src=10.78.0.100).
          - Values may hold letters, digits and C(_.:/+-); no spaces, no control characters.
        type: str
        required: true
      actions:
        description:
          - Actions in C(ovs-ofctl) syntax, e.g. C(output:eth1).
          - Letters, digits and C(_.:/+-,()=[]>) only, spaces only around commas, balanced parentheses.
        type: str
        required: true
      priority:
        description: Priority of this flow; default O(priority).
        type: int
      table:
        description: Table of this flow (0 to 254).
        type: int
        default: 0
  odin_client_pair:
    description: Odin's per-client flows at an AP (IPv4 both ways, plus ARP unless O(odin_client_pair.arp=false)).
    type: dict
    suboptions:
      sta_ip:
        description: The client's IPv4 address (dotted quad).
        type: str
        required: true
      sta_mac:
        description: The client's MAC; gives the default O(cookie).
        type: str
      ap_port:
        description: Port toward the radio (the agent's tap); an interface name or a port number.
        type: str
        default: ap
      uplink_port:
        description: Uplink port toward the data network; an interface name or a port number.
        type: str
        default: eth1
      arp:
        description: Also pass the client's ARP both ways.
        type: bool
        default: true
      priority:
        description: Priority of the pair.
        type: int
        default: 200
  exclusive:
    description:
      - With O(state=present), delete flows with O(cookie) that are not wanted (the cookie is ours).
    type: bool
    default: true
  state:
    description:
      - V(present) makes the cookie's flows equal to the wanted ones.
      - V(absent) deletes the given flows, or every flow with O(cookie) when none are given.
    type: str
    choices: [present, absent]
    default: present
  ofctl:
    description: C(ovs-ofctl) to run, a program name looked up on C(PATH) or an absolute path (no arguments).
    type: path
    default: ovs-ofctl
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff lists the cookie's flows before and after.
requirements:
  - C(ovs-ofctl) where the module runs.
author:
  - arnab.testbed developers (@arnab-testbed)
"""

EXAMPLES = r"""
- name: Odin flows for client1 at ap1 (from the control node, over the AP's ptcp listener)
  arnab.testbed.openflow_rule:
    target: tcp:10.77.0.11:6634
    odin_client_pair:
      sta_ip: 10.78.0.100
      sta_mac: "02:c0:00:00:00:01"
      ap_port: ap
      uplink_port: eth1
  delegate_to: localhost

- name: Two DHCP flows on the AP bridge
  arnab.testbed.openflow_rule:
    target: tcp:10.77.0.11:6634
    cookie: 0xd4c9
    flows:
      - {match: "in_port=ap,udp,tp_src=68,tp_dst=67", actions: "output:eth1", priority: 300}
      - {match: "in_port=eth1,udp,tp_src=67,tp_dst=68", actions: "output:ap", priority: 300}
  delegate_to: localhost

- name: Remove every flow of client1 from ap2
  arnab.testbed.openflow_rule:
    target: tcp:10.77.0.12:6634
    cookie: "{{ 0x0d1a02c000000001 }}"
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
commands:
  description:
    - The C(ovs-ofctl) command lines run (or that would run in check mode).
    - All changes to the switch go in one C(ovs-ofctl add-flows) whose standard input (shown as a
      here-document) holds C(add) lines, then C(delete_strict) lines.
  returned: always
  type: list
  elements: str
  sample:
    - "ovs-ofctl -O OpenFlow10 add-flows tcp:10.77.0.11:6634 - <<'EOF'\nadd cookie=0x3039,table=0,priority=200,\
      in_port=1,dl_type=0x0800,nw_src=10.78.0.100,actions=output:2\nEOF"
added:
  description: Flows added.
  returned: always
  type: list
  elements: dict
deleted:
  description: Flows deleted.
  returned: always
  type: list
  elements: dict
cookie:
  description: The cookie the task owns.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils import openflow, validate

MAX_COOKIE = 2 ** 64 - 2   # all ones is the "any cookie" of a flow mod


def check_params(params):
    """Every option, before anything is read or changed: raises OpenFlowError or ValidationError."""
    validate.strings(params)
    openflow.validate_target(params["target"])
    validate.command(params["ofctl"], "ofctl")
    _int_range(params["priority"], 0, 65535, "priority")
    for i, item in enumerate(params["flows"] or ()):
        if item.get("priority") is not None:
            _int_range(item["priority"], 0, 65535, "flows[%d].priority" % i)
        _int_range(item.get("table") or 0, 0, 254, "flows[%d].table" % i)
    pair = params["odin_client_pair"]
    if pair:
        if pair.get("sta_mac") is not None:
            validate.mac(pair["sta_mac"], "odin_client_pair.sta_mac")
        _int_range(pair["priority"], 0, 65535, "odin_client_pair.priority")


def _int_range(value, low, high, what):
    if not low <= int(value) <= high:
        raise validate.ValidationError("%s %d is out of range (%d to %d)" % (what, int(value), low, high))


def wanted_flows(params):
    """-> (cookie, [Flow]) from the module's options."""
    pair = params["odin_client_pair"]
    cookie = params["cookie"]
    if cookie is None and pair:
        cookie = (openflow.client_cookie(validate.mac(pair["sta_mac"], "odin_client_pair.sta_mac"))
                  if pair.get("sta_mac") else openflow.ODIN_COOKIE)
    if cookie is None:
        raise openflow.OpenFlowError("cookie is required unless odin_client_pair is given")
    if not 0 < cookie <= MAX_COOKIE:
        raise openflow.OpenFlowError("cookie %d: use 1 to 2^64-2 (0 is the cookie of every flow added without one: "
                                     "the task would own flows it did not add)" % cookie)
    flows = openflow.flows_from_params(params["flows"], cookie, params["priority"])
    if pair:
        flows += openflow.odin_client_pair(pair["sta_ip"], pair["ap_port"], pair["uplink_port"], cookie,
                                           pair["priority"], pair["arp"])
    return cookie, flows


def main():
    argument_spec = dict(
        target=dict(type="str", required=True),
        openflow_version=dict(type="str", choices=list(openflow.PROTOCOLS), default="1.0"),
        cookie=dict(type="int"),
        priority=dict(type="int", default=32768),
        flows=dict(type="list", elements="dict", default=[], options=dict(
            match=dict(type="str", required=True), actions=dict(type="str", required=True),
            priority=dict(type="int"), table=dict(type="int", default=0))),
        odin_client_pair=dict(type="dict", options=dict(
            sta_ip=dict(type="str", required=True), sta_mac=dict(type="str"),
            ap_port=dict(type="str", default="ap"), uplink_port=dict(type="str", default="eth1"),
            arp=dict(type="bool", default=True), priority=dict(type="int", default=openflow.ODIN_PRIORITY))),
        exclusive=dict(type="bool", default=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        ofctl=dict(type="path", default="ovs-ofctl"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params

    def run(argv, stdin=None):
        argv = [p["ofctl"]] + argv[1:]
        return module.run_command(argv, data=stdin, binary_data=True) if stdin else module.run_command(argv)

    result = dict(changed=False, commands=[], added=[], deleted=[])
    try:
        check_params(p)
        cookie, want = wanted_flows(p)
        result["cookie"] = cookie
        table = openflow.FlowTable(run, p["target"], p["openflow_version"])
        before = table.flows([cookie])  # also proves the switch answers before anything changes
        if p["state"] == "present":
            argvs, added, deleted = table.plan(want, [cookie], p["exclusive"])
        else:
            argvs, deleted = table.plan_absent(want, [cookie])
            added = []
        for command in argvs:
            command.argv = [p["ofctl"]] + command.argv[1:]
        result.update(commands=[c.text() for c in argvs],
                      added=[f.to_dict() for f in added], deleted=[f.to_dict() for f in deleted],
                      changed=bool(argvs))
        if argvs and not module.check_mode:
            table.apply(argvs)
    except (openflow.OpenFlowError, ValueError) as exc:   # ValidationError is a ValueError
        module.fail_json(msg=str(exc), **result)

    if module._diff:
        after = [f for f in before if f not in set(deleted)] + added
        result["diff"] = dict(before="".join(f.spec() + "\n" for f in sorted(before, key=openflow.Flow.spec)),
                              after="".join(f.spec() + "\n" for f in sorted(after, key=openflow.Flow.spec)),
                              before_header="%s cookie %#x" % (p["target"], cookie),
                              after_header="%s cookie %#x" % (p["target"], cookie))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
