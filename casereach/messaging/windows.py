"""Restricted send windows, evaluated in the contact's own time zone (SPEC 4.3)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from casereach.projects.settings_schema import RestrictedWindow


def _local_at(day: dt.date, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    hour, minute = (int(p) for p in hhmm.split(":"))
    naive = dt.datetime.combine(day, dt.time(hour, minute))
    aware = naive.replace(tzinfo=zone, fold=0)
    # A local time that does not exist (spring forward) moves forward by the gap.
    roundtrip = aware.astimezone(dt.UTC).astimezone(zone)
    if roundtrip.replace(tzinfo=None) != naive:
        aware = (naive + (naive - roundtrip.replace(tzinfo=None))).replace(tzinfo=zone)
    return aware


def next_allowed(
    at: dt.datetime, windows: Sequence[RestrictedWindow], zone_name: str
) -> dt.datetime | None:
    """None when ``at`` is inside a window (or there are none); else the UTC start of the next
    window, in the contact's zone."""
    if not windows:
        return None
    zone = ZoneInfo(zone_name)
    local = at.astimezone(zone)
    for w in windows:
        if local.weekday() in w.days:
            start = _local_at(local.date(), w.start, zone)
            end = _local_at(local.date(), w.end, zone)
            if start <= local < end:
                return None
    best: dt.datetime | None = None
    for offset in range(0, 8):
        day = local.date() + dt.timedelta(days=offset)
        for w in windows:
            if day.weekday() not in w.days:
                continue
            start = _local_at(day, w.start, zone)
            if start > local and (best is None or start < best):
                best = start
        if best is not None:
            break
    return best.astimezone(dt.UTC) if best else None
