"""The walk driver's pure parts (the walk itself: tests/lab/test_walk.py)."""
from arnab_lab import walk_run


def test_handoffs_settle_when_every_started_one_has_ended():
    events = [{"type": "handoff", "seq": 1}, {"type": "handoff", "seq": 2}, {"type": "handoff_done", "seq": 1}]
    assert walk_run.handoffs_settled(events) == (False, [2])
    assert walk_run.handoffs_settled(events + [{"type": "handoff_done", "seq": 2}]) == (True, [])
    assert walk_run.handoffs_settled([]) == (True, [])
