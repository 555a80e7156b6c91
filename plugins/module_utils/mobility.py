# -*- coding: utf-8 -*-
# Copyright: arnab.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OCS's mobility policy (Wi-5 MobilityManager semantics) and the per-client handoff queue. Pure: no I/O,
no clock; every call takes the time ``t`` (seconds) from the caller.

Policy (inventory data, ``MobilityPolicy.DEFAULTS``):
  * a published signal value is a raw agent value (RSSI + 256, 1..255) or dBm (<= 0): raw -> ``value - 256``;
  * each (client, AP) keeps its samples of the last ``average_window_s``; averages are taken in linear power
    (mW), not in dB;
  * a sample from the serving AP below ``threshold_dbm`` is a trigger; ``triggers`` of them within
    ``trigger_reset_s`` start a handoff attempt (``t_trigger`` = the first of them: when the signal crossed);
  * no attempt within ``hysteresis_s`` of the client's last assignment (counted: ``hysteresis``), nor in the
    first ``start_s`` after the OCS started (``start``); a client silent for ``idle_s`` starts over;
  * the attempt scans the other APs (``scan: active``: the caller asks each agent's ``scan_client`` for
    ``scan_time_s`` and calls ``scan_done``; ``scan: passive``: the averages of what the other agents published)
    and picks the AP heard best; with ``scan_ahead_db`` > 0 an active scan already runs while the serving AP's
    sample is within that margin above the threshold (again every ``scan_time_s``), and an attempt decides at once
    from a scan younger than ``average_window_s`` when it shows a better AP (else it scans, as without it); it
    hands off only if that AP's average beats the serving AP's level since the crossing (the average of the
    samples from ``t_trigger`` on) by ``min_gain_db``
    (else ``no_better_ap``) and is not the AP the client left less than ``flap_window_s`` ago (``flapping``):
    a signal that flaps around the threshold produces no ping-pong.
A decision is ``Decision(client, sta_mac, from_ap, to_ap, from_edge, to_edge, container, t_trigger, t_decision,
reason, from_dbm, to_dbm)``, the edges from each AP's ``edge`` (inventory ``ap_edge``).

``HandoffQueue`` serializes each client's handoffs: one in flight per client; a decision that arrives meanwhile
waits, a later one replaces it (the latest target wins, the replaced ones are listed in ``coalesced``), and when the
running one completes the waiting one is re-based on where the client actually is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
from collections import deque, namedtuple

from ansible_collections.arnab.testbed.plugins.module_utils.odin_master import Counters


class PolicyError(ValueError):
    """Inventory data the policy cannot use."""


Decision = namedtuple("Decision", "client sta_mac from_ap to_ap from_edge to_edge container t_trigger t_decision "
                                  "reason from_dbm to_dbm")
ScanRequest = namedtuple("ScanRequest", "client sta_mac from_ap channel candidates t_trigger scan_time_s")

SUPPRESSIONS = ("hysteresis", "flapping", "no_better_ap", "no_candidate", "start")


def to_dbm(value, units="auto"):
    """A published signal value -> dBm, or None when it is no measurement. Raw agent values are RSSI + 256
    (1..255; 0 = not heard): dBm = value - 256. ``units``: raw, dbm, or auto (positive = raw, else dBm)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    if units == "raw" or (units == "auto" and value > 0):
        return value - 256 if 0 < value <= 255 else None
    return value if -255 <= value < 0 else None


def mean_dbm(values):
    """Average of dBm values in linear power (mW), back in dBm."""
    values = list(values)
    if not values:
        return None
    return 10 * math.log10(sum(10 ** (v / 10.0) for v in values) / len(values))


class MobilityPolicy:
    DEFAULTS = {
        "threshold_dbm": -70.0,      # a serving AP's sample below this is a trigger
        "hysteresis_s": 3.0,         # no new attempt this long after an assignment (Odin: 3000 ms)
        "triggers": 3,               # triggers needed ...
        "trigger_reset_s": 1.0,      # ... within this window
        "idle_s": 4.0,               # a client unheard this long starts over (Odin: 4000 ms)
        "scan_time_s": 0.2,          # how long candidate agents scan (active scans)
        "scan": "active",            # active: scan_client on the other agents; passive: their published samples
        "scan_ahead_db": 0.0,        # > 0: scan while the serving level is this close above the threshold
        "average_window_s": 1.0,     # samples averaged (linear power) per client and AP
        "min_gain_db": 3.0,          # the target must beat the serving AP's average by this
        "flap_window_s": 10.0,       # no hand back to the AP the client left this long ago
        "start_s": 0.0,              # no decision in the first seconds after the OCS starts
        "signal_units": "auto",      # raw (RSSI + 256, real OdinAgent), dbm (emulated agent), auto
    }

    def __init__(self, params=None, aps=None, clients=None, now=0.0):
        self.params = self.check_params(params or {})
        self.aps = {}
        for name, ap in (aps or {}).items():
            ap = ap or {}
            self.aps[str(name)] = {"edge": ap.get("edge"), "channel": ap.get("channel")}
        self.clients = {}
        self.by_mac = {}
        for name, client in (clients or {}).items():
            client = client or {}
            mac = str(client.get("mac", "")).lower()
            if not mac:
                raise PolicyError("client %s has no mac" % name)
            if mac in self.by_mac:
                raise PolicyError("clients %s and %s share the MAC %s" % (self.by_mac[mac], name, mac))
            serving = client.get("ap")
            if serving is not None and serving not in self.aps:
                raise PolicyError("client %s: AP %s is not one of %s" % (name, serving, ", ".join(sorted(self.aps))))
            self.by_mac[mac] = name
            self.clients[name] = {"name": name, "mac": mac, "container": client.get("container"),
                                  "serving": serving, "assigned_at": None, "previous": None, "left_at": None,
                                  "last_heard": None, "triggers": deque(), "scanning": False,
                                  "pending": None, "scanned": None}
        self.samples = {}
        self.started = now
        self.counters = Counters()

    @classmethod
    def check_params(cls, params):
        unknown = set(params) - set(cls.DEFAULTS)
        if unknown:
            raise PolicyError("unknown mobility policy parameter(s): %s (known: %s)"
                              % (", ".join(sorted(unknown)), ", ".join(sorted(cls.DEFAULTS))))
        merged = dict(cls.DEFAULTS)
        for key, value in params.items():
            default = cls.DEFAULTS[key]
            if isinstance(default, str):
                merged[key] = str(value)
                continue
            try:
                merged[key] = type(default)(value)
            except (TypeError, ValueError):
                raise PolicyError("mobility policy %s=%r is not a number" % (key, value))
            if key != "threshold_dbm" and merged[key] < 0:
                raise PolicyError("mobility policy %s=%r must not be negative" % (key, value))
        if merged["triggers"] < 1:
            raise PolicyError("mobility policy triggers must be at least 1")
        if merged["scan"] not in ("active", "passive"):
            raise PolicyError("mobility policy scan=%r must be active or passive" % merged["scan"])
        if merged["signal_units"] not in ("auto", "raw", "dbm"):
            raise PolicyError("mobility policy signal_units=%r must be auto, raw or dbm" % merged["signal_units"])
        return merged

    # -- inputs -------------------------------------------------------------------------------------------------

    def client_of(self, sta_mac):
        return self.by_mac.get(str(sta_mac).lower())

    def serving(self, client):
        return self.clients[client]["serving"]

    def assigned(self, client, ap, t):
        """The client is (now) served by ``ap``: an association, or where a migration left it. Hysteresis
        restarts only when the serving AP changes."""
        state = self.clients[client]
        if ap not in self.aps:
            return
        if state["serving"] != ap:
            if state["serving"] is not None:
                state["previous"], state["left_at"] = state["serving"], t
            state["serving"], state["assigned_at"] = ap, t
        state["triggers"].clear()
        state["scanning"] = False
        state["pending"] = state["scanned"] = None

    def observe(self, ap, sta_mac, value, t):
        """A published signal of ``sta_mac`` heard by ``ap`` at ``t``. Returns [] , [Decision] or [ScanRequest]."""
        client = self.client_of(sta_mac)
        if client is None:
            self.counters.add("unknown_client")
            return []
        if ap not in self.aps:
            self.counters.add("unknown_ap")
            return []
        dbm = to_dbm(value, self.params["signal_units"])
        if dbm is None:
            self.counters.add("bad_signal")
            return []
        self.counters.add("samples")
        window = self._window(client, ap, t)
        window.append((t, dbm))
        state = self.clients[client]
        if ap != state["serving"]:
            return []
        p = self.params
        if state["last_heard"] is not None and t - state["last_heard"] > p["idle_s"]:
            state["triggers"].clear()        # idle: start over
            self.counters.add("idle_resets")
        state["last_heard"] = t
        out = self._attempt(client, ap, t) if dbm < p["threshold_dbm"] and state["pending"] is None else []
        return out + self._scan_ahead(client, ap, dbm, t)

    def _attempt(self, client, ap, t):
        """A serving AP's sample below the threshold: a trigger; enough of them start a handoff attempt."""
        p, state = self.params, self.clients[client]
        triggers = state["triggers"]
        triggers.append(t)
        while triggers and t - triggers[0] > p["trigger_reset_s"]:
            triggers.popleft()
        if len(triggers) < p["triggers"]:
            return []
        t_trigger = triggers[0]
        triggers.clear()
        if t - self.started < p["start_s"]:
            return self._suppress("start")
        if state["assigned_at"] is not None and t - state["assigned_at"] < p["hysteresis_s"]:
            return self._suppress("hysteresis")
        candidates = self._candidates(ap)
        if not candidates:
            return self._suppress("no_candidate")
        if p["scan"] == "passive":
            decision = self._decide(client, dict((a, self.average(client, a, t)) for a in candidates), t, t_trigger)
            return [decision] if decision else []
        scanned = state["scanned"]
        if scanned is not None and t - scanned[0] <= p["average_window_s"] and \
                self._evaluate(client, scanned[1], t, t_trigger)[0] is not None:
            self.counters.add("decided_from_scan_ahead")
            return [self._decide(client, scanned[1], t, t_trigger, scanned_at=scanned[0])]
        state["pending"] = t_trigger
        if state["scanning"]:       # a scan ahead is under way: its result decides
            return []
        return [self._scan_request(client, ap, t_trigger)]

    def scan_done(self, client, heard, t):
        """Results of an active scan: {ap: dBm or None}. Returns a Decision or None (no attempt was waiting for
        this scan, or it found no better AP)."""
        state = self.clients[client]
        state["scanning"] = False
        state["scanned"] = (t, dict(heard))
        t_trigger, state["pending"] = state["pending"], None
        return None if t_trigger is None else self._decide(client, heard, t, t_trigger)

    def _candidates(self, serving):
        return sorted(a for a in self.aps if a != serving)

    def _scan_request(self, client, ap, t_trigger):
        state = self.clients[client]
        state["scanning"] = True
        self.counters.add("scans" if t_trigger is not None else "scans_ahead")
        return ScanRequest(client, state["mac"], ap, self.aps[ap]["channel"], self._candidates(ap), t_trigger,
                           self.params["scan_time_s"])

    def _scan_ahead(self, client, ap, dbm, t):
        """[ScanRequest] when the serving level nears the threshold and the last scan is older than a scan."""
        p, state = self.params, self.clients[client]
        if p["scan"] != "active" or p["scan_ahead_db"] <= 0 or state["scanning"] or ap != state["serving"]:
            return []
        if dbm >= p["threshold_dbm"] + p["scan_ahead_db"]:
            return []
        if state["scanned"] is not None and t - state["scanned"][0] < p["scan_time_s"]:
            return []
        return [self._scan_request(client, ap, None)]

    # -- decision -----------------------------------------------------------------------------------------------

    def average(self, client, ap, t):
        window = self._window(client, ap, t)
        return mean_dbm(v for dummy, v in window)

    def _window(self, client, ap, t):
        window = self.samples.setdefault((client, ap), deque())
        while window and t - window[0][0] > self.params["average_window_s"]:
            window.popleft()
        return window

    def _suppress(self, why):
        self.counters.add("suppressed")
        self.counters.add("suppressed_" + why)
        return []

    def _evaluate(self, client, heard, t, t_trigger):
        """-> ((to_ap, from_dbm, to_dbm), None) when ``heard`` ({ap: dBm}) shows a better AP, else (None, why)."""
        state = self.clients[client]
        p = self.params
        from_ap = state["serving"]
        heard = dict((a, v) for a, v in heard.items() if v is not None and a != from_ap and a in self.aps)
        if not heard:
            return None, "no_candidate"
        to_ap = max(sorted(heard), key=lambda a: heard[a])
        # the serving AP's level: its samples since the signal crossed (what triggered), in linear power
        window = self._window(client, from_ap, t)
        from_dbm = mean_dbm(v for when, v in window if when >= t_trigger) or self.average(client, from_ap, t)
        if from_dbm is not None and heard[to_ap] < from_dbm + p["min_gain_db"]:
            return None, "no_better_ap"
        if to_ap == state["previous"] and state["left_at"] is not None and t - state["left_at"] < p["flap_window_s"]:
            return None, "flapping"
        return (to_ap, from_dbm, heard[to_ap]), None

    def _decide(self, client, heard, t, t_trigger, scanned_at=None):
        found, why = self._evaluate(client, heard, t, t_trigger)
        if found is None:
            return self._suppress(why) or None
        to_ap, from_dbm, to_dbm_ = found
        state, p = self.clients[client], self.params
        from_ap = state["serving"]
        reason = ("%s heard %s below %g dBm %d time(s) within %g s (avg %s dBm); %s hears it at %.1f dBm%s"
                  % (from_ap, client, p["threshold_dbm"], p["triggers"], p["trigger_reset_s"],
                     "?" if from_dbm is None else "%.1f" % from_dbm, to_ap, to_dbm_,
                     "" if scanned_at is None else " (scanned ahead, %.0f ms before)" % ((t - scanned_at) * 1000.0)))
        decision = Decision(client, state["mac"], from_ap, to_ap, self.aps[from_ap]["edge"], self.aps[to_ap]["edge"],
                            state["container"], t_trigger, t, reason,
                            None if from_dbm is None else round(from_dbm, 1), round(to_dbm_, 1))
        self.assigned(client, to_ap, t)
        self.counters.add("decisions")
        return decision


class HandoffQueue:
    """One handoff in flight per client; later decisions for that client are coalesced (the latest target wins).

    ``offer(decision, t)`` -> (the decision to start now or None: it waits, the waiting one it replaced or None).
    ``done(client, ok, t, ap)`` -> (where the client is, the next decision to start for it re-based there or None,
    a waiting decision dropped because it led where the client already is or None); ``ap`` None: the target if
    ok, else where the client was.
    """

    def __init__(self, edges=None):
        self.edges = dict(edges or {})   # AP -> its edge, to re-base a waiting decision
        self.running = {}     # client -> (decision, started t, coalesced list)
        self.waiting = {}     # client -> (decision, [replaced decisions])
        self.counters = Counters()

    def busy(self, client):
        return client in self.running

    def offer(self, decision, t):
        """Returns (decision to start now or None, the waiting decision it replaced or None)."""
        client = decision.client
        if client not in self.running:
            self.running[client] = (decision, t, [])
            self.counters.add("started")
            return decision, None
        replaced, old = [], None
        if client in self.waiting:
            old, replaced = self.waiting[client]
            replaced = replaced + [old]
            self.counters.add("coalesced")
        self.waiting[client] = (decision, replaced)
        self.counters.add("queued")
        return None, old

    def coalesced_of(self, client):
        """Decisions replaced by the one now running for ``client``."""
        return self.running[client][2] if client in self.running else []

    def done(self, client, ok, t, ap=None):
        """The running handoff of ``client`` finished. Returns (where the client is, next decision or None,
        the waiting decision dropped because the client is already where it leads, or None)."""
        if client not in self.running:
            self.counters.add("unexpected_done")
            return None, None, None
        decision, dummy, dummy2 = self.running.pop(client)
        self.counters.add("succeeded" if ok else "failed")
        where = ap or (decision.to_ap if ok else decision.from_ap)
        if client not in self.waiting:
            return where, None, None
        pending, replaced = self.waiting.pop(client)
        if pending.to_ap == where:
            self.counters.add("coalesced_noop")
            return where, None, pending
        rebased = pending._replace(from_ap=where, from_edge=self.edges.get(where, pending.from_edge))
        self.running[client] = (rebased, t, replaced)
        self.counters.add("started")
        return where, rebased, None

    def overdue(self, t, timeout):
        return sorted(c for c, (dummy, started, dummy2) in self.running.items() if t - started > timeout)
