#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: container_migrate
short_description: Live-migrate an LXC container to another edge with CRIU (stop-and-copy, pre-copy, post-copy)
version_added: "0.1.0"
description:
  - Runs the whole migration in ONE process on the source edge, so no Ansible round trip lands while the container
    is frozen. The engine (module_utils C(precopy)) follows CRIU P.Haul - a preliminary filesystem sync; pre-dump
    and transfer while the dirty set converges; final dump, transfer and restore inside a block that rolls back
    (the destination copy is removed, the source resumes); then the point of no return (the source is destroyed).
  - Fails B(before anything is frozen) on bad input - unknown container, container not running, destination
    unreachable over SSH or lacking LXC/criu/the container's bridge, or a method this kernel cannot do.
  - The container keeps its IP, MAC and live TCP connections (criu C(--tcp-established)). After the restore TX
    checksum offload is turned off on the container's interface (the lab's Open vSwitch userspace datapath needs
    it), the container sends a gratuitous ARP so the data switch relearns where its MAC is, and each established
    TCP socket sends its window probe again, so the peers' ACKs restart the streams without waiting for a
    retransmission timer (C(tcp_kicked) in the restore report).
  - "Methods: V(stop-and-copy) - final dump, whole transfer, restore. V(pre-copy) - iterations first; C(native)
    uses soft-dirty pre-dumps (C(criu pre-dump), chained with C(--prev-images-dir)); C(delta) (kernels without
    soft-dirty) reads the container's memory while it runs into criu-shaped page images (no freeze; see
    O(delta_reads)) and sends only the 4 KiB pages that changed since the previous iteration, the final dump's
    too (compared by virtual address with the previous images on the source, written in place at the
    destination; rsync's rolling checksum costs more CPU than it saves on page images); the report shows each
    iteration's freeze. V(post-copy) - CRIU lazy pages: the source
    dumps all but memory and serves pages; the destination restores at once; the source is needed until the last
    page has arrived (the report shows that window). V(hybrid) (kernels with soft-dirty) - native pre-copy's
    iterations, then post-copy for what the last one left dirty: the lazy dump's parent is the last pre-dump, the
    destination restores the rest from the chain it holds, and the source serves only the pages dirtied since.
    V(auto) chooses from the edge facts and says what it chose and why: its prediction (a stop-and-copy's downtime
    = a fixed cost + memory over the link rate) is fitted to this edge's own past migrations once there are 3
    stop-and-copies to O(dest) (kept in C(<lxcpath>/.arnab-migrate/costs.json)), else it uses O(link_rate) and a
    0.5 s fixed cost; C(method_reason) ends with the figures that decided."
author:
  - arnab.testbed developers (@arnab-testbed)
options:
  container:
    description: Name of the running LXC container on this (source) edge.
    type: str
    required: true
  dest:
    description: Destination edge, a host name or IP reachable over SSH from this edge (e.g. its backhaul IP).
    type: str
    required: true
  method:
    description:
      - Migration method (the description above says what each does).
      - V(auto) takes stop-and-copy when it alone is predicted under O(target_downtime); else, with soft-dirty,
        V(hybrid) when post-copy's predicted drain fits O(postcopy_max_drain) and native pre-copy otherwise;
        without soft-dirty, post-copy when its drain fits O(postcopy_max_drain), else delta pre-copy.
        RV(method_reason) says which figures decided.
    type: str
    choices: [auto, stop-and-copy, pre-copy, post-copy, hybrid]
    default: auto
  precopy_mode:
    description:
      - For O(method=pre-copy). V(native) needs soft-dirty tracking in the kernel, V(delta) works anywhere,
        V(auto) takes native when the kernel has it.
    type: str
    choices: [auto, native, delta]
    default: auto
  delta_reads:
    description:
      - How a C(delta) pre-copy iteration gets the memory. V(live) reads each task's private memory from
        C(/proc/<pid>/mem) while the container runs, and freezes nothing; pages written during the read are sent
        again by a later iteration or the final dump, which compares bytes. V(dump) takes a full criu
        C(dump --leave-running) per iteration, which freezes the container for the whole dump (for comparisons).
      - When memory cannot be read live, the iteration dumps instead and says why in its C(live_error).
    type: str
    choices: [live, dump]
    default: live
  ssh_key:
    description: Private key this edge uses to reach O(dest) over SSH.
    type: path
  ssh_user:
    description: SSH user on O(dest).
    type: str
    default: root
  ssh_port:
    description: SSH port on O(dest).
    type: int
  lxcpath:
    description: LXC path on both edges.
    type: path
    default: /var/lib/lxc
  work_dir:
    description: Images directory on this edge (default C(<lxcpath>/.arnab-migrate/<container>)).
    type: path
  network_lock:
    description:
      - How the source's network is locked while the final dump freezes the container.
      - V(inbound) drops only what reaches the container (the migration guard's nftables table, installed
        at criu's C(network-lock) hook and carried over to the destination, which removes it after the restore).
        What the source's kernel sends in the last moments still reaches the client, so the restored TCP sockets
        need not wait for a retransmission timeout (about 1 s) before the client's stream goes on.
      - With V(inbound), what the client sends during the freeze is not lost either. The lock copies each packet
        it drops to a netlink log group; a holder started on this edge before the freeze keeps the copies, and
        once the destination runs the container it sends them there, through the container's bridge, in their
        order. A request made during the freeze is then answered at once, not after the client's own
        retransmission timer (a SYN's is 1 s, then 3 s). The restore report's C(hold) says how many packets were
        held and sent. The copies leave as they came, so a packet sent by this same host with TX checksum offload
        would carry an unfinished checksum; packets from a network card carry whole ones.
      - V(nftables) (default) and V(iptables) are criu's own lock (both directions). V(inbound) is measured on the
        namespace lab only (its inventory sets it); the faithful mode's guests run criu's lock.
    type: str
    choices: [inbound, nftables, iptables]
    default: nftables
  packet_hold:
    description:
      - With O(network_lock=inbound), keep what the client sends during the freeze and send it to the restored
        container (see O(network_lock)). V(false) drops it, as criu's lock does; for comparisons.
    type: bool
    default: true
  prefreeze:
    description:
      - Freeze the container's cgroup at criu's C(pre-dump) hook of the final dump and wait for it in 1 ms steps.
        criu polls a freezing cgroup every 100 ms, so without this the frozen window may hold up to 100 ms of
        waiting for a freeze that took about 1 ms; a cgroup already frozen is taken as it is. Whoever resumes the
        source or runs the restored copy thaws it (the engine, the guard, the destination's receiver).
      - V(false) lets criu freeze; for comparisons. Also off when the container's LXC payload cgroup cannot be told
        or the destination's receiver predates this (the report's C(facts.prefreeze) is then null).
    type: bool
    default: true
  lazy_restore:
    description:
      - How a stop-and-copy or pre-copy restores on the destination. V(lazy) runs the restored copy before its
        memory is read - criu's lazy-pages daemon puts the pages in from the destination's own images while it
        runs - so the frozen window no longer holds the reading of the whole memory (about 0.7 s for 1 GiB here).
        The source stays frozen and is kept until the daemon has put the last page in; should the daemon fail, the
        destination's copy is removed and the source resumes from its state at the freeze (the report's
        C(lazy_restore.went_back_s)). V(eager) reads all memory first, then runs the copy.
      - V(auto) (default) is V(lazy) for 128 MiB of memory or more when the destination can (criu's lazy pages
        ready, its receiver new enough), else V(eager). Native pre-copy's chain of parent images is served
        lazily too. Post-copy is lazy from the source anyway. The report's C(lazy_restore) says which and
        why, and C(lazy_restore.fill_s) how long the filling took after the copy ran.
      - V(lazy) fails in preflight when the destination cannot.
    type: str
    choices: [auto, lazy, eager]
    default: auto
  images_dir:
    description:
      - Where the dumps go on this edge (C(<images_dir>/<container>)), e.g. a tmpfs such as C(/dev/shm/arnab)
        or C(/run/arnab) - delta pre-copy then writes its whole-memory dump of each iteration to RAM instead of
        disk. Used only when it has room for two dumps (the previous and the current one, 2 x the container's
        memory); else the work dir holds them and the report's C(facts.images_dir) says why. The lock, the
        migration guard and its files stay in the work dir.
      - A tmpfs costs RAM on this edge for as long as the migration runs (up to 2 x the container's memory).
    type: path
  max_iterations:
    description: Pre-copy - at most this many iterations (P.Haul uses 8).
    type: int
    default: 8
  min_pages:
    description: Pre-copy - stop once an iteration dirtied at most this many pages (P.Haul 64).
    type: int
    default: 64
  max_growth:
    description: Pre-copy - stop when an iteration dirtied more than this factor times the previous one.
    type: float
    default: 1.1
  plateau_ratio:
    description:
      - Pre-copy - stop when an iteration dirtied more than this factor times the previous one (the dirty set
        stopped shrinking; in delta mode every further iteration is one more freeze).
    type: float
    default: 0.9
  fallback_ratio:
    description:
      - Pre-copy - stop iterating and go to the final dump at once (the report's RV(fallback)) when the time
        already frozen in the iterations plus the predicted final downtime reaches this factor times the
        predicted stop-and-copy downtime (in delta mode every iteration freezes for a whole dump).
    type: float
    default: 1.0
  postcopy_max_drain:
    description:
      - Seconds. V(auto) picks post-copy (or V(hybrid), with soft-dirty) only when post-copy's predicted drain
        (the time the restored container still needs the source for pages, during which losing either edge loses
        the service) fits this bound; hybrid's drain moves only the pages dirtied since its last pre-dump, so
        post-copy's is its worst case. The prediction is memory over the rate this container's (else any container's) past post-copies to O(dest)
        over the same O(postcopy_channel) drained at, once there is one in C(costs.json), else memory over
        O(link_rate).
        Unset, V(auto) never picks post-copy or hybrid; O(method=post-copy) and O(method=hybrid) still work.
    type: float
  target_downtime:
    description:
      - Seconds. Pre-copy stops once the predicted downtime is below it; V(auto) takes stop-and-copy when that
        alone is predicted to stay below it.
    type: float
    default: 1.0
  link_rate:
    description: Rate of the link to O(dest) for predictions, tc style (C(1gbit), C(100mbit)) or bytes/s.
    type: str
    default: 1gbit
  compress:
    description: Compress transfers on the wire.
    type: bool
    default: false
  bwlimit:
    description: Bandwidth limit for transfers in KiB/s.
    type: int
  postcopy_channel:
    description:
      - Post-copy - how the pages the restored copy faults travel from this edge to O(dest).
      - V(ssh) - inside the migration key's SSH connection, through O(dest)'s migration receiver (its C(pages)
        operation relays them to the lazy-pages daemon on its loopback); encrypted, and nothing listens on the
        backhaul.
      - V(tls) - on criu's own page server on O(page_server_address):O(lazy_port), in TLS, mutually
        authenticated. Before the freeze each edge makes a key and a self-signed certificate for this migration
        only, and the certificates are exchanged over the migration's SSH session; each side then trusts only the
        other's. Needs C(openssl) on both edges. No relay in the path, so the drain is faster than V(ssh)'s (on the
        lab 0.55 x its time at a 20% hot set, docs/tier2.md). But the page server listens on the backhaul during
        the drain - whoever connects first without the certificate cannot read a page, yet ends it, and the
        migration then rolls back after the restore; so for a backhaul whose hosts are yours.
      - V(tcp) - on criu's own page server, in cleartext, listening on O(page_server_address):O(lazy_port) for
        whoever connects first. Only for a trusted backhaul, or to compare the channels' cost.
    type: str
    choices: [ssh, tls, tcp]
    default: ssh
  lazy_port:
    description: Post-copy with O(postcopy_channel=tls) or V(tcp) - TCP port of the source's page server.
    type: int
    default: 27100
  page_server_address:
    description: Post-copy with O(postcopy_channel=tls) or V(tcp) - address of this edge that O(dest) connects to (default -
      the source address of the route to O(dest)).
    type: str
  interface:
    description: The container's interface to fix up after the restore (TX offload off, gratuitous ARP).
    type: str
    default: eth0
  fs_sync:
    description: Sync the container's directory (config and rootfs) to O(dest) before and during the migration.
    type: bool
    default: true
  source_cleanup:
    description:
      - After success, V(destroy) kills the stopped source and removes it (C(lxc-destroy)), V(stop) only kills it
        and keeps its files.
    type: str
    choices: [destroy, stop]
    default: destroy
  criu:
    description: The criu command on both edges.
    type: str
    default: criu
  criu_verbose:
    description: Verbose criu logs in the images directories (slower dumps).
    type: bool
    default: false
  report:
    description: Write the JSON report to this path on this edge too.
    type: path
  progress_log:
    description: Append timestamped progress lines to this file on this edge while the migration runs.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Runs every pre-flight check and reports the method it would use; nothing is frozen or copied.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Run it on the source edge (C(delegate_to) the container's current edge), as root; the playbook
    C(arnab.testbed.migrate_container) does that and writes the report on the controller.
  - Post-copy needs C(fs.pipe-max-size >= 16777216) on both edges (criu's page pipes, without CAP_SYS_RESOURCE).
seealso:
  - module: arnab.testbed.container_checkpoint
  - module: arnab.testbed.state_transfer
"""

EXAMPLES = r"""
- name: Move the ramsim container from edge1 to edge2 over the backhaul, pre-copy
  arnab.testbed.container_migrate:
    container: ramsim
    dest: 10.79.0.2
    method: pre-copy
    ssh_key: /var/lib/arnab-lab/ssh/lab_key
    progress_log: /tmp/migrate-ramsim.log
  delegate_to: edge1
  register: mig

- name: Let the engine choose
  arnab.testbed.container_migrate:
    container: video
    dest: edge2
    method: auto
    target_downtime: 0.5
  register: mig

- name: Show the downtime
  ansible.builtin.debug:
    msg: "{{ mig.method }} ({{ mig.method_reason }}): {{ mig.downtime_s }} s frozen"
"""

RETURN = r"""
ok:
  description: Whether the container now runs on the destination.
  returned: always
  type: bool
method:
  description: The method used (after V(auto) resolved).
  returned: always
  type: str
  sample: pre-copy
precopy_mode:
  description: C(native) or C(delta) for pre-copy, else null.
  returned: always
  type: str
method_reason:
  description: Why this method (for V(auto)) or what the kernel allowed.
  returned: always
  type: str
downtime_s:
  description: Seconds from the freeze (final dump start) to the container running on the destination.
  returned: success
  type: float
  sample: 0.61
frozen_total_s:
  description:
    - Seconds the container was frozen over the whole migration - every pre-copy iteration's freeze (the
      iterations' C(freeze_s); in delta mode none for a live read, a whole dump for a C(dump) read) plus
      RV(downtime_s).
  returned: success
  type: float
frozen_iterations_s:
  description: The sum of the pre-copy iterations' freezes (0 for the other methods).
  returned: success
  type: float
frozen:
  description: The frozen phase split (dump_s, fs_sync_s, transfer_s, restore_s, netfix_s, ssh_overhead_s).
  returned: success
  type: dict
bytes_frozen:
  description: Bytes sent while the container was frozen.
  returned: success
  type: int
bytes_total:
  description:
    - Bytes sent over the whole migration (filesystem syncs, iterations, final images; post-copy - the pages
      served lazily, from the link counter).
  returned: always
  type: int
total_s:
  description: Seconds for the whole migration.
  returned: always
  type: float
iterations:
  description:
    - Pre-copy iterations - n, mode, read (delta mode - V(live) or V(dump), see O(delta_reads); live_error when a
      live read could not be made), duration_s, dump_s, freeze_s (seconds the container was frozen in it),
      pages_written, pages_skipped_parent, bytes_dumped, dirty_pages, bytes_sent, literal_bytes, copied_bytes
      (unchanged pages the destination took from its previous images, pages compared by address), transfer_s,
      touched_bytes (what the container touched while the iteration's images moved, from its pages' accessed
      bits; null when not measured).
  returned: always
  type: list
  elements: dict
stop_reason:
  description: Why the pre-copy iterations stopped.
  returned: pre-copy
  type: str
fallback:
  description:
    - Why pre-copy stopped iterating because it could not beat stop-and-copy (the fallback rule, see
      O(fallback_ratio)); null when it did not fall back.
  returned: always
  type: str
postcopy:
  description:
    - Post-copy - source_needed_s (freeze to last page served), source_needed_after_running_s (the window in
      which losing the source loses the container), link_bytes_while_serving (TX bytes of the interface towards
      the destination while the pages were served; criu leaves a lazy dump's stats-dump unfilled).
  returned: post-copy, hybrid
  type: dict
lazy_restore:
  description:
    - How the destination restored (see O(lazy_restore)) - lazy (true - the copy ran before its memory was read,
      criu's lazy-pages daemon filling it from the destination's images), why, fill_s (seconds from the copy
      running to the last page in, the source kept frozen meanwhile), lazy_pages_rc; went_back_s and note when a
      failed filling sent the service back to the source.
  returned: always
  type: dict
rolled_back:
  description: On failure, whether the destination was cleaned and the source resumed.
  returned: always
  type: bool
report:
  description: The whole report (everything above plus facts, knobs, fs_sync, final_dump, restore, steps).
  returned: always
  type: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arnab.testbed.plugins.module_utils import validate
from ansible_collections.arnab.testbed.plugins.module_utils.precopy import (
    AlreadyOnDestination, Knobs, LxcMigrationDriver, MigrationError, PreflightError, migrate, parse_rate,
    resolve_method, write_report)

SUMMARY_KEYS = ("ok", "method", "precopy_mode", "method_reason", "downtime_s", "frozen_total_s",
                "frozen_iterations_s", "frozen", "bytes_frozen", "bytes_total", "total_s", "iterations",
                "stop_reason", "fallback", "postcopy", "lazy_restore", "rolled_back", "error")


def check_options(p):
    """Every string option before anything runs (raises validate.ValidationError): each reaches argv lists, the
    receiver's words, ssh's ``user@host`` and criu's config lines, where a newline or a leading ``-`` would be a
    second line or an option."""
    validate.strings(p)
    validate.container_name(p["container"], "container")
    validate.host(p["dest"], "dest")
    validate.user(p["ssh_user"], "ssh_user")
    validate.ifname(p["interface"], "interface")
    validate.command(p["criu"], "criu")
    if p["page_server_address"]:
        validate.host(p["page_server_address"], "page_server_address")
    for key in ("ssh_key", "lxcpath", "work_dir", "images_dir"):    # report and progress_log are only opened here
        if p[key]:
            validate.abs_path(p[key], key)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            container=dict(type="str", required=True),
            dest=dict(type="str", required=True),
            method=dict(type="str", choices=["auto", "stop-and-copy", "pre-copy", "post-copy", "hybrid"],
                        default="auto"),
            precopy_mode=dict(type="str", choices=["auto", "native", "delta"], default="auto"),
            ssh_key=dict(type="path"),
            ssh_user=dict(type="str", default="root"),
            ssh_port=dict(type="int"),
            lxcpath=dict(type="path", default="/var/lib/lxc"),
            work_dir=dict(type="path"),
            images_dir=dict(type="path"),
            network_lock=dict(type="str", choices=["inbound", "nftables", "iptables"], default="nftables"),
            packet_hold=dict(type="bool", default=True),
            prefreeze=dict(type="bool", default=True),
            lazy_restore=dict(type="str", choices=["auto", "lazy", "eager"], default="auto"),
            delta_reads=dict(type="str", choices=["live", "dump"], default="live"),
            max_iterations=dict(type="int", default=8),
            min_pages=dict(type="int", default=64),
            max_growth=dict(type="float", default=1.1),
            plateau_ratio=dict(type="float", default=0.9),
            fallback_ratio=dict(type="float", default=1.0),
            postcopy_max_drain=dict(type="float"),
            target_downtime=dict(type="float", default=1.0),
            link_rate=dict(type="str", default="1gbit"),
            compress=dict(type="bool", default=False),
            bwlimit=dict(type="int"),
            postcopy_channel=dict(type="str", choices=["ssh", "tls", "tcp"], default="ssh"),
            lazy_port=dict(type="int", default=27100),
            page_server_address=dict(type="str"),
            interface=dict(type="str", default="eth0"),
            fs_sync=dict(type="bool", default=True),
            source_cleanup=dict(type="str", choices=["destroy", "stop"], default="destroy"),
            criu=dict(type="str", default="criu"),
            criu_verbose=dict(type="bool", default=False),
            report=dict(type="path"),
            progress_log=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        check_options(p)
    except validate.ValidationError as e:
        module.fail_json(msg=str(e))
    if p["max_iterations"] < 1:
        module.fail_json(msg="max_iterations must be at least 1")
    try:
        rate = parse_rate(p["link_rate"])
    except ValueError as e:
        module.fail_json(msg=str(e))

    logf = open(p["progress_log"], "a") if p["progress_log"] else None
    os.umask(0o077)     # the work dir's images, logs and guard, written by this process and its criu: 0600

    def progress(msg):
        if logf:
            logf.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
            logf.flush()

    knobs = Knobs(max_iterations=p["max_iterations"], min_pages=p["min_pages"], max_growth=p["max_growth"],
                  target_downtime_s=p["target_downtime"], link_rate_bps=rate, precopy_mode=p["precopy_mode"],
                  plateau_ratio=p["plateau_ratio"], postcopy_max_drain_s=p["postcopy_max_drain"],
                  fallback_ratio=p["fallback_ratio"])
    drv = LxcMigrationDriver(p["container"], p["dest"], lxcpath=p["lxcpath"], work_dir=p["work_dir"],
                             images_dir=p["images_dir"], ssh_key=p["ssh_key"], ssh_user=p["ssh_user"],
                             ssh_port=p["ssh_port"], compress=p["compress"], bwlimit=p["bwlimit"], criu=p["criu"],
                             lazy_port=p["lazy_port"], page_server_address=p["page_server_address"],
                             postcopy_channel=p["postcopy_channel"],
                             interface=p["interface"], fs_sync=p["fs_sync"], source_cleanup=p["source_cleanup"],
                             link_rate_bps=rate, criu_verbose=p["criu_verbose"], log=progress,
                             network_lock=p["network_lock"], packet_hold=p["packet_hold"],
                             delta_reads=p["delta_reads"], prefreeze=p["prefreeze"],
                             lazy_restore=p["lazy_restore"])
    base = dict(container=p["container"], dest=p["dest"], started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime()))
    try:
        # Everything that can be wrong is checked here, before anything is frozen or copied.
        progress("preflight: %s -> %s (%s)" % (p["container"], p["dest"], p["method"]))
        try:
            facts = drv.preflight(check_mode=module.check_mode)
            method, mode, why = resolve_method(p["method"], facts, knobs)
        except AlreadyOnDestination as e:
            progress("nothing to do: %s" % e)
            rep = dict(base, ok=True, already_on_dest=True, msg=str(e))
            if p["report"] and not module.check_mode:
                write_report(p["report"], rep)
            module.exit_json(changed=False, ok=True, msg=str(e), rolled_back=False, bytes_total=0, total_s=0.0,
                             iterations=[], report=rep)
        except (PreflightError, ValueError) as e:
            progress("preflight failed: %s" % e)
            module.fail_json(msg=str(e), ok=False, rolled_back=False, changed=False, bytes_total=0, total_s=0.0,
                             iterations=[], report=dict(base, ok=False, error=str(e)))
        if module.check_mode:
            rep = dict(base, ok=True, check_mode=True, facts=facts, method=method, precopy_mode=mode,
                       method_reason=why)
            module.exit_json(changed=True, ok=True, method=method, precopy_mode=mode, method_reason=why,
                             rolled_back=False, bytes_total=0, total_s=0.0, iterations=[], report=rep)
        try:
            rep = migrate(drv, p["method"], knobs, progress=progress)
            rep.update(base)
        except MigrationError as e:
            rep = e.report
            rep.update(base)
            if p["report"]:
                write_report(p["report"], rep)
            summary = dict((k, rep.get(k)) for k in SUMMARY_KEYS)
            summary["changed"] = True
            rollback = rep.get("rollback") or {}
            if rep.get("rolled_back"):
                outcome = "rolled back: the container runs on the source again"
            elif rollback.get("fenced"):
                outcome = ("outcome unknown: %s could not be reached; the source stays frozen and its guard (%s) "
                           "resumes it or destroys it once the destination answers"
                           % (p["dest"], rollback["fenced"].get("guard_log")))
            else:
                outcome = "ROLLBACK INCOMPLETE - check both edges: %s" % rollback
            msg = "migration of %s to %s failed: %s; %s" % (p["container"], p["dest"], e, outcome)
            module.fail_json(msg=msg, report=rep, **summary)
        if p["report"]:
            write_report(p["report"], rep)
        summary = dict((k, rep.get(k)) for k in SUMMARY_KEYS)
        module.exit_json(changed=True, report=rep, **summary)
    finally:
        try:
            drv.close()
        except Exception:
            pass
        if logf:
            logf.close()


if __name__ == "__main__":
    main()
