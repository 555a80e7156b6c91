#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_radio_move
short_description: Put a client of the emulated lab's radio at a position
description:
  - Lab only (the top-level C(library/) of this checkout, not part of the collection). Talks to the emulated radio
    (C(lab/arnab_lab/radio.py)) over its UNIX socket; run it on the control node (C(delegate_to) C(localhost)).
  - The radio then hears the client with its path-loss model at that position. A move stops the trace or signal
    replay the client was following.
  - Idempotent - a client already at that position, following no trace or signal replay, is not changed.
  - Nothing changes when it fails (no radio, unknown client, bad position).
version_added: "1.0.0"
author: arnab.testbed contributors
options:
  client:
    description: The client's inventory name (C(client1)) or MAC.
    type: str
    required: true
  position:
    description: Where to put it, C([x, y]) in metres, the inventory's C(ap_position)/C(client_position) frame.
    type: list
    elements: float
    required: true
  socket:
    description: The radio's UNIX socket.
    type: path
    default: /run/arnab-lab/radio.sock
  timeout:
    description: Seconds to wait for the radio's answer.
    type: float
    default: 5.0
attributes:
  check_mode:
    support: full
    description: Reports whether the client would move; moves nothing.
  diff_mode:
    support: full
    description: The client's position and replay before and after.
notes:
  - Positions are compared to 0.01 m (the radio reports them rounded so).
seealso:
  - module: lab_radio_replay
  - module: lab_radio_state
"""

EXAMPLES = r"""
- name: Client1 walks next to ap2
  lab_radio_move:
    client: client1
    position: [37, 0]
  delegate_to: localhost

- name: Where the inventory puts it, by MAC
  lab_radio_move:
    client: "02:c0:00:00:00:01"
    position: "{{ hostvars['client1'].client_position }}"
  delegate_to: localhost
"""

RETURN = r"""
client:
  description: The client's name.
  returned: success
  type: str
  sample: client1
position:
  description: Its position now (or after the move, in check mode).
  returned: success
  type: list
  elements: float
  sample: [37.0, 0.0]
previous:
  description: Its position before.
  returned: success
  type: list
  elements: float
  sample: [5.0, 0.0]
stopped_replay:
  description: The replay the move stopped (C(trace) or C(signal)), or null.
  returned: success
  type: str
link:
  description: The AP that carries the client's frames after the move (null - none); null in check mode.
  returned: success
  type: str
heard:
  description: What each AP hears of the client after the move, in dBm (null - nothing); empty in check mode.
  returned: success
  type: dict
  sample: {"ap1": -67.1, "ap2": -44.3}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_radio import SOCKET_ARGS, RadioError, call, client_name, position, state


def main():
    module = AnsibleModule(argument_spec=dict(client=dict(type="str", required=True),
                                              position=dict(type="list", elements="float", required=True),
                                              **SOCKET_ARGS),
                           supports_check_mode=True)
    p = module.params
    try:
        where = position(p["position"])
        before = state(p["socket"], p["timeout"])
        name = client_name(before, p["client"])
    except RadioError as exc:
        module.fail_json(msg=str(exc))
    mine = before["clients"][name]
    replay = (mine.get("replay") or {}).get("kind")
    changed = replay is not None or [round(v, 2) for v in where] != [round(v, 2) for v in mine["position"]]
    result = dict(changed=changed, client=name, position=where, previous=mine["position"], stopped_replay=replay,
                  link=None, heard={})
    if module._diff:
        result["diff"] = {"before": {"position": mine["position"], "replay": replay},
                          "after": {"position": where if changed else mine["position"], "replay": None}}
    if not changed:
        result.update(position=mine["position"], link=mine.get("link"), heard=mine.get("heard") or {})
        module.exit_json(**result)
    if module.check_mode:
        module.exit_json(**result)
    try:
        call(p["socket"], {"op": "move", "client": name, "position": where}, p["timeout"])
        after = state(p["socket"], p["timeout"])["clients"][name]
    except RadioError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(link=after.get("link"), heard=after.get("heard") or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
