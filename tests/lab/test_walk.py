"""The OCS runs the testbed by itself (issue 12) on the emulated lab: the real rulebook (ansible-rulebook with
extensions/eda/rulebooks/ocs.yml, started in the ocs node by roles/ocs) listens to the agents while the radio replays
scenarios/short.yml, in which client1 walks ap1 -> ap2 and client2 ap2 -> ap3 at about the same time. Each handoff
runs double_tier.yml (tier 1, then tier 2 to the new AP's edge), both at once over the backhaul in opposite
directions. Asserts where each vAP and each container ends, that each client's stream (its own probe over the whole
walk) stayed intact, that client1's browser (headless Chromium playing its service's live video) played through its
handoff, and the report's handoffs. The lab is put back as the inventory has it at the end. Needs root
a lab `make lab-up` can build (the fixture brings it up); site.yml runs first only when a client or a service is nowhere (2.5 min more).
About 4 minutes on this 2-core machine (3 for the walk, 1 to put the clients and services back).
"""
import os

import pytest

from arnab_lab import bench, walk_run
from arnab_lab.runner import run_playbook
from playback import assert_picture_went_on

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHORT = os.path.join(REPO, "scenarios", "short.yml")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("walk"))
    bench.use_venv()
    run_playbook("lab.yml", {"lab_state": "present"}, quiet=True)     # up (idempotent: a healthy lab is left alone)
    try:
        result, path, plots = walk_run.run(SHORT, provision="auto", out_dir=out)
        yield result, path, plots
    finally:
        lab = walk_run.Lab()
        walk_run.place(lab, lab.services(), out)     # back where the inventory puts them, for the next tests


def test_each_vap_and_each_container_ends_where_the_client_went(walked):
    result, dummy, dummy2 = walked
    assert result["vaps"]["client1"] == ["ap2"] and result["vaps"]["client2"] == ["ap3"], result["vaps"]
    assert result["service_edges"] == {"client1": ["edge2"], "client2": ["edge1"]}
    for client in ("client1", "client2"):
        assert result["clients"][client]["service_follows"] is True, result["clients"][client]


def test_every_handoff_ran_once_and_ended_ok(walked):
    result, dummy, dummy2 = walked
    ran = sorted((h["client"], h["from_ap"], h["to_ap"], h["from_edge"], h["to_edge"], h["ok"])
                 for h in result["handoffs"] if h["seq"] is not None)
    assert ran == [("client1", "ap1", "ap2", "edge1", "edge2", True), ("client2", "ap2", "ap3", "edge2", "edge1", True)]
    assert not result["ping_pong"] and result["expected"]["missed"] == []
    for h in result["handoffs"]:
        assert h["decision_ms"] is not None and h["control_path_ms"] is not None and h["method"], h
        assert h["downtime_s"] is not None and h["t_trigger_source"] == "scenario", h


def test_streams_stayed_intact(walked):
    result, dummy, plots = walked
    for client in ("client1", "client2"):
        info = result["clients"][client]
        assert info["stream_ok"] is True and info["stream_source"] == "walk", info
    assert result["ok"] is True
    assert sorted(plots) == ["client1", "client2"] and all(os.path.getsize(p) > 0 for p in plots.values())


def test_the_viewer_watched_through_the_handoff(walked):
    """client1 watches `video` in Chromium over the whole walk: a screenshot before, as its handoff starts and ends,
    and after; the picture's clock went on across the handoff and after it, and any stall was bounded."""
    result, dummy, dummy2 = walked
    player = result["browser"]["client1"]
    assert "error" not in player, player
    handoff = next(h for h in result["handoffs"] if h["client"] == "client1" and h["seq"] is not None)
    marks = dict((m["label"], m) for m in player["marks"])
    assert sorted(marks) == sorted(["before", "handoff %s" % handoff["seq"], "handoff done %s" % handoff["seq"],
                                    "after"]), player["marks"]
    assert_picture_went_on(marks["handoff %s" % handoff["seq"]], marks["handoff done %s" % handoff["seq"]])
    assert_picture_went_on(marks["handoff done %s" % handoff["seq"]], marks["after"])
    assert not [e for e in player["errors"] if e.get("fatal")], player["errors"]
    assert not any(s.get("open") for s in player["stalls"]), player["stalls"]
    assert player["stalled_ms"] <= handoff["downtime_s"] * 1000 + 3000, (player["stalls"], handoff["downtime_s"])
    assert "client2" not in result["browser"]       # video2 serves no web video
