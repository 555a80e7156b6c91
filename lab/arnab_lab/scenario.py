"""Scenarios as data: what the emulated radio sees over time, per client (issue 12). Pure apart from `load`.

A scenario file (YAML)::

    duration_s: 60
    description: optional text
    clients:
      client1:
        signal:                     # dBm per AP, linear between points, held after the last one
          - [0,  {ap1: -45, ap2: -85, ap3: -95}]
          - [10, {ap1: -85, ap2: -45, ap3: -90}]
      client2:
        positions: [[0, 5, 0], [20, 35, 0]]     # [t_s, x, y]: the path-loss model, as client_trace

Times are seconds from the replay's start, at least 0, increasing from point to point, at most `duration_s`.
Every point of a signal names the same APs; an AP it does not name hears nothing of that client while it replays
(the scenario alone says what the APs hear). Levels are dBm, -255 <= level < 0; the radio's sensitivity floor
still applies. A client the file does not name is put back where the inventory puts it (its `client_position`,
and its `client_trace` from the replay's start) when the whole scenario starts.

`validate` checks a scenario (against the inventory's AP and client names when given) and returns it normalized
(numbers as floats, lists); `start_requests` turns it into the radio requests that start it (arnab_lab.radio
`signal`, `trace`, `reset`); `predict` runs the OCS's mobility policy (plugins/module_utils/mobility.py) on it and
says when each client's signal meets the handoff condition.
"""
import math

TOP_KEYS = ("duration_s", "clients", "description")
CLIENT_KINDS = ("signal", "positions")
MIN_DBM, MAX_DBM = -255.0, 0.0   # mobility.to_dbm's range for dBm values: -255 <= level < 0


class ScenarioError(ValueError):
    """A scenario the radio cannot replay; the message names the file, the client and the point."""


def _names(collection):
    return ", ".join(sorted(str(n) for n in collection)) or "none"


def check_number(value, where, what="a number"):
    """A finite int or float (not a bool, not a string) -> float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError("%s: %r is not %s" % (where, value, what))
    if math.isnan(value) or math.isinf(value):
        raise ScenarioError("%s: %r is not %s" % (where, value, what))
    return float(value)


def check_position(value, where):
    """[x, y] -> (x, y) as floats."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ScenarioError("%s: %r is not a position [x, y]" % (where, value))
    return (check_number(value[0], where + ", x"), check_number(value[1], where + ", y"))


def _check_times(points, where, duration_s):
    previous = None
    for n, (t, dummy) in enumerate(points, 1):
        here = "%s point %d (t=%g)" % (where, n, t)
        if t < 0:
            raise ScenarioError("%s: times start at 0 (the replay's start)" % here)
        if previous is not None and t <= previous:
            raise ScenarioError("%s: times must increase (the point before is at t=%g)" % (here, previous))
        if duration_s is not None and t > duration_s:
            raise ScenarioError("%s: after the scenario's end (duration_s %g)" % (here, duration_s))
        previous = t


def _points(points, where, allow_empty):
    if not isinstance(points, (list, tuple)):
        raise ScenarioError("%s: not a list of points" % where)
    if not points and not allow_empty:
        raise ScenarioError("%s: no points" % where)
    return points


def _time(point, where, n, shape):
    if not isinstance(point, (list, tuple)) or not point:
        raise ScenarioError("%s point %d: %r is not %s" % (where, n, point, shape))
    return check_number(point[0], "%s point %d, t" % (where, n))


def check_positions(points, where, duration_s=None, allow_empty=False):
    """[[t, x, y], ...] -> [(t, x, y)] as floats."""
    out = []
    for n, point in enumerate(_points(points, where, allow_empty), 1):
        t = _time(point, where, n, "[t_s, x, y]")
        if len(point) != 3:
            raise ScenarioError("%s point %d (t=%g): %r is not [t_s, x, y]" % (where, n, t, list(point)))
        x, y = check_position(point[1:], "%s point %d (t=%g)" % (where, n, t))
        out.append((t, x, y))
    _check_times([(p[0], None) for p in out], where, duration_s)
    return out


def check_signal(points, where, aps=None, duration_s=None):
    """[[t, {ap: dBm}], ...] -> [(t, {ap: dBm})] as floats. `aps`: the AP names there are (None: any name)."""
    out, named = [], None
    for n, point in enumerate(_points(points, where, False), 1):
        t = _time(point, where, n, "[t_s, {ap: dBm}]")
        here = "%s point %d (t=%g)" % (where, n, t)
        if len(point) != 2 or not isinstance(point[1], dict) or not point[1]:
            raise ScenarioError("%s: %r is not [t_s, {ap: dBm, ...}]" % (here, list(point)))
        levels = {}
        for ap, value in point[1].items():
            if aps is not None and ap not in aps:
                raise ScenarioError("%s: %s is not an AP of the inventory (%s)" % (here, ap, _names(aps)))
            dbm = check_number(value, "%s, %s" % (here, ap), "a level in dBm")
            if not MIN_DBM <= dbm < MAX_DBM:
                raise ScenarioError("%s, %s: %g is not a level in dBm (%g <= dBm < %g)"
                                    % (here, ap, dbm, MIN_DBM, MAX_DBM))
            levels[str(ap)] = dbm
        if named is not None and set(levels) != named:
            raise ScenarioError("%s: names %s, the points before %s (every point names the same APs)"
                                % (here, _names(levels), _names(named)))
        named = set(levels)
        out.append((t, levels))
    _check_times(out, where, duration_s)
    return out


def validate(data, source="scenario", aps=None, clients=None):
    """A scenario (parsed YAML) -> the same, normalized: {"source", "duration_s", "description", "clients": {name:
    {"signal": [[t, {ap: dBm}]]} | {"positions": [[t, x, y]]}}}. `aps`, `clients`: the names there are (None: any).
    Raises ScenarioError naming `source`, the client and the point."""
    if not isinstance(data, dict):
        raise ScenarioError("%s: a scenario is a mapping with duration_s and clients, not %s"
                            % (source, type(data).__name__))
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS + ("source",))
    if unknown:
        raise ScenarioError("%s: unknown key(s) %s (known: %s)" % (source, ", ".join(unknown), ", ".join(TOP_KEYS)))
    for key in ("duration_s", "clients"):
        if key not in data:
            raise ScenarioError("%s: missing %s" % (source, key))
    duration = check_number(data["duration_s"], "%s: duration_s" % source)
    if duration <= 0:
        raise ScenarioError("%s: duration_s must be positive, not %g" % (source, duration))
    if not isinstance(data["clients"], dict) or not data["clients"]:
        raise ScenarioError("%s: clients must map each client's name to its signal or positions" % source)
    out = {"source": source, "duration_s": duration, "description": data.get("description"), "clients": {}}
    for name, entry in data["clients"].items():
        where = "%s: client %s" % (source, name)
        if clients is not None and name not in clients:
            raise ScenarioError("%s: not a client of the inventory (%s)" % (where, _names(clients)))
        if not isinstance(entry, dict):
            raise ScenarioError("%s: give signal: or positions:, not %r" % (where, entry))
        kinds = [k for k in CLIENT_KINDS if k in entry]
        extra = sorted(str(k) for k in entry if k not in CLIENT_KINDS)
        if extra:
            raise ScenarioError("%s: unknown key(s) %s (give signal: or positions:)" % (where, ", ".join(extra)))
        if len(kinds) != 1:
            raise ScenarioError("%s: give exactly one of signal: and positions:" % where)
        if kinds == ["signal"]:
            points = check_signal(entry["signal"], where + ", signal", aps, duration)
            out["clients"][str(name)] = {"signal": [[t, levels] for t, levels in points]}
        else:
            points = check_positions(entry["positions"], where + ", positions", duration)
            out["clients"][str(name)] = {"positions": [list(p) for p in points]}
    return out


def inventory_names(inventory):
    """`ansible-inventory --list` output -> (AP names, client names): the hosts of groups aps and clients."""
    def hosts(group):
        found, todo = [], [group]
        while todo:
            entry = inventory.get(todo.pop(0)) or {}
            found.extend(h for h in entry.get("hosts", []) if h not in found)
            todo.extend(entry.get("children", []))
        return found
    return hosts("aps"), hosts("clients")


def load(path, aps=None, clients=None, inventory=None):
    """Read, parse and validate a scenario file (against `inventory`'s names, or `aps`/`clients`)."""
    import yaml
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ScenarioError("%s: cannot read it: %s" % (path, exc.strerror or exc))
    except yaml.YAMLError as exc:
        raise ScenarioError("%s: not YAML: %s" % (path, exc))
    if inventory is not None:
        aps, clients = inventory_names(inventory)
    return validate(data, path, aps, clients)


def start_requests(scenario, clients=None, all_clients=None):
    """The radio requests that start a validated scenario, all at one time: `signal` or `trace` for each client it
    names, `reset` (back where the inventory puts it) for the others. `clients`: only these (default: every client
    in `all_clients`, the radio's; without it, the ones the scenario names)."""
    named = scenario["clients"]
    if clients is None:
        targets = list(all_clients) if all_clients is not None else sorted(named)
    else:
        targets = [clients] if isinstance(clients, str) else list(clients)
    requests, seen = [], set()
    for name in targets:
        if name in seen:
            continue
        seen.add(name)
        if all_clients is not None and name not in all_clients:
            raise ScenarioError("%s: %s is not a client of the radio (%s)"
                                % (scenario.get("source", "scenario"), name, _names(all_clients)))
        entry = named.get(name)
        if entry is None:
            requests.append({"op": "reset", "client": name})
        elif "signal" in entry:
            requests.append({"op": "signal", "client": name, "signal": [[t, dict(lv)] for t, lv in entry["signal"]]})
        else:
            requests.append({"op": "trace", "client": name, "trace": [list(p) for p in entry["positions"]]})
    return requests


# -- prediction: the OCS's mobility policy run on the scenario -------------------------------------------------

def predict(scenario, inventory, policy=None, sample_s=None, offset_s=0.0, step_s=0.005):
    """When the OCS should hand each client off during `scenario` (validated), with the mobility policy `policy`
    (inventory `ocs_mobility`, MobilityPolicy's parameters) and `inventory` (`ansible-inventory --list`: APs with
    ap_position, ap_channel, ap_edge; clients with client_mac, client_ap, client_position, client_service;
    `lab.radio` model overrides).

    The policy itself (MobilityPolicy) decides, fed as if every AP that hears a client (sensitivity floor applied)
    published it every `sample_s` seconds from `offset_s` on (default: as often as the emulated agent polls the radio),
    active scans answered with the levels at the scan's end; handoffs are taken as instantaneous (no queue).
    For each decision it gives, in seconds from the replay's start: `t_trigger` and `t_decision` (the policy's,
    on those samples), `t_cross` (when the serving AP's level last went below the threshold before `t_trigger`)
    and `t_condition` (the first moment, on the continuous signal, at which the handoff condition held: the
    serving AP below the threshold, the target at least `min_gain_db` above it, hysteresis, `start_s` and the
    flap window respected; None if it never held, e.g. when only the averages did), to `step_s`.
    -> {"handoffs": [...], "suppressed": {why: n}, "counters": {...}, "policy": {...}, "sample_s", "offset_s"}."""
    from arnab_lab import collection_utils, odin_agent, radio   # here: the radio imports this module
    mobility = collection_utils.load("mobility")
    sample_s = odin_agent.POLL_INTERVAL if sample_s is None else sample_s

    hostvars = inventory.get("_meta", {}).get("hostvars", {})
    state, model = radio.state_from_inventory(inventory)
    clients = dict((c.name, c) for c in state.clients.values())
    checked = validate(scenario, scenario.get("source", "scenario"), state.aps, clients)
    params = mobility.MobilityPolicy.check_params(dict(policy or {}, signal_units="dbm"))
    pol = mobility.MobilityPolicy(
        params, dict((n, {"edge": hostvars.get(n, {}).get("ap_edge"), "channel": a.channel})
                     for n, a in state.aps.items()),
        dict((n, {"mac": c.mac, "ap": c.home_ap, "container": hostvars.get(n, {}).get("client_service")})
             for n, c in clients.items()), now=0.0)

    def levels_at(name, t):
        """{ap: dBm or None (not heard)} of client `name` at scenario time t."""
        entry, client = checked["clients"].get(name), clients[name]
        if entry is not None and "signal" in entry:
            timeline = [(p[0], p[1]) for p in entry["signal"]]
            raw = radio.signal_at(timeline, t)
            raw = dict((ap, raw.get(ap)) for ap in state.aps)
        else:
            trace = [tuple(p) for p in entry["positions"]] if entry is not None else client.home_trace
            where = radio.position_at(trace, t, client.home_position)
            raw = dict((n, radio.rssi(model, a.position, where)) for n, a in state.aps.items())
        return dict((ap, v if v is not None and v >= model.sensitivity_dbm else None) for ap, v in raw.items())

    duration = checked["duration_s"]
    decisions, pending = [], []

    def scans_due(t):
        for due, req in sorted((p for p in pending if p[0] <= t), key=lambda p: (p[0], p[1].client)):
            pending.remove((due, req))
            heard = levels_at(req.client, due)
            found = pol.scan_done(req.client, dict((ap, heard.get(ap)) for ap in req.candidates), due)
            if found is not None:
                decisions.append(found)

    count = int(math.floor((duration - offset_s) / sample_s + 1e-9))
    for i in range(count + 1):
        t = offset_s + i * sample_s
        scans_due(t)
        for name in sorted(clients):
            for ap, value in sorted(levels_at(name, t).items()):
                if value is None:
                    continue
                for out in pol.observe(ap, clients[name].mac, value, t):
                    if isinstance(out, mobility.ScanRequest):
                        pending.append((t + out.scan_time_s, out))
                    else:
                        decisions.append(out)
    scans_due(duration)

    handoffs, last = [], {}
    for d in sorted(decisions, key=lambda d: (d.t_decision, d.client)):
        before = last.get(d.client)      # (t_decision, from_ap) of the client's previous handoff
        serving = lambda t, d=d: levels_at(d.client, t)[d.from_ap]   # noqa: E731
        handoffs.append({
            "client": d.client, "from_ap": d.from_ap, "to_ap": d.to_ap, "from_edge": d.from_edge,
            "to_edge": d.to_edge, "t_trigger": round(d.t_trigger, 3), "t_decision": round(d.t_decision, 3),
            "t_cross": _crossing(serving, params["threshold_dbm"], 0.0 if before is None else before[0],
                                 d.t_trigger, step_s),
            "t_condition": _condition(lambda t, d=d: levels_at(d.client, t), d.from_ap, d.to_ap, params, before,
                                      d.t_decision, step_s),
            "from_dbm": d.from_dbm, "to_dbm": d.to_dbm})
        last[d.client] = (d.t_decision, d.from_ap)
    counters = dict(pol.counters)
    return {"handoffs": handoffs, "counters": counters, "policy": params, "sample_s": sample_s, "offset_s": offset_s,
            "suppressed": dict((k[len("suppressed_"):], v) for k, v in counters.items() if k.startswith("suppressed_"))}


def _below(value, threshold):
    return value is None or value < threshold


def _crossing(serving, threshold, since, until, step):
    """The last time in [since, until] at which serving(t) went below `threshold` (since: it was below all along)."""
    t = until
    while t - step >= since - 1e-9:
        if not _below(serving(t - step), threshold):
            return round(t, 3)
        t -= step
    return round(since, 3)


def _condition(levels, from_ap, to_ap, params, before, until, step):
    """The first time after the previous handoff `before` (t, from_ap) at which the handoff condition from
    `from_ap` to `to_ap` held on the continuous signal, or None."""
    since = 0.0 if before is None else before[0]
    n = 0
    while since + n * step <= until + 1e-9:
        t = since + n * step
        n += 1
        if t < params["start_s"] or (before is not None and t - before[0] < params["hysteresis_s"]):
            continue
        if before is not None and to_ap == before[1] and t - before[0] < params["flap_window_s"]:
            continue
        now = levels(t)
        serving, target = now.get(from_ap), now.get(to_ap)
        if not _below(serving, params["threshold_dbm"]) or target is None:
            continue
        if serving is None or target >= serving + params["min_gain_db"]:
            return round(t, 3)
    return None
