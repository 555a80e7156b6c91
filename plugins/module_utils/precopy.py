# -*- coding: utf-8 -*-
# Copyright: arnab.testbed developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tier-2 migration engine (modelled on CRIU P.Haul's ``phaul/iters.py``).

:func:`migrate` reads top to bottom: preliminary filesystem sync; pre-dump + transfer while the dirty set
converges; final dump, transfer and restore inside a block that rolls back (resume on the source, clean the
destination); then the point of no return (destroy the source). It drives a *driver* object
(:class:`LxcMigrationDriver` for real, a fake in the unit tests) and only decides; the stopping rules are pure
functions with named constants.

Methods
-------
* ``stop-and-copy``: final dump, whole transfer, restore.
* ``pre-copy``: iterations before the final dump. ``native`` when the kernel has soft-dirty bits
  (``criu pre-dump --track-mem``; each iteration holds only the pages dirtied since its parent, chained with
  ``--prev-images-dir``). Otherwise ``delta``: each iteration reads the container's memory while it runs
  (``memory_snapshot.py``: criu-shaped page images, no freeze; ``delta_reads='dump'``, or when memory cannot be read
  live: a full ``--leave-running`` dump, which freezes the container for its dump; the report shows every freeze);
  the first goes whole, later ones (and the final dump) send only the 4 KiB pages that differ
  from the previous images, compared by virtual address (``state_transfer.va_diff``: a mapping added or freed does
  not shift the comparison), written in place at the destination or rebuilt there from the previous images.
  ``delta_method='rsync'`` uses ``rsync -B 4096 --inplace`` instead (measured here: 10.5 s for 131 MB of changed
  pages in a 256 MiB image, against 0.6-1.1 s page-aligned).
* ``post-copy``: CRIU lazy pages: the source dumps everything but memory and serves the pages from a page server;
  the destination restores at once and faults pages in over the network. The source is needed until the last
  page has arrived: the report shows that window.
* ``auto``: :func:`choose_method` from the edge facts; the report says what was chosen and why.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import json
import math
import os
import re
import shlex
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

from ansible_collections.arnab.testbed.plugins.module_utils import (
    memory_snapshot, migration_guard, packet_hold, validate)
from ansible_collections.arnab.testbed.plugins.module_utils.migration_guard import pids_in_pidns
from ansible_collections.arnab.testbed.plugins.module_utils.criu import (
    HOLD_GROUP, INBOUND_LOCK, INBOUND_LOCK_RULES, LAZY_PIPE_MAX_SIZE, OUTBOUND_LOCK_RULES, PAGE_SIZE, PLAIN_PATH_RE,
    CriuError, LxcCriu, default_runner, find_criu_error, freezer_of, inbound_unlock_argv, log_tail, netfix_argv,
    pin_tls_peer, prefreeze_sh, read_stats, summarize_dump_stats, tls_identity)
from ansible_collections.arnab.testbed.plugins.module_utils.state_transfer import (
    Pusher, list_files)
from ansible_collections.arnab.testbed.plugins.module_utils.migrate_receiver import SESSION_OPS
from ansible_collections.arnab.testbed.plugins.module_utils.receiver import Receiver, ReceiverError

FIRST_CHANGED = 10          # the frozen sync's report names this many of the files it sent

# The destination receiver's version that thaws a restored copy (a prefrozen dump restores frozen).
RECEIVER_THAWS = 2
# ... and the one that restores lazily from its own images (``restore --lazy --local``).
RECEIVER_LAZY_LOCAL = 3
# ... and the one that links a streamed final dir to its parent (``patch --parent``: native pre-copy's final).
RECEIVER_PATCH_PARENT = 4

# --------------------------------------------------------------------------------------------------
# Stopping rules (P.Haul: 8 iterations, <= 64 pages, > 10% growth) and the downtime target.
# --------------------------------------------------------------------------------------------------
MAX_ITERATIONS = 8
MIN_PAGES_WRITTEN = 64
MAX_GROWTH_RATIO = 1.10
# Ours: stop when an iteration no longer shrinks the dirty set by 10% (the dirty rate has met the transfer rate).
# Every further iteration would move the same pages again - and in delta mode freeze the container once more.
PLATEAU_RATIO = 0.90
TARGET_DOWNTIME_S = 1.0
# What a final dump + restore of a small container costs regardless of memory (measured on the lab: dump 0.28 s,
# restore 0.12 s for a systemd container), used when predicting downtime.
FIXED_COST_S = 0.5
DEFAULT_LINK_RATE_BPS = 125000000  # 1 Gbit/s in bytes/s (the lab's backhaul)
# The fallback rule: stop iterating and go to the final dump at once when pre-copy cannot beat stop-and-copy, i.e.
# when the time already frozen in the iterations plus the predicted final downtime reaches this fraction of the
# predicted stop-and-copy downtime. In delta mode (no soft-dirty) every iteration freezes for a whole dump, so a
# container that re-dirties most of its memory during a copy loses more than it gains (measured on the lab at
# 100%/s: pre-copy 17.2 s against stop-and-copy 12.5 s).
FALLBACK_RATIO = 1.0
FALLBACK = "fallback: "         # the prefix of a stop reason that is the fallback rule's

# Image dirs up to this size go through the open remote shell instead of an rsync session.
SMALL_IMAGES_BYTES = 8 * 1024 * 1024

# A cut backhaul must fail the migration (and roll it back) within seconds, not after TCP's ~15 minutes of
# retransmissions: the SSH master connection that every transfer and remote command shares sends keepalives
# and gives up after SSH_ALIVE_COUNT unanswered ones (the transfer on it then breaks and the engine rolls back).
SSH_ALIVE_INTERVAL_S = 2
SSH_ALIVE_COUNT = 4
# After a failure the destination may stay unreachable for a while (a link flap): keep trying to clean it for
# this long (only while SSH cannot connect, rc 255). The source resumes only once it is clean.
DEST_CLEAN_RETRY_S = 30
# A restore sent but not answered (the link broke): the engine asks the destination what became of it for this
# long; then it leaves the frozen, fenced source to its guard, which goes on asking (migration_guard.py).
RESOLVE_S = 60
# A final dump that has not reached the guard by then has hung.
DUMP_TIMEOUT_S = 600
# The restored sockets' timestamp clocks move forward by the final dump's duration and this much more
# (LxcMigrationDriver.ts_shift_ms): TCP timestamps tick in whole ms, and clocks differ by a few ms between hosts.
TS_SHIFT_MARGIN_MS = 20
# The packet holder (packet_hold.py) is started before the freeze and waited for this long (its Python starts: not in
# the frozen window); once told to replay, it answers within this long (it wakes at once, the copies go in ms).
HOLD_START_S = 3
HOLD_REPLAY_WAIT_S = 2
# Post-copy: the drain fails when the page server sends nothing for this long (not after a fixed total time).
DRAIN_STALL_S = 30
# ``images_dir`` (e.g. a tmpfs) holds the dumps only when it has room for this many dumps of the container's memory
# (delta pre-copy keeps the previous dump beside the current one); else the work dir does, and the report says why.
IMAGES_DIR_DUMPS = 2
# The source's work dir <lxcpath>/.arnab-migrate/<name> holds this file, locked (flock) for as long as a migration
# runs: the kernel drops the lock however the process ends, so a work dir without a held lock is a dead one's.
WORK_LOCK = "lock"
# The final dump's images dir, on both edges (under the images root; the iterations' are it-1, it-2, ...).
FINAL_DIR = "final"

METHODS = ("stop-and-copy", "pre-copy", "post-copy", "hybrid", "auto")
# ``hybrid`` (issue 13, kernels with soft-dirty): native pre-copy's iterations, then post-copy for what the last
# one left dirty (criu's lazy dump with --prev-images-dir: the destination holds the rest in the chain).
ITERATING_METHODS = ("pre-copy", "hybrid")
LAZY_METHODS = ("post-copy", "hybrid")     # the source's page server serves the pages after the restore
PRECOPY_MODES = ("auto", "native", "delta")
# How post-copy's pages travel: inside the migration key's SSH connection to the destination's receiver (``ssh``),
# on criu's own page server in TLS pinned to certificates the edges exchange over SSH (``tls``), or on criu's own
# cleartext page server, listening on the backhaul for whoever connects first (``tcp``).
POSTCOPY_CHANNELS = ("ssh", "tcp", "tls")
# How a delta iteration gets the memory: read while the container runs (memory_snapshot.py, no freeze), or a criu
# ``dump --leave-running`` (a freeze for a whole dump; also what a live read falls back to when it cannot read).
DELTA_READS = ("live", "dump")
# The restore of a stop-and-copy or a pre-copy: ``lazy`` (criu's lazy-pages daemon serves the memory from the
# destination's own images while the copy already runs: the restore does not read it all first), ``eager`` (criu
# reads it all, then the copy runs), ``auto`` (lazy for LAZY_RESTORE_MIN_BYTES of memory or more, when the
# destination can). Post-copy is lazy from the source anyway.
LAZY_RESTORES = ("auto", "lazy", "eager")
# Below this much memory a lazy restore gains nothing: the lab's video (37 MiB) restored in 0.215 s either way, plus
# 13 ms to start the daemon; ramsim's 1 GiB in 0.16-0.22 s lazily against 0.7-2.4 s eagerly (docs/benchmarks.md).
LAZY_RESTORE_MIN_BYTES = 128 * 1024 * 1024
# A lazy restore's daemon has this long to put the last page in after the copy runs (the source stays frozen, kept
# to resume, until it has); the guard gives it as long when it decides alone.
LOCAL_FILL_S = migration_guard.LAZY_PENDING_S


class MigrationError(Exception):
    """Raised by :func:`migrate` when the migration did not complete; ``report`` says what happened."""

    def __init__(self, msg, report=None):
        super(MigrationError, self).__init__(msg)
        self.report = report or {}


class Knobs(object):
    """Convergence knobs (defaults are the named constants)."""

    def __init__(self, max_iterations=MAX_ITERATIONS, min_pages=MIN_PAGES_WRITTEN, max_growth=MAX_GROWTH_RATIO,
                 target_downtime_s=TARGET_DOWNTIME_S, link_rate_bps=None, fixed_cost_s=FIXED_COST_S,
                 precopy_mode="auto", plateau_ratio=PLATEAU_RATIO, postcopy_max_drain_s=None,
                 fallback_ratio=FALLBACK_RATIO):
        self.max_iterations = int(max_iterations)
        self.min_pages = int(min_pages)
        self.max_growth = float(max_growth)
        self.target_downtime_s = float(target_downtime_s)
        self.link_rate_bps = link_rate_bps
        self.fixed_cost_s = float(fixed_cost_s)
        self.precopy_mode = precopy_mode
        self.plateau_ratio = float(plateau_ratio)
        self.fallback_ratio = float(fallback_ratio)
        # auto picks post-copy only when its predicted drain (the window in which the service needs both edges)
        # fits this bound; None: never (the user has not accepted that risk)
        self.postcopy_max_drain_s = None if postcopy_max_drain_s is None else float(postcopy_max_drain_s)

    def as_dict(self):
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------

RATE_RE = re.compile(r"^\s*([0-9.]+)\s*([kmgt]?)(bit|bps|b|byte|bytes)?(/s)?\s*$", re.I)


def parse_rate(text):
    """``'1gbit'``, ``'100mbit'``, ``'12MB'``, ``125000000`` -> bytes per second (tc style: bit = bits)."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = RATE_RE.match(str(text))
    if not m:
        raise ValueError("cannot parse rate %r (e.g. 1gbit, 100mbit, 12MB)" % text)
    value = float(m.group(1))
    mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()]
    unit = (m.group(3) or "").lower()
    if unit in ("bit",):
        return value * mult / 8.0
    if unit in ("bps",):
        return value * mult / 8.0
    return value * mult


def dirty_pages(it):
    """Pages that had to move in an iteration: native pre-dump -> pages written; delta mode -> literal data."""
    if it.get("mode") == "native":
        return int(it.get("pages_written") or 0)
    return int((it.get("literal_bytes") or 0) // PAGE_SIZE)


def final_dump_estimate(it):
    """What the final dump would freeze for, judged from iteration ``it``: its freeze (delta: a whole dump, like the
    final one; native: the pages it collected), or for a live read, which froze nothing, the read's time (a whole
    dump reads the same memory)."""
    return (it.get("dump_s") if it.get("read") == "live" else it.get("freeze_s")) or 0.0


def predict_downtime(it, knobs, link_rate_bps=None):
    """Predicted downtime if we stopped after iteration ``it``: the final dump (:func:`final_dump_estimate`),
    plus moving its dirty pages - the longer of dirty bytes over the link and the transfer time measured for it
    (in delta mode rsync's checksum pass over the whole page image costs more than the wire) - plus the fixed
    cost of the restore."""
    rate = link_rate_bps or knobs.link_rate_bps or DEFAULT_LINK_RATE_BPS
    wire = dirty_pages(it) * PAGE_SIZE / float(rate)
    return final_dump_estimate(it) + max(wire, it.get("transfer_s") or 0.0) + knobs.fixed_cost_s


def predict_stop_and_copy(first, knobs, link_rate_bps=None):
    """Predicted stop-and-copy downtime, from the first iteration (a whole copy): a whole dump (its duration: in
    delta mode all frozen, in native mode what a final dump would write while frozen), moving every page it wrote
    (the longer of bytes over the link and the measured transfer) and the fixed cost of the restore."""
    rate = link_rate_bps or knobs.link_rate_bps or DEFAULT_LINK_RATE_BPS
    moved = max(int(first.get("literal_bytes") or 0), int(first.get("bytes_dumped") or 0))
    dump = first.get("dump_s") or first.get("freeze_s") or 0.0
    return dump + max(moved / float(rate), first.get("transfer_s") or 0.0) + knobs.fixed_cost_s


def frozen_in_iterations(history):
    """Seconds the container was frozen across the pre-copy iterations (delta mode: a whole dump each)."""
    return sum(it.get("freeze_s") or 0.0 for it in history)


def fallback_reason(history, knobs, link_rate_bps=None):
    """The fallback rule (``FALLBACK_RATIO``): the reason pre-copy cannot beat stop-and-copy, or None.

    Pre-copy loses when what it has already frozen plus its predicted final downtime reaches the predicted
    stop-and-copy downtime. After a measured re-dump (n >= 2) the final downtime is :func:`predict_downtime` of
    the last iteration. After the first iteration nothing was re-dumped yet: the dirty set is estimated from the
    bytes the container touched (read or written: an upper bound) while its first copy moved, ``touched_bytes``,
    when the driver measured it; without it from none at all (a lower bound: the next freeze alone)."""
    if not history:
        return None
    rate = link_rate_bps or knobs.link_rate_bps or DEFAULT_LINK_RATE_BPS
    last = history[-1]
    if len(history) >= 2:
        final = predict_downtime(last, knobs, rate)
        basis = "%d pages dirtied in iteration %d" % (dirty_pages(last), len(history))
    else:
        touched = int(last.get("touched_bytes") or 0)
        # moved at the first copy's measured pace when that was slower than the link
        literal, took = int(last.get("literal_bytes") or 0), last.get("transfer_s") or 0.0
        pace = min(rate, literal / took) if literal and took else rate
        final = final_dump_estimate(last) + touched / float(pace) + knobs.fixed_cost_s
        basis = ("%d MiB touched while the first copy moved" % (touched >> 20) if last.get("touched_bytes") is not None
                 else "no dirty set measured yet")
    spent = frozen_in_iterations(history)
    sac = predict_stop_and_copy(history[0], knobs, rate)
    if spent + final >= sac * knobs.fallback_ratio:
        return ("frozen %.2fs in %d iteration(s) + predicted final downtime %.2fs (%s) >= predicted stop-and-copy "
                "downtime %.2fs%s" % (spent, len(history), final, basis, sac,
                                      "" if knobs.fallback_ratio == 1.0 else " x %.2f" % knobs.fallback_ratio))
    return None


def should_stop(history, knobs, link_rate_bps=None):
    """Decide after each iteration. Returns ``(stop, reason)``. ``history``: iteration dicts, oldest first.
    A reason starting with ``FALLBACK`` is the fallback rule's: pre-copy cannot beat stop-and-copy."""
    if not history:
        return False, None
    n = len(history)
    cur = dirty_pages(history[-1])
    if n >= 2 and cur <= knobs.min_pages:
        return True, "converged: %d pages dirtied <= %d" % (cur, knobs.min_pages)
    predicted = predict_downtime(history[-1], knobs, link_rate_bps)
    if n >= 2 and predicted <= knobs.target_downtime_s:
        return True, "predicted downtime %.2fs <= target %.2fs" % (predicted, knobs.target_downtime_s)
    why = fallback_reason(history, knobs, link_rate_bps)
    if why:
        return True, FALLBACK + why
    prev = dirty_pages(history[-2]) if n >= 2 else 0
    if n >= 3 and prev > 0 and cur > prev * knobs.max_growth:
        return True, "not converging: %d pages after %d (> x%.2f)" % (cur, prev, knobs.max_growth)
    # From the second iteration on: when the first re-dump finds (nearly) all of memory dirty again, every further
    # iteration would copy it all once more (the paper's 100% dirty row) - stop now, not one full copy later.
    if prev > 0 and cur > prev * knobs.plateau_ratio:
        return True, "plateau: %d pages after %d (> x%.2f): the dirty rate has met the transfer rate" % (
            cur, prev, knobs.plateau_ratio)
    if n >= knobs.max_iterations:
        return True, "iteration limit %d reached" % knobs.max_iterations
    return False, None


def choose_method(facts, knobs):
    """``auto``: pick a method from edge facts. Returns ``(method, precopy_mode, reason)``.

    facts: ``mem_dirty_track``, ``lazy_pages_ready``, ``memory_bytes`` (container RSS), ``link_rate_bps``, and
    ``fitted`` (:func:`fit_costs`: this edge's measured fixed cost and link rate, which replace the constants),
    ``drain_fitted`` (:func:`fit_drain`: the rate its past post-copies drained at, which replaces the link rate in
    post-copy's predicted drain). The reason ends with the figures that decided.
    """
    fitted = facts.get("fitted")
    if fitted:
        rate, fixed = float(fitted["link_rate_bps"]), float(fitted["fixed_cost_s"])
        model = "fitted to %d stop-and-copies of %s to this destination (fixed cost %.2fs, link %.0f Mbit/s %s)" % (
            fitted["samples"], "this container" if fitted.get("scope") == "container" else "its containers",
            fixed, rate * 8 / 1e6, "measured over %d transfers" % fitted["rate_samples"] if fitted.get("rate_samples")
            else "as configured")
    else:
        rate = float(facts.get("link_rate_bps") or knobs.link_rate_bps or DEFAULT_LINK_RATE_BPS)
        fixed = knobs.fixed_cost_s
        model = "constants (fixed cost %.2fs, link %.0f Mbit/s)" % (fixed, rate * 8 / 1e6)
    drain_fit = facts.get("drain_fitted")
    if drain_fit:
        model += "; post-copy drains at %.0f Mbit/s, measured over %d post-cop%s of %s over %s" % (
            float(drain_fit["drain_rate_bps"]) * 8 / 1e6, drain_fit["samples"],
            "y" if drain_fit["samples"] == 1 else "ies",
            "this container" if drain_fit.get("scope") == "container" else "its containers", drain_fit["channel"])
    method, mode, why = _choose(facts, knobs, rate, fixed,
                                float(drain_fit["drain_rate_bps"]) if drain_fit else rate)
    return method, mode, "%s [model: %s]" % (why, model)


def _choose(facts, knobs, rate, fixed, drain_rate):
    mem = facts.get("memory_bytes") or 0
    sac = mem / rate + fixed
    if sac <= knobs.target_downtime_s:
        return ("stop-and-copy", None,
                "stop-and-copy predicted %.2fs (%d MiB at %.0f Mbit/s) <= target %.2fs: iterating cannot pay"
                % (sac, mem >> 20, rate * 8 / 1e6, knobs.target_downtime_s))
    over = "stop-and-copy predicted %.2fs > target %.2fs" % (sac, knobs.target_downtime_s)
    soft_dirty, ready, bound = facts.get("mem_dirty_track"), facts.get("lazy_pages_ready"), knobs.postcopy_max_drain_s
    # post-copy moves every page once whatever the dirty rate: its drain is memory over the rate its past drains
    # reached (criu's lazy-pages daemon can be far slower than the link), else over the link. Hybrid's drain moves
    # only the pages dirtied since its last pre-dump, at most all of them: the same bound is its worst case.
    drain = mem / drain_rate
    if ready and bound is not None and drain <= bound:
        accepted = "post-copy's predicted drain %.1fs (%d MiB at %.0f Mbit/s) <= the accepted %.1fs" % (
            drain, mem >> 20, drain_rate * 8 / 1e6, bound)
        if soft_dirty:
            return ("hybrid", "native", "%s; kernel has soft-dirty and %s (hybrid drains at most that): hybrid"
                    % (over, accepted))
        return ("post-copy", None, "%s; no soft-dirty on this kernel; %s" % (over, accepted))
    why_not = ("lazy pages not ready" if not ready else
               "post-copy not accepted (postcopy_max_drain unset)" if bound is None else
               "post-copy's predicted drain %.1fs > the accepted %.1fs" % (drain, bound))
    if soft_dirty:
        return ("pre-copy", "native", "%s; kernel has soft-dirty; %s: native pre-copy" % (over, why_not))
    return ("pre-copy", "delta", "%s; no soft-dirty; %s: pre-copy with full dumps and 4 KiB delta transfer"
            % (over, why_not))


# auto's model (issue 13): a stop-and-copy's downtime = a fixed cost + bytes frozen / link rate. Both are fitted to
# this edge's own past migrations when there are enough (fit_costs), else FIXED_COST_S and the configured rate.
COST_HISTORY_FILE = "costs.json"        # in <lxcpath>/.arnab-migrate (LxcMigrationDriver.cost_history)
COST_HISTORY_SIZE = 20                  # past migrations kept per source edge
MIN_FIT_SAMPLES = 3                     # fewer than this: the constants decide
MIN_RATE_SAMPLE_BYTES = 8 * 1024 * 1024  # a smaller transfer says more about round trips than about the link


def cost_record(rep, container, dest):
    """What auto's model keeps of a successful migration's report (None when it teaches nothing)."""
    tx = rep.get("final_transfer") or {}
    if not rep.get("ok") or not rep.get("downtime_s"):
        return None
    rec = {"t": round(rep.get("started") or time.time(), 1), "container": container, "dest": dest,
           "method": rep.get("method"), "downtime_s": rep["downtime_s"],
           "bytes_frozen": int(rep.get("bytes_frozen") or 0),
           "transfer_bytes": int(tx.get("bytes_sent") or 0), "transfer_s": tx.get("duration_s") or 0.0}
    post = rep.get("postcopy") or {}
    if post.get("link_bytes_while_serving") and post.get("source_needed_after_running_s"):
        rec["drain_bytes"] = int(post["link_bytes_while_serving"])
        rec["drain_s"] = post["source_needed_after_running_s"]
        rec["drain_channel"] = (rep.get("facts") or {}).get("postcopy_channel")
    return rec


def fit_costs(history, container, dest, configured_rate_bps=None):
    """Fit auto's model to past migrations (cost_record's) to ``dest``: the same container's when it has
    MIN_FIT_SAMPLES stop-and-copies there, else every container's. Returns None (use the constants) or
    ``{"fixed_cost_s", "link_rate_bps", "samples", "rate_samples", "scope"}``: the link rate is the median of
    the final transfers' rates (those of MIN_RATE_SAMPLE_BYTES or more), the fixed cost the median of each
    stop-and-copy's downtime less its bytes frozen over that rate."""
    def usable(r):
        try:
            return (r.get("dest") == dest and float(r["downtime_s"]) > 0 and int(r["bytes_frozen"]) >= 0
                    and int(r.get("transfer_bytes") or 0) >= 0 and float(r.get("transfer_s") or 0) >= 0)
        except (AttributeError, KeyError, TypeError, ValueError):
            return False
    mine = [r for r in history if usable(r)][-COST_HISTORY_SIZE:]
    rates = [float(r["transfer_bytes"]) / float(r["transfer_s"]) for r in mine
             if int(r.get("transfer_bytes") or 0) >= MIN_RATE_SAMPLE_BYTES and float(r.get("transfer_s") or 0) > 0]
    rate = statistics.median(rates) if len(rates) >= MIN_FIT_SAMPLES else (configured_rate_bps or DEFAULT_LINK_RATE_BPS)
    for scope, records in (("container", [r for r in mine if r.get("container") == container]), ("edge", mine)):
        sac = [r for r in records if r.get("method") == "stop-and-copy"]
        if len(sac) >= MIN_FIT_SAMPLES:
            fixed = statistics.median(max(0.0, float(r["downtime_s"]) - int(r["bytes_frozen"]) / rate) for r in sac)
            return {"fixed_cost_s": round(fixed, 4), "link_rate_bps": rate, "samples": len(sac),
                    "rate_samples": len(rates) if len(rates) >= MIN_FIT_SAMPLES else 0, "scope": scope}
    return None


def fit_drain(history, container, dest, channel):
    """The rate post-copy's pages reached to ``dest`` over ``channel`` once the restored copy ran: the median over
    this container's post-copies there, else over every container's (each of MIN_RATE_SAMPLE_BYTES or more). One
    is enough: the alternative, memory over the link rate, ignores the destination's lazy-pages daemon, which on
    this lab drains at a fraction of the link (docs/tier2.md). Returns None or ``{"drain_rate_bps", "samples",
    "scope", "channel"}``."""
    def rate(r):
        try:
            if r.get("dest") == dest and r.get("method") == "post-copy" and r.get("drain_channel") == channel and \
                    int(r.get("drain_bytes") or 0) >= MIN_RATE_SAMPLE_BYTES and float(r.get("drain_s") or 0) > 0:
                return int(r["drain_bytes"]) / float(r["drain_s"])
        except (AttributeError, TypeError, ValueError):
            pass
        return None
    mine = [(r.get("container"), x) for r, x in ((r, rate(r)) for r in history) if x is not None][-COST_HISTORY_SIZE:]
    for scope, rates in (("container", [x for c, x in mine if c == container]), ("edge", [x for _c, x in mine])):
        if rates:
            return {"drain_rate_bps": statistics.median(rates), "samples": len(rates), "scope": scope,
                    "channel": channel}
    return None


def resolve_method(method, facts, knobs):
    """Turn the requested method into ``(method, precopy_mode, reason)``; raise ValueError if impossible."""
    if method not in METHODS:
        raise ValueError("unknown method %r (choose %s)" % (method, ", ".join(METHODS)))
    if method == "auto":
        return choose_method(facts, knobs)
    if method in LAZY_METHODS:
        if not facts.get("uffd_noncoop"):
            raise ValueError("%s needs userfaultfd (criu check --feature uffd-noncoop failed)" % method)
        if not facts.get("lazy_pages_ready"):
            raise ValueError("%s needs fs.pipe-max-size >= 16777216 on both edges (it is %s); "
                             "sysctl -w fs.pipe-max-size=16777216" % (method, facts.get("pipe_max_size")))
        if method == "hybrid":
            if not facts.get("mem_dirty_track"):
                raise ValueError("hybrid needs soft-dirty page tracking, which this kernel lacks (criu check "
                                 "--feature mem_dirty_track): its iterations are criu's pre-dumps")
            return method, "native", "requested (native pre-copy, then post-copy)"
        return method, None, "requested"
    if method == "pre-copy":
        mode = knobs.precopy_mode
        if mode == "native" and not facts.get("mem_dirty_track"):
            raise ValueError("native pre-copy needs soft-dirty page tracking, which this kernel lacks "
                             "(criu check --feature mem_dirty_track); use precopy_mode=delta or auto")
        if mode == "auto":
            mode = "native" if facts.get("mem_dirty_track") else "delta"
        return method, mode, "requested (pre-copy mode %s%s)" % (
            mode, "" if facts.get("mem_dirty_track") else ": no soft-dirty on this kernel")
    return method, None, "requested"


def iteration_record(n, dump, transfer, mode, touched_bytes=None):
    """Flatten one iteration's dump + transfer results into the report row. ``freeze_s``: how long the
    container was frozen in this iteration (criu's ``frozen_time``; delta mode: none for a live read, its whole dump
    for a ``dump --leave-running``; native mode: the pre-dump's page collection). ``read``: how a delta iteration got
    the memory (``live``/``dump``). ``touched_bytes``: what the container touched after the dump (None: not
    measured)."""
    st = dump.get("stats") or {}
    rec = {
        "n": n,
        "mode": mode,
        "read": dump.get("read"),
        "dump_s": round(dump.get("duration_s", 0.0), 4),
        "freeze_s": round(st.get("frozen_time", 0) / 1e6, 4) if st else round(dump.get("duration_s", 0.0), 4),
        "pages_scanned": st.get("pages_scanned"),
        "pages_written": st.get("pages_written"),
        "pages_skipped_parent": st.get("pages_skipped_parent"),
        "bytes_dumped": (st.get("pages_written") or 0) * PAGE_SIZE,
        "bytes_sent": transfer.get("bytes_sent", 0),
        "literal_bytes": transfer.get("literal_bytes", 0),
        "copied_bytes": transfer.get("copied_bytes", 0),
        "transfer_s": round(transfer.get("duration_s", 0.0), 4),
        "delta_files": len((transfer.get("plan") or {}).get("delta", [])),
        "touched_bytes": touched_bytes,
    }
    if dump.get("live_error"):
        rec["live_error"] = dump["live_error"]
    rec["duration_s"] = round(rec["dump_s"] + rec["transfer_s"], 4)
    rec["dirty_pages"] = dirty_pages(rec)
    return rec


# --------------------------------------------------------------------------------------------------
# The engine: ONE function, top to bottom
# --------------------------------------------------------------------------------------------------

def migrate(drv, method="auto", knobs=None, progress=None, clock=time.time):
    """Migrate the driver's container; return the report (``ok`` True) or raise MigrationError(report)."""
    knobs = knobs or Knobs()
    say = progress or (lambda msg: None)
    t0 = clock()
    rep = {"ok": False, "method_requested": method, "iterations": [], "fs_sync": [], "frozen": {},
           "knobs": knobs.as_dict(), "rolled_back": False, "steps": [],
           "started": round(t0, 4)}   # steps' "t" count from here: lines them up with other clocks

    def step(name):
        rep["steps"].append({"t": round(clock() - t0, 4), "step": name})
        say(name)

    # 0. What can we do? (All checks happen in the driver's preflight, before anything is frozen.)
    facts = drv.facts()
    rep["facts"] = facts
    method, mode, why = resolve_method(method, facts, knobs)
    rep.update(method=method, precopy_mode=mode, method_reason=why)
    step("method %s%s: %s" % (method, " (%s)" % mode if mode else "", why))
    if hasattr(drv, "plan_restore"):
        rep["lazy_restore"] = drv.plan_restore(method, mode, facts)
    lazy_local = rep.get("lazy_restore", {}).get("lazy", False)

    frozen_at = None
    source_resumable = True
    try:
        # 1. Preliminary filesystem sync while the container runs.
        step("preliminary filesystem sync")
        rep["fs_sync"].append(drv.sync_fs("preliminary"))

        # 2. Pre-copy iterations while the dirty set converges.
        parent = None
        if method in ITERATING_METHODS:
            stop, reason = False, None
            n = 0
            while not stop:
                n += 1
                step("iteration %d: %s" % (n, "pre-dump" if mode == "native" else "copy memory"))
                dump = drv.predump(n, parent, mode)
                tx = drv.transfer(dump["images_dir"], n, mode)
                # what the container touched since the dump (the fallback rule's estimate before any re-dump)
                touched = drv.touched_since_dump() if hasattr(drv, "touched_since_dump") else None
                rec = iteration_record(n, dump, tx, mode, touched)
                rep["iterations"].append(rec)
                stop, reason = should_stop(rep["iterations"], knobs, facts.get("link_rate_bps"))
                say("iteration %d%s: %d dirty pages, %d bytes sent, freeze %.3fs%s" % (
                    n, " (%s read)" % rec["read"] if rec["read"] else "", rec["dirty_pages"], rec["bytes_sent"],
                    rec["freeze_s"],
                    "; stop: " + reason if stop else ""))
                parent = dump["images_dir"]
            rep["stop_reason"] = reason
            if reason and reason.startswith(FALLBACK):
                rep["fallback"] = reason[len(FALLBACK):]
                step("fallback: pre-copy cannot beat stop-and-copy: the final dump now")
            step("filesystem sync before freeze")
            rep["fs_sync"].append(drv.sync_fs("pre-freeze"))
        else:
            step("filesystem sync before freeze")
            rep["fs_sync"].append(drv.sync_fs("pre-freeze"))

        # 3. Frozen phase: everything from here to "running on destination" is downtime.
        if hasattr(drv, "before_freeze"):
            drv.before_freeze(method, mode, parent)     # open what the frozen window will need (no SSH set-up)
        step("freeze: final dump")
        frozen_at = clock()
        if method in LAZY_METHODS:
            dump = drv.lazy_dump(parent)
        else:
            dump = drv.final_dump(parent, mode)
        t_dumped = clock()
        rep["final_dump"] = {"duration_s": round(t_dumped - frozen_at, 4), "stats": dump.get("stats", {}),
                             "bytes": dump.get("bytes")}
        fs = drv.sync_fs("frozen")
        rep["fs_sync"].append(fs)
        t_fs = clock()
        step("transfer final images")
        tx = drv.transfer(dump["images_dir"], FINAL_DIR, mode if method in ITERATING_METHODS else None)
        t_tx = clock()
        rep["final_transfer"] = {k: tx.get(k) for k in ("bytes_sent", "literal_bytes", "copied_bytes", "duration_s",
                                                        "plan")}
        step("restore on destination")
        try:
            rs = drv.restore(lazy=(method in LAZY_METHODS))
        except RestoreUncertain as e:
            # the restore was sent and the answer lost: ask the destination what became of it before anything
            # else (its copy may serve already; the source stays frozen meanwhile)
            step("restore outcome unknown (%s): asking the destination" % e)
            outcome = drv.await_outcome()
            rep["restore_outcome"] = outcome
            if outcome != "running":
                raise
            rs = {"recovered": "the destination answered again: its copy runs"}
        t_running = clock()
        rep["restore"] = rs
        rep["frozen"] = {
            "dump_s": round(t_dumped - frozen_at, 4),
            "fs_sync_s": round(t_fs - t_dumped, 4),
            "transfer_s": round(t_tx - t_fs, 4),
            "restore_s": round(rs.get("restore_s", t_running - t_tx), 4),
            "netfix_s": round(rs.get("netfix_s", 0.0), 4),
            "lazy_daemon_s": round(rs.get("lazy_daemon_s", 0.0), 4),
            "ssh_overhead_s": round(max(0.0, (t_running - t_tx) - rs.get("restore_s", t_running - t_tx)
                                        - rs.get("netfix_s", 0.0) - rs.get("lazy_daemon_s", 0.0)), 4),
        }
        rep["downtime_s"] = round(t_running - frozen_at, 4)
        # every freeze the service saw: the iterations' (delta mode: a whole dump each) and the final downtime
        rep["frozen_iterations_s"] = round(frozen_in_iterations(rep["iterations"]), 4)
        rep["frozen_total_s"] = round(rep["frozen_iterations_s"] + rep["downtime_s"], 4)
        rep["bytes_frozen"] = int(fs.get("bytes_sent", 0) + tx.get("bytes_sent", 0))
        step("running on destination after %.3fs frozen" % rep["downtime_s"])

        # 3a. A lazy restore: the copy runs while its daemon reads the rest of the images; the source, still
        # frozen, is what a failed fill goes back to.
        if lazy_local:
            step("lazy restore: waiting for the last page from the destination's images")
            rep["lazy_restore"].update(drv.wait_local_pages())

        # 3b. Post-copy: the destination serves; the source sends the pages it faults until the last one.
        if method in LAZY_METHODS:
            step("post-copy: waiting for the last page")
            done = drv.wait_lazy_done()
            t_done = clock()
            rep["postcopy"] = {
                "source_needed_s": round(t_done - frozen_at, 4),
                "source_needed_after_running_s": round(t_done - t_running, 4),
                "link_bytes_while_serving": done.get("bytes"),
                "link_interface": done.get("interface"),
                "dump_stats": done.get("stats", {}),
            }
            rep["final_dump"]["stats"] = done.get("stats", {}) or rep["final_dump"]["stats"]
    except Exception as e:  # never two copies: the source resumes only once the destination is known clean
        rep["error"] = "%s: %s" % (type(e).__name__, e)
        if getattr(e, "log_tail", None):
            rep["criu_log_tail"] = e.log_tail
        step("failed (%s): rolling back" % rep["error"])
        rep["rollback"] = rollback(drv, frozen_at is not None)
        rep["rolled_back"] = rep["rollback"].get("ok", False)
        if rep.get("downtime_s") is not None and ((method in LAZY_METHODS and "postcopy" not in rep) or lazy_local):
            # the restored copy served and is gone: the source resumes from the state it had when frozen
            rep.setdefault("postcopy" if method in LAZY_METHODS else "lazy_restore", {}).update(
                went_back_s=round(clock() - frozen_at - rep["downtime_s"], 4),
                note="the client saw the service go back to its state at the freeze")
        rep["total_s"] = round(clock() - t0, 4)
        rep["bytes_total"] = total_bytes(rep)
        raise MigrationError(rep["error"], rep)

    # 4. Commit point: the destination runs the container: the guard lets criu leave the frozen tasks stopped.
    step("commit")
    commit = drv.commit()
    rep["commit"] = {k: commit.get(k) for k in ("commit_s", "dump_rc")}
    if commit.get("stats") and method not in LAZY_METHODS:
        rep["final_dump"]["stats"] = commit["stats"]
    if rep["final_dump"].get("bytes") is None:
        rep["final_dump"]["bytes"] = commit.get("bytes")

    # 5. Point of no return: the source copy goes.
    step("point of no return: destroy source")
    try:
        rep["source_cleanup"] = drv.destroy_source()
    except Exception as e:  # the container is safe on the destination; say what is left behind
        rep["source_cleanup"] = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    rep["total_s"] = round(clock() - t0, 4)
    rep["bytes_total"] = total_bytes(rep)
    rep["ok"] = True
    if hasattr(drv, "remember_costs"):
        drv.remember_costs(rep)     # auto's model learns from it (fit_costs)
    step("done in %.2fs, downtime %.3fs" % (rep["total_s"], rep["downtime_s"]))
    return rep


def rollback(drv, was_frozen):
    """Exactly one copy: the destination is cleaned (confirmed) before the source resumes. If no restore was ever
    sent, no copy can run there: the source resumes first (the client waits less) and the destination is cleaned
    after. If the destination cannot be confirmed clean, the source stays frozen and fenced: the guard on the
    source resolves it once the destination answers (migration_guard.py)."""
    out = {"ok": False, "was_frozen": was_frozen}
    order = ("source", "dest") if not getattr(drv, "restore_sent", True) else ("dest", "source")
    for side in order:
        try:
            out[side] = drv.clean_dest() if side == "dest" else drv.resume_source()
        except Exception as e:
            out["%s_error" % side] = "%s: %s" % (type(e).__name__, e)
            if side == "dest" and order[0] == "dest":
                out["fenced"] = drv.fence()
                out["source"] = ("stays frozen and fenced: the destination could not be confirmed clean; the guard "
                                 "resumes it once the destination answers and runs no copy, or destroys it if it "
                                 "does")
                return out
    out["ok"] = "source_error" not in out
    if out["ok"]:
        out["logs_kept"] = drv.discard_work(keep_logs=True)   # the source runs again: its images are worth nothing
    else:
        out["work_kept"] = "the source's images stay in its work dir for a manual recovery"
    return out


def total_bytes(rep):
    """Bytes sent to the destination over the whole migration. Post-copy: the lazily served pages are counted
    from the link's TX counter while the source served them (that window also carries the final images and the
    frozen filesystem sync, so those are not added again)."""
    total = sum(i.get("bytes_sent", 0) for i in rep.get("iterations", []))
    served = (rep.get("postcopy") or {}).get("link_bytes_while_serving")
    if served is not None:
        total += sum(f.get("bytes_sent", 0) for f in rep.get("fs_sync", []) if f.get("phase") != "frozen")
        return int(total + served)
    total += sum(f.get("bytes_sent", 0) for f in rep.get("fs_sync", []))
    total += (rep.get("final_transfer") or {}).get("bytes_sent") or 0
    return int(total)


# --------------------------------------------------------------------------------------------------
# The real driver: LXC + CRIU on this (source) edge, rsync/ssh to the destination edge.
# --------------------------------------------------------------------------------------------------

def keepalives(count):
    """ssh options: a keepalive every SSH_ALIVE_INTERVAL_S, the connection given up after ``count`` unanswered."""
    return ("-o", "ServerAliveInterval=%d" % SSH_ALIVE_INTERVAL_S, "-o", "ServerAliveCountMax=%d" % count)


def _q(s):
    return shlex.quote(str(s))


def listening(port, proc_net=("/proc/net/tcp", "/proc/net/tcp6")):
    """Is something listening on TCP ``port`` in this network namespace?"""
    hexport = ":%04X" % int(port)
    for path in proc_net:
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except (IOError, OSError, StopIteration):
            continue
    return False


def _proc_kb(pids, name, field, proc="/proc"):
    """The sum over the processes of a ``FIELD: N kB`` line of /proc/PID/NAME, in bytes; a process gone or
    unreadable counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(os.path.join(proc, str(pid), name)) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1]) * 1024
        except (IOError, OSError, ValueError):
            continue
    return total


def own_netns(pid):
    """True when process ``pid`` is in another network namespace than this process (False when unknown)."""
    try:
        return os.stat("/proc/%d/ns/net" % int(pid)).st_ino != os.stat("/proc/self/ns/net").st_ino
    except (OSError, ValueError):
        return False


def rss_bytes(pids):
    return _proc_kb(pids, "status", "VmRSS")


def referenced_bytes(pids, proc="/proc"):
    """Bytes the processes touched (read or written) since their accessed bits were cleared (``clear_refs`` 1):
    ``Referenced`` of ``smaps_rollup``. Needs no soft-dirty: on such kernels the only cheap bound of a dirty set
    before the next dump. Shared pages count once per process (an upper bound either way)."""
    return _proc_kb(pids, "smaps_rollup", "Referenced", proc)


class PreflightError(Exception):
    pass


class AlreadyOnDestination(PreflightError):
    """The container already runs on the destination and not here: nothing to do (idempotence)."""


class RestoreUncertain(Exception):
    """The restore was sent and no answer came back: the destination may or may not run the container."""


class SourceState(object):
    """The source container's state during a migration: one value, changed only through :meth:`to`.

    RUNNING -> FROZEN (criu holds it in the guard) -> COMMITTED (the destination runs it; criu leaves the tasks
    stopped) -> GONE (destroyed), or FROZEN -> RESUMED (abort: criu resumed it) or FROZEN -> FENCED (outcome
    unknown: it stays frozen, the guard decides once the destination answers)."""

    RUNNING, FROZEN, COMMITTED, RESUMED, FENCED, GONE = ("running", "frozen", "committed", "resumed", "fenced",
                                                         "gone")
    TRANSITIONS = {RUNNING: (FROZEN,), FROZEN: (COMMITTED, RESUMED, FENCED), FENCED: (COMMITTED, RESUMED),
                   COMMITTED: (GONE,), RESUMED: (), GONE: ()}

    def __init__(self):
        self.state = self.RUNNING

    def to(self, new):
        if new not in self.TRANSITIONS[self.state]:
            raise RuntimeError("source state %s cannot become %s" % (self.state, new))
        self.state = new


# criu's action script: %(w)s the work dir, %(py)s the Python, %(guard)s migration_guard.py written beside it
GUARD_SH = """#!/bin/sh
w=%(w)s
case "$CRTOOLS_SCRIPT_ACTION" in
  pre-dump)
    %(prefreeze)s ;;
  post-dump)
    %(fence)s
    : > "$w/dumped"
    i=0
    while :; do
      if [ -e "$w/decision" ]; then
        read -r d < "$w/decision"
        case "$d" in commit) exit 0 ;; abort) exit 1 ;; esac
      fi
      i=$((i + 1))
      if [ $((i %% 20)) -eq 0 ] && flock -n "$w/lock" true; then exec %(py)s -I -S %(guard)s; fi
      sleep 0.005
    done ;;
  network-lock)
    : > "$w/seized"
    %(lock)s ;;
  network-unlock)
    if [ -e "$w/decision" ]; then read -r d < "$w/decision"; [ "$d" = abort ] && { %(unlock)s; exit 0; }; fi
    %(py)s -I -S %(guard)s; rc=$?
    %(unlock)s
    exit $rc ;;
esac
exit 0
"""


def module_source(module):
    """The text of a module_utils file that runs as a script in the work dir (the guard: criu's action script; the
    packet holder), also from inside Ansible's module zip."""
    loader = getattr(module, "__loader__", None)
    if loader is not None and hasattr(loader, "get_source"):
        text = loader.get_source(module.__name__)
        if text:
            return text
    with open(module.__file__.replace(".pyc", ".py")) as f:
        return f.read()


class LxcMigrationDriver(object):
    """Migrate one LXC container from this edge to ``dest`` (SSH-reachable host or IP)."""

    def __init__(self, container, dest, lxcpath="/var/lib/lxc", work_dir=None, ssh_key=None,
                 ssh_user="root", ssh_port=None, compress=False, bwlimit=None, criu="criu", lazy_port=27100,
                 page_server_address=None, interface="eth0", fs_sync=True, source_cleanup="destroy",
                 link_rate_bps=None, criu_verbose=False, restore_timeout=120, runner=None, log=None,
                 delta_method="pages", postcopy_channel="ssh", images_dir=None, network_lock="nftables",
                 packet_hold=True, delta_reads="live", prefreeze=True, lazy_restore="auto"):
        self.name = container
        self.dest = dest
        self.lxcpath = lxcpath
        self.work = work_dir or os.path.join(lxcpath, ".arnab-migrate", container)
        # where the dumps go (it-N, final, lazy): the work dir, or <images_dir>/<name> (a tmpfs: delta pre-copy's
        # whole-memory dumps then go to RAM, not to disk); the lock, the guard and its files stay in the work dir
        self.images_root = os.path.join(images_dir, container) if images_dir else self.work
        self.run = runner or default_runner
        self.lxc = LxcCriu(lxcpath=lxcpath, criu=criu, runner=self.run, verbose=criu_verbose)
        self.network_lock = network_lock
        self.hold_packets = packet_hold
        self.prefreeze = prefreeze
        self.criu = criu
        # the shared SSH master's socket, in the migrations' private (0700) dir, not a guessable name in /tmp
        self.control_path = os.path.join(os.path.dirname(self.work), ".ssh-%s-%d" % (container, os.getpid()))
        self.pusher = Pusher(dest, user=ssh_user, key=ssh_key, ssh_port=ssh_port, control_path=self.control_path,
                             compress=compress, bwlimit=bwlimit, runner=self.run)
        # everything on the destination goes through its migration receiver (the migration key's forced
        # command there): fixed operations on this container only, never a shell
        self.recv = Receiver(dest, container, user=ssh_user, key=ssh_key, port=ssh_port,
                             control_path=self.control_path, runner=self.run,
                             ssh_options=keepalives(SSH_ALIVE_COUNT))
        if postcopy_channel not in POSTCOPY_CHANNELS:
            raise ValueError("postcopy_channel must be one of %s" % ", ".join(POSTCOPY_CHANNELS))
        self.postcopy_channel = postcopy_channel
        self.page_tunnel = None       # post-copy over ssh: the receiver's page channel (receiver.PageTunnel)
        self.tls_dir = None           # post-copy over tls: our key and certificate, and the destination's, pinned
        self.lazy_port = int(lazy_port)
        self.page_server_address = page_server_address
        self.ifname = interface
        self.do_fs_sync = fs_sync
        self.source_cleanup = source_cleanup
        self.link_rate_bps = link_rate_bps
        self.restore_timeout = restore_timeout
        self.log = log or (lambda msg: None)
        self.dest_files = {}          # what the destination's images dir holds (delta mode)
        self.dest_dir = None          # dest images dir to restore from
        self.dump_proc = None         # the final (or lazy) dump: criu waits in the guard until the decision
        self.dump_dir = None
        self.dump_s = None            # how long the final (or lazy) dump took, until criu waited in the guard
        self.fs_mark = None
        self.fs_scan = None             # the frozen sync's find, started beside the final dump (_start_fs_scan)
        self.fs_scan_during_dump = False
        self.init_pid = None
        self.freezer = None         # the container's cgroup freezer (criu.freezer_of), once preflight found it
        self.guard_path = None      # criu's action script for the final dump, written before the freeze
        self.dest_touched = False
        self.restore_sent = False     # from here on the destination may run the container
        self.page_server_started = False
        self.drain_watcher = None     # post-copy: migration_guard --watch-drain, for as long as we live
        self.holder = None            # packet_hold.py: what the frozen source is sent, for the restored copy
        self.hold_result = None       # what it did (the restore report's "hold")
        self.bridge = None            # the container's lxc.net.0.link on this edge
        self.source = SourceState()
        self._facts = None
        self.session = None           # the receiver's session for the frozen window (opened in preflight)
        self.prev_local = None
        self.final_channel = None
        self.delta_method = delta_method
        if delta_reads not in DELTA_READS:
            raise ValueError("delta_reads must be one of %s" % ", ".join(DELTA_READS))
        self.delta_reads = delta_reads    # delta iterations: read memory live (no freeze) or dump --leave-running
        if lazy_restore not in LAZY_RESTORES:
            raise ValueError("lazy_restore must be one of %s" % ", ".join(LAZY_RESTORES))
        self.lazy_restore = lazy_restore
        self.restore_local = False    # this migration's restore is lazy from the destination's images (plan_restore)
        self.receiver_version = None
        self.work_lock = None         # fd holding <work>/lock while this migration runs
        self.touch_pids = []          # the container's tasks whose accessed bits the last iteration cleared

    # -- helpers -----------------------------------------------------------------------------------
    def request(self, op, *args, **kw):
        """One receiver operation on the destination: through the open session when it can carry it (no SSH
        session, no Python start-up), else its own SSH command. ``(rc, out, err)``; ``check`` raises."""
        if self.session is not None and self.session.alive() and op in SESSION_OPS:
            rc, out, err = self.session.request(op, *args, timeout=kw.get("timeout"))
        else:
            rc, out, err = self.recv.call(op, *args, timeout=kw.get("timeout"))
        if kw.get("check") and rc != 0:
            raise RuntimeError("%s on %s failed (rc %s): %s" % (op, self.dest, rc, (err or out).strip()[-600:]))
        return rc, out, err

    def rootfs_dir(self):
        return os.path.join(self.lxcpath, self.name)

    # -- preflight: everything that can fail before anything is frozen -------------------------------
    def preflight(self, method="auto", check_mode=False):
        """Check container, destination and features; return facts. Raise PreflightError with an actionable msg
        (AlreadyOnDestination when there is nothing to do). ``check_mode``: change nothing on either edge."""
        try:
            validate.container_name(self.name)
            validate.ifname(self.ifname)
        except validate.ValidationError as e:
            raise PreflightError(str(e))
        if not PLAIN_PATH_RE.match(os.path.join(self.work, migration_guard.GUARD_FILE)):
            raise PreflightError("work dir %r: criu runs the migration guard in it through sh -c, so it must be a "
                                 "plain absolute path (letters, digits, '_', '.', '-', '/')" % self.work)
        if not PLAIN_PATH_RE.match(os.path.join(self.images_root, FINAL_DIR)):
            raise PreflightError("images dir %r: it must be a plain absolute path (letters, digits, '_', '.', '-', "
                                 "'/')" % self.images_root)
        info = self.lxc.info(self.name)
        link = self.lxc.config_item(self.name, "lxc.net.0.link") if info is not None else None
        # the first SSH session becomes the shared master: it carries the keepalives (see SSH_ALIVE_*); the probe
        # is read-only, and a token file tells whether the destination shares this edge's lxcpath
        token = None if check_mode else ".arnab-probe-%d-%d" % (os.getpid(), int(time.time() * 1e6))
        if token:
            with open(os.path.join(self.lxcpath, token), "w") as f:
                f.write("probe\n")
        try:
            dest = self.recv.probe(link=link, token=token)
        except ReceiverError as e:
            if e.rc == 126:
                raise PreflightError("destination %s refuses the migration receiver's probe (rc 126: %s): is the "
                                     "edge role's receiver installed there (edge_ssh_restrict: receiver)?"
                                     % (self.dest, (e.err or e.out).strip()[-200:]))
            raise PreflightError("destination %s is not reachable over SSH or has no migration receiver: %s"
                                 % (self.dest, e))
        finally:
            if token:
                os.unlink(os.path.join(self.lxcpath, token))
        if info is None or not self.lxc.exists(self.name) or info.get("state") != "RUNNING":
            if dest.get("state") == "RUNNING":
                raise AlreadyOnDestination("container %s already runs on %s and not here: nothing to do"
                                           % (self.name, self.dest))
            if info is None or not self.lxc.exists(self.name):
                raise PreflightError("container %s does not exist in %s on this edge" % (self.name, self.lxcpath))
            raise PreflightError("container %s is %s, not RUNNING: nothing to migrate live"
                                 % (self.name, info.get("state")))
        self.init_pid = info.get("pid")
        self.receiver_version = dest.get("receiver") or 0
        self.freezer = self.prefreeze_target(self.receiver_version)
        if check_mode:
            self.check_work_lock()
        else:
            self.hold_work_lock()
        feats = self.lxc.features()
        if not feats.get("criu_ok"):
            raise PreflightError("criu (%s) does not run on this edge" % self.criu)
        # the token file decides; check mode writes none and compares the lxcpath's device and inode on the same
        # host name only (identical disk images give equal inode numbers on distinct machines)
        st = os.stat(self.lxcpath)
        same_dir = dest.get("lxcpath_id") == [st.st_dev, st.st_ino] and dest.get("hostname") == socket.gethostname()
        if dest.get("token_found") or (check_mode and same_dir):
            raise PreflightError("destination %s shares this edge's %s (it is this edge?): refusing"
                                 % (self.dest, self.lxcpath))
        if not dest.get("lxc_checkpoint"):
            raise PreflightError("destination %s has no lxc-checkpoint" % self.dest)
        if not dest.get("criu_ok"):
            raise PreflightError("destination %s cannot run criu" % self.dest)
        if dest.get("state") in ("RUNNING", "FROZEN", "STARTING"):
            raise PreflightError("a container named %s already runs on %s" % (self.name, self.dest))
        if dest.get("exists_unmarked"):
            raise PreflightError("%s already has a container %s (stopped); remove it or pick another name"
                                 % (self.dest, self.name))
        if link and not dest.get("bridge"):
            raise PreflightError("destination %s has no bridge %s for the container's eth0" % (self.dest, link))
        if not check_mode:
            self.session = self.recv.session()
        dest_host = dest.get("hostname", "")
        dest_pipe = dest.get("pipe_max_size")
        feats["dest_hostname"] = dest_host
        feats["dest_pipe_max_size"] = dest_pipe
        feats["lazy_pages_ready"] = bool(feats.get("lazy_pages_ready")) and (dest_pipe or 0) >= LAZY_PIPE_MAX_SIZE
        feats["lazy_restore"] = self.lazy_restore
        unready = self.lazy_restore_unready(feats) if self.lazy_restore == "lazy" else None
        if unready:
            raise PreflightError("lazy_restore=lazy: %s" % unready)
        pids = pids_in_pidns(self.init_pid) if self.init_pid else []
        feats["memory_bytes"] = rss_bytes(pids)
        feats["processes"] = len(pids)
        feats["images_dir"] = self.choose_images_root(feats["memory_bytes"], create=not check_mode)
        feats["link_rate_bps"] = self.link_rate_bps
        feats["network_lock"] = self.final_dump_lock()
        # the final dump finds the container frozen (criu's pre-dump hook), not criu's 100 ms poll of its freeze
        feats["prefreeze"] = self.freezer["file"] if self.freezer else None
        history = self.cost_history()
        feats["fitted"] = fit_costs(history, self.name, self.dest, self.link_rate_bps)
        feats["drain_fitted"] = fit_drain(history, self.name, self.dest, self.postcopy_channel)
        feats["network_link"] = link
        self.bridge = link
        feats["source_hostname"] = socket.gethostname()
        feats["postcopy_channel"] = self.postcopy_channel
        if self.postcopy_channel in ("tcp", "tls"):
            if self.page_server_address is None:
                self.page_server_address = self._source_address()
            feats["page_server_address"] = self.page_server_address
        self._facts = feats
        return feats

    def lazy_restore_unready(self, facts):
        """Why the destination cannot restore lazily from its own images, or None."""
        if (self.receiver_version or 0) < RECEIVER_LAZY_LOCAL:
            return "the destination's receiver (version %s) predates restore --lazy --local: run the edge role" \
                % self.receiver_version
        if not facts.get("lazy_pages_ready"):
            return "lazy pages are not ready (criu check --feature uffd-noncoop, fs.pipe-max-size >= %d)" \
                % LAZY_PIPE_MAX_SIZE
        return None

    def plan_restore(self, method, mode, facts):
        """Eager or lazy (from the destination's images) restore for this migration: ``{"lazy", "why"}``."""
        lazy, why = False, None
        unready = self.lazy_restore_unready(facts)
        memory = facts.get("memory_bytes") or 0
        if method in LAZY_METHODS:
            why = "%s: the pages come from the source" % method
        elif self.lazy_restore == "eager":
            why = "lazy_restore=eager"
        elif unready:
            why = unready
        elif self.lazy_restore == "lazy":
            lazy, why = True, "lazy_restore=lazy"
        elif memory < LAZY_RESTORE_MIN_BYTES:
            why = "auto: %d MiB of memory (< %d MiB): a lazy restore would gain nothing" % (
                memory >> 20, LAZY_RESTORE_MIN_BYTES >> 20)
        else:
            lazy, why = True, "auto: %d MiB of memory: the copy runs before it is read" % (memory >> 20)
        self.restore_local = lazy
        return {"lazy": lazy, "why": why}

    def prefreeze_target(self, receiver_version):
        """The container's freezer for the final dump's pre-dump hook (criu.freezer_of), or None: prefreeze off, no
        PID, or a destination receiver that would leave the restored copy frozen (criu restores the state the dump
        found)."""
        if not (self.prefreeze and self.init_pid and (receiver_version or 0) >= RECEIVER_THAWS):
            return None
        return freezer_of(self.init_pid)

    def _source_address(self):
        """Our address on the path to the destination (where the destination's lazy-pages daemon connects)."""
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((socket.gethostbyname(self.dest), 9))
            addr = s.getsockname()[0]
            s.close()
            return addr
        except (OSError, socket.error):
            return None

    def link_tx_bytes(self):
        """TX byte counter of the interface that routes to the destination (None if unknown)."""
        if getattr(self, "route_dev", None) is None:
            rc, out, _err = self.run(["ip", "-o", "route", "get", self.page_server_dest_ip()])
            m = re.search(r"\bdev (\S+)", out or "") if rc == 0 else None
            self.route_dev = m.group(1) if m else ""
        if not self.route_dev:
            return None
        try:
            with open("/proc/net/dev") as f:
                for line in f:
                    name, _sep, rest = line.partition(":")
                    if name.strip() == self.route_dev:
                        return int(rest.split()[8])
        except (IOError, OSError, ValueError, IndexError):
            return None
        return None

    def page_server_dest_ip(self):
        try:
            return socket.gethostbyname(self.dest)
        except (OSError, socket.error):
            return self.dest

    def facts(self):
        if self._facts is None:
            self.preflight()
        return self._facts

    # -- filesystem --------------------------------------------------------------------------------
    def sync_fs(self, phase):
        """Sync the container's directory (config + rootfs) to the destination.

        preliminary / pre-freeze: full rsync (quick check by size+mtime). frozen: only what changed since the
        pre-freeze sync began (a local walk, no remote scan), so the frozen window does not pay a tree
        comparison."""
        src = self.rootfs_dir().rstrip("/") + "/"
        t0 = time.time()
        if phase == "preliminary":
            self.dest_touched = True
            self.recv.prepare()
        if not self.do_fs_sync:
            return {"phase": phase, "skipped": True, "bytes_sent": 0, "duration_s": 0.0}
        if phase in ("preliminary", "pre-freeze"):
            mark = time.time()
            if phase == "pre-freeze":
                self._prepare_work()
                self.fs_mark_file = os.path.join(self.work, ".fs-mark")
                with open(self.fs_mark_file, "w"):
                    pass
                os.utime(self.fs_mark_file, (mark - 1.0, mark - 1.0))
            res = self.pusher.push([src], "./", mode="whole", delete=True,
                                   archive_extras=("-H", "-A", "-X", "--numeric-ids"),
                                   excludes=["/.arnab-migrating"], rsync_path=self.recv.rsync_path("fs"))
            if phase == "pre-freeze":
                self.fs_mark = mark - 1.0
            return {"phase": phase, "bytes_sent": res["bytes_sent"], "duration_s": round(time.time() - t0, 4),
                    "files_changed": len(res["changed_items"])}
        # frozen: the container is stopped; send what changed since the pre-freeze sync started.
        changed = self._changed_files(src)
        scan_s = time.time() - t0
        if not changed:
            return {"phase": phase, "bytes_sent": 0, "duration_s": round(time.time() - t0, 4), "scan_s": round(
                scan_s, 4), "files_changed": 0, "scan_beside_dump": self.fs_scan_during_dump}
        size = 0
        for rel in changed:
            try:
                st = os.lstat(os.path.join(src, rel))
                size += st.st_size if not os.path.isdir(os.path.join(src, rel)) else 0
            except OSError:
                pass
        if size <= SMALL_IMAGES_BYTES and self.session is not None and self.session.alive():
            # a few files: through the open session, no rsync session in the frozen window
            existing = [rel for rel in changed if os.path.lexists(os.path.join(src, rel))]
            res = self.session.put_files(src, existing, kind="fs", timeout=120)
            return {"phase": phase, "bytes_sent": res["bytes_sent"], "duration_s": round(time.time() - t0, 4),
                    "scan_s": round(scan_s, 4), "files_changed": len(changed), "via": "receiver session (tar)",
                    "first_changed": changed[:FIRST_CHANGED],
                    "scan_beside_dump": self.fs_scan_during_dump}
        listfile = os.path.join(self.work, "fs-changed.list")
        with open(listfile, "w") as f:
            f.write("\n".join(changed) + "\n")
        res = self.pusher.push([src], "./", mode="whole", archive_extras=("-H", "-A", "-X", "--numeric-ids"),
                               extra=["--files-from=%s" % listfile], rsync_path=self.recv.rsync_path("fs"))
        return {"phase": phase, "bytes_sent": res["bytes_sent"], "duration_s": round(time.time() - t0, 4),
                "scan_s": round(scan_s, 4), "files_changed": len(changed), "scan_beside_dump": self.fs_scan_during_dump,
                "first_changed": changed[:FIRST_CHANGED]}

    def _changed_files(self, root):
        """Entries under ``root`` modified (mtime or ctime) since the pre-freeze sync began: find(1) when it
        can (a C walk, several times faster than Python's over a systemd rootfs), else :func:`changed_since`.
        The walk started beside the final dump once criu held the tasks (:meth:`_start_fs_scan`) is taken when it
        succeeded and criu remapped no file meanwhile (a link remap is a file criu itself adds to the rootfs)."""
        scan, self.fs_scan = self.fs_scan, None
        if scan:
            out, _err = scan.communicate()
            remaps = os.path.join(self.dump_dir or "", "remap-fpath.img")
            if scan.returncode == 0 and not (os.path.exists(remaps) and os.path.getsize(remaps) > 0):
                self.fs_scan_during_dump = True
                return [line for line in out.decode("utf-8", "surrogateescape").splitlines() if line]
        argv = self._find_changed_argv(root)
        if argv:
            rc, out, _err = self.run(argv, timeout=60)
            if rc == 0:
                return [line for line in out.splitlines() if line]
        return changed_since(root, self.fs_mark or 0)

    def _find_changed_argv(self, root):
        mark = getattr(self, "fs_mark_file", None)
        if not (mark and os.path.exists(mark)):
            return None
        return ["find", root.rstrip("/") + "/", "-xdev", "(", "-newer", mark, "-o", "-cnewer", mark, ")",
                "-printf", "%P\n"]

    def _start_fs_scan(self):
        """The frozen filesystem sync's walk, started while criu dumps (the tasks are held: nothing in the rootfs
        changes but what criu adds). False when there is nothing to start (the sync walks after the dump)."""
        argv = self._find_changed_argv(self.rootfs_dir()) if self.do_fs_sync else None
        if not argv:
            return False
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
        except OSError:
            return False

    # -- the work dir ----------------------------------------------------------------------------------
    def _prepare_work(self):
        """The work dir and its parent are root's alone (0700): images, the guard, the SSH master's socket; so are
        a separate images dir and its parent."""
        dirs = [os.path.dirname(self.work), self.work]
        if self.images_root != self.work:
            dirs += [os.path.dirname(self.images_root), self.images_root]
        for d in dirs:
            if not os.path.isdir(d):
                os.makedirs(d, 0o700)
            os.chmod(d, 0o700)

    def choose_images_root(self, memory_bytes, create=True):
        """Where the dumps go (``images_dir``, e.g. a tmpfs, only with room for IMAGES_DIR_DUMPS dumps of the
        container's memory; else the work dir). Returns the report's ``facts.images_dir``."""
        if self.images_root == self.work:
            return {"path": self.work}
        wanted = IMAGES_DIR_DUMPS * int(memory_bytes or 0)
        where = self.images_root
        while not os.path.isdir(where) and os.path.dirname(where) != where:
            where = os.path.dirname(where)      # the file system it will be created on
        st = os.statvfs(where)
        free = st.f_bavail * st.f_frsize
        why = "%s: %d MiB free < %d x %d MiB of memory" % (where, free >> 20, IMAGES_DIR_DUMPS,
                                                           int(memory_bytes or 0) >> 20)
        if free < wanted or free == 0:
            asked, self.images_root = self.images_root, self.work
            return {"path": self.work, "asked": asked, "fallback": why}
        if create:
            self._prepare_work()
        return {"path": self.images_root, "free_bytes": free}

    def _image_dir(self, sub):
        return os.path.join(self.images_root, sub)

    def hold_work_lock(self):
        """Lock <work>/lock for the life of this process: a second migration of the container is refused, and
        the edge role tells a live migration from the work dir a dead one left (killed, power cut), whose
        leftovers go now."""
        self._prepare_work()
        fd = os.open(os.path.join(self.work, WORK_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            os.close(fd)
            raise PreflightError("container %s is already being migrated from this edge (%s is locked)"
                                 % (self.name, os.path.join(self.work, WORK_LOCK)))
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())     # who holds it (the guard writes its own pid when it takes over)
        self.work_lock = fd
        self._empty_work(keep=lambda name: False)
        if self.images_root != self.work:
            _rm_rf(self.images_root)           # a dead migration's dumps

    def check_work_lock(self):
        """Check mode: refuse as :meth:`hold_work_lock` would, creating nothing."""
        path = os.path.join(self.work, WORK_LOCK)
        fd = migration_guard.lock_is_free(path) if os.path.exists(path) else -1
        if fd is not None and fd >= 0:
            os.close(fd)
        if fd is None:
            raise PreflightError("container %s is already being migrated from this edge (%s is locked)"
                                 % (self.name, path))

    def discard_work(self, keep_logs=False):
        """Remove the source's work dir (and <lxcpath>/.arnab-migrate when nothing else migrates). keep_logs: only
        the images go and criu's logs stay for a diagnosis (the next migration clears them); returns the dir."""
        if self.images_root != self.work and not keep_logs:
            _rm_rf(self.images_root)
        if not keep_logs:
            _rm_rf(self.work)
            try:
                os.rmdir(os.path.dirname(self.work))
            except OSError:
                pass
            return None
        self._empty_work(keep=lambda name: name.endswith(".log"))
        return self.work

    def _empty_work(self, keep):
        """Remove everything under the work dir (and the images dir) but the lock and the files whose name
        ``keep`` accepts."""
        roots = [self.work] + ([self.images_root] if self.images_root != self.work else [])
        for dirpath, dirnames, filenames in (w for root in roots for w in os.walk(root, topdown=False)):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                if not keep(name) and os.path.join(dirpath, name) != os.path.join(self.work, WORK_LOCK):
                    os.remove(os.path.join(dirpath, name))
            for name in dirnames:
                try:
                    os.rmdir(os.path.join(dirpath, name))     # fails while kept files are left in it: fine
                except OSError:
                    pass

    # -- memory ------------------------------------------------------------------------------------
    def predump(self, n, parent, mode):
        self._prepare_work()
        d = self._image_dir("it-%d" % n)
        _rm_rf(d)
        if mode == "native":
            res = self.lxc.checkpoint(self.name, d, action="pre-dump", parent_dir=parent)
        elif self.delta_reads == "live":
            res = self._live_read(d)
        else:
            res = self._dump_running(d)
        self._clear_touched()   # after the read: reading a page marks it accessed too
        return res

    def _dump_running(self, images_dir):
        """A full dump that leaves the container running (frozen for the whole dump); the previous iteration's
        images stay until the transfer has diffed against them."""
        res = self.lxc.checkpoint(self.name, images_dir, action="dump", leave="running")
        res["read"] = "dump"
        return res

    def _live_read(self, images_dir):
        """The container's memory read while it runs (memory_snapshot.py): no freeze. When it cannot be read, this
        iteration and the next ones dump instead (the report says why)."""
        try:
            snap = memory_snapshot.snapshot(pids_in_pidns(self.init_pid) if self.init_pid else [], images_dir)
        except (memory_snapshot.SnapshotError, IOError, OSError) as e:
            self.log("live memory read failed (%s): dumping instead" % e)
            self.delta_reads = "dump"
            _rm_rf(images_dir)
            res = self._dump_running(images_dir)
            res["live_error"] = str(e)
            return res
        return {"images_dir": images_dir, "duration_s": snap["duration_s"], "read": "live", "snapshot": snap,
                "stats": {"frozen_time": 0, "pages_scanned": snap["pages"], "pages_written": snap["pages"]}}

    def _clear_touched(self):
        """The container runs again after an iteration's dump: clear its pages' accessed bits, so that
        :meth:`touched_since_dump` tells what it touched while this iteration's images moved."""
        self.touch_pids = []
        for pid in (pids_in_pidns(self.init_pid) if self.init_pid else []):
            try:
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("1")
                self.touch_pids.append(pid)
            except (IOError, OSError):
                continue

    def touched_since_dump(self):
        """Bytes the container touched since the last iteration's dump (None: not measurable here): the fallback
        rule's estimate of the next dirty set before any re-dump (:func:`fallback_reason`)."""
        return referenced_bytes(self.touch_pids) if self.touch_pids else None

    def final_dump(self, parent, mode):
        """The freeze: criu dumps and then waits in the guard (tasks frozen, network locked) for the decision."""
        d = self._image_dir(FINAL_DIR)
        _rm_rf(d)
        return self._guarded_dump(d, parent_dir=parent if mode == "native" else None, track_mem=(mode == "native"))

    def lazy_dump(self, parent=None):
        """Post-copy's freeze: everything but memory is dumped, and criu waits in the guard. Its page server starts
        only once the restore is about to be sent (:meth:`start_page_server`): until then an abort is criu's
        own clean resume. ``parent`` (hybrid): the last pre-dump's dir; criu serves only what changed since."""
        d = self._image_dir("lazy")
        _rm_rf(d)
        self.lazy_tx0 = self.link_tx_bytes()
        return self._guarded_dump(d, parent_dir=parent, track_mem=parent is not None, lazy=True)

    def _guarded_dump(self, images_dir, parent_dir=None, track_mem=False, lazy=False):
        if self.guard_path is None:     # before_freeze did not run: it writes the guard and starts the holder
            self.guard_path = self._arm_guard(lazy)
            self.start_holder()
        guard = self.guard_path
        tunnel = self.page_tunnel if lazy else None
        argv, env = self.lxc.checkpoint_command(self.name, images_dir, action="dump", parent_dir=parent_dir,
                                                leave="stopped", track_mem=track_mem, lazy_pages=lazy,
                                                address=self.page_server_address if lazy else None,
                                                port=self.lazy_port if lazy else None, action_script=guard,
                                                ps_socket=tunnel.criu_fd() if tunnel else None,
                                                tls_dir=self.tls_dir if lazy else None,
                                                network_lock=self.final_dump_lock())
        full_env = dict(os.environ)
        full_env.update(env)
        t0 = time.time()
        self.source.to(SourceState.FROZEN)
        # its own session: whatever kills the engine's process group must not take criu and the guard with it
        with open(os.path.join(self.work, "dump.out"), "wb") as out:
            self.dump_proc = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              pass_fds=(tunnel.criu_fd(),) if tunnel else ())
        if tunnel:
            tunnel.criu_has_it()
        self.dump_dir = images_dir
        while True:
            if self.fs_scan is None and os.path.exists(os.path.join(self.work, migration_guard.SEIZED_FILE)):
                self.fs_scan = self._start_fs_scan()    # the frozen sync's walk, beside criu's dump
            if os.path.exists(os.path.join(self.work, migration_guard.DUMPED_FILE)):
                break
            if self.dump_proc.poll() is not None or os.path.exists(os.path.join(self.work,
                                                                                migration_guard.UNLOCKING_FILE)):
                tail = log_tail(os.path.join(images_dir, "dump.log"))
                raise CriuError("%sdump of %s failed before the images were complete (rc %s): %s" % (
                    "lazy " if lazy else "", self.name, self.dump_proc.returncode,
                    find_criu_error(tail) or log_tail(os.path.join(self.work, "dump.out"), 5)), log_tail=tail)
            if time.time() - t0 > DUMP_TIMEOUT_S:
                raise CriuError("dump of %s not done after %ss" % (self.name, DUMP_TIMEOUT_S))
            time.sleep(migration_guard.POLL_S)
        # nothing more in the frozen window: criu writes its stats after post-dump, and the images' size is for the
        # report (both come with the commit)
        self.dump_s = time.time() - t0
        return {"images_dir": images_dir, "duration_s": self.dump_s, "bytes": None, "stats": {}}

    def _arm_guard(self, lazy=False):
        """Write the guard (criu's action script) and what it needs into the private work dir."""
        for name in (migration_guard.DECISION_FILE, migration_guard.DUMPED_FILE, migration_guard.UNLOCKING_FILE,
                     migration_guard.RESOLVED_FILE, migration_guard.SEIZED_FILE):
            try:
                os.remove(os.path.join(self.work, name))
            except OSError:
                pass
        cleanup = [["lxc-stop", "-k", "-n", self.name, "-P", self.lxcpath]]
        if self.source_cleanup == "destroy":
            cleanup.append(["lxc-destroy", "-n", self.name, "-P", self.lxcpath])
        cleanup.append(["rm", "-rf", "--one-file-system", self.work])
        if self.images_root != self.work:
            cleanup.append(["rm", "-rf", "--one-file-system", self.images_root])
        # the guard outlives this process: its SSH commands do not lean on our shared master connection
        cleanup.append(self.recv.argv("commit", control=False))
        cfg = {"lock": os.path.join(self.work, WORK_LOCK), "status_argv": self.recv.argv("status", control=False),
               "clean_argv": self.recv.argv("clean", "--ifname", self.ifname, control=False),
               "source_cleanup_argvs": cleanup,
               # post-copy's drain watcher, should the engine die while the pages drain (migration_guard.py)
               "lazy_status_argv": self.recv.argv("lazy-status", control=False),
               # a lazy restore from the destination's images: its copy counts once every page is in
               "lazy_local": self.restore_local,
               "container": self.name, "lxcpath": self.lxcpath, "init_pid": self.init_pid, "freezer": self.freezer,
               "netfix_argvs": self._netfix_argvs(self.init_pid),
               # a dead engine's guard ends an aborted lazy dump's page server by connecting to it (tcp); over
               # ssh the guard's clean of the destination ends the receiver's relay, and with it criu's client
               "lazy_page_server": ([self.page_server_address or "127.0.0.1", self.lazy_port]
                                    if lazy and self.page_tunnel is None else None)}
        migration_guard.write_atomic(os.path.join(self.work, migration_guard.GUARD_CONFIG), json.dumps(cfg))
        with open(os.path.join(self.work, migration_guard.GUARD_FILE + ".py"), "w") as f:
            f.write(module_source(migration_guard))
        # criu runs the action script at every hook, some while the container is frozen: the common path is a shell
        # (a Python start costs ~0.1 s here, in the frozen window); Python (-I -S) only where the guard must decide
        # alone (the engine is gone: its lock is free) or wait for a clean destination (network-unlock, no abort)
        path = os.path.join(self.work, migration_guard.GUARD_FILE)
        with open(path, "w") as f:
            f.write(GUARD_SH % dict(self._guard_lock_sh(), w=_q(self.work), py=_q(sys.executable or "/usr/bin/python3"),
                                    guard=_q(path + ".py"),
                                    prefreeze=prefreeze_sh(self.freezer) if self.freezer else "exit 0"))
        os.chmod(path, 0o700)
        return path

    @property
    def cost_history_path(self):
        return os.path.join(self.lxcpath, ".arnab-migrate", COST_HISTORY_FILE)

    def cost_history(self):
        """This edge's past migrations (:func:`cost_record`), oldest first; [] without any or from a broken file."""
        try:
            with open(self.cost_history_path) as f:
                history = json.load(f)
        except (IOError, OSError, ValueError):
            return []
        return [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []

    def remember_costs(self, rep):
        """Add a successful migration to the history auto's model is fitted to; never fails the migration."""
        record = cost_record(rep, self.name, self.dest)
        if record is None:
            return
        try:
            if not os.path.isdir(os.path.dirname(self.cost_history_path)):
                os.makedirs(os.path.dirname(self.cost_history_path), 0o700)
            migration_guard.write_atomic(self.cost_history_path,
                                         json.dumps((self.cost_history() + [record])[-COST_HISTORY_SIZE:]))
        except (IOError, OSError):
            pass

    def ts_shift_ms(self):
        """How far the restored sockets' timestamp clocks move forward (criu.shift_tcp_timestamps), or None. With the
        inbound-only lock the source's sockets can send until the guard's fence at post-dump: the final dump's
        duration bounds how much newer their last timestamp can be than the one criu saved."""
        if self.final_dump_lock() != INBOUND_LOCK or self.dump_s is None:
            return None
        return int(math.ceil(self.dump_s * 1000)) + TS_SHIFT_MARGIN_MS

    def final_dump_lock(self):
        """The final dump's network lock. The inbound-only lock is the guard's, in the container's namespace: without
        the container's PID, or when that PID is not in a network namespace of its own (the guard's drop would cut
        this edge's own connections, the engine's SSH sessions among them), criu's own."""
        if self.network_lock == INBOUND_LOCK and not (self.init_pid and own_netns(self.init_pid)):
            return "nftables"
        return self.network_lock

    def _guard_lock_sh(self):
        """The guard's shell lines for the inbound-only lock (criu.INBOUND_LOCK), in the container's namespace:
        ``lock`` (criu's network-lock hook), ``fence`` (post-dump, first: outbound goes too) and ``unlock`` (before
        criu resumes an aborted source). With criu's own lock they do nothing."""
        if self.final_dump_lock() != INBOUND_LOCK:
            return {"lock": "exit 0", "fence": ":", "unlock": ":"}
        pid = int(self.init_pid)

        def load(name, rules):
            path = os.path.join(self.work, name)
            with open(path, "w") as f:
                f.write(rules)
            return "nsenter -t %d -n nft -f %s" % (pid, _q(path))
        return {"lock": "exec " + load("lock.nft", INBOUND_LOCK_RULES),
                "fence": load("fence.nft", OUTBOUND_LOCK_RULES),
                "unlock": " ".join(_q(a) for a in inbound_unlock_argv(pid)) + " 2>/dev/null"}

    def start_holder(self):
        """With the inbound-only lock, the packet holder (packet_hold.py) keeps what the frozen source is sent, for
        the restored copy; started before the freeze, bound before criu's lock. A holder that does not start only
        costs what it would have saved (the lock drops, as before): the log and the report say so."""
        if not self.hold_packets or self.final_dump_lock() != INBOUND_LOCK or not self.bridge:
            return
        path = os.path.join(self.work, "packet_hold.py")
        with open(path, "w") as f:
            f.write(module_source(packet_hold))
        # its stdin and stdout are our pipes: it stops (and drops what it held) when we close them or die
        self.holder = subprocess.Popen([sys.executable or "/usr/bin/python3", "-I", "-S", path,
                                        str(int(self.init_pid)), self.ifname, self.bridge, str(HOLD_GROUP)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        line = self._holder_line(HOLD_START_S)
        if line != packet_hold.READY:
            self.hold_result = self._holder_outcome(line)
            self.log("packet hold did not start: %s" % self.hold_result.get("error", self.hold_result["outcome"]))
            self._stop_holder()

    def replay_held(self):
        """The destination runs the container: the holder sends it what the source was sent in the meantime (it
        answers at once: the copies go out in a few ms). Its outcome for the report (None without a holder)."""
        if self.holder is None:
            return self.hold_result
        try:
            self.holder.stdin.write(packet_hold.REPLAY.encode() + b"\n")
            self.holder.stdin.flush()
        except (IOError, OSError):
            pass
        self.hold_result = self._holder_outcome(self._holder_line(HOLD_REPLAY_WAIT_S))
        self._stop_holder()
        return self.hold_result

    def _holder_line(self, timeout):
        """The holder's next line, or None if it says nothing within ``timeout`` seconds."""
        if select.select([self.holder.stdout], [], [], timeout)[0]:
            return self.holder.stdout.readline().decode("utf-8", "replace").strip() or None
        return None

    @staticmethod
    def _holder_outcome(line):
        try:
            res = json.loads(line or "")
        except ValueError:
            res = None
        return res if isinstance(res, dict) and "outcome" in res else {"outcome": "no answer"}

    def _stop_holder(self):
        """Whatever it still holds is dropped (what the lock did before)."""
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            for pipe in (self.holder.stdin, self.holder.stdout):
                pipe.close()
            self.holder = None

    def decide(self, decision):
        """Tell the guard (criu waits in it): commit -> the frozen source stays stopped; abort -> criu resumes it."""
        migration_guard.write_atomic(os.path.join(self.work, migration_guard.DECISION_FILE), decision)

    def commit(self):
        """The commit point: the destination runs the container (post-copy: and every page has arrived there).
        criu leaves the frozen tasks stopped and exits; :meth:`destroy_source` removes them."""
        t0 = time.time()
        self.decide(migration_guard.COMMIT)
        self.source.to(SourceState.COMMITTED)
        try:
            rc = self.dump_proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        return {"commit_s": round(time.time() - t0, 4), "dump_rc": rc, "bytes": _dir_bytes(self.dump_dir),
                "stats": summarize_dump_stats(read_stats(self.dump_dir, "dump"))}

    def wait_lazy_done(self):
        """Post-copy drain, watched by progress: the source's page server must keep sending (its link's TX
        counter grows) or finish; DRAIN_STALL_S without a byte fails it."""
        last_tx, last_move = self.link_tx_bytes(), time.time()
        while self.dump_proc.poll() is None:   # criu exits once the last page has left
            time.sleep(0.05)
            tx = self.link_tx_bytes()
            if tx != last_tx:
                last_tx, last_move = tx, time.time()
            elif time.time() - last_move > DRAIN_STALL_S:
                raise CriuError("post-copy drain stalled: no page sent for %ss" % DRAIN_STALL_S)
        if self.dump_proc.returncode != 0:
            tail = log_tail(os.path.join(self.dump_dir, "dump.log"))
            raise CriuError("lazy page transfer failed on the source (dump rc %s): %s" % (
                self.dump_proc.returncode, find_criu_error(tail)), log_tail=tail)
        # the source's page server exits 0 even when its client went away: ask the destination's daemon
        text = self._lazy_daemon_status(migration_guard.LAZY_PENDING_S, 0.1) or "PENDING"
        if text != "0":
            self._lazy_daemon_failed("lazy page transfer failed at the destination (criu lazy-pages exit status %s)"
                                     % text)
        # criu 4.2.1 leaves stats-dump of a lazy dump unfilled (zero counters, a bogus frozen_time), so the pages
        # served are measured on the wire: bytes this edge sent towards the destination while serving them
        tx1 = self.link_tx_bytes()
        sent = (tx1 - self.lazy_tx0) if (tx1 is not None and self.lazy_tx0 is not None) else None
        return {"stats": {}, "bytes": sent, "interface": self.route_dev}

    def wait_local_pages(self, bound_s=LOCAL_FILL_S):
        """A lazy restore from the destination's own images: wait until its daemon has put the last page in (the
        source stays frozen meanwhile, to be resumed should it fail). ``{"fill_s", "lazy_pages_rc"}``."""
        t0 = time.time()
        text = self._lazy_daemon_status(bound_s, 0.02)
        if text != "0":
            why = "status " + text if text not in (None, "PENDING") else "%s after %ss" % (
                "still pending" if text else "no answer", bound_s)
            self._lazy_daemon_failed("lazy restore: the destination's lazy-pages daemon did not fill the memory (%s)"
                                     % why)
        return {"fill_s": round(time.time() - t0, 4), "lazy_pages_rc": 0}

    def _lazy_daemon_status(self, bound_s, poll_s):
        """Ask the destination's ``lazy-status`` every ``poll_s`` until its lazy-pages daemon has exited: its exit
        status; after ``bound_s`` ``PENDING`` (it still runs) or None (no answer)."""
        t0 = time.time()
        while True:
            _rc, out, _err = self.request("lazy-status", timeout=30)
            text = out.strip().splitlines()[-1] if out.strip() else None
            if text not in (None, "PENDING") or time.time() - t0 > bound_s:
                return text
            time.sleep(poll_s)

    def _lazy_daemon_failed(self, what):
        """Raise CriuError(what) with the destination's restore and lazy-pages logs."""
        _r, logtxt, _e = self.request("logs", timeout=30)
        raise CriuError("%s: %s" % (what, find_criu_error(logtxt) or "daemon killed or lost"), log_tail=logtxt)

    # -- transfer ----------------------------------------------------------------------------------
    def transfer(self, images_dir, n, mode):
        """Push an images dir. delta/stop-and-copy/post-copy: into ONE dest dir, ``images`` (delta against what
        is there); native: a dest dir per iteration, chained like the source's (``parent`` symlinks are
        relative). The receiver confines every write to this container's work dir on the destination."""
        if mode == "native" and n == FINAL_DIR and self.final_channel is not None:
            # the frozen window: the final dir whole through the stream opened before the freeze (an rsync would
            # start an SSH channel and a receiver here); the receiver links it to its parent, whose pages criu
            # reads from there
            dest = FINAL_DIR
            channel, self.final_channel = self.final_channel, None
            res = self.pusher.push_page_delta(images_dir, None, dest, {}, channel=channel, all_files=True)
            res["plan"] = {"whole": res["whole"], "delta": [], "via": "patch stream opened before the freeze"}
        elif mode == "native":
            dest = os.path.basename(images_dir.rstrip("/"))
            res = self.pusher.push([images_dir.rstrip("/") + "/"], "./", mode="whole", ignore_times=True,
                                   excludes=["*.log", ".criu-*.conf"], rsync_path=self.recv.rsync_path("images", dest))
            res["literal_bytes"] = res["stats"].get("literal_bytes", 0)
        elif n == FINAL_DIR and self.final_channel is not None:
            # the frozen window: one stream into the patcher opened before the freeze; pages as deltas against
            # the previous iteration when the destination has it, everything else whole
            dest = "images"
            channel, self.final_channel = self.final_channel, None
            prev = self.prev_local if (self.dest_files and self.delta_method == "pages") else None
            t0 = time.time()
            res = self.pusher.push_page_delta(images_dir, prev, dest, self.dest_files, channel=channel,
                                              all_files=True)
            keep = set(res["names"])
            stale = sorted(set(self.dest_files) - keep)
            if stale:
                self.request("rm", "--dir", dest, *stale, check=True)
            res["duration_s"] = time.time() - t0
            res["plan"] = {"delta": res["delta"], "whole": res["whole"], "stale_removed": stale, "by": res["by"],
                           "aside": res["aside"], "via": "patch stream opened before the freeze"}
        elif not self.dest_files and self.session is not None and self.session.alive() and \
                _dir_bytes(images_dir) <= SMALL_IMAGES_BYTES:
            # a small images dir (post-copy, tiny containers) goes through the open session: an rsync would
            # pay a new SSH session in the frozen window
            dest = "images"
            names = sorted(n for n in list_files(images_dir) if not n.endswith(".log") and not n.startswith(".criu-"))
            res = self.session.put_files(images_dir, names, kind="images", subdir=dest, timeout=120)
            res["plan"] = {"whole": names, "delta": [], "via": "receiver session (tar)"}
        elif self.dest_files and self.prev_local and self.delta_method == "pages":
            dest = "images"
            res = self.push_pages(images_dir, dest)
        else:
            dest = "images"
            res = self.pusher.push_images(images_dir, "./", dest_files=self.dest_files,
                                          rsync_path=self.recv.rsync_path("images", dest))
        if mode != "native":
            self.dest_files = dict((k, v) for k, v in list_files(images_dir).items()
                                   if not k.endswith(".log") and not k.startswith(".criu-"))
            if self.prev_local and self.prev_local != images_dir:
                _rm_rf(self.prev_local)    # the destination now holds images_dir's bytes: diff against those next
            self.prev_local = images_dir
        self.dest_touched = True
        self.dest_dir = dest
        return res

    def before_freeze(self, method, mode, parent=None):
        """Open the channels the frozen window will use: the final transfer's (native pre-copy's into ``final``,
        linked to ``parent``, the last pre-dump's dir) and post-copy's page channel (over ssh its keepalives
        tolerate what the drain's progress rule does: a backhaul that comes back within DRAIN_STALL_S loses
        nothing). The guard is written and the packet holder started here too: the holder's Python start-up was
        counted as downtime when it ran after the freeze's clock had started."""
        self.guard_path = self._arm_guard(lazy=(method in LAZY_METHODS))
        self.start_holder()
        if method in LAZY_METHODS and self.postcopy_channel == "ssh":
            self.page_tunnel = self.recv.page_tunnel(ssh_options=keepalives(DRAIN_STALL_S // SSH_ALIVE_INTERVAL_S))
        elif method in LAZY_METHODS and self.postcopy_channel == "tls":
            tls_dir = os.path.join(self.work, "tls")
            own = tls_identity(tls_dir)
            pin_tls_peer(tls_dir, self.recv.tls_exchange(own))
            self.tls_dir = tls_dir
        if mode != "native":
            self.final_channel = self.recv.open_patch("images")
        elif parent and (self.receiver_version or 0) >= RECEIVER_PATCH_PARENT:
            self.final_channel = self.recv.open_patch(FINAL_DIR, parent=os.path.basename(parent.rstrip("/")))

    def push_pages(self, images_dir, dest):
        """Delta mode after the first iteration: page images as page-aligned deltas against the previous
        iteration (one SSH stream into the receiver's patcher), the small metadata images through the open
        session, stale files removed."""
        files = dict((k, v) for k, v in list_files(images_dir).items()
                     if not k.endswith(".log") and not k.startswith(".criu-"))
        t0 = time.time()
        pages = self.pusher.push_page_delta(images_dir, self.prev_local, dest, self.dest_files,
                                            channel=self.recv.open_patch(dest))
        others = sorted(n for n in files if n not in pages["names"])
        small = self.session.put_files(images_dir, others, kind="images", subdir=dest, timeout=120) if others \
            else {"bytes_sent": 0}
        stale = sorted(set(self.dest_files) - set(files))
        if stale:
            self.request("rm", "--dir", dest, *stale, check=True)
        return {"bytes_sent": pages["bytes_sent"] + small["bytes_sent"],
                "literal_bytes": pages["literal_bytes"] + small.get("literal_bytes", 0),
                "copied_bytes": pages["copied_bytes"],
                "duration_s": time.time() - t0, "page_delta_s": round(pages["duration_s"], 4),
                "plan": {"delta": pages["delta"], "whole": pages["whole"] + others, "via": "page-aligned delta",
                         "runs": pages["runs"], "by": pages["by"], "aside": pages["aside"],
                         "stale_removed": stale}}

    # -- restore on the destination ---------------------------------------------------------------
    def start_page_server(self, timeout=60):
        """Post-copy's point of no return on the source: criu leaves the guard and serves pages. From here a
        failure leaves the source's tasks with criu's network lock (fenced) until the engine has cleaned the
        destination and unlocks them by hand (:meth:`_resume_by_hand`)."""
        self.decide(migration_guard.COMMIT)
        self.page_server_started = True
        # the guard's part ends here: a watcher finishes the drain should this process die during it
        watcher = [sys.executable or "/usr/bin/python3", "-I", "-S",
                   os.path.join(self.work, migration_guard.GUARD_FILE + ".py"), "--watch-drain", str(self.dump_proc.pid)]
        self.drain_watcher = subprocess.Popen(watcher, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, start_new_session=True)
        if self.page_tunnel is not None:
            return      # criu serves on the tunnel's socket: the daemon's requests wait there until it does
        t0 = time.time()
        while not listening(self.lazy_port):
            if self.dump_proc.poll() is not None:
                raise CriuError("lazy dump of %s exited rc %s before serving pages"
                                % (self.name, self.dump_proc.returncode))
            if time.time() - t0 > timeout:
                raise CriuError("lazy dump of %s not serving pages after %ss" % (self.name, timeout))
            time.sleep(0.002)

    def restore(self, lazy=False):
        """The receiver restores (lazy-pages daemon, ``lxc-checkpoint -r``, TX offload off, gratuitous ARP, TCP
        kick) in the session opened before the freeze; once criu's restore succeeded nothing after it can fail
        it, and a connection lost mid-way cannot stop it (it ignores SIGHUP/SIGPIPE and buffers its output)."""
        if lazy:
            self.start_page_server()
        t0 = time.time()
        self.restore_sent = True
        if self.page_tunnel is not None:
            address, port = "127.0.0.1", self.page_tunnel.port     # the receiver's end of the page channel
        else:
            address, port = self.page_server_address, self.lazy_port
        kw = dict(lazy=lazy or self.restore_local, local=self.restore_local and not lazy, address=address, port=port,
                  tls=lazy and self.tls_dir is not None,
                  timeout=self.restore_timeout,
                  verbose=self.lxc.verbose, subdir=self.dest_dir or "images", ts_shift_ms=self.ts_shift_ms())
        if self.session is not None and self.session.alive():
            rc, out, err = self.session.restore(self.ifname, **kw)
        else:
            rc, out, err = self.recv.restore(self.ifname, **kw)
        dt = time.time() - t0
        if rc in (124, 255) or (rc == 0 and " restored " not in out):
            # the connection broke (or timed out) with the restore sent: it may run there, or not
            raise RestoreUncertain("restore on %s: no answer (rc %s: %s)"
                                   % (self.dest, rc, (err or out).strip()[-200:]))
        if rc != 0:
            logtxt = self.request("logs", timeout=30)[1]
            raise CriuError("restore on %s failed (rc %s): %s" % (
                self.dest, rc, find_criu_error(logtxt) or find_criu_error(out) or (err or out).strip()[-400:]),
                rc=rc, stderr=err, log_tail=logtxt)
        res = self.parse_restore_output(out)
        res["duration_s"] = round(dt, 4)
        res["hold"] = self.replay_held()
        return res

    @staticmethod
    def parse_restore_output(out):
        """The restore script's markers: ``T <step> <epoch>``, ``PID n``, ``kicked n``, ``TS_SHIFTED sockets ms``,
        ``THAWED`` (the restored copy came frozen, as the prefrozen dump found it) and warnings."""
        marks = {}
        pid = kicked = ts_shift = None
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "T":
                try:
                    marks[parts[1]] = float(parts[2])
                except ValueError:
                    pass
            elif len(parts) == 2 and parts[0] == "PID":
                pid = parts[1]
            elif len(parts) == 2 and parts[0] == "kicked" and parts[1].isdigit():
                kicked = int(parts[1])
            elif len(parts) == 3 and parts[0] == "TS_SHIFTED" and parts[1].isdigit() and parts[2].isdigit():
                ts_shift = {"sockets": int(parts[1]), "ms": int(parts[2])}
        res = {"pid": pid, "garp": "GARP_FAILED" not in out, "tcp_kicked": kicked, "marks": marks,
               "ts_shift": ts_shift, "thawed": "THAWED" in out.split(),
               "warnings": [w for w in ("NO_PID", "TXOFF_FAILED", "GARP_FAILED", "INBOUND_LOCK_LEFT", "TS_SHIFT_FAILED")
                            if w in out]}
        if "start" in marks and "restored" in marks:
            res["restore_s"] = round(marks["restored"] - marks.get("lazyd", marks["start"]), 4)
            if "lazyd" in marks:
                res["lazy_daemon_s"] = round(marks["lazyd"] - marks["start"], 4)
            res["netfix_s"] = round(marks.get("netfix", marks["restored"]) - marks["restored"], 4)
        return res

    def await_outcome(self, bound_s=None):
        """After an uncertain restore: ask the destination until it answers (for at most ``bound_s``).
        Returns ``'running'`` (its copy serves: commit), ``'absent'`` (no copy: it can be cleaned and the source
        resumed) or ``'unknown'`` (still unreachable: the source stays frozen, the guard goes on asking)."""
        deadline = time.time() + (RESOLVE_S if bound_s is None else bound_s)
        while True:
            status = self.recv.status()     # (state, restore), None while it cannot be asked
            if status is not None:
                state, restore = status
                if state == "RUNNING" and restore != "pending":
                    return "running"
                if restore != "pending" and state in ("ABSENT", "STOPPED", "ABORTING", "STOPPING"):
                    return "absent"
            if time.time() >= deadline:
                return "unknown"
            time.sleep(1.0)

    # -- rollback / cleanup ------------------------------------------------------------------------
    def clean_dest(self, retry_s=DEST_CLEAN_RETRY_S):
        """Kill whatever we started on the destination and remove what we copied there (retrying for ``retry_s``
        while the destination cannot be reached)."""
        if self.page_tunnel is not None:
            self.page_tunnel.close()
        if self.final_channel is not None:
            self.final_channel.kill()
            self.final_channel.wait()
            self.final_channel = None
        if not self.dest_touched:
            return {"skipped": "nothing on the destination"}
        deadline = time.time() + retry_s
        attempts = 0
        while True:
            attempts += 1
            rc, out, err = self.recv.clean(self.ifname)
            if rc != 255 or time.time() >= deadline:
                break
            time.sleep(1.0)     # unreachable (the backhaul is down?): try again until the deadline
        if rc != 0 or "cleaned" not in out:
            raise RuntimeError("cleaning %s failed (rc %s%s): %s" % (
                self.dest, rc, ", unreachable for %ss" % retry_s if rc == 255 else "", err.strip()[-300:]))
        return {"ok": True, "attempts": attempts}

    def fence(self):
        """The destination's state is unknown: the source stays frozen in criu's guard, which takes over when this
        process ends (its lock is freed) and decides once the destination answers."""
        if self.source.state == SourceState.FROZEN:
            self.source.to(SourceState.FENCED)
        return {"guard": os.path.join(self.work, migration_guard.GUARD_FILE),
                "criu_pid": self.dump_proc.pid if self.dump_proc else None,
                "guard_log": os.path.join(self.work, migration_guard.GUARD_LOG)}

    def resume_source(self):
        """Bring the source back. While criu waits in the guard, an ``abort`` lets criu itself unlock the network,
        take the TCP sockets out of repair and resume the tasks. Never called while the destination may run."""
        if self.source.state == SourceState.RUNNING:
            return {"noop": "source was never frozen", "ok": True}
        if self.page_server_started:
            return self._resume_by_hand()
        out = {}
        if self.dump_proc is not None:
            self.decide(migration_guard.ABORT)
            deadline = time.time() + 60
            while self.dump_proc.poll() is None:
                if self.dump_dir.endswith("/lazy"):
                    # after an abort criu unlocks and still starts its page server: a client that leaves ends
                    # it, and criu resumes the tasks
                    self.end_page_client()
                if time.time() > deadline:
                    raise RuntimeError("criu did not resume %s within 60 s after the abort (pid %d)"
                                       % (self.name, self.dump_proc.pid))
                time.sleep(0.05)
            out["dump_rc"] = self.dump_proc.returncode
        info = self.lxc.info(self.name) or {}
        if info.get("state") == "FROZEN":
            self.run(["lxc-unfreeze", "-n", self.name, "-P", self.lxcpath])
            out["thawed"] = True
        if migration_guard.thaw(self.freezer):
            out["thawed"] = True     # criu froze it again on resuming: it was frozen when criu came (pre-dump hook)
        pid = info.get("pid")
        if not pid or not os.path.exists("/proc/%s" % pid):
            raise RuntimeError("source container %s has no running tasks after the abort" % self.name)
        # the data switch may have learnt the container's MAC at the destination: announce it here again
        for argv in self._netfix_argvs(pid):
            self.run(argv)
        self.source.to(SourceState.RESUMED)
        out["resumed_by"] = "criu"
        out["ok"] = True
        return out

    def _netfix_argvs(self, pid):
        """Announce the container again where it runs now (gratuitous ARP, TCP kick)."""
        return netfix_argv(pid, ifname=self.ifname, python="/usr/bin/python3") if pid else []

    def end_page_client(self):
        """The lazy dump's page server stops waiting: its client leaves (the tunnel closes, or we connect and go)."""
        if self.page_tunnel is not None:
            self.page_tunnel.close()
        else:
            poke(self.page_server_address, self.lazy_port)

    def _resume_by_hand(self):
        """Post-copy after the page server started: stop criu, then :func:`migration_guard.resume_by_hand`."""
        if self.dump_proc.poll() is None:
            kill_tree(self.dump_proc.pid, signal.SIGTERM)
            try:
                self.dump_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(self.dump_proc.pid, signal.SIGKILL)
                self.dump_proc.wait()
        pid = (self.lxc.info(self.name) or {}).get("pid") or self.init_pid
        out = migration_guard.resume_by_hand(self.run, self.name, self.lxcpath, pid, self._netfix_argvs(pid),
                                             freezer=self.freezer)
        out["resumed_by"] = "engine (post-copy after the page server started)"
        self.source.to(SourceState.RESUMED)
        return out

    def destroy_source(self):
        """Point of no return: kill the stopped source tasks and (by default) remove the source container."""
        res = {}
        rc, out, err = self.run(["lxc-stop", "-k", "-n", self.name, "-P", self.lxcpath], timeout=60)
        res["stopped"] = rc == 0 or "not running" in (out + err)
        if self.source_cleanup == "destroy":
            rc, out, err = self.run(["lxc-destroy", "-n", self.name, "-P", self.lxcpath], timeout=120)
            res["destroyed"] = rc == 0
            if rc != 0:
                raise RuntimeError("lxc-destroy %s failed: %s" % (self.name, err.strip()[-300:]))
        self.discard_work()
        rc, _out, _err = self.recv.commit()
        res["dest_committed"] = rc == 0     # else the destination keeps its work dir and marker: harmless
        self.source.to(SourceState.GONE)
        res["ok"] = True
        return res

    def close(self):
        self._stop_holder()         # a migration that ended before its restore: what it held is dropped
        if self.drain_watcher is not None:
            # we end, we did not die: the watcher goes before our lock is free (it would take that for a death)
            self.drain_watcher.kill()
            self.drain_watcher.wait()
            self.drain_watcher = None
        if self.work_lock is not None:
            if os.path.isdir(self.work) and os.listdir(self.work) == [WORK_LOCK]:
                self.discard_work()     # refused in preflight, or check mode: nothing worth keeping
            os.close(self.work_lock)
            self.work_lock = None
        for proc in (self.final_channel, self.fs_scan or None):
            if proc is not None:
                proc.kill()
                proc.wait()
        self.final_channel = self.fs_scan = None
        if self.session is not None:
            self.session.close()
        if self.page_tunnel is not None:
            self.page_tunnel.close()
        if self.tls_dir is not None and (self.dump_proc is None or self.dump_proc.poll() is not None):
            _rm_rf(self.tls_dir)    # this migration's private key: no use after it, and no reason to keep it
        self.run(["ssh", "-o", "ControlPath=%s" % self.control_path, "-O", "exit", self.dest])


def poke(address, port):
    """Connect to a lazy dump's page server and leave: it stops waiting for its client."""
    try:
        socket.create_connection((address or "127.0.0.1", int(port)), timeout=2).close()
    except (OSError, socket.error):
        pass


def child_pids(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except (IOError, OSError, ValueError):
        pass
    return out


def kill_tree(pid, sig):
    """Signal ``pid``'s descendants (deepest first), then ``pid`` itself."""
    for child in child_pids(pid):
        kill_tree(child, sig)
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def changed_since(root, mark):
    """Paths (relative to ``root``) whose mtime or ctime is at or after ``mark``: files, links and dirs."""
    out = []
    root = root.rstrip("/")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_mtime >= mark or st.st_ctime >= mark:
                out.append(os.path.relpath(p, root))
        # do not descend into mounts (proc/sys inside a rootfs are not ours to copy)
        dirnames[:] = [d for d in dirnames if not os.path.ismount(os.path.join(dirpath, d))]
    return out


def _rm_rf(path):
    if path and os.path.isdir(path):
        subprocess.call(["rm", "-rf", "--one-file-system", path])


def _dir_bytes(path):
    return sum(list_files(path).values())


def write_report(path, report):
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):
        os.makedirs(d)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True, default=str)
