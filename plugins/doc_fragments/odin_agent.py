# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of every module that talks to an Odin agent's Click ControlSocket.
    DOCUMENTATION = r"""
options:
  agent:
    description:
      - Address (IP or host name) of the Odin agent, i.e. of the AP, as seen from where the module runs
        (usually the control node, with C(delegate_to=localhost)).
    type: str
    required: true
  port:
    description:
      - TCP port of the agent's Click ControlSocket.
    type: int
    default: 6777
  timeout:
    description:
      - Seconds to wait for the connection and for each reply.
    type: float
    default: 5.0
notes:
  - The agent is reached over Click's ControlSocket protocol (TCP); the AP itself needs no Python.
  - Every command's status line is read and any non-2xx reply fails the task with the agent's message.
"""
