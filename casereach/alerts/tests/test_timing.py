"""When alerts fire: recurrences evaluated date by date in the recipient's zone (alerts.timing).

Pure tests: no database. The property tests draw zones from every zone zoneinfo knows and check
the results against brute-force oracles that do not use ``fold`` (they try each UTC offset found
near the wall time and keep those that round-trip).
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import groupby, pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.alerts.timing import (
    Recurrence,
    add_minutes_utc,
    local_to_utc,
    next_occurrence,
    occurrences,
    period_dates,
    random_moment,
    random_time,
    skipped_months,
    utc_to_local,
)

ALL_ZONES = sorted(zoneinfo.available_timezones())
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)

NY = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- oracles and strategies -------------------------------------------------------------------


def expected_instant(day: date, at: time, zone: str) -> tuple[datetime, timedelta]:
    """(the instant `at` on `day` should fire, how far a gap moved the wall time forward).

    Brute force: every UTC offset in force within ±30 hours is tried; a wall time that
    round-trips exists (first of them when ambiguous); otherwise it is in a gap and moves forward
    by the difference between the offsets after and before the jump.
    """
    tz = zoneinfo.ZoneInfo(zone)
    wall = datetime.combine(day, at)
    wall_as_utc = wall.replace(tzinfo=UTC)
    offsets = {
        (wall_as_utc + timedelta(hours=hours)).astimezone(tz).utcoffset()
        for hours in range(-30, 31, 2)
    }
    candidates = [wall_as_utc - offset for offset in offsets if offset is not None]
    existing = sorted(u for u in candidates if u.astimezone(tz).replace(tzinfo=None) == wall)
    if existing:
        return existing[0], timedelta(0)
    forward = [u for u in candidates if u.astimezone(tz).replace(tzinfo=None) > wall]
    assert 1 == len(forward), f"{wall} in {zone}: expected one gap shift, got {forward}"
    shifted = forward[0]
    shift = shifted.astimezone(tz).replace(tzinfo=None) - wall
    before = (shifted - timedelta(days=1)).astimezone(tz).utcoffset()
    after = shifted.astimezone(tz).utcoffset()
    assert before is not None and after is not None
    assert after - before == shift  # moved forward by exactly the gap's length
    return shifted, shift


@cache
def transitions_in(zone: str, year: int) -> tuple[tuple[datetime, datetime], ...]:
    """(wall clock just before, wall clock just after) each offset change in `year`."""
    tz = zoneinfo.ZoneInfo(zone)
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    while moment < end:
        following = moment + timedelta(days=1)
        new_offset = following.astimezone(tz).utcoffset()
        if new_offset != offset:
            low, high = moment, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            assert offset is not None and new_offset is not None
            instant = high.replace(second=0, microsecond=0)
            found.append(
                (
                    (instant + offset).replace(tzinfo=None),
                    (instant + new_offset).replace(tzinfo=None),
                )
            )
            offset = new_offset
        moment = following
    return tuple(found)


zones = st.sampled_from(ALL_ZONES)
# Zones observing DST in 2026 (offsets differ in January and July), to aim at transitions.
DST_ZONES = [
    zone
    for zone in ALL_ZONES
    if utc(2026, 1, 15).astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    != utc(2026, 7, 15).astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
]
local_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
days_2020_2035 = st.dates(date(2020, 1, 1), date(2035, 12, 31))


@st.composite
def start_and_time(draw: Any, zone: str, *, near_change: bool = False) -> tuple[date, time]:
    """A start date and local time in 2020-2035: right around one of the zone's offset changes
    (in a gap, an overlap or next to one) always when `near_change` and the zone has one that
    year, otherwise half the time; else anywhere in the year."""
    year = draw(st.integers(2020, 2035))
    changes = transitions_in(zone, year)
    if changes and (near_change or draw(st.booleans())):
        before, after = draw(st.sampled_from(changes))
        width = abs(after - before) // timedelta(minutes=1)
        inside = st.integers(0, width - 1)  # in the gap, or in the repeated hour(s)
        minutes = draw(st.one_of(inside, st.integers(-90, width + 90)))
        wall = min(before, after) + timedelta(minutes=minutes)
        start = wall.date() - timedelta(days=draw(st.integers(0, 3)))
        return start, wall.time()
    start = draw(st.dates(date(year, 1, 1), date(year, 12, 31)))
    return start, draw(local_times)


def assert_fires_as_expected(
    instants: list[datetime], scheduled: list[date], at: time, zone: str
) -> None:
    """One occurrence per scheduled date, at `at` local or moved forward by a gap; ascending;
    no two on the same local date unless a gap moved one across midnight."""
    assert len(scheduled) == len(instants)
    moved_across_midnight = set()
    for index, (instant, day) in enumerate(zip(instants, scheduled, strict=True)):
        expected, shift = expected_instant(day, at, zone)
        assert expected == instant
        local = utc_to_local(instant, zone).replace(tzinfo=None)
        assert datetime.combine(day, at) + shift == local
        if shift:
            assert local.time() != at
        else:
            assert (day, at) == (local.date(), local.time())
        if local.date() != day:
            assert shift > timedelta(0)
            assert day + timedelta(days=1) == local.date()
            moved_across_midnight.add(index)
    assert all(earlier < later for earlier, later in pairwise(instants))
    local_dates = [
        utc_to_local(instant, zone).date()
        for index, instant in enumerate(instants)
        if index not in moved_across_midnight
    ]
    assert len(set(local_dates)) == len(local_dates)


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


# --- CommCare anchors and DST edges ------------------------------------------------------------


def test_commcare_anchor_new_york_standard_time() -> None:
    assert utc(2018, 3, 1, 14) == local_to_utc(date(2018, 3, 1), time(9), NY)


def test_commcare_anchor_new_york_daylight_time() -> None:
    assert utc(2018, 4, 1, 13) == local_to_utc(date(2018, 4, 1), time(9), NY)


def test_nine_local_stays_nine_local_across_spring_forward() -> None:
    rec = Recurrence("days", iterations=4)
    got = occurrences(rec, date(2026, 3, 6), [time(9)], NY)
    assert [
        utc(2026, 3, 6, 14),
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
        utc(2026, 3, 9, 13),
    ] == got
    assert [time(9)] * 4 == [utc_to_local(instant, NY).time() for instant in got]


def test_spring_gap_moves_forward_by_the_gap() -> None:
    instant = local_to_utc(date(2026, 3, 8), time(2, 30), NY)
    assert utc(2026, 3, 8, 7, 30) == instant
    assert datetime(2026, 3, 8, 3, 30) == utc_to_local(instant, NY).replace(tzinfo=None)


def test_gap_start_lands_on_the_gap_end() -> None:
    instant = local_to_utc(date(2026, 3, 8), time(2, 0), NY)
    assert datetime(2026, 3, 8, 3, 0) == utc_to_local(instant, NY).replace(tzinfo=None)


def test_fall_back_ambiguity_takes_the_first_occurrence() -> None:
    assert utc(2026, 11, 1, 5, 30) == local_to_utc(date(2026, 11, 1), time(1, 30), NY)


def test_fold_of_the_given_time_is_ignored() -> None:
    assert utc(2026, 11, 1, 5, 30) == local_to_utc(date(2026, 11, 1), time(1, 30, fold=1), NY)


def test_fall_back_day_fires_once() -> None:
    rec = Recurrence("days", iterations=3)
    got = occurrences(rec, date(2026, 10, 31), [time(1, 30)], NY)
    assert [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)] == got


def test_lord_howe_thirty_minute_gap() -> None:
    # Lord Howe Island jumps 02:00 → 02:30 on the first Sunday of October.
    instant = local_to_utc(date(2026, 10, 4), time(2, 15), LORD_HOWE)
    assert utc(2026, 10, 3, 15, 45) == instant
    assert datetime(2026, 10, 4, 2, 45) == utc_to_local(instant, LORD_HOWE).replace(tzinfo=None)


def test_lord_howe_thirty_minute_overlap_takes_the_first() -> None:
    # ... and falls back 02:00 → 01:30 on the first Sunday of April (+11:00 then +10:30).
    assert utc(2026, 4, 4, 14, 45) == local_to_utc(date(2026, 4, 5), time(1, 45), LORD_HOWE)


def test_zone_without_dst() -> None:
    rec = Recurrence("months", iterations=12)
    got = occurrences(rec, date(2026, 1, 15), [time(9)], "Africa/Nairobi")
    assert [utc(2026, month, 15, 6) for month in range(1, 13)] == got


def test_utc_zone() -> None:
    assert utc(2026, 6, 1, 9) == local_to_utc(date(2026, 6, 1), time(9), "UTC")


def test_gap_crossing_midnight_moves_to_the_next_date() -> None:
    # America/Nuuk springs forward at 23:00 local (01:00 UTC): 23:30 on Saturday 2026-03-28 does
    # not exist and moves to 00:30 on Sunday, which then also has its own 23:30.
    rec = Recurrence("days", iterations=3)
    got = occurrences(rec, date(2026, 3, 27), [time(23, 30)], "America/Nuuk")
    assert [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)] == got
    assert [
        datetime(2026, 3, 27, 23, 30),
        datetime(2026, 3, 29, 0, 30),
        datetime(2026, 3, 29, 23, 30),
    ] == [utc_to_local(instant, "America/Nuuk").replace(tzinfo=None) for instant in got]


def test_two_times_meeting_after_a_gap_shift_appear_once() -> None:
    rec = Recurrence("once")
    got = occurrences(rec, date(2026, 3, 8), [time(2, 30), time(3, 30)], NY)
    assert [utc(2026, 3, 8, 7, 30)] == got


def test_gap_shift_can_reorder_times_within_a_day() -> None:
    # 02:30 moves to 03:30, after 03:10: the list stays ascending in UTC.
    got = occurrences(Recurrence("once"), date(2026, 3, 8), [time(2, 30), time(3, 10)], NY)
    assert [utc(2026, 3, 8, 7, 10), utc(2026, 3, 8, 7, 30)] == got


def test_several_times_a_day_ascending() -> None:
    rec = Recurrence("days", iterations=2)
    got = occurrences(rec, date(2026, 1, 1), [time(18), time(8)], "Africa/Nairobi")
    assert [utc(2026, 1, 1, 5), utc(2026, 1, 1, 15), utc(2026, 1, 2, 5), utc(2026, 1, 2, 15)] == got


def test_utc_to_local() -> None:
    local = utc_to_local(utc(2026, 7, 1, 12), "Europe/London")
    assert datetime(2026, 7, 1, 13, tzinfo=zoneinfo.ZoneInfo("Europe/London")) == local
    assert "BST" == local.tzname()


def test_add_minutes_is_elapsed_time_across_dst() -> None:
    start = datetime(2026, 3, 8, 1, 30, tzinfo=zoneinfo.ZoneInfo(NY))  # EST, 06:30 UTC
    later = add_minutes_utc(start, 60)
    assert utc(2026, 3, 8, 7, 30) == later
    assert UTC == later.tzinfo
    assert datetime(2026, 3, 8, 3, 30) == utc_to_local(later, NY).replace(tzinfo=None)


def test_add_minutes_negative() -> None:
    assert utc(2026, 1, 1, 23, 30) == add_minutes_utc(utc(2026, 1, 2, 0, 15), -45)


# --- period_dates --------------------------------------------------------------------------------


def test_once_yields_the_start_date() -> None:
    assert [(0, date(2026, 5, 1))] == list(period_dates(Recurrence("once"), date(2026, 5, 1)))


def test_fields_for_other_units_are_ignored() -> None:
    start = date(2026, 5, 13)
    assert [(0, start)] == list(period_dates(Recurrence("once", iterations=3), start))
    assert [(0, start), (1, date(2026, 5, 14))] == list(
        period_dates(Recurrence("days", weekdays=(0,), day_of_month=1, iterations=2), start)
    )
    assert [(0, start), (1, date(2026, 5, 20))] == list(
        period_dates(Recurrence("weeks", day_of_month=1, iterations=2), start)
    )
    assert [(0, date(2026, 5, 31))] == list(
        period_dates(Recurrence("months", weekdays=(0,), day_of_month=-1, iterations=1), start)
    )


def test_once_from_a_later_period_yields_nothing() -> None:
    assert [] == list(period_dates(Recurrence("once"), date(2026, 5, 1), from_period=1))


def test_days_with_interval_and_iterations() -> None:
    rec = Recurrence("days", interval=3, iterations=4)
    assert [
        (0, date(2026, 2, 26)),
        (1, date(2026, 3, 1)),
        (2, date(2026, 3, 4)),
        (3, date(2026, 3, 7)),
    ] == list(period_dates(rec, date(2026, 2, 26)))


def test_days_from_period() -> None:
    rec = Recurrence("days", interval=2, iterations=5)
    assert [(3, date(2026, 1, 7)), (4, date(2026, 1, 9))] == list(
        period_dates(rec, date(2026, 1, 1), from_period=3)
    )


def test_from_period_past_iterations_yields_nothing() -> None:
    rec = Recurrence("days", iterations=5)
    assert [] == list(period_dates(rec, date(2026, 1, 1), from_period=5))


def test_limit_caps_what_is_yielded() -> None:
    rec = Recurrence("days")
    assert 7 == len(list(period_dates(rec, date(2026, 1, 1), limit=7)))
    assert [] == list(period_dates(rec, date(2026, 1, 1), limit=0))


def test_forever_is_bounded_by_the_default_limit() -> None:
    assert 1000 == len(list(period_dates(Recurrence("days"), date(2026, 1, 1))))


def test_weeks_default_to_the_start_weekday() -> None:
    rec = Recurrence("weeks", interval=2, iterations=3)
    assert [(0, date(2026, 5, 13)), (1, date(2026, 5, 27)), (2, date(2026, 6, 10))] == list(
        period_dates(rec, date(2026, 5, 13))
    )


def test_weeks_chosen_weekdays_first_week_only_from_start() -> None:
    # 2026-05-13 is a Wednesday; Monday of that week is before the start and is not yielded,
    # but the week still counts as period 0.
    rec = Recurrence("weeks", weekdays=(4, 0, 2), iterations=2)
    assert [
        (0, date(2026, 5, 13)),
        (0, date(2026, 5, 15)),
        (1, date(2026, 5, 18)),
        (1, date(2026, 5, 20)),
        (1, date(2026, 5, 22)),
    ] == list(period_dates(rec, date(2026, 5, 13)))


def test_weekdays_are_normalised() -> None:
    assert (0, 2, 4) == Recurrence("weeks", weekdays=(4, 2, 0, 2)).weekdays
    assert Recurrence("weeks", weekdays=(4, 0)) == Recurrence("weeks", weekdays=(0, 4))


def test_weeks_from_period() -> None:
    rec = Recurrence("weeks", weekdays=(6,), iterations=10)
    assert [(8, date(2026, 3, 1)), (9, date(2026, 3, 8))] == list(
        period_dates(rec, date(2026, 1, 1), from_period=8)
    )


def test_monthly_31st_skips_short_months_but_counts_them() -> None:
    rec = Recurrence("months", day_of_month=31, iterations=6)
    assert [(0, date(2026, 1, 31)), (2, date(2026, 3, 31)), (4, date(2026, 5, 31))] == list(
        period_dates(rec, date(2026, 1, 31))
    )


def test_monthly_day_defaults_to_the_start_day() -> None:
    rec = Recurrence("months", iterations=3)
    assert [(0, date(2026, 1, 30)), (2, date(2026, 3, 30))] == list(
        period_dates(rec, date(2026, 1, 30))
    )


def test_monthly_29th_fires_in_leap_february_only() -> None:
    rec = Recurrence("months", interval=12, day_of_month=29, iterations=5)
    assert [(2, date(2028, 2, 29))] == list(period_dates(rec, date(2026, 2, 1)))
    assert [date(2026, 2, 1), date(2027, 2, 1), date(2029, 2, 1), date(2030, 2, 1)] == (
        skipped_months(rec, date(2026, 2, 1), date(2030, 12, 31))
    )


def test_monthly_day_before_start_moves_the_first_period_to_the_next_month() -> None:
    # CommCare pushes the start to the next month: all three iterations are sent.
    rec = Recurrence("months", day_of_month=5, iterations=3)
    assert [(0, date(2026, 2, 5)), (1, date(2026, 3, 5)), (2, date(2026, 4, 5))] == list(
        period_dates(rec, date(2026, 1, 20))
    )


def test_monthly_last_day() -> None:
    rec = Recurrence("months", day_of_month=-1, iterations=4)
    assert [
        (0, date(2024, 1, 31)),
        (1, date(2024, 2, 29)),
        (2, date(2024, 3, 31)),
        (3, date(2024, 4, 30)),
    ] == list(period_dates(rec, date(2024, 1, 1)))


def test_monthly_minus_28_is_the_first_of_february() -> None:
    rec = Recurrence("months", day_of_month=-28, iterations=2)
    assert [(0, date(2026, 2, 1)), (1, date(2026, 3, 4))] == list(
        period_dates(rec, date(2026, 2, 1))
    )


def test_monthly_from_period() -> None:
    rec = Recurrence("months", interval=2, day_of_month=10)
    assert [(5, date(2026, 11, 10)), (6, date(2027, 1, 10))] == list(
        period_dates(rec, date(2026, 1, 1), from_period=5, limit=2)
    )


def test_monthly_rule_that_can_never_fire_yields_nothing() -> None:
    # Every 4 years from a non-leap February: never a 29 February.
    rec = Recurrence("months", interval=48, day_of_month=29)
    assert [] == list(period_dates(rec, date(2021, 2, 1)))
    assert [] == occurrences(rec, date(2021, 2, 1), [time(9)], "UTC")
    assert [date(2021, 2, 1), date(2025, 2, 1)] == skipped_months(
        rec, date(2021, 2, 1), date(2028, 1, 31)
    )


def test_daily_forever_stops_at_the_last_schedule_date() -> None:
    rec = Recurrence("days")
    assert [(0, date(2199, 12, 30)), (1, date(2199, 12, 31))] == list(
        period_dates(rec, date(2199, 12, 30))
    )
    assert [] == list(period_dates(rec, date(9999, 12, 30)))
    assert [(0, date(2000, 1, 1))] == list(
        period_dates(Recurrence("days", interval=1_000_000), date(2000, 1, 1))
    )


# --- skipped_months ------------------------------------------------------------------------------


def test_skipped_months_for_the_31st() -> None:
    rec = Recurrence("months", day_of_month=31)
    assert [
        date(2026, 2, 1),
        date(2026, 4, 1),
        date(2026, 6, 1),
        date(2026, 9, 1),
        date(2026, 11, 1),
    ] == skipped_months(rec, date(2026, 1, 15), date(2026, 12, 31))


def test_skipped_months_for_the_30th_in_february() -> None:
    rec = Recurrence("months", day_of_month=30)
    assert [date(2026, 2, 1)] == skipped_months(rec, date(2026, 1, 1), date(2026, 12, 31))


def test_skipped_months_include_start_and_until_months() -> None:
    rec = Recurrence("months", day_of_month=31)
    assert [date(2026, 4, 1), date(2026, 6, 1)] == skipped_months(
        rec, date(2026, 4, 10), date(2026, 6, 2)
    )


def test_skipped_months_respect_iterations_and_interval() -> None:
    rec = Recurrence("months", interval=2, day_of_month=31, iterations=3)
    # visits Feb, Apr, Jun 2026 only.
    assert [date(2026, 2, 1), date(2026, 4, 1), date(2026, 6, 1)] == skipped_months(
        rec, date(2026, 2, 1), date(2027, 12, 31)
    )


def test_skipped_months_with_the_default_day() -> None:
    rec = Recurrence("months")
    assert [date(2026, 2, 1)] == skipped_months(rec, date(2026, 1, 29), date(2026, 3, 31))


def test_no_skipped_months_for_other_rules() -> None:
    until = date(2027, 1, 1)
    assert [] == skipped_months(Recurrence("months", day_of_month=28), date(2026, 1, 1), until)
    assert [] == skipped_months(Recurrence("months", day_of_month=-1), date(2026, 1, 1), until)
    assert [] == skipped_months(Recurrence("days"), date(2026, 1, 31), until)
    assert [] == skipped_months(Recurrence("months", day_of_month=31), until, date(2026, 1, 1))


# --- occurrences, after, next_occurrence -------------------------------------------------------


def test_occurrences_limit() -> None:
    rec = Recurrence("days")
    assert 5 == len(occurrences(rec, date(2026, 1, 1), [time(9), time(17)], "UTC", limit=5))
    assert [] == occurrences(rec, date(2026, 1, 1), [time(9)], "UTC", limit=0)


def test_occurrences_respect_iterations() -> None:
    rec = Recurrence("weeks", weekdays=(0, 3), iterations=2)
    got = occurrences(rec, date(2026, 6, 1), [time(9)], "UTC")
    assert [utc(2026, 6, 1, 9), utc(2026, 6, 4, 9), utc(2026, 6, 8, 9), utc(2026, 6, 11, 9)] == got


def test_after_is_strict() -> None:
    rec = Recurrence("days", iterations=3)
    got = occurrences(rec, date(2026, 1, 1), [time(9)], "UTC", after=utc(2026, 1, 2, 9))
    assert [utc(2026, 1, 3, 9)] == got


def test_after_in_another_zone() -> None:
    rec = Recurrence("days", iterations=3)
    after = datetime(2026, 1, 2, 12, tzinfo=zoneinfo.ZoneInfo("Africa/Nairobi"))  # 09:00 UTC
    assert [utc(2026, 1, 3, 9)] == occurrences(rec, date(2026, 1, 1), [time(9)], "UTC", after=after)


def test_after_far_ahead_of_an_old_start() -> None:
    rec = Recurrence("weeks", interval=3, weekdays=(1, 5))
    start = date(2001, 3, 7)
    after = utc(2026, 7, 1)
    everything = occurrences(rec, start, [time(7, 45)], NY, limit=2000)
    assert [instant for instant in everything if instant > after][:4] == occurrences(
        rec, start, [time(7, 45)], NY, after=after, limit=4
    )


def test_after_past_the_end_gives_nothing() -> None:
    rec = Recurrence("months", iterations=3)
    assert [] == occurrences(rec, date(2026, 1, 1), [time(9)], "UTC", after=utc(2026, 3, 1, 9))


def test_next_occurrence() -> None:
    rec = Recurrence("days")
    assert utc(2026, 3, 9, 13) == next_occurrence(
        rec, date(2026, 1, 1), time(9), NY, utc(2026, 3, 8, 13)
    )


def test_next_occurrence_before_start_is_the_first() -> None:
    rec = Recurrence("months", day_of_month=-1)
    assert utc(2026, 1, 31, 9) == next_occurrence(
        rec, date(2026, 1, 1), time(9), "UTC", utc(2000, 1, 1)
    )


def test_next_occurrence_exhausted() -> None:
    assert None is next_occurrence(
        Recurrence("once"), date(2026, 1, 1), time(9), "UTC", utc(2026, 1, 1, 9)
    )
    rec = Recurrence("weeks", iterations=2)
    assert None is next_occurrence(rec, date(2026, 1, 1), time(9), "UTC", utc(2026, 1, 8, 9))


# --- random_time ---------------------------------------------------------------------------------


def test_random_time_is_deterministic() -> None:
    key = "alert-7:case-abc:2026-05-01"
    first = random_time(time(9), time(17), key)
    assert first == random_time(time(9), time(17), key)
    assert time(9) <= first < time(17)
    assert (0, 0) == (first.second, first.microsecond)


def test_random_time_spreads_keys() -> None:
    picks = {random_time(time(9), time(17), f"alert-1:case-{n}") for n in range(200)}
    assert len(picks) > 100


def test_random_time_single_minute_window() -> None:
    assert time(9, 0) == random_time(time(9), time(9, 1), "anything")


def test_random_time_window_start_rounds_up_to_the_minute() -> None:
    assert time(9, 1) == random_time(time(9, 0, 30), time(9, 1, 30), "x")


def test_random_time_window_to_midnight() -> None:
    picks = {random_time(time(23, 58), time(0), str(n)) for n in range(50)}
    assert {time(23, 58), time(23, 59)} == picks


@PROPERTY
@given(
    start=st.builds(time, st.integers(0, 23), st.integers(0, 59)),
    length=st.integers(1, 600),
    key=st.text(max_size=40),
)
def test_random_time_in_window(start: time, length: int, key: str) -> None:
    end_minutes = min(start.hour * 60 + start.minute + length, 24 * 60 - 1)
    if end_minutes <= start.hour * 60 + start.minute:
        return
    end = time(end_minutes // 60, end_minutes % 60)
    picked = random_time(start, end, key)
    assert start <= picked < end
    assert picked == random_time(start, end, key)


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unit": "days", "interval": 0}, "interval"),
        ({"unit": "days", "interval": -2}, "interval"),
        ({"unit": "weeks", "weekdays": (7,)}, "weekdays"),
        ({"unit": "weeks", "weekdays": (0, -1)}, "weekdays"),
        ({"unit": "months", "day_of_month": 0}, "day_of_month"),
        ({"unit": "months", "day_of_month": 32}, "day_of_month"),
        ({"unit": "months", "day_of_month": -29}, "day_of_month"),
        ({"unit": "days", "iterations": 0}, "iterations"),
        ({"unit": "days", "iterations": -1}, "iterations"),
        ({"unit": "years"}, "unit"),
        ({"unit": "once", "iterations": 0}, "iterations"),
        ({"unit": "days", "weekdays": (9,)}, "weekdays"),
        ({"unit": "weeks", "day_of_month": 40}, "day_of_month"),
        ({"unit": "days", "interval": True}, "interval"),
    ],
)
def test_invalid_recurrence(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recurrence(**kwargs)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "America", "../etc/passwd", "utc"])
def test_unknown_zone(zone: str) -> None:
    named = re.escape(repr(zone))
    with pytest.raises(ValueError, match=f"unknown time zone {named}"):
        local_to_utc(date(2026, 1, 1), time(9), zone)
    with pytest.raises(ValueError, match=f"unknown time zone {named}"):
        utc_to_local(utc(2026, 1, 1), zone)
    with pytest.raises(ValueError, match=f"unknown time zone {named}"):
        occurrences(Recurrence("once"), date(2026, 1, 1), [time(9)], zone)
    with pytest.raises(ValueError, match=f"unknown time zone {named}"):
        next_occurrence(Recurrence("once"), date(2026, 1, 1), time(9), zone, utc(2025, 1, 1))


def test_naive_after() -> None:
    naive = datetime(2026, 1, 1, 9)
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        occurrences(Recurrence("days"), date(2026, 1, 1), [time(9)], "UTC", after=naive)
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        next_occurrence(Recurrence("days"), date(2026, 1, 1), time(9), "UTC", naive)


def test_naive_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_to_local(datetime(2026, 1, 1), "UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        add_minutes_utc(datetime(2026, 1, 1), 5)


def test_aware_local_time() -> None:
    with pytest.raises(ValueError, match="naive wall-clock"):
        local_to_utc(date(2026, 1, 1), time(9, tzinfo=UTC), "UTC")
    with pytest.raises(ValueError, match="naive wall-clock"):
        occurrences(Recurrence("once"), date(2026, 1, 1), [time(9, tzinfo=UTC)], "UTC")


def test_no_times() -> None:
    with pytest.raises(ValueError, match="at least one local time"):
        occurrences(Recurrence("once"), date(2026, 1, 1), [], "UTC")


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="from_period"):
        list(period_dates(Recurrence("days"), date(2026, 1, 1), from_period=-1))
    with pytest.raises(ValueError, match="limit"):
        list(period_dates(Recurrence("days"), date(2026, 1, 1), limit=-1))
    with pytest.raises(ValueError, match="limit"):
        occurrences(Recurrence("days"), date(2026, 1, 1), [time(9)], "UTC", limit=-1)


def test_empty_random_window() -> None:
    with pytest.raises(ValueError, match="crosses midnight"):
        random_time(time(10), time(9), "k")
    with pytest.raises(ValueError, match="no whole minute"):
        random_time(time(9), time(9), "k")
    with pytest.raises(ValueError, match="no whole minute"):
        random_moment(time(9), time(9), "k")


def test_a_window_across_midnight_spills_into_the_next_day() -> None:
    seen = {random_moment(time(23), time(1), f"k{i}") for i in range(400)}
    assert {0, 1} == {day for day, _ in seen}
    assert all((day == 0 and at >= time(23)) or (day == 1 and at < time(1)) for day, at in seen)
    # Within one day it agrees with random_time, so existing schedules keep their times.
    for i in range(50):
        assert (0, random_time(time(8), time(17), f"k{i}")) == random_moment(
            time(8), time(17), f"k{i}"
        )
    with pytest.raises(ValueError, match="no whole minute"):
        random_time(time(9, 0, 1), time(9, 1), "k")


# --- properties over every zone --------------------------------------------------------------------


@PROPERTY
@given(zone=zones, data=st.data())
def test_daily_fires_once_per_local_date(zone: str, data: st.DataObject) -> None:
    start, at = data.draw(start_and_time(zone))
    days = 8
    got = occurrences(Recurrence("days", iterations=days), start, [at], zone)
    scheduled = [start + timedelta(days=k) for k in range(days)]
    assert_fires_as_expected(got, scheduled, at, zone)


@PROPERTY
@given(zone=st.sampled_from(DST_ZONES), data=st.data())
def test_daily_fires_once_per_local_date_around_dst_changes(zone: str, data: st.DataObject) -> None:
    start, at = data.draw(start_and_time(zone, near_change=True))
    days = 8
    got = occurrences(Recurrence("days", iterations=days), start, [at], zone)
    scheduled = [start + timedelta(days=k) for k in range(days)]
    assert_fires_as_expected(got, scheduled, at, zone)


@PROPERTY
@given(zone=zones, data=st.data())
def test_local_to_utc_matches_the_oracle(zone: str, data: st.DataObject) -> None:
    day, at = data.draw(start_and_time(zone))
    expected, _shift = expected_instant(day, at, zone)
    actual = local_to_utc(day, at, zone)
    assert expected == actual
    assert UTC == actual.tzinfo


@PROPERTY
@given(
    zone=zones,
    start=days_2020_2035,
    weekdays=st.lists(st.integers(0, 6), unique=True, max_size=7),
    interval=st.integers(1, 3),
    iterations=st.integers(1, 8),
    at=local_times,
)
def test_weekly_fires_on_exactly_the_chosen_weekdays(
    zone: str, start: date, weekdays: list[int], interval: int, iterations: int, at: time
) -> None:
    rec = Recurrence("weeks", interval=interval, weekdays=tuple(weekdays), iterations=iterations)
    chosen = set(weekdays) or {start.weekday()}
    got = list(period_dates(rec, start))

    # Oracle: walk every day and keep the chosen weekdays of every interval-th week, from
    # the start's week, or the next week when every chosen day of the start's week is past.
    monday = start - timedelta(days=start.weekday())
    if max(chosen) < start.weekday():
        monday += timedelta(weeks=1)
    expected = []
    day = start
    while day < monday + timedelta(weeks=interval * iterations):
        week = (day - monday).days // 7
        if day.weekday() in chosen and week % interval == 0:
            expected.append((week // interval, day))
        day += timedelta(days=1)
    assert expected == got

    for period, group in groupby(got, key=lambda item: item[0]):
        counts = Counter(day.weekday() for _, day in group)
        assert set(counts) <= chosen
        assert all(1 == count for count in counts.values())
        if period > 0:
            assert chosen == set(counts)

    instants = occurrences(rec, start, [at], zone, limit=len(got) + 1)
    assert_fires_as_expected(instants, [day for _, day in got], at, zone)


@PROPERTY
@given(
    zone=zones,
    start=days_2020_2035,
    day_of_month=st.one_of(st.integers(1, 31), st.integers(-28, -1)),
    interval=st.integers(1, 4),
    iterations=st.integers(1, 30),
    at=local_times,
)
def test_monthly_fires_once_per_month_that_has_the_day(
    zone: str, start: date, day_of_month: int, interval: int, iterations: int, at: time
) -> None:
    rec = Recurrence("months", interval=interval, day_of_month=day_of_month, iterations=iterations)
    got = list(period_dates(rec, start))

    def is_the_day(day: date) -> bool:
        if day_of_month > 0:
            return day_of_month == day.day
        # -n: exactly n-1 more days remain in the month
        return (day + timedelta(days=-day_of_month - 1)).month == day.month and (
            day + timedelta(days=-day_of_month)
        ).month != day.month

    # Oracle: walk every day of every visited month, from the start's month, or the next one
    # when the start's month has the day before the start.
    first_month = month_index(start)
    in_first = [
        date(start.year, start.month, d)
        for d in range(1, calendar.monthrange(start.year, start.month)[1] + 1)
        if is_the_day(date(start.year, start.month, d))
    ]
    if in_first and in_first[0] < start:
        first_month += 1
    visited = {first_month + k * interval: k for k in range(iterations)}
    expected = []
    lacking = []
    for index, period in sorted(visited.items()):
        year, month = divmod(index, 12)
        matches = [
            date(year, month + 1, d)
            for d in range(1, calendar.monthrange(year, month + 1)[1] + 1)
            if is_the_day(date(year, month + 1, d))
        ]
        assert len(matches) <= 1
        if not matches:
            lacking.append(date(year, month + 1, 1))
        elif matches[0] >= start:
            expected.append((period, matches[0]))
    assert expected == got

    months = [(day.year, day.month) for _, day in got]
    assert len(set(months)) == len(months)
    assert not set(months) & {(day.year, day.month) for day in lacking}
    if day_of_month < 0:
        assert [] == lacking
        for _, day in got:
            length = calendar.monthrange(day.year, day.month)[1]
            assert length + day_of_month + 1 == day.day

    last_year, last_month = divmod(max(visited), 12)
    until = date(last_year, last_month + 1, calendar.monthrange(last_year, last_month + 1)[1])
    assert lacking == skipped_months(rec, start, until)

    instants = occurrences(rec, start, [at], zone, limit=len(got) + 1)
    assert_fires_as_expected(instants, [day for _, day in got], at, zone)


recurrences = st.one_of(
    st.builds(Recurrence, st.just("once")),
    st.builds(Recurrence, st.just("days"), st.integers(1, 5), iterations=st.integers(1, 40)),
    st.builds(
        Recurrence,
        st.just("weeks"),
        st.integers(1, 3),
        st.lists(st.integers(0, 6), unique=True, max_size=7).map(tuple),
        iterations=st.integers(1, 12),
    ),
    st.builds(
        Recurrence,
        st.just("months"),
        st.integers(1, 3),
        day_of_month=st.one_of(st.none(), st.integers(1, 31), st.integers(-28, -1)),
        iterations=st.integers(1, 12),
    ),
)


@PROPERTY
@given(
    zone=zones,
    rec=recurrences,
    start=days_2020_2035,
    times=st.lists(local_times, min_size=1, max_size=3),
    after_hours=st.integers(-48, 24 * 400),
    limit=st.integers(1, 6),
)
def test_after_and_limit_filter_the_full_list(
    zone: str,
    rec: Recurrence,
    start: date,
    times: list[time],
    after_hours: int,
    limit: int,
) -> None:
    everything = occurrences(rec, start, times, zone, limit=10_000)
    assert sorted(set(everything)) == everything
    after = datetime.combine(start, time(), tzinfo=UTC) + timedelta(hours=after_hours)
    expected = [instant for instant in everything if instant > after]
    assert expected[:limit] == occurrences(rec, start, times, zone, after=after, limit=limit)
    single = [
        instant
        for instant in occurrences(rec, start, times[:1], zone, limit=10_000)
        if instant > after
    ]
    assert (single[0] if single else None) == next_occurrence(rec, start, times[0], zone, after)
    if everything:  # `after` equal to an occurrence excludes it
        middle = everything[len(everything) // 2]
        assert [i for i in everything if i > middle][:limit] == occurrences(
            rec, start, times, zone, after=middle, limit=limit
        )


@PROPERTY
@given(rec=recurrences, start=days_2020_2035, from_period=st.integers(0, 15))
def test_from_period_is_a_suffix(rec: Recurrence, start: date, from_period: int) -> None:
    everything = list(period_dates(rec, start))
    assert [item for item in everything if item[0] >= from_period] == list(
        period_dates(rec, start, from_period=from_period)
    )
    periods = [period for period, _ in everything]
    assert sorted(periods) == periods
    assert all(period < (rec.iterations or 1) for period in periods)
    days = [day for _, day in everything]
    assert sorted(set(days)) == days
    assert all(day >= start for day in days)
