"""The OCS's mobility policy (Wi-5 MobilityManager semantics) and per-client handoff queue: pure, fake clock."""
import math
import random

import pytest

from ansible_collections.arnab.testbed.plugins.module_utils.mobility import (
    Decision, HandoffQueue, MobilityPolicy, PolicyError, ScanRequest, mean_dbm, to_dbm)

MAC = "02:c0:00:00:00:01"
APS = {"ap1": {"edge": "edge1", "channel": 6}, "ap2": {"edge": "edge2", "channel": 1},
       "ap3": {"edge": "edge2", "channel": 11}}
CLIENTS = {"client1": {"mac": MAC, "ap": "ap1", "container": "video"},
           "client2": {"mac": "02:c0:00:00:00:02", "ap": "ap2", "container": "game"}}


def policy(**params):
    params.setdefault("scan", "passive")
    params.setdefault("hysteresis_s", 3)
    params.setdefault("triggers", 3)
    return MobilityPolicy(params, APS, CLIENTS, now=0.0)


def feed(pol, t, levels, mac=MAC):
    """One sample per AP at time t; returns what the policy decided."""
    out = []
    for ap, dbm in levels.items():
        out.extend(pol.observe(ap, mac, dbm, t))
    return out


def test_to_dbm_converts_raw_values_with_minus_256():
    assert to_dbm(186) == -70          # raw agent value: RSSI + 256
    assert to_dbm(-70) == -70          # already dBm (the emulated agent)
    assert to_dbm(186, "raw") == -70
    assert to_dbm(-70, "raw") is None  # not a raw value
    assert to_dbm(186, "dbm") is None  # a positive dBm is no measurement
    assert to_dbm(0) is None           # raw 0: not heard
    for bad in ("x", None, float("nan"), float("inf"), 300, -400):
        assert to_dbm(bad) is None


def test_mean_is_taken_in_linear_power():
    assert mean_dbm([-50, -50]) == pytest.approx(-50)
    # -50 dBm and -80 dBm: 10 uW and 0.01 uW -> about 5 uW = -53 dBm, not the -65 of a dB average
    assert mean_dbm([-50, -80]) == pytest.approx(10 * math.log10((1e-5 + 1e-8) / 2), abs=1e-9)
    assert mean_dbm([-50, -80]) > -54
    assert mean_dbm([]) is None


def test_params_are_checked():
    with pytest.raises(PolicyError, match="unknown"):
        MobilityPolicy({"treshold_dbm": -70}, APS, CLIENTS)
    with pytest.raises(PolicyError, match="not a number"):
        MobilityPolicy({"hysteresis_s": "soon"}, APS, CLIENTS)
    with pytest.raises(PolicyError, match="negative"):
        MobilityPolicy({"idle_s": -1}, APS, CLIENTS)
    with pytest.raises(PolicyError, match="at least 1"):
        MobilityPolicy({"triggers": 0}, APS, CLIENTS)
    with pytest.raises(PolicyError, match="active or passive"):
        MobilityPolicy({"scan": "maybe"}, APS, CLIENTS)
    with pytest.raises(PolicyError, match="share the MAC"):
        MobilityPolicy({}, APS, {"a": {"mac": MAC}, "b": {"mac": MAC.upper()}})
    with pytest.raises(PolicyError, match="not one of"):
        MobilityPolicy({}, APS, {"a": {"mac": MAC, "ap": "ap9"}})
    assert MobilityPolicy({"threshold_dbm": "-65"}, APS, CLIENTS).params["threshold_dbm"] == -65.0


def test_no_decision_above_threshold():
    pol = policy()
    for i in range(50):
        assert feed(pol, 10 + i * 0.1, {"ap1": -60, "ap2": -40}) == []
    assert pol.counters.get("decisions", 0) == 0


def test_trigger_count_then_handoff_with_edges_container_and_t_trigger():
    pol = policy(threshold_dbm=-70)
    feed(pol, 10.0, {"ap2": -50})
    assert feed(pol, 10.0, {"ap1": -75}) == []
    assert feed(pol, 10.1, {"ap1": -76}) == []
    (decision,) = feed(pol, 10.2, {"ap1": -77})
    assert isinstance(decision, Decision)
    assert (decision.client, decision.from_ap, decision.to_ap) == ("client1", "ap1", "ap2")
    assert (decision.from_edge, decision.to_edge, decision.container) == ("edge1", "edge2", "video")
    assert decision.t_trigger == 10.0 and decision.t_decision == 10.2   # t_trigger: when the signal crossed
    assert decision.to_dbm == -50 and "below -70 dBm" in decision.reason
    assert pol.serving("client1") == "ap2"


def test_raw_values_are_converted():
    pol = policy(threshold_dbm=-70, triggers=1, signal_units="raw")
    feed(pol, 10.0, {"ap2": 256 - 50})
    (decision,) = feed(pol, 10.0, {"ap1": 256 - 80})
    assert decision.from_dbm == -80 and decision.to_dbm == -50


def test_triggers_must_fall_within_the_reset_window():
    pol = policy(triggers=3, trigger_reset_s=1.0)
    for t in (10.0, 11.5, 13.0, 14.5):      # one below-threshold sample every 1.5 s: never 3 within 1 s
        feed(pol, t, {"ap2": -50})
        assert feed(pol, t, {"ap1": -80}) == []


def test_idle_client_starts_over():
    pol = policy(triggers=3, trigger_reset_s=100, idle_s=4)
    feed(pol, 10.0, {"ap1": -80, "ap2": -50})
    feed(pol, 10.1, {"ap1": -80, "ap2": -50})
    # silent for 5 s > idle_s: the two old triggers are forgotten
    assert feed(pol, 15.2, {"ap2": -50, "ap1": -80}) == []
    assert pol.counters["idle_resets"] == 1
    assert feed(pol, 15.3, {"ap2": -50, "ap1": -80}) == []
    assert len(feed(pol, 15.4, {"ap2": -50, "ap1": -80})) == 1


def test_hysteresis_holds_after_an_assignment():
    pol = policy(triggers=1, hysteresis_s=3)
    pol.assigned("client1", "ap1", 10.0)     # e.g. an association (serving AP unchanged: no restart)
    pol.assigned("client2", "ap3", 10.0)     # serving AP changed: hysteresis from now
    feed(pol, 11.0, {"ap1": -50}, mac="02:c0:00:00:00:02")
    assert feed(pol, 11.0, {"ap3": -80}, mac="02:c0:00:00:00:02") == []
    assert pol.counters["suppressed_hysteresis"] == 1
    feed(pol, 13.5, {"ap1": -50}, mac="02:c0:00:00:00:02")
    (decision,) = feed(pol, 13.5, {"ap3": -80}, mac="02:c0:00:00:00:02")
    assert decision.to_ap == "ap1"


def test_target_must_be_better_by_min_gain():
    pol = policy(triggers=1, min_gain_db=3)
    feed(pol, 10.0, {"ap2": -79, "ap3": -100})
    assert feed(pol, 10.0, {"ap1": -80}) == []          # ap2 only 1 dB better (averages)
    assert pol.counters["suppressed_no_better_ap"] == 1


def test_no_candidate_when_nobody_else_hears_the_client():
    pol = policy(triggers=1)
    assert feed(pol, 10.0, {"ap1": -90}) == []
    assert pol.counters["suppressed_no_candidate"] == 1


def test_best_ap_is_chosen():
    pol = policy(triggers=1)
    feed(pol, 10.0, {"ap2": -60, "ap3": -55})
    (decision,) = feed(pol, 10.0, {"ap1": -80})
    assert decision.to_ap == "ap3"


def test_start_time_holds_decisions():
    pol = policy(triggers=1, start_s=5)
    feed(pol, 1.0, {"ap2": -50})
    assert feed(pol, 1.0, {"ap1": -80}) == []
    assert pol.counters["suppressed_start"] == 1


def test_unknown_client_and_ap_and_bad_values_are_counted():
    pol = policy()
    assert pol.observe("ap1", "02:99:00:00:00:09", -80, 1) == []
    assert pol.observe("ap9", MAC, -80, 1) == []
    assert pol.observe("ap1", MAC, "garbage", 1) == []
    assert pol.observe("ap1", MAC, 12345, 1) == []
    assert (pol.counters["unknown_client"], pol.counters["unknown_ap"], pol.counters["bad_signal"]) == (1, 1, 2)


def test_active_scan_request_then_decision():
    pol = policy(scan="active", triggers=2, scan_time_s=0.3)
    feed(pol, 10.0, {"ap1": -80})
    (req,) = feed(pol, 10.1, {"ap1": -81})
    assert isinstance(req, ScanRequest)
    assert (req.client, req.from_ap, req.channel, req.candidates, req.t_trigger, req.scan_time_s) == \
        ("client1", "ap1", 6, ["ap2", "ap3"], 10.0, 0.3)
    assert feed(pol, 10.2, {"ap1": -82}) == []          # no second scan while one runs
    decision = pol.scan_done("client1", {"ap2": -55, "ap3": None}, 10.45)
    assert decision.to_ap == "ap2" and decision.t_trigger == 10.0 and decision.t_decision == 10.45
    assert pol.counters["scans"] == 1 and pol.counters.get("scans_ahead", 0) == 0   # off by default


def test_active_scan_that_hears_nobody_moves_nobody():
    pol = policy(scan="active", triggers=1)
    (req,) = feed(pol, 10.0, {"ap1": -80})
    assert pol.scan_done("client1", {"ap2": None, "ap3": None}, 10.2) is None
    assert pol.serving("client1") == "ap1" and pol.counters["suppressed_no_candidate"] == 1


def scan_ahead_policy():
    return policy(scan="active", triggers=1, scan_time_s=0.2, scan_ahead_db=6, average_window_s=1.0)


def test_scan_ahead_runs_near_the_threshold_and_the_crossing_decides_at_once():
    pol = scan_ahead_policy()
    assert feed(pol, 10.0, {"ap1": -60}) == []                 # 10 dB above the threshold: no scan
    (ahead,) = feed(pol, 10.1, {"ap1": -66})                   # within 6 dB: scan ahead, no attempt
    assert ahead.t_trigger is None and ahead.candidates == ["ap2", "ap3"]
    assert feed(pol, 10.2, {"ap1": -67}) == []                 # one scan at a time
    assert pol.scan_done("client1", {"ap2": -60, "ap3": None}, 10.3) is None   # nothing was waiting for it
    assert feed(pol, 10.4, {"ap1": -68}) == []                 # the last scan is younger than scan_time_s
    (again,) = feed(pol, 10.55, {"ap1": -68})
    assert again.t_trigger is None
    assert pol.scan_done("client1", {"ap2": -58, "ap3": None}, 10.7) is None
    (decision,) = feed(pol, 10.8, {"ap1": -71})                # the crossing: decided from the scan ahead
    assert (decision.to_ap, decision.t_trigger, decision.t_decision, decision.to_dbm) == ("ap2", 10.8, 10.8, -58)
    assert "scanned ahead, 100 ms before" in decision.reason
    assert pol.counters["decided_from_scan_ahead"] == 1 and pol.counters.get("scans", 0) == 0
    assert pol.serving("client1") == "ap2"


def test_scan_ahead_that_is_stale_or_shows_no_better_ap_is_scanned_again():
    pol = scan_ahead_policy()
    (ahead,) = feed(pol, 10.0, {"ap1": -66})
    pol.scan_done("client1", {"ap2": -60}, 10.2)
    (req,) = feed(pol, 11.5, {"ap1": -71})                     # 1.3 s old: too old to decide from
    assert req.t_trigger == 11.5 and pol.counters["scans"] == 1
    assert feed(pol, 11.6, {"ap1": -72}) == []                 # the attempt waits for its scan
    assert pol.scan_done("client1", {"ap2": -75}, 11.7) is None
    assert pol.counters["suppressed_no_better_ap"] == 1 and pol.serving("client1") == "ap1"
    # a fresh scan ahead that hears nothing better does not suppress the attempt: the attempt scans itself
    pol2 = scan_ahead_policy()
    feed(pol2, 20.0, {"ap1": -66})
    pol2.scan_done("client1", {"ap2": -69}, 20.2)
    (req2,) = feed(pol2, 20.3, {"ap1": -71})
    assert req2.t_trigger == 20.3 and pol2.counters.get("suppressed", 0) == 0
    decision = pol2.scan_done("client1", {"ap2": -55}, 20.5)
    assert decision.to_ap == "ap2" and decision.t_decision == 20.5


def test_an_attempt_during_a_scan_ahead_is_decided_by_that_scan():
    pol = scan_ahead_policy()
    (ahead,) = feed(pol, 10.0, {"ap1": -66})
    assert feed(pol, 10.1, {"ap1": -71}) == []                 # crossing while the scan ahead runs: no 2nd scan
    decision = pol.scan_done("client1", {"ap2": -55, "ap3": -90}, 10.2)
    assert (decision.to_ap, decision.t_trigger, decision.t_decision) == ("ap2", 10.1, 10.2)


def noisy_walk(pol, seed, crossing_at=30.0, noise_db=6.0, end=60.0, step=0.1):
    """ap1 fades and ap2 rises slowly through the threshold region, with heavy noise on every sample."""
    rng = random.Random(seed)
    moves = []
    t = 0.0
    while t < end:
        x = (t - crossing_at) / 30.0                       # -1 .. +1 over the walk
        ap1 = -70 - 8 * x + rng.gauss(0, noise_db)
        ap2 = -70 + 8 * x + rng.gauss(0, noise_db)
        for out in feed(pol, t, {"ap1": ap1, "ap2": ap2, "ap3": -95 + rng.gauss(0, 2)}):
            moves.append((round(t, 1), out.from_ap, out.to_ap))
        t += step
    return moves


@pytest.mark.parametrize("seed", range(10))
def test_flapping_signal_makes_no_ping_pong(seed):
    pol = policy(threshold_dbm=-70, triggers=3, trigger_reset_s=1, hysteresis_s=3, flap_window_s=10, min_gain_db=3)
    moves = noisy_walk(pol, seed)
    # the client walks from ap1 to ap2 through 6 dB of noise: never back to the AP it left within the flap
    # window, and it ends where the signal is
    assert moves and moves[0][1:] == ("ap1", "ap2"), moves
    assert all(b[0] - a[0] >= 10 for a, b in zip(moves, moves[1:])), moves
    assert pol.serving("client1") == "ap2"
    assert pol.counters["suppressed"] > 0      # the noise was there, and it was held


@pytest.mark.parametrize("seed", range(10))
def test_flapping_signal_with_more_triggers_and_gain_moves_once(seed):
    pol = policy(threshold_dbm=-70, triggers=5, trigger_reset_s=1, hysteresis_s=3, flap_window_s=10, min_gain_db=6,
                 average_window_s=2)
    moves = noisy_walk(pol, seed)
    assert [m[1:] for m in moves] == [("ap1", "ap2")], moves


def test_flapping_back_to_the_previous_ap_is_suppressed():
    pol = policy(triggers=1, hysteresis_s=1, flap_window_s=10)
    feed(pol, 10.0, {"ap2": -50})
    (first,) = feed(pol, 10.0, {"ap1": -80})
    assert first.to_ap == "ap2"
    feed(pol, 12.0, {"ap1": -50})
    assert feed(pol, 12.0, {"ap2": -80}) == []
    assert pol.counters["suppressed_flapping"] == 1
    feed(pol, 21.0, {"ap1": -50})
    (back,) = feed(pol, 21.0, {"ap2": -80})    # after the flap window a walk back is honoured
    assert back.to_ap == "ap1"


def decision(client="client1", from_ap="ap1", to_ap="ap2", t=1.0):
    return Decision(client, MAC, from_ap, to_ap, APS[from_ap]["edge"], APS[to_ap]["edge"], "video", t, t, "r", -80, -50)


def test_queue_runs_one_handoff_per_client_and_clients_concurrently():
    q = HandoffQueue(dict((a, v["edge"]) for a, v in APS.items()))
    assert q.offer(decision(), 1) == (decision(), None)
    other = decision(client="client2", from_ap="ap2", to_ap="ap1")
    assert q.offer(other, 1) == (other, None)      # another client: runs at once
    assert q.busy("client1") and q.busy("client2")


def test_queue_latest_target_wins_and_is_rebased():
    q = HandoffQueue(dict((a, v["edge"]) for a, v in APS.items()))
    q.offer(decision(to_ap="ap2"), 1)
    first_waiting = decision(from_ap="ap2", to_ap="ap1", t=2)
    assert q.offer(first_waiting, 2) == (None, None)
    latest = decision(from_ap="ap2", to_ap="ap3", t=3)
    assert q.offer(latest, 3) == (None, first_waiting)       # replaced, reported
    where, nxt, dropped = q.done("client1", True, 4)
    assert where == "ap2" and dropped is None
    assert (nxt.from_ap, nxt.to_ap, nxt.from_edge, nxt.to_edge) == ("ap2", "ap3", "edge2", "edge2")
    assert q.coalesced_of("client1") == [first_waiting]
    assert q.counters["coalesced"] == 1


def test_queue_failed_migration_rebases_on_where_the_client_was():
    q = HandoffQueue(dict((a, v["edge"]) for a, v in APS.items()))
    q.offer(decision(to_ap="ap2"), 1)
    q.offer(decision(from_ap="ap2", to_ap="ap3", t=2), 2)
    where, nxt, dropped = q.done("client1", False, 3)
    assert where == "ap1" and (nxt.from_ap, nxt.from_edge, nxt.to_ap) == ("ap1", "edge1", "ap3")


def test_queue_drops_a_waiting_decision_that_leads_where_the_client_is():
    q = HandoffQueue()
    q.offer(decision(to_ap="ap2"), 1)
    waiting = decision(from_ap="ap2", to_ap="ap1", t=2)
    q.offer(waiting, 2)
    where, nxt, dropped = q.done("client1", False, 3)        # failed: the client is still on ap1
    assert (where, nxt, dropped) == ("ap1", None, waiting)
    assert q.counters["coalesced_noop"] == 1 and not q.busy("client1")


def test_queue_done_without_a_running_handoff_and_overdue():
    q = HandoffQueue()
    assert q.done("client1", True, 1) == (None, None, None)
    assert q.counters["unexpected_done"] == 1
    q.offer(decision(), 10)
    assert q.overdue(20, 30) == [] and q.overdue(50, 30) == ["client1"]
