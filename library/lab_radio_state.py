#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_radio_state
short_description: What the emulated lab's radio hears and who is linked where
description:
  - Lab only (the top-level C(library/) of this checkout, not part of the collection). Reads the emulated radio
    (C(lab/arnab_lab/radio.py)) over its UNIX socket; run it on the control node (C(delegate_to) C(localhost)).
  - Changes nothing.
version_added: "1.0.0"
author: arnab.testbed contributors
options:
  clients:
    description: Only these clients (inventory names or MACs); default every client of the radio.
    type: list
    elements: str
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
    description: Reads the radio as without check mode.
  diff_mode:
    support: none
seealso:
  - module: lab_radio_move
  - module: lab_radio_replay
"""

EXAMPLES = r"""
- name: What the radio hears
  lab_radio_state:
  delegate_to: localhost
  register: radio

- name: Client1 is on ap2
  ansible.builtin.assert:
    that: radio.links.client1 == 'ap2'
"""

RETURN = r"""
links:
  description: Per client, the AP that carries its frames now (holds its vAP, same channel, in range), or null.
  returned: success
  type: dict
  sample: {"client1": "ap2", "client2": "ap2"}
hears:
  description:
    - Per AP, what it hears of each client in dBm on the client's channel (what an active scan gets), null -
      nothing (below the sensitivity, or an AP a signal replay does not name).
  returned: success
  type: dict
  sample: {"ap1": {"client1": -71.2}, "ap2": {"client1": -48.0}}
clients:
  description:
    - Per client - C(mac), C(channel) (null while it switches), C(position), C(link), C(vaps) (APs holding its vAP),
      C(rssi) (its level at each AP before sensitivity and channels), C(heard), C(replay) (C(kind) trace or signal,
      C(elapsed_s), C(length_s); null - none), C(switching), C(held).
  returned: success
  type: dict
aps:
  description: Per AP - C(mac), C(channel), C(position).
  returned: success
  type: dict
model:
  description: The radio's model (path loss, sensitivity, channel switch delay).
  returned: success
  type: dict
emulated:
  description: Always true - the radio is the lab's emulation.
  returned: success
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_radio import SOCKET_ARGS, RadioError, client_name, state


def main():
    module = AnsibleModule(argument_spec=dict(clients=dict(type="list", elements="str"), **SOCKET_ARGS),
                           supports_check_mode=True)
    p = module.params
    try:
        now = state(p["socket"], p["timeout"])
        names = sorted(now["clients"]) if p["clients"] is None else [client_name(now, c) for c in p["clients"]]
    except RadioError as exc:
        module.fail_json(msg=str(exc))
    clients = dict((n, now["clients"][n]) for n in names)
    hears = dict((ap, dict((n, (c.get("heard") or {}).get(ap)) for n, c in clients.items())) for ap in now["aps"])
    module.exit_json(changed=False, emulated=bool(now.get("emulated")), model=now.get("model", {}), aps=now["aps"],
                     clients=clients, links=dict((n, c.get("link")) for n, c in clients.items()), hears=hears)


if __name__ == "__main__":
    main()
