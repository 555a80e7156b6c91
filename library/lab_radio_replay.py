#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lab_radio_replay
short_description: Replay a scenario, a trace or a signal timeline in the emulated lab's radio
description:
  - Lab only (the top-level C(library/) of this checkout, not part of the collection). Talks to the emulated radio
    (C(lab/arnab_lab/radio.py)) over its UNIX socket; run it on the control node (C(delegate_to) C(localhost)).
  - With O(scenario), starts a scenario file (C(scenarios/*.yml), see C(docs/ocs.md)) for every client of the
    radio, or for O(clients) - each client the file names follows its signal timeline or positions; each other
    one goes back where the inventory puts it.
  - With O(trace) or O(signal), starts that timeline for each of O(clients).
  - Every client starts at once, at the time of the request. The radio checks everything first (file, clients,
    APs, times, numbers); when anything is wrong nothing changes and the task fails saying what and where.
  - Not idempotent - a replay always starts its timelines over (changed).
version_added: "1.0.0"
author: arnab.testbed contributors
options:
  scenario:
    description: A scenario file (YAML) on the control node.
    type: path
  signal:
    description:
      - >-
        A signal timeline C([[t_s, {ap: dBm, ...}], ...]) - linear between points, held after the last one. Every
        point names the same APs; an AP it does not name hears nothing of the client while it replays.
    type: list
    elements: raw
  trace:
    description: >-
      A trace C([[t_s, x, y], ...]) the clients walk, as the inventory's C(client_trace).
    type: list
    elements: raw
  clients:
    description:
      - The clients (inventory names or MACs as the radio knows them). Required with O(signal) and O(trace).
      - With O(scenario), only these - default every client of the radio.
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
    description: The radio checks the replay and says which requests would start it; nothing starts.
  diff_mode:
    support: none
seealso:
  - module: lab_radio_move
  - module: lab_radio_state
"""

EXAMPLES = r"""
- name: The default walk
  lab_radio_replay:
    scenario: "{{ playbook_dir }}/../scenarios/walk.yml"
  delegate_to: localhost
  register: walk_replay    # walk_replay.started: when it started (epoch), for the walk report

- name: Client1 fades from ap1 to ap2 in 10 s
  lab_radio_replay:
    clients: [client1]
    signal:
      - [0, {ap1: -45, ap2: -85}]
      - [10, {ap1: -85, ap2: -45}]
  delegate_to: localhost

- name: Client2 walks
  lab_radio_replay:
    clients: client2
    trace: [[0, 5, 0], [20, 38, 0]]
  delegate_to: localhost
"""

RETURN = r"""
requests:
  description: The radio requests that start (or, in check mode, would start) the replay, in order.
  returned: success
  type: list
  elements: dict
  sample: [{"op": "signal", "client": "client1", "signal": [[0.0, {"ap1": -45.0, "ap2": -85.0}]]},
           {"op": "reset", "client": "client2"}]
clients:
  description: The clients the replay starts for.
  returned: success
  type: list
  elements: str
started:
  description: When the replay started (epoch seconds, the control node's clock); null in check mode.
  returned: success
  type: float
duration_s:
  description: The scenario's duration (O(signal), O(trace) - the last point's time).
  returned: success
  type: float
source:
  description: The scenario file, or C(signal) / C(trace).
  returned: success
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.lab_radio import SOCKET_ARGS, RadioError, ask, client_name, state

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False


def last_time(points):
    """The last point's time (an inline timeline's duration) as far as it can be read; the radio checks it."""
    try:
        return max(float(points[-1][0]), 0.001)
    except (TypeError, ValueError, IndexError, KeyError):
        return 1.0


def main():
    module = AnsibleModule(argument_spec=dict(scenario=dict(type="path"), signal=dict(type="list", elements="raw"),
                                              trace=dict(type="list", elements="raw"),
                                              clients=dict(type="list", elements="str"), **SOCKET_ARGS),
                           mutually_exclusive=[("scenario", "signal", "trace")],
                           required_one_of=[("scenario", "signal", "trace")],
                           supports_check_mode=True)
    p = module.params
    clients = p["clients"]
    if p["scenario"]:
        source = p["scenario"]
        if not HAS_YAML:
            module.fail_json(msg="reading a scenario file needs PyYAML on the control node")
        try:
            with open(source) as handle:
                data = yaml.safe_load(handle)
        except (OSError, IOError) as exc:
            module.fail_json(msg="%s: cannot read it: %s" % (source, getattr(exc, "strerror", None) or exc))
        except yaml.YAMLError as exc:
            module.fail_json(msg="%s: not YAML: %s" % (source, exc))
    else:
        kind = "signal" if p["signal"] is not None else "trace"
        if not clients:
            module.fail_json(msg="%s needs clients: the clients that follow it" % kind)
        points = p[kind]
        source = kind
        data = {"duration_s": last_time(points),
                "clients": dict((c, {"signal" if kind == "signal" else "positions": points}) for c in clients)}
    try:
        if clients:
            radio_state = state(p["socket"], p["timeout"])
            clients = [client_name(radio_state, c) for c in clients]
            if not p["scenario"]:
                data["clients"] = dict((c, data["clients"][o]) for c, o in zip(clients, p["clients"]))
        request = {"op": "replay", "scenario": data, "source": source, "clients": clients,
                   "check": module.check_mode}
        sent = time.time()
        reply = ask(p["socket"], request, p["timeout"])
        answered = time.time()
    except RadioError as exc:
        module.fail_json(msg=str(exc))
    if not reply.get("ok"):
        module.fail_json(msg=reply.get("error") or "the emulated radio refused the replay", source=source)
    requests = reply.get("requests", [])
    module.exit_json(changed=True, requests=requests, clients=[r["client"] for r in requests], source=source,
                     duration_s=reply.get("duration_s"),
                     started=None if module.check_mode else round((sent + answered) / 2.0, 6))


if __name__ == "__main__":
    main()
