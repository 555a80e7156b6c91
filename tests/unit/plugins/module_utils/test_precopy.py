"""The migration engine: stopping rules, method choice, and the control flow with a fake driver.

The fake driver keeps the state of the two copies; after every run - success or a failure injected at any step -
exactly one copy of the container runs: never two, never none.
"""
import json
import os
import subprocess
import time

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils import criu
from ansible_collections.arnab.testbed.plugins.module_utils import precopy as pc
from ansible_collections.arnab.testbed.plugins.module_utils import receiver

MiB = 1024 * 1024
GiB = 1024 * MiB


def it(n, dirty_pages, freeze=0.2, transfer=0.1, mode="delta"):
    return {"n": n, "mode": mode, "literal_bytes": dirty_pages * 4096, "pages_written": dirty_pages,
            "freeze_s": freeze, "transfer_s": transfer}


# ---- stopping rules ------------------------------------------------------------------------------

def test_named_constants_follow_phaul():
    assert (pc.MAX_ITERATIONS, pc.MIN_PAGES_WRITTEN, pc.MAX_GROWTH_RATIO) == (8, 64, 1.10)
    assert pc.PLATEAU_RATIO == 0.90 and pc.TARGET_DOWNTIME_S == 1.0


def test_first_iteration_never_stops_without_the_fallback():
    assert pc.should_stop([it(1, 10)], pc.Knobs(fallback_ratio=100)) == (False, None)
    # a 1 GiB first copy (2.5 s frozen, 9 s on the link) with no dirty set measured yet: iterating may pay
    assert pc.should_stop([it(1, 262144, freeze=2.5, transfer=9.0)], pc.Knobs()) == (False, None)


def test_converged_when_few_pages():
    stop, why = pc.should_stop([it(1, 50000), it(2, 64)], pc.Knobs())
    assert stop and why.startswith("converged")


def test_predicted_downtime_below_target():
    k = pc.Knobs(target_downtime_s=1.0, fixed_cost_s=0.5)
    stop, why = pc.should_stop([it(1, 50000), it(2, 1000, freeze=0.1, transfer=0.1)], k, 125e6)
    assert stop and why.startswith("predicted downtime")


def test_growth_stops_from_third_iteration():
    k = pc.Knobs(target_downtime_s=0.01, plateau_ratio=2.0)
    assert pc.should_stop([it(1, 50000), it(2, 10000), it(3, 10500)], k) == (False, None)
    stop, why = pc.should_stop([it(1, 50000), it(2, 10000), it(3, 11001)], k)
    assert stop and why.startswith("not converging")


def test_plateau_stops_when_the_dirty_set_stops_shrinking():
    k = pc.Knobs(target_downtime_s=0.01)
    assert pc.should_stop([it(1, 65637), it(2, 11607), it(3, 5614)], k) == (False, None)
    stop, why = pc.should_stop([it(1, 65637), it(2, 11607), it(3, 5614), it(4, 5712)], k)
    assert stop and why.startswith("plateau")


def test_plateau_from_the_second_iteration_when_all_memory_is_dirty_again():
    k = pc.Knobs(target_downtime_s=0.01, fallback_ratio=100)
    stop, why = pc.should_stop([it(1, 262144), it(2, 250000)], k)      # 1 GiB, ~100% dirtied during the copy
    assert stop and why.startswith("plateau")
    assert pc.should_stop([it(1, 262144), it(2, 52429)], k) == (False, None)   # 20%: iterating pays


def test_iteration_limit():
    k = pc.Knobs(max_iterations=3, target_downtime_s=0.0, fallback_ratio=100)
    stop, why = pc.should_stop([it(1, 9000), it(2, 8000), it(3, 7000)], k)
    assert stop and "limit" in why


def test_predict_uses_the_slower_of_wire_and_measured_transfer():
    k = pc.Knobs(fixed_cost_s=0.5)
    # 25600 pages = 100 MiB at 125 MB/s = 0.84 s on the wire; transfer measured 2 s (rsync checksum pass)
    assert pc.predict_downtime(it(2, 25600, freeze=0.3, transfer=2.0), k, 125e6) == pytest.approx(2.8)
    assert pc.predict_downtime(it(2, 25600, freeze=0.3, transfer=0.1), k, 125e6) == pytest.approx(
        0.3 + 25600 * 4096 / 125e6 + 0.5)


# ---- the fallback rule (synthetic iteration histories) ---------------------------------------------

GiB_PAGES = 262144


def first_copy(freeze=2.5, transfer=9.0, touched=None, pages=GiB_PAGES):
    """Iteration 1 of a delta pre-copy of 1 GiB: a whole dump (frozen throughout) and a whole transfer."""
    rec = it(1, pages, freeze=freeze, transfer=transfer)
    rec.update(dump_s=freeze, bytes_dumped=pages * 4096, touched_bytes=touched)
    return rec


def test_fallback_constants():
    assert pc.FALLBACK_RATIO == 1.0 and pc.Knobs().fallback_ratio == pc.FALLBACK_RATIO
    assert pc.FALLBACK == "fallback: "


def test_predicted_stop_and_copy_from_the_first_copy():
    k = pc.Knobs(fixed_cost_s=0.5)
    # the slower of the link (1 GiB at 125 MB/s = 8.59 s) and the measured transfer
    assert pc.predict_stop_and_copy(first_copy(transfer=2.0), k, 125e6) == pytest.approx(
        2.5 + GiB_PAGES * 4096 / 125e6 + 0.5)
    assert pc.predict_stop_and_copy(first_copy(transfer=12.0), k, 125e6) == pytest.approx(2.5 + 12.0 + 0.5)


def test_fallback_after_the_first_iteration_at_100_percent():
    """The lab's 100%/s case (pre-copy 17.2 s vs stop-and-copy 12.5 s): the container touched all its memory
    while its first copy moved; another iteration cannot pay: fall back after the first."""
    hist = [first_copy(touched=GiB_PAGES * 4096)]
    stop, why = pc.should_stop(hist, pc.Knobs(), 125e6)
    assert stop and why.startswith(pc.FALLBACK)
    assert "touched while the first copy moved" in why and ">= predicted stop-and-copy" in why


def test_fallback_after_the_first_iteration_when_the_transfer_was_slower_than_the_link():
    # 13 s measured for 1 GiB (slower than the 8.6 s the link allows): the estimate moves at the measured pace
    hist = [first_copy(transfer=13.0, touched=GiB_PAGES * 4096)]
    assert pc.should_stop(hist, pc.Knobs(), 125e6)[1].startswith(pc.FALLBACK)


def test_no_fallback_with_a_20_percent_working_set():
    hist = [first_copy(touched=GiB_PAGES * 4096 // 5)]
    assert pc.should_stop(hist, pc.Knobs(), 125e6) == (False, None)
    # the re-dump confirms it: 20% dirty, 2 x 2.5 s frozen + (2.5 + 1.8 + 0.5) = 9.8 s < 12.0 s
    hist.append(it(2, GiB_PAGES // 5, freeze=2.5, transfer=1.8))
    assert pc.fallback_reason(hist, pc.Knobs(), 125e6) is None


def live_copy(read=0.4, transfer=9.0, touched=None, pages=GiB_PAGES):
    """Iteration 1 of a delta pre-copy of 1 GiB read live: nothing frozen, a whole transfer."""
    rec = first_copy(freeze=0.0, transfer=transfer, touched=touched, pages=pages)
    rec.update(read="live", dump_s=read)
    return rec


def test_a_live_read_freezes_nothing_and_its_read_time_stands_for_the_final_dump():
    k = pc.Knobs(fixed_cost_s=0.5)
    rec = dict(live_copy(), n=2, literal_bytes=25600 * 4096, transfer_s=0.1)
    assert pc.final_dump_estimate(rec) == 0.4 and pc.final_dump_estimate(it(2, 1, freeze=0.3)) == 0.3
    assert pc.predict_downtime(rec, k, 125e6) == pytest.approx(0.4 + 25600 * 4096 / 125e6 + 0.5)
    assert pc.frozen_in_iterations([live_copy(), rec]) == 0.0


def test_live_reads_fall_back_at_100_percent_and_iterate_at_20():
    assert pc.should_stop([live_copy(touched=GiB_PAGES * 4096)], pc.Knobs(), 125e6)[1].startswith(pc.FALLBACK)
    assert pc.should_stop([live_copy(touched=GiB_PAGES * 4096 // 5)], pc.Knobs(), 125e6) == (False, None)


def test_fallback_after_a_re_dump_that_finds_all_memory_dirty_without_a_touched_estimate():
    hist = [first_copy()]
    assert pc.should_stop(hist, pc.Knobs(), 125e6) == (False, None)   # lower bound: the next freeze alone
    hist.append(it(2, GiB_PAGES - 1000, freeze=2.5, transfer=9.0))
    stop, why = pc.should_stop(hist, pc.Knobs(), 125e6)
    assert stop and why.startswith(pc.FALLBACK) and "dirtied in iteration 2" in why


def test_fallback_for_a_small_container_whose_dump_costs_more_than_its_transfer():
    # the lab's video container: dump 0.8 s frozen, 20 MB in 0.3 s: another whole-dump freeze cannot pay
    hist = [first_copy(freeze=0.8, transfer=0.3, pages=5000)]
    stop, why = pc.should_stop(hist, pc.Knobs(), 125e6)
    assert stop and why.startswith(pc.FALLBACK) and "no dirty set measured yet" in why


def test_fallback_counts_every_iteration_freeze():
    # each re-dump shrinks the set, but four 2.5 s freezes already exceed what stop-and-copy would cost
    hist = [first_copy(), it(2, 60000, freeze=2.5, transfer=2.0), it(3, 40000, freeze=2.5, transfer=1.5),
            it(4, 30000, freeze=2.5, transfer=1.2)]
    assert pc.fallback_reason(hist[:2], pc.Knobs(), 125e6) is None
    why = pc.fallback_reason(hist, pc.Knobs(), 125e6)
    assert why and why.startswith("frozen 10.00s in 4 iteration(s)")
    assert pc.frozen_in_iterations(hist) == pytest.approx(10.0)


def test_success_rules_come_before_the_fallback():
    # converged pages win even when the freezes were costly
    hist = [first_copy(freeze=0.8, transfer=0.3, pages=5000), it(2, 10, freeze=0.8)]
    assert pc.should_stop(hist, pc.Knobs(), 125e6)[1].startswith("converged")


def test_fallback_ratio_knob():
    hist = [first_copy(freeze=0.8, transfer=0.3, pages=5000)]
    assert pc.should_stop(hist, pc.Knobs(fallback_ratio=2.0), 125e6) == (False, None)


def test_dirty_pages_native_vs_delta():
    assert pc.dirty_pages({"mode": "native", "pages_written": 7, "literal_bytes": 99999}) == 7
    assert pc.dirty_pages({"mode": "delta", "pages_written": 16384, "literal_bytes": 8192}) == 2


@pytest.mark.parametrize("text,bps", [("1gbit", 125e6), ("100mbit", 12.5e6), ("12MB", 12e6), (5000, 5000.0),
                                      ("", None)])
def test_parse_rate(text, bps):
    assert pc.parse_rate(text) == bps


def test_parse_rate_rejects_garbage():
    with pytest.raises(ValueError):
        pc.parse_rate("fast")


# ---- method choice -------------------------------------------------------------------------------

def test_auto_small_container_stop_and_copy():
    m, mode, why = pc.choose_method({"memory_bytes": 14 * MiB, "link_rate_bps": 125e6}, pc.Knobs())
    assert m == "stop-and-copy" and "iterating cannot pay" in why


def test_auto_big_with_soft_dirty_precopy_native():
    m, mode, dummy = pc.choose_method({"memory_bytes": 1024 * MiB, "mem_dirty_track": True}, pc.Knobs())
    assert (m, mode) == ("pre-copy", "native")


def test_auto_never_takes_post_copy_unless_the_user_accepts_its_drain():
    facts = {"memory_bytes": 1024 * MiB, "lazy_pages_ready": True, "link_rate_bps": 125e6}
    m, mode, why = pc.choose_method(facts, pc.Knobs())
    assert (m, mode) == ("pre-copy", "delta") and "postcopy_max_drain unset" in why
    m, mode, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=10))
    assert m == "post-copy" and "drain 8.6s" in why and "<= the accepted 10.0s" in why
    m, mode, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=5))
    assert m == "pre-copy" and "drain 8.6s > the accepted 5.0s" in why


def test_auto_takes_hybrid_with_soft_dirty_only_when_the_user_accepts_post_copys_drain():
    facts = {"memory_bytes": 1024 * MiB, "mem_dirty_track": True, "lazy_pages_ready": True, "link_rate_bps": 125e6}
    m, mode, why = pc.choose_method(facts, pc.Knobs())
    assert (m, mode) == ("pre-copy", "native") and "postcopy_max_drain unset" in why
    m, mode, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=10))
    assert (m, mode) == ("hybrid", "native") and "drain 8.6s (1024 MiB at 1000 Mbit/s) <= the accepted 10.0s" in why
    assert pc.resolve_method("auto", dict(facts, uffd_noncoop=True), pc.Knobs(postcopy_max_drain_s=10))[0] == "hybrid"
    m, mode, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=5))
    assert (m, mode) == ("pre-copy", "native") and "drain 8.6s > the accepted 5.0s" in why
    m, mode, why = pc.choose_method(dict(facts, lazy_pages_ready=False), pc.Knobs(postcopy_max_drain_s=10))
    assert (m, mode) == ("pre-copy", "native") and "lazy pages not ready" in why
    # small enough for stop-and-copy: neither is needed
    assert pc.choose_method(dict(facts, memory_bytes=14 * MiB), pc.Knobs(postcopy_max_drain_s=10))[0] == \
        "stop-and-copy"


def test_auto_big_nothing_available_precopy_delta():
    assert pc.choose_method({"memory_bytes": 1024 * MiB}, pc.Knobs())[:2] == ("pre-copy", "delta")


def test_resolve_refuses_what_the_kernel_cannot_do():
    with pytest.raises(ValueError, match="soft-dirty"):
        pc.resolve_method("pre-copy", {}, pc.Knobs(precopy_mode="native"))
    with pytest.raises(ValueError, match="userfaultfd"):
        pc.resolve_method("post-copy", {}, pc.Knobs())
    with pytest.raises(ValueError, match="pipe-max-size"):
        pc.resolve_method("post-copy", {"uffd_noncoop": True, "pipe_max_size": 1048576}, pc.Knobs())
    with pytest.raises(ValueError, match="unknown method"):
        pc.resolve_method("teleport", {}, pc.Knobs())
    assert pc.resolve_method("pre-copy", {}, pc.Knobs())[:2] == ("pre-copy", "delta")
    assert pc.resolve_method("pre-copy", {"mem_dirty_track": True}, pc.Knobs())[:2] == ("pre-copy", "native")


# ---- control flow with a fake driver -------------------------------------------------------------

class Injected(Exception):
    pass


class FakeDriver(object):
    """Keeps the truth about both copies. source: running|frozen|stopped|gone (frozen: criu waits in the guard);
    dest: absent|files|running."""

    def __init__(self, fail_at=None, facts=None, dirty=(16384, 4000, 1000, 40), outcome="absent"):
        self.fail_at = fail_at
        self.outcome = outcome      # what await_outcome() learns after an uncertain restore
        self.restore_sent = False
        self._facts = facts or {"uffd_noncoop": True, "lazy_pages_ready": True, "memory_bytes": 64 * MiB}
        self.dirty = list(dirty)
        self.source = "running"
        self.dest = "absent"
        self.calls = []

    def _step(self, name):
        self.calls.append(name)
        if self.fail_at == name:
            raise Injected("injected failure at %s" % name)

    def facts(self):
        return self._facts

    def sync_fs(self, phase):
        self._step("sync_fs:" + phase)
        if self.dest == "absent":
            self.dest = "files"
        return {"phase": phase, "bytes_sent": 1000, "duration_s": 0.01}

    def predump(self, n, parent, mode):
        self._step("predump")
        pages = self.dirty[min(n - 1, len(self.dirty) - 1)]
        return {"images_dir": "/w/it-%d" % n, "duration_s": 0.1,
                "stats": {"frozen_time": 100000, "pages_written": pages if mode == "native" else 16384,
                          "pages_scanned": 16384, "pages_skipped_parent": 0}, "dirty": pages}

    def touched_since_dump(self):
        return getattr(self, "touched", None)

    def transfer(self, images_dir, n, mode):
        self._step("transfer:final" if n == "final" else "transfer")
        pages = 16384 if n == "final" else self.dirty[min(n - 1, len(self.dirty) - 1)]
        self.dest = "files" if self.dest != "running" else self.dest
        return {"bytes_sent": pages * 4096, "literal_bytes": pages * 4096, "duration_s": 0.05}

    def final_dump(self, parent, mode):
        self._step("final_dump")
        self.source = "frozen"
        return {"images_dir": "/w/final", "duration_s": 0.2, "stats": {"frozen_time": 200000}, "bytes": 1}

    def lazy_dump(self, parent=None):
        self._step("lazy_dump")
        self.lazy_parent = parent
        self.source = "frozen"
        return {"images_dir": "/w/lazy", "duration_s": 0.2, "stats": {}, "bytes": 1}

    def restore(self, lazy=False):
        self.calls.append("restore")
        self.restore_sent = True
        self.dest = "running"            # failure after the restored tree started: it must be cleaned
        if self.fail_at == "restore":
            raise Injected("injected failure at restore")
        if self.fail_at == "restore-uncertain":
            self.dest = "running" if self.outcome == "running" else "absent"
            raise pc.RestoreUncertain("no answer")
        return {"restore_s": 0.1, "netfix_s": 0.01, "duration_s": 0.12}

    def await_outcome(self):
        self.calls.append("await_outcome")
        return self.outcome

    def wait_lazy_done(self):
        self.calls.append("wait_lazy_done")
        if self.fail_at == "wait_lazy_done":
            raise Injected("injected failure at wait_lazy_done")      # criu waits in the guard for the abort
        return {"stats": {}, "bytes": None}

    def commit(self):
        self._step("commit")
        assert self.dest == "running", "committed without a running destination"
        self.source = "stopped"
        return {"commit_s": 0.001, "dump_rc": 0}

    def fence(self):
        self.calls.append("fence")
        return {"guard": "resolves"}

    def clean_dest(self):
        self._step("clean_dest")
        self.dest = "absent"
        return {"ok": True}

    def resume_source(self):
        self._step("resume_source")
        assert self.dest != "running", "resumed the source while the destination runs"
        if self.source == "frozen":
            self.source = "running"
        return {"ok": True}

    def destroy_source(self):
        self._step("destroy_source")
        self.source = "gone"
        return {"ok": True}

    def discard_work(self, keep_logs=False):
        self.calls.append("discard_work")
        return "/w" if keep_logs else None

    def running_copies(self):
        return int(self.source == "running") + int(self.dest == "running")


FLOW_STEPS = {
    "stop-and-copy": ["sync_fs:preliminary", "sync_fs:pre-freeze", "final_dump", "sync_fs:frozen",
                      "transfer:final", "restore", "commit"],
    "pre-copy": ["sync_fs:preliminary", "predump", "transfer", "sync_fs:pre-freeze", "final_dump",
                 "sync_fs:frozen", "transfer:final", "restore", "commit"],
    "post-copy": ["sync_fs:preliminary", "sync_fs:pre-freeze", "lazy_dump", "sync_fs:frozen", "transfer:final",
                  "restore", "wait_lazy_done", "commit"],
    "hybrid": ["sync_fs:preliminary", "predump", "transfer", "sync_fs:pre-freeze", "lazy_dump", "sync_fs:frozen",
               "transfer:final", "restore", "wait_lazy_done", "commit"],
}
SOFT_DIRTY = {"uffd_noncoop": True, "lazy_pages_ready": True, "memory_bytes": 64 * MiB, "mem_dirty_track": True}


def _fake(method, **kw):
    """The fake driver for ``method``: hybrid's iterations are criu's pre-dumps, which need soft-dirty."""
    return FakeDriver(facts=SOFT_DIRTY if method == "hybrid" else None, **kw)


@pytest.mark.parametrize("method", sorted(FLOW_STEPS))
def test_success_flow(method):
    drv = _fake(method)
    rep = pc.migrate(drv, method, pc.Knobs(target_downtime_s=0.0))
    assert rep["ok"] and rep["method"] == method
    assert drv.source == "gone" and drv.dest == "running" and drv.running_copies() == 1
    assert drv.calls[-1] == "destroy_source"
    assert rep["downtime_s"] >= 0 and set(rep["frozen"]) >= {"dump_s", "transfer_s", "restore_s"}
    assert rep["bytes_frozen"] == 1000 + 16384 * 4096
    assert "clean_dest" not in drv.calls and "resume_source" not in drv.calls
    if method in ("post-copy", "hybrid"):
        assert rep["postcopy"]["source_needed_s"] >= rep["downtime_s"] - 1e-6
        # hybrid's lazy dump serves what changed since the last pre-dump: criu's parent is that pre-dump's dir
        assert drv.lazy_parent == ("/w/it-4" if method == "hybrid" else None)
    if method in ("pre-copy", "hybrid"):
        assert [i["dirty_pages"] for i in rep["iterations"]] == [16384, 4000, 1000, 40]
        assert rep["stop_reason"].startswith("converged")


@pytest.mark.parametrize("method,step", [(m, s) for m in sorted(FLOW_STEPS) for s in FLOW_STEPS[m]
                                         if s != "commit"])
def test_failure_at_every_step_rolls_back(method, step):
    drv = _fake(method, fail_at=step)
    with pytest.raises(pc.MigrationError) as e:
        pc.migrate(drv, method, pc.Knobs(target_downtime_s=0.0))
    rep = e.value.report
    assert rep["ok"] is False and rep["rolled_back"] is True and "injected" in rep["error"]
    assert drv.running_copies() == 1 and drv.source == "running" and drv.dest == "absent"
    # once a restore was sent: destination first (never two copies); before: the source first (shorter gap)
    order = ["clean_dest", "resume_source"] if drv.restore_sent else ["resume_source", "clean_dest"]
    assert drv.calls[-3:] == order + ["discard_work"] and rep["rollback"]["logs_kept"] == "/w"
    assert "destroy_source" not in drv.calls and "commit" not in drv.calls


def test_failure_before_freeze_has_no_downtime():
    drv = FakeDriver(fail_at="transfer")
    with pytest.raises(pc.MigrationError) as e:
        pc.migrate(drv, "pre-copy", pc.Knobs())
    assert e.value.report["rollback"]["was_frozen"] is False and "downtime_s" not in e.value.report


def test_source_cleanup_failure_after_point_of_no_return_is_reported_not_fatal():
    drv = FakeDriver(fail_at="destroy_source")
    rep = pc.migrate(drv, "stop-and-copy", pc.Knobs())
    assert rep["ok"] is True and rep["source_cleanup"]["ok"] is False
    assert drv.dest == "running" and drv.running_copies() == 1       # the stopped source does not run


def test_a_destination_that_cannot_be_confirmed_clean_leaves_the_source_frozen_and_fenced():
    class StuckDest(FakeDriver):
        def clean_dest(self):
            self.calls.append("clean_dest")
            raise Injected("ssh down")

    drv = StuckDest(fail_at="restore")
    with pytest.raises(pc.MigrationError) as e:
        pc.migrate(drv, "stop-and-copy", pc.Knobs())
    rep = e.value.report
    assert rep["rolled_back"] is False and "ssh down" in rep["rollback"]["dest_error"]
    assert "resume_source" not in drv.calls and drv.source == "frozen" and drv.calls[-1] == "fence"
    assert "fenced" in rep["rollback"]["source"] and "discard_work" not in drv.calls


@pytest.mark.parametrize("method", sorted(FLOW_STEPS))
def test_an_unanswered_restore_whose_copy_runs_commits(method):
    drv = _fake(method, fail_at="restore-uncertain", outcome="running")
    rep = pc.migrate(drv, method, pc.Knobs(target_downtime_s=0.0))
    assert rep["ok"] and rep["restore_outcome"] == "running" and drv.running_copies() == 1
    assert drv.source == "gone" and "resume_source" not in drv.calls


def test_an_unanswered_restore_whose_copy_is_absent_rolls_back():
    drv = FakeDriver(fail_at="restore-uncertain", outcome="absent")
    with pytest.raises(pc.MigrationError) as e:
        pc.migrate(drv, "stop-and-copy", pc.Knobs())
    assert e.value.report["rolled_back"] is True and drv.source == "running" and drv.running_copies() == 1
    assert drv.calls[-4:] == ["await_outcome", "clean_dest", "resume_source", "discard_work"]


def test_source_state_moves_only_along_named_transitions():
    st = pc.SourceState()
    st.to(pc.SourceState.FROZEN)
    st.to(pc.SourceState.FENCED)
    with pytest.raises(RuntimeError):
        st.to(pc.SourceState.GONE)     # a fenced source is never destroyed before the outcome is known
    st.to(pc.SourceState.COMMITTED)
    st.to(pc.SourceState.GONE)


def test_auto_reports_choice_and_reason():
    drv = FakeDriver(facts={"memory_bytes": 14 * MiB, "link_rate_bps": 125e6})
    rep = pc.migrate(drv, "auto", pc.Knobs())
    assert rep["method_requested"] == "auto" and rep["method"] == "stop-and-copy"
    assert "predicted" in rep["method_reason"] and rep["steps"][0]["step"].startswith("method stop-and-copy")


def test_impossible_method_fails_before_anything_runs():
    drv = FakeDriver(facts={"uffd_noncoop": False})
    with pytest.raises(ValueError):
        pc.migrate(drv, "post-copy", pc.Knobs())
    assert drv.calls == [] and drv.running_copies() == 1


def test_iteration_limit_in_flow():
    drv = FakeDriver(dirty=(16384, 9000, 8500, 8400, 8300))
    rep = pc.migrate(drv, "pre-copy", pc.Knobs(max_iterations=4, max_growth=10.0, plateau_ratio=10.0,
                                               target_downtime_s=0.0, fallback_ratio=100))
    assert len(rep["iterations"]) == 4 and "limit" in rep["stop_reason"]


def test_fallback_in_flow_reports_it_and_goes_to_the_final_dump():
    drv = FakeDriver(dirty=(16384, 16000, 15000))
    drv.touched = 16384 * 4096
    rep = pc.migrate(drv, "pre-copy", pc.Knobs())
    assert len(rep["iterations"]) == 1 and rep["iterations"][0]["touched_bytes"] == 16384 * 4096
    assert rep["stop_reason"].startswith(pc.FALLBACK) and rep["fallback"] == rep["stop_reason"][len(pc.FALLBACK):]
    assert drv.calls.index("final_dump") == drv.calls.index("transfer") + 2     # the pre-freeze sync, then freeze
    assert rep["ok"] and drv.running_copies() == 1


def test_report_has_every_freeze_and_the_total():
    drv = FakeDriver(dirty=(16384, 4000, 1000, 40))
    rep = pc.migrate(drv, "pre-copy", pc.Knobs(target_downtime_s=0.0, fallback_ratio=100))
    assert [i["freeze_s"] for i in rep["iterations"]] == [0.1] * len(rep["iterations"])
    assert rep["frozen_iterations_s"] == pytest.approx(0.1 * len(rep["iterations"]))
    assert rep["frozen_total_s"] == pytest.approx(rep["frozen_iterations_s"] + rep["downtime_s"])
    assert "fallback" not in rep
    sac = pc.migrate(FakeDriver(), "stop-and-copy", pc.Knobs())
    assert sac["frozen_iterations_s"] == 0 and sac["frozen_total_s"] == sac["downtime_s"]


def test_referenced_bytes_sums_the_smaps_rollups(tmp_path):
    for pid, kb in ((10, 1024), (11, 3072)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "smaps_rollup").write_text(
            "Rss:               9999 kB\nReferenced:        %d kB\nAnonymous:  1 kB\n" % kb)
    assert pc.referenced_bytes([10, 11, 12], proc=str(tmp_path)) == 4096 * 1024   # 12: gone, skipped


def test_progress_lines():
    lines = []
    pc.migrate(FakeDriver(), "stop-and-copy", pc.Knobs(), progress=lines.append)
    assert lines[0].startswith("method") and lines[-1].startswith("done in")


def test_changed_since(tmp_path):
    import time
    (tmp_path / "old").write_text("x")
    time.sleep(0.05)
    mark = time.time()
    time.sleep(0.05)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new").write_text("y")
    changed = pc.changed_since(str(tmp_path), mark)
    assert "sub/new" in changed and "sub" in changed and "old" not in changed


def test_listening_parses_proc_net_tcp(tmp_path):
    f = tmp_path / "tcp"
    f.write_text("  sl  local_address rem_address   st\n"
                 "   0: 0100004F:6A0C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n")
    assert pc.listening(0x6A0C, proc_net=(str(f),)) is True
    assert pc.listening(80, proc_net=(str(f),)) is False


# ---- the real driver's destination scripts ---------------------------------------------------------

def _driver(tmp_path):
    drv = pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path / "lxc"),
                                work_dir=str(tmp_path / "src-work"),
                                runner=lambda argv, env=None, timeout=None: (0, "", ""))
    drv.dest_dir = str(tmp_path / "dst-work" / "images")
    drv.page_server_address = "10.79.0.1"
    return drv


def test_the_first_ssh_session_carries_keepalives_for_the_shared_master(tmp_path):
    """A cut backhaul must break the transfer in seconds: the master connection (the first session, which every
    later rsync, patch stream and remote shell shares through ControlPath) has ServerAlive options."""
    drv = _driver(tmp_path)
    argv = drv.recv.argv("probe")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "probe t2b-unit-none"]     # the receiver's words, no shell
    assert "ServerAliveInterval=%d" % pc.SSH_ALIVE_INTERVAL_S in argv
    assert "ServerAliveCountMax=%d" % pc.SSH_ALIVE_COUNT in argv
    assert "ControlMaster=auto" in argv and "ControlPath=%s" % drv.control_path in argv
    assert pc.SSH_ALIVE_INTERVAL_S * pc.SSH_ALIVE_COUNT <= 10     # a frozen container waits at most that long


def test_clean_dest_retries_while_the_destination_is_unreachable(tmp_path, monkeypatch):
    drv = _driver(tmp_path)
    drv.dest_touched = True
    answers = [(255, "", "ssh: connect to host: Network is unreachable")] * 2 + [(0, "cleaned", "")]
    calls = []

    def fake_clean(ifname):
        calls.append(ifname)
        return answers[len(calls) - 1]
    monkeypatch.setattr(drv.recv, "clean", fake_clean)
    monkeypatch.setattr(pc.time, "sleep", lambda s: None)
    assert drv.clean_dest(retry_s=60) == {"ok": True, "attempts": 3}


def test_clean_dest_gives_up_after_the_retry_window_and_says_why(tmp_path, monkeypatch):
    drv = _driver(tmp_path)
    drv.dest_touched = True
    monkeypatch.setattr(drv.recv, "clean", lambda *a, **k: (255, "", "Network is unreachable"))
    monkeypatch.setattr(pc.time, "sleep", lambda s: None)
    with pytest.raises(RuntimeError, match="unreachable for 0s"):
        drv.clean_dest(retry_s=0)


def test_clean_dest_does_not_retry_a_script_that_failed(tmp_path, monkeypatch):
    drv = _driver(tmp_path)
    drv.dest_touched = True
    calls = []
    monkeypatch.setattr(drv.recv, "clean", lambda *a, **k: calls.append(1) or (1, "", "still RUNNING"))
    with pytest.raises(RuntimeError, match="rc 1"):
        drv.clean_dest(retry_s=60)
    assert len(calls) == 1


class _Channel(object):
    def kill(self):
        pass

    def wait(self):
        return 0


def test_post_copy_over_tls_pins_the_destinations_certificate_before_the_freeze_and_forgets_its_key(
        tmp_path, monkeypatch):
    drv = pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path / "lxc"),
                                work_dir=str(tmp_path / "src-work"), postcopy_channel="tls",
                                runner=lambda argv, env=None, timeout=None: (0, "", ""))
    dest_cert = criu.tls_identity(str(tmp_path / "dest-tls"))
    sent, restores = [], []
    monkeypatch.setattr(drv.recv, "tls_exchange", lambda own: sent.append(own) or dest_cert)
    monkeypatch.setattr(drv.recv, "open_patch", lambda subdir: _Channel())
    monkeypatch.setattr(drv.recv, "restore", lambda ifname, **kw: restores.append(kw) or (
        0, "T start 1.0\nT restored 1.5\n", ""))
    monkeypatch.setattr(drv, "start_page_server", lambda: None)
    drv.page_server_address = "10.79.0.1"
    drv.hold_work_lock()
    try:
        drv.before_freeze("post-copy", None)
        # the guard is written before the freeze's clock starts (no set-up counted as downtime)
        assert drv.guard_path == os.path.join(drv.work, "guard") and os.path.isfile(drv.guard_path)
        tls = os.path.join(drv.work, "tls")
        assert drv.tls_dir == tls and drv.page_tunnel is None
        assert sent == [open(os.path.join(tls, criu.TLS_CERT)).read()]        # ours went, the key stays here
        assert open(os.path.join(tls, criu.TLS_PEER)).read() == dest_cert     # theirs is the only one trusted
        drv.restore(lazy=True)
        assert restores[0]["tls"] is True and restores[0]["address"] == "10.79.0.1"
        args = receiver.restore_args("eth0", **restores[0])
        assert args[args.index("--lazy"):args.index("--tls") + 1] == [
            "--lazy", "--address", "10.79.0.1", "--port", drv.lazy_port, "--tls"]
    finally:
        drv.close()
    assert not os.path.exists(tls)      # the migration's key does not outlive it


# ---- the work dir's lock -------------------------------------------------------------------------

def test_a_second_migration_of_the_same_container_is_refused_while_the_first_runs(tmp_path):
    first, second = _driver(tmp_path), _driver(tmp_path)
    first.hold_work_lock()
    with open(os.path.join(first.work, "it-1"), "w") as f:
        f.write("images of the running migration")
    with pytest.raises(pc.PreflightError, match="already being migrated"):
        second.hold_work_lock()
    assert os.path.exists(os.path.join(first.work, "it-1"))       # the refused one touched nothing
    second.close()
    assert os.path.exists(os.path.join(first.work, "it-1"))
    first.close()


def test_a_dead_migrations_work_dir_is_cleared_and_a_refused_preflight_leaves_none(tmp_path):
    dead = tmp_path / "src-work"
    (dead / "final").mkdir(parents=True)
    (dead / "final" / "pages-1.img").write_bytes(b"x" * 4096)
    (dead / ".fs-mark").write_text("")
    (dead / "lock").write_text("")             # nobody holds it: its migration died
    drv = _driver(tmp_path)
    drv.hold_work_lock()
    assert sorted(os.listdir(str(dead))) == ["lock"]
    drv.close()                                # nothing but the lock: the work dir goes
    assert not dead.exists()


def test_a_rolled_back_migration_keeps_criu_logs_not_images(tmp_path):
    work = tmp_path / "src-work"
    (work / "it-2").mkdir(parents=True)
    (work / "it-2" / "pages-1.img").write_bytes(b"x" * 4096)
    (work / "it-2" / "dump.log").write_text("criu said")
    os.symlink("../it-1", str(work / "it-2" / "parent"))
    (work / "final").mkdir()
    (work / "final" / "core-1.img").write_bytes(b"x")
    drv = _driver(tmp_path)
    assert drv.discard_work(keep_logs=True) == str(work)
    assert sorted(os.path.relpath(os.path.join(d, f), str(work)) for d, _s, fs in os.walk(str(work)) for f in fs) \
        == ["it-2/dump.log"]


def test_the_written_guard_runs_as_criu_would_run_it(tmp_path):
    """criu runs the action script through `sh -c PATH` with CRTOOLS_SCRIPT_ACTION set: other hooks pass at once,
    post-dump waits for the decision and answers it (abort: 1, criu resumes the tasks)."""
    drv = _driver(tmp_path)
    drv.hold_work_lock()
    try:
        guard = drv._arm_guard()
        env = dict(os.environ, CRTOOLS_SCRIPT_ACTION="network-lock")
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 0
        drv.decide("abort")
        env["CRTOOLS_SCRIPT_ACTION"] = "post-dump"
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 1
        assert os.path.exists(os.path.join(drv.work, "dumped"))
        drv.decide("commit")
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 0
        env["CRTOOLS_SCRIPT_ACTION"] = "network-unlock"
        drv.decide("abort")
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 0
        cfg = json.load(open(os.path.join(drv.work, "guard.json")))
        assert cfg["status_argv"][0] == "ssh" and cfg["lock"].endswith("/lock") and cfg["lazy_page_server"] is None
        assert oct(os.stat(drv.work).st_mode & 0o777) == "0o700" and os.stat(guard).st_mode & 0o077 == 0
    finally:
        drv.close()


def _freezer_file(tmp_path, state="THAWED"):
    path = tmp_path / "freezer.state"
    path.write_text(state)
    return {"file": str(path), "frozen": "FROZEN", "thawed": "THAWED", "events": None}


def test_the_written_guard_freezes_the_cgroup_at_criu_s_pre_dump_hook(tmp_path):
    """With a freezer (prefreeze), criu's pre-dump hook finds the container frozen, so criu does not poll its
    freeze for 100 ms; without one the hook does nothing."""
    drv = _driver(tmp_path)
    drv.freezer = _freezer_file(tmp_path)
    drv.hold_work_lock()
    try:
        guard = drv._arm_guard()
        env = dict(os.environ, CRTOOLS_SCRIPT_ACTION="pre-dump")
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 0
        assert (tmp_path / "freezer.state").read_text().strip() == "FROZEN"
        drv.freezer = None
        (tmp_path / "freezer.state").write_text("THAWED")
        guard = drv._arm_guard()
        assert subprocess.run(["sh", "-c", guard], env=env, timeout=10, check=False).returncode == 0
        assert (tmp_path / "freezer.state").read_text() == "THAWED"
    finally:
        drv.close()


def test_prefreeze_needs_the_option_a_pid_and_a_receiver_that_thaws(tmp_path, monkeypatch):
    monkeypatch.setattr(pc, "freezer_of", lambda pid: {"file": "/cg/%s/freezer.state" % pid})
    drv = _driver(tmp_path)
    try:
        drv.init_pid = 4242
        assert drv.prefreeze_target(pc.RECEIVER_THAWS) == {"file": "/cg/4242/freezer.state"}
        assert drv.prefreeze_target(pc.RECEIVER_THAWS - 1) is None and drv.prefreeze_target(None) is None
        drv.prefreeze = False
        assert drv.prefreeze_target(pc.RECEIVER_THAWS) is None
        drv.prefreeze, drv.init_pid = True, None
        assert drv.prefreeze_target(pc.RECEIVER_THAWS) is None
    finally:
        drv.close()


def test_resume_source_thaws_what_criu_froze_again(tmp_path):
    """An abort: criu resumes the tasks into the cgroup it found frozen and leaves. lxc-unfreeze does not thaw what
    LXC did not freeze (LXC says RUNNING): the engine writes the thawed state itself."""
    calls = []
    drv = pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path / "lxc"),
                                work_dir=str(tmp_path / "src-work"),
                                runner=lambda argv, env=None, timeout=None: calls.append(argv) or (0, "", ""))
    drv.freezer = _freezer_file(tmp_path, "FROZEN")
    drv.lxc.info = lambda name: {"state": "RUNNING", "pid": str(os.getpid())}
    drv.source.to(pc.SourceState.FROZEN)
    drv.dump_proc = subprocess.Popen(["true"])
    drv.dump_proc.wait()
    drv.dump_dir = str(tmp_path / "final")
    drv.hold_work_lock()
    try:
        out = drv.resume_source()
        assert open(os.path.join(drv.work, "decision")).read() == "abort"
    finally:
        drv.close()
    assert out["ok"] and out["thawed"] and (tmp_path / "freezer.state").read_text() == "THAWED"
    assert not [a for a in calls if a[0] == "lxc-unfreeze"]       # LXC did not freeze it


def test_the_frozen_sync_walks_beside_the_dump_unless_criu_remapped_a_file(tmp_path):
    """Once criu holds the tasks (its network-lock hook: the guard's ``seized``), the rootfs changes only by what criu
    adds, so the frozen sync's walk runs beside the dump. A dump that remapped a file (criu's link remap: a file it
    adds to the rootfs) walks again after it. Real find(1), real files."""
    drv = pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path / "lxc"),
                                work_dir=str(tmp_path / "src-work"))
    root = tmp_path / "lxc" / "t2b-unit-none"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "old").write_text("before the pre-freeze sync")
    drv.hold_work_lock()
    try:
        time.sleep(0.05)
        drv.fs_mark_file = os.path.join(drv.work, ".fs-mark")
        open(drv.fs_mark_file, "w").close()        # the pre-freeze sync's mark
        time.sleep(0.05)
        (root / "log").write_text("written after it")
        drv.dump_dir = str(tmp_path / "final")
        os.mkdir(drv.dump_dir)
        drv.fs_scan = drv._start_fs_scan()
        (root / "criu-made").write_text("after criu held the tasks: only criu writes now")
        assert sorted(drv._changed_files(str(root) + "/")) in (["log"], ["criu-made", "log"])
        assert drv.fs_scan_during_dump and drv.fs_scan is None
        # a dump with a link remap: the walk beside it is not trusted
        drv.fs_scan_during_dump = False
        drv.fs_scan = drv._start_fs_scan()
        drv.fs_scan.wait()                                  # the walk is over before criu adds its link remap
        (root / "etc" / "link_remap.1").write_text("")
        with open(os.path.join(drv.dump_dir, "remap-fpath.img"), "wb") as f:
            f.write(b"\x01" * 16)
        assert "etc/link_remap.1" in drv._changed_files(str(root) + "/") and not drv.fs_scan_during_dump
        drv.do_fs_sync = False
        assert drv._start_fs_scan() is False
    finally:
        drv.close()


def test_the_inbound_lock_needs_a_container_in_a_network_namespace_of_its_own(tmp_path):
    """The guard's drop in the edge's own namespace would cut the engine's SSH sessions: criu's own lock then."""
    assert pc.own_netns(os.getpid()) is False and pc.own_netns(2 ** 22 + 7) is False
    drv = _driver(tmp_path)
    try:
        drv.network_lock, drv.init_pid = "inbound", os.getpid()
        assert drv.final_dump_lock() == "nftables"
    finally:
        drv.close()


def test_the_guard_locks_only_inbound_traffic_and_unlocks_before_criu_resumes(tmp_path, monkeypatch):
    """network_lock inbound (the lab's; the engine's default is criu's nftables): criu's own lock is off (network-lock skip in the dump's config), the
    guard's network-lock hook loads an input-only drop table into the container's namespace, and network-unlock (an
    abort: criu is about to resume the tasks) removes it. A fake nsenter records what the hooks run."""
    monkeypatch.setattr(pc, "own_netns", lambda pid: True)     # 4242: the container's init, in its own netns
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "nsenter.log"
    (bindir / "nsenter").write_text('#!/bin/sh\necho "$*" >> %s\n[ "$5" = -f ] && cat "$6" >> %s\nexit 0\n'
                                    % (log, tmp_path / "rules.seen"))
    (bindir / "nsenter").chmod(0o755)
    drv = _driver(tmp_path)
    drv.network_lock, drv.init_pid = "inbound", 4242
    drv.hold_work_lock()
    try:
        guard = drv._arm_guard()
        argv, env = drv.lxc.checkpoint_command(drv.name, str(tmp_path / "img"), action="dump", leave="stopped",
                                               action_script=guard, network_lock=drv.final_dump_lock())
        assert "network-lock skip\n" in open(env["CRIU_CONFIG_FILE"]).read()
        run_env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), CRTOOLS_SCRIPT_ACTION="network-lock")
        assert subprocess.run(["sh", "-c", guard], env=run_env, timeout=10, check=False).returncode == 0
        assert log.read_text().split("\n")[0].startswith("-t 4242 -n nft -f ")
        rules = (tmp_path / "rules.seen").read_text()
        assert "hook input" in rules and "policy drop" in rules and "output" not in rules
        # post-dump: the images are written; outbound goes too before the guard waits for the decision
        drv.decide("commit")
        run_env["CRTOOLS_SCRIPT_ACTION"] = "post-dump"
        assert subprocess.run(["sh", "-c", guard], env=run_env, timeout=10, check=False).returncode == 0
        assert log.read_text().splitlines()[-1].startswith("-t 4242 -n nft -f ")
        assert "hook output priority -150; policy drop" in (tmp_path / "rules.seen").read_text()[len(rules):]
        drv.decide("abort")
        run_env["CRTOOLS_SCRIPT_ACTION"] = "network-unlock"
        assert subprocess.run(["sh", "-c", guard], env=run_env, timeout=10, check=False).returncode == 0
        assert log.read_text().splitlines()[-1] == "-t 4242 -n nft delete table inet arnab_lock"
    finally:
        drv.close()
    # criu's own lock when asked for, or when the container's PID is unknown: the guard's hook then does nothing
    for lock, pid, want in (("nftables", 4242, "nftables"), ("inbound", None, "nftables")):
        drv = _driver(tmp_path / ("%s-%s" % (lock, pid)))
        drv.network_lock, drv.init_pid = lock, pid
        drv.hold_work_lock()
        try:
            guard = drv._arm_guard()
            argv, env = drv.lxc.checkpoint_command(drv.name, str(tmp_path / "img2"), action="dump",
                                                   leave="stopped", action_script=guard,
                                                   network_lock=drv.final_dump_lock())
            assert "network-lock %s\n" % want in open(env["CRIU_CONFIG_FILE"]).read()
            assert "nsenter" not in open(guard).read()
        finally:
            drv.close()


def test_the_packet_holder_runs_only_with_the_inbound_lock_and_one_that_fails_is_reported(tmp_path, monkeypatch):
    """The holder (packet_hold.py, run for real in test_packet_hold.py) starts only with the inbound-only lock, a
    bridge and packet_hold on. One that cannot start (here: no such container) costs the migration nothing, and
    the log and the restore's report say why."""
    monkeypatch.setattr(pc, "own_netns", lambda pid: True)
    for lock, bridge, hold in (("nftables", "br-data", True), ("inbound", None, True), ("inbound", "br-data", False)):
        drv = _driver(tmp_path / ("%s-%s-%s" % (lock, bridge, hold)))
        drv.network_lock, drv.init_pid, drv.bridge, drv.hold_packets = lock, 4242, bridge, hold
        drv.hold_work_lock()
        try:
            drv.start_holder()
            assert drv.holder is None and drv.replay_held() is None
        finally:
            drv.close()
    drv = _driver(tmp_path / "fails")
    drv.network_lock, drv.init_pid, drv.bridge = "inbound", 2 ** 22 + 7, "lo"
    logged = []
    drv.log = logged.append
    drv.hold_work_lock()
    try:
        drv.start_holder()
        assert drv.holder is None and logged and logged[0].startswith("packet hold did not start")
        res = drv.replay_held()
        assert res["outcome"] == "failed" and res["error"]
    finally:
        drv.close()


def test_the_written_guard_decides_alone_once_the_engine_is_gone(tmp_path):
    """The engine dies while criu waits in post-dump: the shell sees the lock free and hands over to the Python
    guard, which asks the destination (here a fake status command: its copy runs) and commits."""
    drv = _driver(tmp_path)
    drv.hold_work_lock()
    guard = drv._arm_guard()
    cfg_path = os.path.join(drv.work, "guard.json")
    cfg = json.load(open(cfg_path))
    cfg.update(status_argv=["sh", "-c", "echo STATE RUNNING; echo RESTORE 0"], clean_argv=["false"],
               source_cleanup_argvs=[["true"]])
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    os.close(drv.work_lock)        # the engine is gone: the kernel drops its flock
    drv.work_lock = None
    env = dict(os.environ, CRTOOLS_SCRIPT_ACTION="post-dump")
    assert subprocess.run(["sh", "-c", guard], env=env, timeout=30, check=False).returncode == 0
    assert open(os.path.join(drv.work, "decision")).read() == "commit"
    assert "the guard decides" in open(os.path.join(drv.work, "guard.log")).read()


# ---- the dumps in a separate images dir (a tmpfs) --------------------------------------------------------------

def _tmpfs_driver(tmp_path):
    drv = pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path / "lxc"),
                                work_dir=str(tmp_path / "src-work"), images_dir=str(tmp_path / "shm" / "arnab"),
                                runner=lambda argv, env=None, timeout=None: (0, "", ""))
    return drv


def test_images_dir_holds_the_dumps_when_it_has_room(tmp_path, monkeypatch):
    drv = _tmpfs_driver(tmp_path)
    root = str(tmp_path / "shm" / "arnab" / "t2b-unit-none")
    facts = drv.choose_images_root(16 * MiB)
    assert facts["path"] == root == drv.images_root and "fallback" not in facts
    assert oct(os.stat(root).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.dirname(root)).st_mode & 0o777) == "0o700"
    made = []
    monkeypatch.setattr(drv.lxc, "checkpoint", lambda name, d, **kw: made.append(d) or {"images_dir": d})
    drv.predump(1, None, "delta")
    assert made == [os.path.join(root, "it-1")]
    assert drv._image_dir("final") == os.path.join(root, "final")
    drv.hold_work_lock()
    try:
        drv._arm_guard()
        cleanup = json.load(open(os.path.join(drv.work, "guard.json")))["source_cleanup_argvs"]
        assert ["rm", "-rf", "--one-file-system", root] in cleanup       # a dead engine's guard removes the dumps
    finally:
        drv.close()


def test_a_delta_iteration_reads_the_running_tasks_memory_and_freezes_nothing(tmp_path, monkeypatch):
    drv = _tmpfs_driver(tmp_path)
    drv.choose_images_root(16 * MiB)
    task = subprocess.Popen(["sleep", "60"])
    try:
        drv.init_pid = task.pid
        monkeypatch.setattr(pc, "pids_in_pidns", lambda pid: [task.pid])      # the container's tasks
        monkeypatch.setattr(drv.lxc, "checkpoint", lambda *a, **kw: pytest.fail("a live read dumps nothing"))
        res = drv.predump(1, None, "delta")
    finally:
        task.kill()
        task.wait()
    assert res["read"] == "live" and res["snapshot"]["tasks"] == 1 and res["snapshot"]["pages"] > 0
    assert sorted(os.listdir(res["images_dir"])) == ["pagemap-%d.img" % task.pid, "pages-1.img"]
    rec = pc.iteration_record(1, res, {"bytes_sent": 1, "literal_bytes": 1, "duration_s": 0.1}, "delta")
    assert rec["read"] == "live" and rec["freeze_s"] == 0 and rec["dump_s"] > 0
    assert rec["bytes_dumped"] == res["snapshot"]["bytes"]


def test_a_live_read_that_cannot_read_dumps_instead_and_says_why(tmp_path, monkeypatch):
    drv = _tmpfs_driver(tmp_path)
    drv.choose_images_root(16 * MiB)
    drv.init_pid = 2 ** 22 + 1            # no such task
    made = []
    monkeypatch.setattr(drv.lxc, "checkpoint", lambda name, d, **kw: made.append(kw) or {
        "images_dir": d, "duration_s": 2.0, "stats": {"frozen_time": 1900000}})
    res = drv.predump(1, None, "delta")
    assert made == [{"action": "dump", "leave": "running"}]
    assert res["read"] == "dump" and "no task's memory could be read live" in res["live_error"]
    rec = pc.iteration_record(1, res, {}, "delta")
    assert rec["freeze_s"] == 1.9 and "live_error" in rec
    drv.predump(2, None, "delta")       # and the next iterations dump without trying again
    assert len(made) == 2 and drv.delta_reads == "dump"
    with pytest.raises(ValueError, match="delta_reads must be one of live, dump"):
        pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", delta_reads="fast")


def test_images_dir_without_room_falls_back_to_the_work_dir_and_says_why(tmp_path):
    drv = _tmpfs_driver(tmp_path)
    facts = drv.choose_images_root(1 << 60, create=False)
    assert facts["path"] == drv.work == drv.images_root and "MiB free <" in facts["fallback"]
    assert facts["asked"].endswith("/shm/arnab/t2b-unit-none")
    assert not (tmp_path / "shm").exists()
    assert pc.IMAGES_DIR_DUMPS == 2
    assert _driver(tmp_path).choose_images_root(1 << 60) == {"path": str(tmp_path / "src-work")}


def test_images_dir_leftovers_cleared_and_discarded(tmp_path):
    drv = _tmpfs_driver(tmp_path)
    root = tmp_path / "shm" / "arnab" / "t2b-unit-none"
    (root / "final").mkdir(parents=True)
    (root / "final" / "pages-1.img").write_bytes(b"x" * 4096)     # a dead migration's dumps
    drv.hold_work_lock()
    assert not root.exists()
    (root / "it-1").mkdir(parents=True)
    (root / "it-1" / "pages-1.img").write_bytes(b"x")
    (root / "it-1" / "dump.log").write_text("criu said")
    drv.discard_work(keep_logs=True)
    assert [f for _d, _s, fs in os.walk(str(root)) for f in fs] == ["dump.log"]
    drv.discard_work()
    assert not root.exists()
    drv.close()


def test_the_restored_sockets_clocks_move_by_the_dump_time_with_the_inbound_lock_only(tmp_path, monkeypatch):
    monkeypatch.setattr(pc, "own_netns", lambda pid: True)
    drv = _driver(tmp_path)
    try:
        drv.network_lock, drv.init_pid = "inbound", 4242
        assert drv.ts_shift_ms() is None                   # no final dump yet
        drv.dump_s = 0.4615
        assert drv.ts_shift_ms() == 462 + pc.TS_SHIFT_MARGIN_MS
        assert receiver.restore_args("eth0", ts_shift_ms=drv.ts_shift_ms())[-2:] == ["--ts-shift-ms", 482]
        for lock, pid in (("nftables", 4242), ("inbound", None)):    # criu's own lock: its sockets sent nothing
            drv.network_lock, drv.init_pid = lock, pid
            assert drv.ts_shift_ms() is None
            assert "--ts-shift-ms" not in receiver.restore_args("eth0", ts_shift_ms=drv.ts_shift_ms())
    finally:
        drv.close()


def test_the_restore_trace_says_how_far_the_sockets_clocks_moved_and_what_went_wrong():
    out = ("T start 100.0\nTS_SHIFTED 2 482\nT restored 100.4\nPID 4242\nINBOUND_LOCK_LEFT\n"
           "garp 10.78.0.51 02:ab:00:00:00:51\nkicked 2\nT netfix 100.5\n")
    res = pc.LxcMigrationDriver.parse_restore_output(out)
    assert res["ts_shift"] == {"sockets": 2, "ms": 482} and res["tcp_kicked"] == 2 and res["pid"] == "4242"
    assert res["warnings"] == ["INBOUND_LOCK_LEFT"] and res["restore_s"] == 0.4 and res["thawed"] is False
    assert pc.LxcMigrationDriver.parse_restore_output(out.replace("PID 4242\n", "PID 4242\nTHAWED\n"))["thawed"]
    res = pc.LxcMigrationDriver.parse_restore_output(
        "T start 1.0\nTS_SHIFT_FAILED not a tcp-stream image\nT restored 1.5\n")
    assert res["ts_shift"] is None and res["warnings"] == ["TS_SHIFT_FAILED"]


# ---- auto's model, fitted to the edge's own migrations (issue 13) ----------------------------------------------

def _past(n, container="video", dest="10.79.0.2", method="stop-and-copy", downtime=1.3, frozen=22 * MiB,
          tx_bytes=22 * MiB, tx_s=0.2):
    return [{"t": 1000.0 + i, "container": container, "dest": dest, "method": method, "downtime_s": downtime,
             "bytes_frozen": frozen, "transfer_bytes": tx_bytes, "transfer_s": tx_s} for i in range(n)]


def test_the_model_is_fitted_to_this_containers_stop_and_copies_to_that_destination():
    history = _past(3) + _past(5, container="ramsim", downtime=9.0, frozen=1024 * MiB, tx_bytes=110 * MiB, tx_s=1.0) + \
        _past(4, dest="10.79.0.9", downtime=5.0)
    fit = pc.fit_costs(history, "video", "10.79.0.2", configured_rate_bps=125e6)
    assert fit["scope"] == "container" and fit["samples"] == 3
    # the link: the median of the 8 final transfers of 8 MiB or more to that destination
    assert fit["rate_samples"] == 8 and fit["link_rate_bps"] == pytest.approx(22 * MiB / 0.2)
    assert fit["fixed_cost_s"] == pytest.approx(1.3 - 0.2)


def test_too_few_migrations_of_the_container_fit_the_edge_and_too_few_at_all_keep_the_constants():
    history = _past(1) + _past(3, container="ramsim", downtime=2.0, frozen=100 * MiB, tx_s=1.0)
    fit = pc.fit_costs(history, "video", "10.79.0.2", configured_rate_bps=125e6)
    assert fit["scope"] == "edge" and fit["samples"] == 4
    assert pc.fit_costs(_past(2), "video", "10.79.0.2") is None
    # pre-copies teach the link but not the fixed cost; small transfers teach nothing about the link
    fit = pc.fit_costs(_past(3, tx_bytes=MiB) + _past(5, method="pre-copy"), "video", "10.79.0.2", 125e6)
    assert fit["rate_samples"] == 5
    assert pc.fit_costs(_past(3, tx_bytes=MiB), "video", "10.79.0.2", 125e6)["link_rate_bps"] == 125e6
    junk = [{"dest": "10.79.0.2"}, "junk", {"downtime_s": "x"}, dict(_past(1)[0], transfer_bytes="x"),
            dict(_past(1)[0], transfer_s="x")]
    assert pc.fit_costs(junk + _past(2), "video", "10.79.0.2") is None


def test_auto_says_which_figures_decided():
    facts = {"memory_bytes": 200 * MiB, "link_rate_bps": 125e6}
    m, dummy, why = pc.choose_method(facts, pc.Knobs())
    assert m == "pre-copy" and "model: constants (fixed cost 0.50s, link 1000 Mbit/s)" in why
    # measured: this edge's stop-and-copies cost 0.1 s besides the data and its link carries 2 Gbit/s
    facts["fitted"] = {"fixed_cost_s": 0.1, "link_rate_bps": 250e6, "samples": 4, "rate_samples": 6,
                       "scope": "container"}
    m, dummy, why = pc.choose_method(facts, pc.Knobs())
    assert m == "stop-and-copy" and "predicted 0.94s" in why
    assert "[model: fitted to 4 stop-and-copies of this container to this destination (fixed cost 0.10s, link " \
           "2000 Mbit/s measured over 6 transfers)]" in why


def _drains(n, container="ramsim", dest="10.79.0.2", drain_bytes=1100 * MiB, drain_s=40.0, channel="ssh"):
    return [dict(_past(1, container=container, dest=dest, method="post-copy", downtime=0.9, frozen=3 * MiB)[0],
                 drain_bytes=drain_bytes, drain_s=drain_s, drain_channel=channel) for dummy in range(n)]


def test_a_post_copy_remembers_its_drain_and_auto_predicts_the_next_with_it():
    rep = {"ok": True, "started": 5.0, "method": "post-copy", "downtime_s": 0.9, "bytes_frozen": 3 * MiB,
           "final_transfer": {"bytes_sent": 2 * MiB, "duration_s": 0.04},
           "postcopy": {"link_bytes_while_serving": 1100 * MiB, "source_needed_after_running_s": 40.0},
           "facts": {"postcopy_channel": "ssh"}}
    rec = pc.cost_record(rep, "ramsim", "10.79.0.2")
    assert (rec["drain_bytes"], rec["drain_s"], rec["drain_channel"]) == (1100 * MiB, 40.0, "ssh")
    assert "drain_s" not in pc.cost_record(dict(rep, method="stop-and-copy", postcopy=None), "ramsim", "10.79.0.2")
    # this container's drains decide, else the edge's; other destinations, small or broken records teach nothing
    history = _past(3) + [rec] + _drains(2, drain_s=20.0, container="video") + _drains(3, dest="10.79.0.9", drain_s=1.0)
    history += _drains(4, drain_s=10.0, channel="tls")
    fit = pc.fit_drain(history, "ramsim", "10.79.0.2", "ssh")
    assert fit["scope"] == "container" and fit["samples"] == 1
    assert fit["drain_rate_bps"] == pytest.approx(1100 * MiB / 40.0)
    fit = pc.fit_drain(history, "other", "10.79.0.2", "ssh")
    assert fit["scope"] == "edge" and fit["samples"] == 3 and fit["drain_rate_bps"] == pytest.approx(1100 * MiB / 20.0)
    fit = pc.fit_drain(history, "ramsim", "10.79.0.2", "tls")      # each channel drains at its own rate
    assert fit["samples"] == 4 and fit["drain_rate_bps"] == pytest.approx(1100 * MiB / 10.0)
    junk = _drains(1, drain_bytes=MiB) + _drains(1, drain_s=0) + _drains(1, drain_s="x") + ["junk"]
    assert pc.fit_drain(junk + _past(3), "ramsim", "10.79.0.2", "ssh") is None
    # 1 GiB at 1 Gbit/s would drain in 8.6 s; this edge's post-copies drained at 27.5 MiB/s: 37.2 s
    facts = {"memory_bytes": 1024 * MiB, "lazy_pages_ready": True, "link_rate_bps": 125e6}
    assert pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=10))[0] == "post-copy"
    facts["drain_fitted"] = pc.fit_drain([rec], "ramsim", "10.79.0.2", "ssh")
    m, dummy, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=10))
    assert m == "pre-copy" and "post-copy's predicted drain 37.2s > the accepted 10.0s" in why
    assert "post-copy drains at 231 Mbit/s, measured over 1 post-copy of this container over ssh]" in why
    m, dummy, why = pc.choose_method(facts, pc.Knobs(postcopy_max_drain_s=60))
    assert m == "post-copy" and "drain 37.2s (1024 MiB at 231 Mbit/s) <= the accepted 60.0s" in why


def test_a_successful_migration_is_remembered_and_the_history_stays_bounded(tmp_path):
    drv = _driver(tmp_path)
    try:
        rep = {"ok": True, "started": 5.0, "method": "stop-and-copy", "downtime_s": 1.2, "bytes_frozen": 23 * MiB,
               "final_transfer": {"bytes_sent": 23 * MiB, "duration_s": 0.25}}
        for dummy in range(pc.COST_HISTORY_SIZE + 3):
            drv.remember_costs(rep)
        drv.remember_costs({"ok": False})
        history = drv.cost_history()
        assert len(history) == pc.COST_HISTORY_SIZE and history[-1]["container"] == drv.name
        assert history[-1]["dest"] == drv.dest and history[-1]["transfer_bytes"] == 23 * MiB
        with open(drv.cost_history_path, "w") as f:
            f.write("{not json")
        assert drv.cost_history() == []         # a broken file: the constants decide, nothing fails
    finally:
        drv.close()


# ---- a lazy restore from the destination's own images ----------------------------------------------------------

class LazyRestoreDriver(FakeDriver):
    """The restored copy runs before its memory is in; the destination's daemon fills it (wait_local_pages)."""

    def plan_restore(self, method, mode, facts):
        return {"lazy": method != "post-copy", "why": "test"}

    def wait_local_pages(self):
        self._step("wait_local_pages")
        assert self.dest == "running" and self.source == "frozen", "the source is kept frozen until it is filled"
        return {"fill_s": 0.4, "lazy_pages_rc": 0}


@pytest.mark.parametrize("method", ["stop-and-copy", "pre-copy"])
def test_a_lazy_restore_commits_only_once_the_memory_is_filled(method):
    drv = LazyRestoreDriver()
    rep = pc.migrate(drv, method, pc.Knobs(target_downtime_s=0.0))
    assert rep["ok"] and drv.running_copies() == 1 and drv.source == "gone"
    assert drv.calls.index("restore") < drv.calls.index("wait_local_pages") < drv.calls.index("commit")
    assert rep["lazy_restore"] == {"lazy": True, "why": "test", "fill_s": 0.4, "lazy_pages_rc": 0}
    # the downtime ends when the copy runs, not when its memory is full
    assert rep["steps"][[s["step"] for s in rep["steps"]].index(
        "lazy restore: waiting for the last page from the destination's images") - 1]["step"].startswith(
        "running on destination after")


def test_a_failed_fill_removes_the_destinations_copy_before_the_source_resumes():
    drv = LazyRestoreDriver(fail_at="wait_local_pages")
    with pytest.raises(pc.MigrationError) as e:
        pc.migrate(drv, "stop-and-copy", pc.Knobs())
    rep = e.value.report
    assert rep["rolled_back"] and drv.running_copies() == 1 and drv.source == "running" and drv.dest == "absent"
    assert drv.calls[-3:] == ["clean_dest", "resume_source", "discard_work"]
    assert rep["lazy_restore"]["went_back_s"] >= 0 and "state at the freeze" in rep["lazy_restore"]["note"]


def test_post_copy_never_plans_a_local_lazy_restore():
    drv = LazyRestoreDriver()
    rep = pc.migrate(drv, "post-copy", pc.Knobs(target_downtime_s=0.0))
    assert rep["ok"] and "wait_local_pages" not in drv.calls and rep["lazy_restore"]["lazy"] is False


@pytest.mark.parametrize("option,method,mode,memory,receiver_version,ready,lazy,why", [
    ("auto", "stop-and-copy", None, GiB, 3, True, True, "auto: 1024 MiB of memory"),
    ("auto", "pre-copy", "delta", GiB, 3, True, True, "auto: 1024 MiB"),
    ("auto", "pre-copy", "native", GiB, 3, True, True, "auto: 1024 MiB"),     # criu follows the parent chain
    ("auto", "stop-and-copy", None, 20 * MiB, 3, True, False, "20 MiB of memory (< 128 MiB): a lazy restore"),
    ("auto", "stop-and-copy", None, GiB, 2, True, False, "receiver (version 2) predates"),
    ("auto", "stop-and-copy", None, GiB, 3, False, False, "lazy pages are not ready"),
    ("auto", "post-copy", None, GiB, 3, True, False, "post-copy: the pages come from the source"),
    ("lazy", "stop-and-copy", None, 20 * MiB, 3, True, True, "lazy_restore=lazy"),
    ("lazy", "pre-copy", "native", GiB, 3, True, True, "lazy_restore=lazy"),
    ("eager", "stop-and-copy", None, GiB, 3, True, False, "lazy_restore=eager"),
])
def test_plan_restore(tmp_path, option, method, mode, memory, receiver_version, ready, lazy, why):
    drv = _driver(tmp_path)
    drv.lazy_restore, drv.receiver_version = option, receiver_version
    plan = drv.plan_restore(method, mode, {"memory_bytes": memory, "lazy_pages_ready": ready})
    assert plan["lazy"] is lazy and why in plan["why"] and drv.restore_local is lazy


def test_lazy_restore_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(ValueError, match="lazy_restore must be one of auto, lazy, eager"):
        pc.LxcMigrationDriver("t2b-unit-none", "10.79.0.2", lxcpath=str(tmp_path), lazy_restore="yes")


def test_a_planned_lazy_restore_asks_the_destination_for_local_pages_and_the_guard_knows(tmp_path, monkeypatch):
    drv = _driver(tmp_path)
    drv.receiver_version = pc.RECEIVER_LAZY_LOCAL
    restores = []
    monkeypatch.setattr(drv.recv, "restore", lambda ifname, **kw: restores.append(kw) or (
        0, "T start 1.0\nT lazyd 1.01\nT restored 1.1\n", ""))
    monkeypatch.setattr(drv.recv, "open_patch", lambda subdir: _Channel())
    drv.plan_restore("stop-and-copy", None, {"memory_bytes": GiB, "lazy_pages_ready": True})
    drv.hold_work_lock()
    try:
        drv.before_freeze("stop-and-copy", None)
        assert json.load(open(os.path.join(drv.work, "guard.json")))["lazy_local"] is True
        res = drv.restore()
        assert res["lazy_daemon_s"] == pytest.approx(0.01) and res["restore_s"] == pytest.approx(0.09)
        assert receiver.restore_args("eth0", **restores[0])[4:6] == ["--lazy", "--local"]
    finally:
        drv.close()


@pytest.mark.parametrize("answers,outcome", [(["PENDING", "PENDING", "0"], "filled"), (["PENDING", "1"], "1"),
                                             (["LOST"], "LOST")])
def test_wait_local_pages_asks_until_the_daemon_ends(tmp_path, monkeypatch, answers, outcome):
    drv = _driver(tmp_path)
    asked = []

    def request(op, *args, **kw):
        asked.append(op)
        if op == "logs":
            return 0, "Error (criu/uffd.c:1): uffd: the test's failure", ""
        return 0, answers.pop(0) + "\n", ""
    monkeypatch.setattr(drv, "request", request)
    if outcome == "filled":
        assert drv.wait_local_pages()["lazy_pages_rc"] == 0 and asked == ["lazy-status"] * 3
    else:
        with pytest.raises(criu.CriuError, match="did not fill the memory \\(status %s\\).*the test's failure"
                           % outcome):
            drv.wait_local_pages()


@pytest.mark.parametrize("answer,says", [((0, "PENDING\n", ""), "still pending"),
                                         ((255, "", "ssh: connect to host: No route"), "no answer")])
def test_wait_local_pages_gives_up_on_a_daemon_pending_or_unreachable_too_long(tmp_path, monkeypatch, answer, says):
    drv = _driver(tmp_path)
    monkeypatch.setattr(drv, "request", lambda op, *a, **kw: answer if op == "lazy-status" else (0, "", ""))
    with pytest.raises(criu.CriuError, match="%s after 0.05s" % says):
        drv.wait_local_pages(bound_s=0.05)


@pytest.mark.parametrize("answers,fails", [(["", "PENDING", "0"], None), (["PENDING", "1"], "exit status 1")])
def test_post_copy_asks_the_destinations_daemon_how_the_drain_ended(tmp_path, monkeypatch, answers, fails):
    """criu's page server exits 0 even when its client went away: the destination's lazy-status decides."""
    drv = _driver(tmp_path)
    drv.dump_proc = subprocess.Popen(["true"])
    drv.dump_proc.wait()
    drv.lazy_tx0, drv.route_dev = 0, "bh0"
    monkeypatch.setattr(drv, "link_tx_bytes", lambda: 4096)

    def request(op, *args, **kw):
        if op == "logs":
            return 0, "Error (criu/uffd.c:1): uffd: the test's failure", ""
        return 0, answers.pop(0) + "\n", ""
    monkeypatch.setattr(drv, "request", request)
    if fails:
        with pytest.raises(criu.CriuError, match="failed at the destination \\(criu lazy-pages %s\\).*the test's"
                           % fails):
            drv.wait_lazy_done()
    else:
        assert drv.wait_lazy_done() == {"stats": {}, "bytes": 4096, "interface": "bh0"} and answers == []


@pytest.mark.parametrize("version,streamed", [(pc.RECEIVER_PATCH_PARENT, True), (pc.RECEIVER_LAZY_LOCAL, False)])
def test_native_final_dir_goes_through_a_channel_opened_before_the_freeze(tmp_path, monkeypatch, version,
                                                                          streamed):
    """No rsync (a new SSH channel and receiver) in the frozen window: the final dir goes whole through the patch
    stream opened before it, which links it to the last pre-dump; a receiver too old for the link gets rsync."""
    drv = _driver(tmp_path)
    drv.receiver_version = version
    opened, pushed, rsynced = [], [], []
    monkeypatch.setattr(drv.recv, "open_patch", lambda subdir, parent=None: opened.append((subdir, parent)) or
                        _Channel())
    monkeypatch.setattr(drv.pusher, "push_page_delta", lambda src, prev, dest, dest_files, channel, all_files=False:
                        pushed.append((src, prev, dest, dest_files, all_files)) or
                        {"whole": ["core-1.img", "pages-1.img"], "names": ["core-1.img", "pages-1.img"],
                         "bytes_sent": 8192})
    monkeypatch.setattr(drv.pusher, "push", lambda sources, dest, **kw: rsynced.append((sources, kw["rsync_path"]))
                        or {"stats": {"literal_bytes": 8192}, "bytes_sent": 8192})
    final = tmp_path / "src-work" / "final"
    final.mkdir(parents=True)
    drv.hold_work_lock()
    try:
        drv.before_freeze("pre-copy", "native", str(tmp_path / "src-work" / "it-5") + "/")
        res = drv.transfer(str(final), "final", "native")
    finally:
        drv.close()
    assert drv.dest_dir == "final"
    if streamed:
        assert opened == [("final", "it-5")] and rsynced == []
        assert pushed == [(str(final), None, "final", {}, True)]     # every file whole, nothing to diff against
        assert res["plan"]["via"] == "patch stream opened before the freeze"
    else:
        assert opened == [] and pushed == [] and len(rsynced) == 1


def test_hybrid_needs_soft_dirty_and_lazy_pages():
    assert pc.resolve_method("hybrid", SOFT_DIRTY, pc.Knobs())[:2] == ("hybrid", "native")
    with pytest.raises(ValueError, match="soft-dirty"):
        pc.resolve_method("hybrid", dict(SOFT_DIRTY, mem_dirty_track=False), pc.Knobs())
    with pytest.raises(ValueError, match="fs.pipe-max-size"):
        pc.resolve_method("hybrid", dict(SOFT_DIRTY, lazy_pages_ready=False), pc.Knobs())


def test_hybrids_lazy_dump_is_chained_to_the_last_pre_dump(tmp_path, monkeypatch):
    """criu's lazy dump with the last pre-dump as parent: it serves only the pages dirtied since (the rest is in
    the chain the destination holds); the lxc-checkpoint argv names that parent and the lazy page server."""
    drv = _driver(tmp_path)
    dumps = []
    monkeypatch.setattr(drv, "_guarded_dump", lambda d, **kw: dumps.append((d, kw)) or {"images_dir": d})
    drv.lazy_dump(str(tmp_path / "src-work" / "it-3"))
    drv.lazy_dump()
    assert [kw["parent_dir"] for _d, kw in dumps] == [str(tmp_path / "src-work" / "it-3"), None]
    assert [(kw["lazy"], kw["track_mem"]) for _d, kw in dumps] == [(True, True), (True, False)]
    os.makedirs(dumps[0][0])
    argv, env = drv.lxc.checkpoint_command(drv.name, dumps[0][0], action="dump", parent_dir=dumps[0][1]["parent_dir"],
                                           leave="stopped", track_mem=True, lazy_pages=True, address="10.79.0.1",
                                           port=27100)
    assert "--predump-dir=../it-3" in argv
    assert {"lazy-pages", "track-mem"} <= set(open(env["CRIU_CONFIG_FILE"]).read().split())
