"""The first period and the first event of every schedule type, against the start date.

CommCare (reference §12.1): a weekly start moves forward to the schedule's first weekday, a
monthly one to the next month when the month's day is past; the first period is the first one
with an event date on or after the start, and only the events before the start are dropped
(event dates, not period dates, are compared with the start). A table row per case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from casereach.alerts.engine import timed_occurrences
from casereach.alerts.spec import TimedSchedule

D = dt.date
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Row:
    label: str
    repeat: dict[str, Any]
    start: dt.date
    sends: list[str]  # expected local "YYYY-MM-DD HH:MM", in order
    events: list[dict[str, Any]] = field(default_factory=lambda: [{"day": 0, "time": "09:00"}])


ROWS = [
    # 2026-05-14 is a Thursday, 2026-05-15 a Friday.
    Row("once on the start", {"unit": "once"}, D(2026, 5, 14), ["2026-05-14 09:00"]),
    Row(
        "once, event two days later",
        {"unit": "once"},
        D(2026, 5, 14),
        ["2026-05-16 09:00"],
        [{"day": 2, "time": "09:00"}],
    ),
    Row(
        "daily x3",
        {"unit": "days", "iterations": 3},
        D(2026, 5, 14),
        ["2026-05-14 09:00", "2026-05-15 09:00", "2026-05-16 09:00"],
    ),
    Row(
        "every 2 days x2, two events",
        {"unit": "days", "interval": 2, "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-14 09:00", "2026-05-15 18:00", "2026-05-16 09:00", "2026-05-17 18:00"],
        [{"day": 0, "time": "09:00"}, {"day": 1, "time": "18:00"}],
    ),
    Row(
        "weekly Mon+Tue from a Thursday x1: next week's",
        {"unit": "weeks", "weekdays": [0, 1], "iterations": 1},
        D(2026, 5, 14),
        ["2026-05-18 09:00", "2026-05-19 09:00"],
    ),
    Row(
        "weekly Mon+Tue from a Thursday x2",
        {"unit": "weeks", "weekdays": [0, 1], "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-18 09:00", "2026-05-19 09:00", "2026-05-25 09:00", "2026-05-26 09:00"],
    ),
    Row(
        "weekly Tue+Fri from a Thursday x2: this Friday, then a full week",
        {"unit": "weeks", "weekdays": [1, 4], "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-15 09:00", "2026-05-19 09:00", "2026-05-22 09:00"],
    ),
    Row(
        "weekly on the start's own weekday",
        {"unit": "weeks", "weekdays": [3], "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-14 09:00", "2026-05-21 09:00"],
    ),
    Row(
        "weekly, default weekday = the start's",
        {"unit": "weeks", "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-14 09:00", "2026-05-21 09:00"],
    ),
    Row(
        "weekly Monday, event 4 days later, from a Thursday: this week's Friday",
        {"unit": "weeks", "weekdays": [0], "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-15 09:00", "2026-05-22 09:00"],
        [{"day": 4, "time": "09:00"}],
    ),
    Row(
        "every 2 weeks Monday from a Thursday",
        {"unit": "weeks", "interval": 2, "weekdays": [0], "iterations": 2},
        D(2026, 5, 14),
        ["2026-05-18 09:00", "2026-06-01 09:00"],
    ),
    Row(
        "monthly 1st and 15th from a 15th x2: 3 sends",
        {"unit": "months", "day_of_month": 1, "iterations": 2},
        D(2026, 5, 15),
        ["2026-05-15 09:00", "2026-06-01 09:00", "2026-06-15 09:00"],
        [{"day": 0, "time": "09:00"}, {"day": 14, "time": "09:00"}],
    ),
    Row(
        "monthly on the 5th from the 20th x2: next two months",
        {"unit": "months", "day_of_month": 5, "iterations": 2},
        D(2026, 5, 20),
        ["2026-06-05 09:00", "2026-07-05 09:00"],
    ),
    Row(
        "monthly on the start's own day",
        {"unit": "months", "day_of_month": 15, "iterations": 2},
        D(2026, 5, 15),
        ["2026-05-15 09:00", "2026-06-15 09:00"],
    ),
    Row(
        "monthly default day = the start's",
        {"unit": "months", "iterations": 2},
        D(2026, 5, 15),
        ["2026-05-15 09:00", "2026-06-15 09:00"],
    ),
    Row(
        "monthly last day from mid-month",
        {"unit": "months", "day_of_month": -1, "iterations": 2},
        D(2026, 2, 15),
        ["2026-02-28 09:00", "2026-03-31 09:00"],
    ),
    Row(
        "monthly 31st from April: April lacks it and still counts",
        {"unit": "months", "day_of_month": 31, "iterations": 2},
        D(2026, 4, 10),
        ["2026-05-31 09:00"],
    ),
    Row(
        "random window across midnight spills into the next day",
        {"unit": "days", "iterations": 1},
        D(2026, 5, 14),
        ["*"],
        [{"day": 0, "window_start": "23:59", "window_end": "00:01"}],
    ),
]


def local_sends(row: Row) -> list[str]:
    sched = TimedSchedule.model_validate(
        {"type": "timed", "events": row.events, "repeat": row.repeat}
    )
    found = timed_occurrences(sched, row.start, "Africa/Nairobi", after=EPOCH, key="k", limit=50)
    zone = dt.timezone(dt.timedelta(hours=3))
    return [o.due.astimezone(zone).strftime("%Y-%m-%d %H:%M") for o in found]


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_first_period_and_event_against_the_start(row: Row) -> None:
    got = local_sends(row)
    if row.sends == ["*"]:
        assert 1 == len(got)
        assert got[0] in ("2026-05-14 23:59", "2026-05-15 00:00")
        return
    assert row.sends == got
    assert all(s >= row.start.isoformat() for s in got)
