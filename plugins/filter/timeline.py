"""Filters that put the steps of a migration on one clock (seconds since the epoch)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def timeline_event(entry, started, tier):
    """A migration step -> {t, tier, event}.

    vap_migrate's steps carry start_ms (relative to the migration's start); container_migrate's carry t
    (seconds since its start)."""
    offset = entry["start_ms"] / 1000.0 if "start_ms" in entry else float(entry.get("t", 0))
    return {"t": round(float(started) + offset, 4), "tier": int(tier), "event": str(entry["step"])}


class FilterModule(object):
    def filters(self):
        return {"timeline_event": timeline_event}
