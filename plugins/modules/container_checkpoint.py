#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: container_checkpoint
short_description: Pre-dump or dump an LXC container with CRIU into a directory
version_added: "0.1.0"
description:
  - Runs one C(lxc-checkpoint) pre-dump or dump of a running LXC container into O(images_dir), optionally
    incremental from a parent images directory, leaving the container running, stopped (resumable with SIGCONT)
    or dead.
  - Returns the CRIU statistics decoded from the C(stats-dump) image (freeze time, pages scanned, skipped
    because they were in the parent, written, ...).
  - Criu options that C(lxc-checkpoint) has no flag for (C(--leave-stopped), C(--track-mem), C(--network-lock),
    C(--enable-fs), C(--lazy-pages)) reach the criu that LXC executes through a CRIU configuration file named by
    C(CRIU_CONFIG_FILE), written into O(images_dir).
  - A pre-dump needs soft-dirty page tracking in the kernel (C(criu check --feature mem_dirty_track)); the module
    fails with a clear message, before touching the container, when the kernel lacks it.
  - Every option is checked before anything runs - the container name, the paths (absolute, O(parent_dir) may be
    relative), the criu command and the values that go into the CRIU configuration file (one option per line, so
    a newline there would add a criu option of its own); no string option may hold a control character.
author:
  - arnab.testbed developers (@arnab-testbed)
options:
  name:
    description: Name of the LXC container (letters, digits, C(-), C(_), C(.); not starting with C(-) or C(.)).
    type: str
    required: true
  images_dir:
    description:
      - Directory to write the images to, an absolute path. LXC refuses a directory that already holds a dump
        (C(inventory.img)); use a fresh one per dump.
    type: path
    required: true
  action:
    description: C(pre-dump) (memory only, the container keeps running) or C(dump) (a full checkpoint).
    type: str
    choices: [pre-dump, dump]
    default: dump
  parent_dir:
    description:
      - Images directory of the previous pre-dump; only pages dirtied since then are written.
        Given absolute or relative to O(images_dir); passed to criu relative to O(images_dir).
    type: path
  leave:
    description:
      - State of the container after a O(action=dump). V(running) keeps it running, V(stopped) leaves its tasks
        stopped (criu C(--leave-stopped); resume with SIGCONT), V(dead) lets criu kill them.
    type: str
    choices: [running, stopped, dead]
    default: running
  track_mem:
    description: Pass C(--track-mem) to a dump so a later dump can be incremental from it.
    type: bool
    default: false
  lxcpath:
    description: LXC path holding the container (absolute).
    type: path
    default: /var/lib/lxc
  network_lock:
    description: Criu C(--network-lock) method (this lab has no C(iptables-restore)).
    type: str
    choices: [nftables, iptables, skip]
    default: nftables
  enable_fs:
    description:
      - Filesystems criu may dump (C(--enable-fs)), one file system type per element (letters, digits, C(_),
        C(.)); systemd containers need C(ramfs).
    type: list
    elements: str
    default: [ramfs]
  criu:
    description:
      - The criu command (checked with C(criu --version) and used for feature checks), a program name looked up
        on C(PATH) or an absolute path, without arguments.
    type: str
    default: criu
  verbose:
    description: Verbose criu log (C(lxc-checkpoint -v)) in O(images_dir).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the checkpoint.
    type: int
    default: 300
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Returns the command lines it would run; the container is not touched.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Run on the edge that hosts the container, as root.
seealso:
  - module: arnab.testbed.container_migrate
  - module: arnab.testbed.state_transfer
"""

EXAMPLES = r"""
- name: First pre-dump (needs soft-dirty)
  arnab.testbed.container_checkpoint:
    name: ramsim
    images_dir: /var/lib/lxc/.ckpt/ramsim/1
    action: pre-dump

- name: Final dump on top of it, leave the tasks stopped
  arnab.testbed.container_checkpoint:
    name: ramsim
    images_dir: /var/lib/lxc/.ckpt/ramsim/2
    parent_dir: ../1
    leave: stopped
  register: ckpt

- name: Show how long the container was frozen
  ansible.builtin.debug:
    msg: "frozen {{ ckpt.stats.frozen_time_s }} s, {{ ckpt.stats.pages_written }} pages written"
"""

RETURN = r"""
argv:
  description: The lxc-checkpoint command line.
  returned: always
  type: list
  elements: str
  sample: [lxc-checkpoint, -n, ramsim, -D, /var/lib/lxc/.ckpt/ramsim/2, -P, /var/lib/lxc, -s]
criu_options:
  description: Extra criu options handed over in the CRIU configuration file.
  returned: always
  type: list
  elements: str
  sample: [--leave-stopped, --network-lock, nftables, --enable-fs, ramfs]
duration_s:
  description: Wall-clock seconds of the checkpoint.
  returned: success and not check mode
  type: float
  sample: 0.42
bytes:
  description: Bytes in O(images_dir) after the checkpoint.
  returned: success and not check mode
  type: int
  sample: 270532608
stats:
  description:
    - Decoded C(stats-dump) (dump_stats_entry); times in microseconds plus C(_s) seconds, page counts plus
      C(bytes_*) in bytes.
  returned: success and not check mode
  type: dict
  sample: {freezing_time: 139, frozen_time: 130217, frozen_time_s: 0.130217, memdump_time: 121625,
           memwrite_time: 116714, pages_scanned: 10019, pages_skipped_parent: 0, pages_written: 9920,
           pages_lazy: 0, page_pipes: 8, page_pipe_bufs: 8, bytes_written: 40632320}
features:
  description: What criu says this kernel can do.
  returned: always
  type: dict
  sample: {criu_version: 4.2.1, mem_dirty_track: false, uffd_noncoop: true, pipe_max_size: 1048576}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils import validate
from ansible_collections.arnab.testbed.plugins.module_utils.criu import (
    CriuError, LxcCriu, build_argv, options_argv)

NETWORK_LOCKS = ["nftables", "iptables", "skip"]


def check_params(p):
    """Every option before anything runs; raises validate.ValidationError."""
    validate.strings(p)
    validate.container_name(p["name"], "name")
    validate.abs_path(p["images_dir"], "images_dir")
    validate.abs_path(p["lxcpath"], "lxcpath")
    if p["parent_dir"] is not None:
        validate.rel_or_abs_path(p["parent_dir"], "parent_dir")
    validate.command(p["criu"], "criu")
    # These two end up as lines of the CRIU configuration file: one word each.
    validate.one_of(p["network_lock"], NETWORK_LOCKS, "network_lock")
    for i, fs in enumerate(p["enable_fs"]):
        validate.word(fs, "enable_fs[%d]" % i, pattern=r"[A-Za-z0-9_][A-Za-z0-9_.]*",
                      hint="one file system type (letters, digits, '_', '.'), e.g. ramfs")
    if p["timeout"] <= 0:
        raise validate.ValidationError("timeout %d: give the seconds to wait, more than 0" % p["timeout"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            images_dir=dict(type="path", required=True),
            action=dict(type="str", choices=["pre-dump", "dump"], default="dump"),
            parent_dir=dict(type="path"),
            leave=dict(type="str", choices=["running", "stopped", "dead"], default="running"),
            track_mem=dict(type="bool", default=False),
            lxcpath=dict(type="path", default="/var/lib/lxc"),
            network_lock=dict(type="str", choices=NETWORK_LOCKS, default="nftables"),
            enable_fs=dict(type="list", elements="str", default=["ramfs"]),
            criu=dict(type="str", default="criu"),
            verbose=dict(type="bool", default=False),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        check_params(p)
    except validate.ValidationError as e:
        module.fail_json(msg=str(e))
    lxc = LxcCriu(lxcpath=p["lxcpath"], criu=p["criu"], network_lock=p["network_lock"],
                  enable_fs=p["enable_fs"], verbose=p["verbose"])
    argv, opts = build_argv(p["action"], images_dir=p["images_dir"], container=p["name"], lxcpath=p["lxcpath"],
                            parent_dir=p["parent_dir"], leave=p["leave"], track_mem=p["track_mem"],
                            network_lock=p["network_lock"], enable_fs=p["enable_fs"], verbose=p["verbose"])
    result = dict(changed=False, argv=argv, criu_options=options_argv(opts))

    feats = lxc.features()
    result["features"] = feats
    if not feats.get("criu_ok"):
        module.fail_json(msg="criu (%s) does not run here; install criu >= 4.2 (roles/edge does)" % p["criu"],
                         **result)
    if p["action"] == "pre-dump" or p["track_mem"]:
        if not feats.get("mem_dirty_track"):
            module.fail_json(msg="this kernel has no soft-dirty page tracking (criu check --feature "
                                 "mem_dirty_track fails): pre-dump and --track-mem cannot work here; use a full "
                                 "dump with leave=running instead", **result)
    info = lxc.info(p["name"])
    if info is None or not lxc.exists(p["name"]):
        module.fail_json(msg="container %s does not exist in %s" % (p["name"], p["lxcpath"]), **result)
    if info.get("state") != "RUNNING":
        module.fail_json(msg="container %s is %s; only a RUNNING container can be checkpointed"
                             % (p["name"], info.get("state")), **result)
    if os.path.exists(os.path.join(p["images_dir"], "inventory.img")):
        module.fail_json(msg="%s already holds a dump; use a fresh directory" % p["images_dir"], **result)
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)
    try:
        res = lxc.checkpoint(p["name"], p["images_dir"], action=p["action"], parent_dir=p["parent_dir"],
                             leave=p["leave"], track_mem=p["track_mem"], timeout=p["timeout"])
    except CriuError as e:
        module.fail_json(msg=str(e), rc=e.rc, stderr=e.stderr, criu_log_tail=e.log_tail, **result)
    result.update(changed=True, duration_s=round(res["duration_s"], 4), bytes=res["bytes"], stats=res["stats"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
