"""When alert occurrences happen: recurrence rules evaluated date by date in the recipient's zone.

Pure module (stdlib only, no Django, no database) so it can be tested exhaustively and used by
dry runs as well as by the scheduler.

Rules (product spec):

* Every occurrence is computed on the recipient's local calendar, one date at a time, and only
  then converted to UTC, so 09:00 local stays 09:00 local across DST changes.
* A local time that does not exist (spring-forward gap) moves forward by the length of the gap:
  02:30 becomes 03:30 when the clock jumps 02:00 → 03:00, and 02:15 becomes 02:45 in
  Australia/Lord_Howe's 30-minute gap. This is what ``fold=0`` means for a missing time
  (PEP 495: the offset in force *before* the transition is used).
* An ambiguous local time (fall back) takes its first occurrence (``fold=0``).
* A monthly day that a month lacks (31 in April, 30 in February) skips that month, as CommCare
  does; :func:`skipped_months` lists those months so a dry run can say so.

Note: the forward shift can cross midnight where a zone springs forward at 23:00 local (e.g.
America/Nuuk jumps 23:00 → 00:00 at the end of March): 23:30 on the Saturday becomes 00:30 on the
Sunday, so that Sunday carries two occurrences and the Saturday none. Each scheduled date still
fires exactly once; nothing is skipped or sent twice.
"""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Recurrence",
    "Unit",
    "add_minutes_utc",
    "local_to_utc",
    "next_occurrence",
    "occurrences",
    "period_dates",
    "random_moment",
    "random_time",
    "skipped_months",
    "utc_to_local",
]

Unit = Literal["once", "days", "weeks", "months"]
UNITS: tuple[str, ...] = get_args(Unit)

# Months in the Gregorian calendar's full cycle (400 years): month lengths, including leap
# Februaries, repeat with this period, so a monthly rule that hits no month within one cycle
# never fires.
_GREGORIAN_CYCLE_MONTHS = 400 * 12
# Any date more than this before `after`'s local date cannot produce an instant after it
# (UTC offsets span under 27 hours and a gap shift is under a day).
_LOOKBACK = timedelta(days=3)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Recurrence:
    """How often an alert repeats.

    ``weekdays`` is normalised to a sorted tuple without duplicates. Fields that do not apply to
    the unit are validated but ignored (``weekdays`` outside "weeks", ``day_of_month`` outside
    "months", ``iterations`` for "once", which always has exactly one period).
    """

    unit: Unit  # "once" = a single date
    interval: int = 1  # every N units (>= 1)
    weekdays: tuple[int, ...] = ()  # "weeks": 0=Monday..6=Sunday; empty = the start's weekday
    day_of_month: int | None = None  # "months": 1..31, or -1..-28 from the end; None = start's
    iterations: int | None = None  # how many periods; None = forever. For "once" it is 1.

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown recurrence unit {self.unit!r}; expected one of {UNITS}")
        if not _is_int(self.interval) or self.interval < 1:
            raise ValueError(f"interval must be an integer >= 1, got {self.interval!r}")
        if self.iterations is not None and (not _is_int(self.iterations) or self.iterations < 1):
            raise ValueError(f"iterations must be an integer >= 1 or None, got {self.iterations!r}")
        weekdays = tuple(self.weekdays)
        for day in weekdays:
            if not _is_int(day) or not 0 <= day <= 6:
                raise ValueError(f"weekdays must be 0 (Monday) .. 6 (Sunday), got {day!r}")
        object.__setattr__(self, "weekdays", tuple(sorted(set(weekdays))))
        dom = self.day_of_month
        if dom is not None and (not _is_int(dom) or dom == 0 or dom > 31 or dom < -28):
            raise ValueError(
                "day_of_month must be 1..31, or -1..-28 counting from the month's end "
                f"(-1 = last day), got {dom!r}"
            )


# --- zones and instants -----------------------------------------------------------------------


def _zone(zone: str) -> ZoneInfo:
    if not isinstance(zone, str) or not zone:
        raise ValueError(f"unknown time zone {zone!r}")
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # ZoneInfoNotFoundError for unknown keys, ValueError for malformed ones ("../x", "/abs"),
        # OSError for directories ("America") and over-long names.
        raise ValueError(f"unknown time zone {zone!r}") from exc


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {instant!r}")


def _require_naive_time(at: time) -> None:
    if at.tzinfo is not None:
        raise ValueError(f"local times must be naive wall-clock times, got {at!r}")


def _local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0: in a gap the pre-transition offset applies, which moves the time forward by the
    # gap once converted; in an overlap it selects the first occurrence.
    local = datetime.combine(day, at.replace(fold=0), tzinfo=tz)
    return local.astimezone(UTC)


def local_to_utc(day: date, at: time, zone: str) -> datetime:
    """Aware UTC datetime of local wall time `at` on `day` in `zone` (gap → forward by the gap;
    ambiguous → first)."""
    _require_naive_time(at)
    return _local_to_utc(day, at, _zone(zone))


def utc_to_local(instant: datetime, zone: str) -> datetime:
    """`instant` (aware, any zone) as an aware datetime in `zone`."""
    _require_aware(instant, "instant")
    return instant.astimezone(_zone(zone))


def add_minutes_utc(instant: datetime, minutes: int) -> datetime:
    """`instant` plus `minutes` of elapsed time, in UTC.

    For alert schedules: waits are absolute elapsed minutes, not wall-clock minutes (adding to an
    aware ``ZoneInfo`` datetime directly would do wall-clock arithmetic across DST changes).
    """
    _require_aware(instant, "instant")
    return instant.astimezone(UTC) + timedelta(minutes=minutes)


# --- calendar periods ----------------------------------------------------------------------------


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_first(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _day_in_month(index: int, day_of_month: int) -> date | None:
    """The date of `day_of_month` (negative: from the end) in month `index`, None if it lacks it."""
    first = _month_first(index)
    length = calendar.monthrange(first.year, first.month)[1]
    day = day_of_month if day_of_month > 0 else length + day_of_month + 1
    if day > length:
        return None
    return first.replace(day=day)


def _max_month_index() -> int:
    return _month_index(date.max)


def _monthly_rule_can_fire(interval: int, day_of_month: int, start: date) -> bool:
    """Whether any month the rule visits has the day (only days 29..31 can be missing)."""
    if day_of_month <= 28:
        return True
    first = _month_index(start)
    last = _max_month_index()
    for k in range(_GREGORIAN_CYCLE_MONTHS):
        index = first + k * interval
        if index > last:
            break
        if _day_in_month(index, day_of_month) is not None:
            return True
    return False


def _first_week(rec: Recurrence, start: date, reach: int) -> date:
    """Monday of the first weekly period: the start's week, or the next one when no event of
    the start's week (a weekday plus at most `reach` days) falls on or after the start (CommCare
    moves the start forward to the schedule's first weekday)."""
    monday = start - timedelta(days=start.weekday())
    weekdays = rec.weekdays or (start.weekday(),)
    if monday + timedelta(days=max(weekdays) + reach) < start:
        monday += timedelta(weeks=1)
    return monday


def _first_month(rec: Recurrence, start: date, reach: int) -> int:
    """Month index of the first monthly period: the start's month, or the next one when the
    start's month has the day but no event (the day plus at most `reach` days) on or after the
    start (CommCare pushes the start to the next month). A month lacking the day still counts."""
    day_of_month = rec.day_of_month if rec.day_of_month is not None else start.day
    first = _month_index(start)
    day = _day_in_month(first, day_of_month)
    if day is not None and day + timedelta(days=reach) < start:
        return first + 1
    return first


def _iter_periods(
    rec: Recurrence, start: date, from_period: int, reach: int = 0
) -> Iterator[tuple[int, date]]:
    """Every (period, date) from `from_period` on, without a yield limit; stops at `iterations`
    or at the end of the representable calendar. `reach` is the largest event day offset: a
    date before `start` is still yielded when an event that many days later is not."""
    if rec.unit == "once":
        if from_period == 0:
            yield 0, start
        return
    stop = rec.iterations
    if rec.unit == "months":
        day_of_month = rec.day_of_month if rec.day_of_month is not None else start.day
        if stop is None and not _monthly_rule_can_fire(rec.interval, day_of_month, start):
            return
        first = _first_month(rec, start, reach)
        last = _max_month_index()
        period = from_period
        while stop is None or period < stop:
            index = first + period * rec.interval
            if index > last:
                return
            day = _day_in_month(index, day_of_month)
            if day is not None and day + timedelta(days=reach) >= start:
                yield period, day
            period += 1
        return
    try:
        if rec.unit == "days":
            period = from_period
            while stop is None or period < stop:
                yield period, start + timedelta(days=period * rec.interval)
                period += 1
            return
        # weeks
        monday = _first_week(rec, start, reach)
        weekdays = rec.weekdays or (start.weekday(),)
        period = from_period
        while stop is None or period < stop:
            week = monday + timedelta(weeks=period * rec.interval)
            for weekday in weekdays:
                day = week + timedelta(days=weekday)
                if day + timedelta(days=reach) >= start:
                    yield period, day
            period += 1
    except OverflowError:  # past date.max: the calendar ends, so does the recurrence
        return


def _check_counts(from_period: int, limit: int) -> None:
    if not _is_int(from_period) or from_period < 0:
        raise ValueError(f"from_period must be an integer >= 0, got {from_period!r}")
    if not _is_int(limit) or limit < 0:
        raise ValueError(f"limit must be an integer >= 0, got {limit!r}")


def period_dates(
    rec: Recurrence, start: date, *, from_period: int = 0, limit: int = 1000, reach: int = 0
) -> Iterator[tuple[int, date]]:
    """(period index, the period's first date) for periods from_period, from_period+1, … in order;
    stops after `iterations` periods or `limit` yielded.

    The first period is the first one with a date on or after `start` (plus `reach`, the
    largest day offset of the schedule's events: a period date before the start is kept when an
    event `reach` days later is not before it; the caller then drops the events before the
    start). For "days": start + k*interval days. For "weeks": each week k*interval weeks after
    the first week (weeks start Monday; the start's week, or the next one when all its chosen
    weekdays are before the start), one entry per chosen weekday (so a period may yield several
    dates, each with the same period index, in date order). For "months": the month k*interval
    months after the first month (the start's, or the next one when its day is before the
    start), on day_of_month (or from the end); a month lacking that day is skipped (not
    yielded, but it still counts as a period so iteration counting stays aligned with the
    calendar).
    """
    _check_counts(from_period, limit)
    if not _is_int(reach) or reach < 0:
        raise ValueError(f"reach must be an integer >= 0, got {reach!r}")
    return _limited(_iter_periods(rec, start, from_period, reach), limit)


# No schedule runs past this date, forever ones included: far beyond any program, and far
# enough from Python's year 9999 that a day offset or a UTC conversion cannot overflow.
LAST_DATE = date(2199, 12, 31)


def _limited(items: Iterator[tuple[int, date]], limit: int) -> Iterator[tuple[int, date]]:
    if limit == 0:
        return
    try:
        for count, item in enumerate(items, start=1):
            if item[1] > LAST_DATE:
                return
            yield item
            if count >= limit:
                return
    except OverflowError:  # a long interval stepped off the calendar: past LAST_DATE anyway
        return


def skipped_months(rec: Recurrence, start: date, until: date) -> list[date]:
    """First day of each month between start and until (inclusive) that a monthly rule skips
    because the month lacks the day."""
    if rec.unit != "months" or until < start:
        return []
    day_of_month = rec.day_of_month if rec.day_of_month is not None else start.day
    if day_of_month <= 28:  # every month has days 1..28, and negative days always exist
        return []
    first = _first_month(rec, start, 0)
    last = _month_index(until)
    skipped: list[date] = []
    period = 0
    while rec.iterations is None or period < rec.iterations:
        index = first + period * rec.interval
        if index > last:
            break
        if _day_in_month(index, day_of_month) is None:
            skipped.append(_month_first(index))
        period += 1
    return skipped


# --- occurrences ---------------------------------------------------------------------------------


def _first_useful_period(rec: Recurrence, start: date, earliest: date) -> int:
    """A period index whose dates, and every later period's, include all dates >= `earliest`
    (a conservative jump ahead so that `after` far in the future does not scan from the start)."""
    if earliest <= start or rec.unit == "once":
        return 0
    if rec.unit == "days":
        return (earliest - start).days // rec.interval
    if rec.unit == "weeks":
        monday = _first_week(rec, start, 0)
        return max(0, (earliest - monday).days // 7 // rec.interval)
    return max(0, (_month_index(earliest) - _first_month(rec, start, 0)) // rec.interval)


def occurrences(
    rec: Recurrence,
    start: date,
    times: Sequence[time],
    zone: str,
    *,
    after: datetime | None = None,
    limit: int = 100,
) -> list[datetime]:
    """UTC instants, ascending, of every (date from period_dates) x (each local time in `times`),
    strictly after `after` when given, at most `limit`. Equal instants (e.g. two times mapping to
    the same instant after a gap shift) appear once."""
    tz = _zone(zone)
    _check_counts(0, limit)
    if not times:
        raise ValueError("times must list at least one local time")
    for at in times:
        _require_naive_time(at)
    wall_times = sorted(set(times))
    from_period = 0
    if after is not None:
        _require_aware(after, "after")
        after = after.astimezone(UTC)
        try:
            earliest = after.astimezone(tz).date() - _LOOKBACK
        except OverflowError:
            earliest = start
        from_period = _first_useful_period(rec, start, earliest)
        if rec.iterations is not None:
            from_period = min(from_period, rec.iterations)
    if limit == 0:
        return []

    found: set[datetime] = set()
    # Gap shifts can reorder instants slightly (02:30 in a gap lands after 03:10), even across
    # midnight for zones that spring forward at 23:00; keep collecting a few days past the date
    # that filled the list so the sort below sees every earlier instant.
    cutoff: date | None = None
    for _period, day in _iter_periods(rec, start, from_period):
        if cutoff is not None and day > cutoff:
            break
        for at in wall_times:
            try:
                instant = _local_to_utc(day, at, tz)
            except OverflowError:  # past the representable range: nothing later exists
                continue
            if after is None or instant > after:
                found.add(instant)
        if cutoff is None and len(found) >= limit:
            cutoff = day + _LOOKBACK
    return sorted(found)[:limit]


def next_occurrence(
    rec: Recurrence, start: date, at: time, zone: str, after: datetime
) -> datetime | None:
    """The first occurrence strictly after `after`, or None when the recurrence is exhausted."""
    found = occurrences(rec, start, [at], zone, after=after, limit=1)
    return found[0] if found else None


# --- deterministic spreading ------------------------------------------------------------------

_MINUTE_US = 60 * 1_000_000
_DAY_US = 24 * 60 * _MINUTE_US


def _time_us(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def random_time(window_start: time, window_end: time, key: str) -> time:
    """A deterministic 'random' time in [window_start, window_end) chosen by a stable hash
    (sha256) of key (e.g. alert id + case id + date), to the minute; the same key always gives
    the same time.

    ``window_end`` of 00:00 means the end of the day (a window running up to midnight). For a
    window that crosses midnight use :func:`random_moment`.
    """
    _require_naive_time(window_start)
    _require_naive_time(window_end)
    if window_end != time(0) and window_end < window_start:
        raise ValueError(
            f"random time window [{window_start}, {window_end}) crosses midnight: use random_moment"
        )
    return random_moment(window_start, window_end, key)[1]


def random_moment(window_start: time, window_end: time, key: str) -> tuple[int, time]:
    """(day offset, local time): a deterministic 'random' minute in the window, as
    :func:`random_time`, but a window whose end is before its start crosses midnight
    (23:00-01:00 runs two hours), and a minute after midnight falls on the next day (offset 1).
    The same key gives the same minute as :func:`random_time` for a window within one day."""
    _require_naive_time(window_start)
    _require_naive_time(window_end)
    start_us = _time_us(window_start)
    end_us = _time_us(window_end) or _DAY_US
    if end_us < start_us:
        end_us += _DAY_US  # crosses midnight
    first_minute = -(-start_us // _MINUTE_US)  # ceil: whole minutes at or after the start
    end_minute = -(-end_us // _MINUTE_US)  # minutes strictly before the end
    count = end_minute - first_minute
    if count <= 0:
        raise ValueError(
            f"random time window [{window_start}, {window_end}) contains no whole minute"
        )
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    minute = first_minute + int.from_bytes(digest[:8], "big") % count
    day, minute = divmod(minute, 24 * 60)
    return day, time(minute // 60, minute % 60)
