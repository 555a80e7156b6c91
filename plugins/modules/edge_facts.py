#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: edge_facts
short_description: Report what an edge can do for container live migration
version_added: "0.1.0"
description:
  - Reads the migration-relevant facts of an edge server without changing anything - the kernel, which C(criu)
    LXC will run (the one on C(PATH), resolving wrappers to the real binary), its version, whether
    C(criu check) passes, whether the kernel tracks dirty memory (soft-dirty, needed for iterative pre-copy,
    C(criu check --feature mem_dirty_track)) and supports userfaultfd for post-copy
    (C(criu check --feature uffd-noncoop)), the LXC version, C(fs.pipe-max-size) (lazy pages need it raised),
    the cgroup layout and the LXC cgroup directory set by the edge role.
  - Returns them as C(ansible_facts.arnab_edge) and as C(edge).
  - Derived flags tell the migration engine which strategies fit this edge - C(stop_and_copy) (criu works),
    C(pre_copy) (plus soft-dirty), C(post_copy) (plus userfaultfd and a large enough C(fs.pipe-max-size)).
author:
  - arnab.testbed developers (@arnab-testbed)
options:
  criu:
    description:
      - The criu command to examine. A bare name is looked up on C(PATH) the way LXC does; else an absolute path.
        No arguments, no control characters.
    type: str
    default: criu
  lxcpath:
    description:
      - LXC path whose containers are listed (absolute).
    type: path
    default: /var/lib/lxc
  lxc_etc:
    description:
      - LXC configuration directory (absolute); C(arnab-criu.conf) there holds the edge's C(lxc.cgroup.dir).
    type: path
    default: /etc/lxc
  min_pipe_max_size:
    description:
      - C(fs.pipe-max-size) below which post-copy is reported as not ready.
    type: int
    default: 16777216
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module only reads; check mode runs the same checks.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
notes:
  - Runs C(criu check), which needs root.
  - The criu invocations are built with the shared helpers of C(arnab.testbed.plugins.module_utils.criu).
"""

EXAMPLES = r"""
- name: Read the migration facts of the edges
  arnab.testbed.edge_facts:
  register: edge

- name: Refuse pre-copy where the kernel has no soft-dirty tracking
  ansible.builtin.assert:
    that: ansible_facts.arnab_edge.strategies.pre_copy
    fail_msg: "{{ inventory_hostname }} cannot pre-copy: {{ ansible_facts.arnab_edge.criu.mem_dirty_track_output }}"

- name: Examine a criu that is not on PATH
  arnab.testbed.edge_facts:
    criu: /opt/arnab-criu/root/usr/sbin/criu
"""

RETURN = r"""
edge:
  description: The facts, also set as C(ansible_facts.arnab_edge).
  returned: always
  type: dict
  contains:
    kernel:
      description: Kernel release (C(uname -r)).
      type: str
      sample: 6.18.44-fc-v669
    arch:
      description: Machine architecture.
      type: str
      sample: x86_64
    criu:
      description: The criu LXC will run.
      type: dict
      contains:
        command:
          description: The criu command as given.
          type: str
          sample: criu
        path:
          description: Where C(command) resolves on PATH (the wrapper, when there is one); null when not found.
          type: str
          sample: /usr/local/sbin/criu
        wrapper:
          description: True when C(path) is a script (e.g. the edge role's private-prefix wrapper).
          type: bool
        binary:
          description: The real criu binary, read from the wrapper when there is one.
          type: str
          sample: /opt/arnab-criu/root/usr/sbin/criu
        version:
          description: criu's version, null when it does not run.
          type: str
          sample: 4.2.1
        check_ok:
          description: C(criu check) passed.
          type: bool
        check_output:
          description: The last lines of C(criu check)'s output.
          type: str
          sample: Looks good.
        mem_dirty_track:
          description: Soft-dirty tracking works (C(criu check --feature mem_dirty_track)); iterative pre-copy needs it.
          type: bool
        mem_dirty_track_output:
          description: Output of that check (says why not).
          type: str
        uffd_noncoop:
          description: userfaultfd non-cooperative mode works (C(criu check --feature uffd-noncoop)); post-copy needs it.
          type: bool
        uffd_noncoop_output:
          description: Output of that check.
          type: str
    lxc:
      description: LXC on the edge.
      type: dict
      contains:
        version:
          description: LXC version (C(lxc-checkpoint --version)), null when LXC is missing.
          type: str
          sample: 5.0.2
        checkpoint:
          description: Path of C(lxc-checkpoint).
          type: str
        lxcpath:
          description: The LXC path examined.
          type: str
        containers:
          description: Containers in C(lxcpath) with their state.
          type: dict
          sample: {"video": "RUNNING", "arnab-base": "STOPPED"}
        cgroup_dir:
          description: C(lxc.cgroup.dir) from C(lxc_etc)/arnab-criu.conf, null when unset.
          type: str
          sample: arnab-edge1
    pipe_max_size:
      description: C(fs.pipe-max-size).
      type: int
      sample: 16777216
    cgroup:
      description: C(v1), C(v2) or C(hybrid).
      type: str
      sample: v1
    strategies:
      description: Which migration strategies this edge supports.
      type: dict
      contains:
        stop_and_copy:
          description: criu check passes and LXC is there.
          type: bool
        pre_copy:
          description: stop_and_copy and soft-dirty tracking.
          type: bool
        post_copy:
          description: stop_and_copy, userfaultfd and fs.pipe-max-size >= min_pipe_max_size.
          type: bool
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.arnab.testbed.plugins.module_utils import validate
from ansible_collections.arnab.testbed.plugins.module_utils.criu import build_argv

# Lines of the private-prefix wrapper that name the real binary: ROOT=... and "$ROOT/usr/sbin/criu".
_WRAPPER_ROOT = re.compile(r"^\s*ROOT=['\"]?([^'\"\s]+)", re.M)
_WRAPPER_EXEC = re.compile(r"(\S*/usr/sbin/criu)\b")


def which(name, path_env=None):
    """Resolve ``name`` like execvp does (LXC's on_path): absolute/relative paths as they are, else PATH."""
    if "/" in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    for d in (path_env if path_env is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def read_wrapper(path):
    """Return ``(is_script, real_binary)`` for a criu path: scripts are parsed for ROOT=... / .../usr/sbin/criu."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except (IOError, OSError):
        return False, None
    if not head.startswith(b"#!"):
        return False, os.path.realpath(path)
    text = head.decode("utf-8", "replace")
    root = _WRAPPER_ROOT.search(text)
    if root:
        return True, os.path.join(root.group(1), "usr/sbin/criu")
    exe = _WRAPPER_EXEC.search(text)
    return True, exe.group(1) if exe else None


def parse_criu_version(text):
    m = re.search(r"Version:\s*(\S+)", text or "")
    return m.group(1) if m else None


def parse_lxc_ls(text):
    """``lxc-ls -f -F NAME,STATE`` output -> {name: state} (header line skipped)."""
    out = {}
    for i, line in enumerate((text or "").splitlines()):
        parts = line.split()
        if i == 0 and parts[:1] == ["NAME"]:
            continue
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def read_cgroup_dir(lxc_etc):
    try:
        with open(os.path.join(lxc_etc, "arnab-criu.conf")) as f:
            for line in f:
                m = re.match(r"\s*lxc\.cgroup\.dir\s*=\s*(\S+)", line)
                if m:
                    return m.group(1)
    except (IOError, OSError):
        pass
    return None


def cgroup_layout(mounts_path="/proc/self/mounts"):
    v1 = v2 = False
    try:
        with open(mounts_path) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                if fields[2] == "cgroup":
                    v1 = True
                elif fields[2] == "cgroup2":
                    v2 = True
    except (IOError, OSError):
        return None
    if v1 and v2:
        # A cgroup2 mount beside v1 hierarchies (systemd's "unified" mount) is the hybrid layout.
        return "hybrid" if _v1_has_controllers(mounts_path) else "v2"
    return "v1" if v1 else ("v2" if v2 else None)


def _v1_has_controllers(mounts_path):
    with open(mounts_path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 4 and fields[2] == "cgroup":
                opts = fields[3].split(",")
                if any(o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec") and not o.startswith("name=")
                       for o in opts):
                    return True
    return False


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (IOError, OSError, ValueError):
        return None


def tail(text, lines=5):
    return "\n".join((text or "").strip().splitlines()[-lines:])


def gather(run, criu="criu", lxcpath="/var/lib/lxc", lxc_etc="/etc/lxc", min_pipe_max_size=16777216,
           path_env=None, proc="/proc"):
    """Collect the facts; ``run(argv) -> (rc, out, err)``."""
    facts = {"kernel": os.uname()[2], "arch": os.uname()[4]}

    path = which(criu, path_env)
    wrapper, binary = read_wrapper(path) if path else (False, None)
    c = {"command": criu, "path": path, "wrapper": wrapper, "binary": binary, "version": None,
         "check_ok": False, "check_output": "criu not found", "mem_dirty_track": False,
         "mem_dirty_track_output": "", "uffd_noncoop": False, "uffd_noncoop_output": ""}
    if path:
        rc, out, err = run([path, "--version"])
        c["version"] = parse_criu_version(out) if rc == 0 else None
        argv, _opts = build_argv("check", criu=path)
        rc, out, err = run(argv)
        c["check_ok"] = rc == 0
        c["check_output"] = tail(out + "\n" + err)
        for feature, key in (("mem_dirty_track", "mem_dirty_track"), ("uffd-noncoop", "uffd_noncoop")):
            argv, _opts = build_argv("check", criu=path, feature=feature)
            rc, out, err = run(argv)
            c[key] = rc == 0
            c[key + "_output"] = tail(out + "\n" + err, 3)
    facts["criu"] = c

    lxc = {"version": None, "checkpoint": which("lxc-checkpoint", path_env), "lxcpath": lxcpath,
           "containers": {}, "cgroup_dir": read_cgroup_dir(lxc_etc)}
    if lxc["checkpoint"]:
        rc, out, err = run([lxc["checkpoint"], "--version"])
        lxc["version"] = (out or err).strip().splitlines()[0] if rc == 0 and (out or err).strip() else None
        ls = which("lxc-ls", path_env)
        if ls and os.path.isdir(lxcpath):
            rc, out, err = run([ls, "-P", lxcpath, "-f", "-F", "NAME,STATE"])
            if rc == 0:
                lxc["containers"] = parse_lxc_ls(out)
    facts["lxc"] = lxc

    facts["pipe_max_size"] = read_int(os.path.join(proc, "sys/fs/pipe-max-size"))
    facts["cgroup"] = cgroup_layout(os.path.join(proc, "self/mounts"))

    stop_and_copy = bool(c["check_ok"] and lxc["version"])
    facts["strategies"] = {
        "stop_and_copy": stop_and_copy,
        "pre_copy": stop_and_copy and c["mem_dirty_track"],
        "post_copy": stop_and_copy and c["uffd_noncoop"] and (facts["pipe_max_size"] or 0) >= min_pipe_max_size,
    }
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            criu=dict(type="str", default="criu"),
            lxcpath=dict(type="path", default="/var/lib/lxc"),
            lxc_etc=dict(type="path", default="/etc/lxc"),
            min_pipe_max_size=dict(type="int", default=16777216),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        validate.strings(p)
        validate.command(p["criu"], "criu")
        validate.abs_path(p["lxcpath"], "lxcpath")
        validate.abs_path(p["lxc_etc"], "lxc_etc")
    except validate.ValidationError as e:
        module.fail_json(msg=str(e))

    def run(argv):
        rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
        return rc, out, err

    facts = gather(run, criu=p["criu"], lxcpath=p["lxcpath"], lxc_etc=p["lxc_etc"],
                   min_pipe_max_size=p["min_pipe_max_size"])
    module.exit_json(changed=False, edge=facts, ansible_facts={"arnab_edge": facts})


if __name__ == "__main__":
    main()
