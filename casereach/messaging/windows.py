"""Restricted send windows, evaluated in the contact's own time zone (SPEC 4.3). A window
whose end is before its start runs past midnight into the next day."""

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
        # A window opens on each of its days; one whose end is before its start closes on
        # the next day (23:00 to 01:00), so yesterday's may still be open.
        crosses = w.end < w.start
        for opened in (local.date() - dt.timedelta(days=1), local.date()):
            if opened.weekday() not in w.days or (opened < local.date() and not crosses):
                continue
            start = _local_at(opened, w.start, zone)
            closes = opened + dt.timedelta(days=1) if crosses else opened
            end = _local_at(closes, w.end, zone)
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
