"""Schedule arithmetic shared by the scheduler, the dry run and "upcoming" (pure: no database).

A timed schedule's occurrences are computed date by date in the recipient's zone (see
``timing``); an alert schedule's are elapsed minutes from its start instant. Both answer the
same question: the occurrences strictly after a given instant, in order.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from casereach.alerts.spec import (
    AlertSchedule,
    AlertSpec,
    ImmediateSchedule,
    Repeat,
    TimedSchedule,
    parse_hhmm,
)
from casereach.alerts.timing import (
    LAST_DATE,
    Recurrence,
    local_to_utc,
    period_dates,
    random_moment,
)

MAX_PERIODS = 20_000  # a schedule whose every event is unusable stops here, not never


@dataclass(frozen=True)
class Occurrence:
    due: dt.datetime  # UTC
    event: int  # index of the schedule event
    local_day: dt.date | None = None  # timed schedules: the local date it belongs to


# The last occurrence already fired, as (local date, event index): a timed schedule never
# fires that occurrence or an earlier one again, even after the recipient's zone changed.
Last = tuple[dt.date, int] | None


def recurrence(repeat: Repeat) -> Recurrence:
    return Recurrence(
        unit=repeat.unit,
        interval=repeat.interval,
        weekdays=tuple(repeat.weekdays),
        day_of_month=repeat.day_of_month,
        iterations=repeat.iterations,
    )


def start_date_of(start: dt.datetime) -> dt.date:
    """Timed instances store their local start date as midnight UTC of that date."""
    return start.astimezone(dt.UTC).date()


def encode_start_date(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), dt.UTC)


# CommCare reads a case-property time with ``^\d?\d:\d\d`` (anything may follow: seconds).
_PROPERTY_TIME = re.compile(r"^\s*(\d?\d):(\d\d)")
# CommCare's time when the case property holds none (CASE_PROPERTY_TIME's default).
DEFAULT_PROPERTY_TIME = dt.time(12, 0)


def parse_time_value(value: str | None) -> dt.time | None:
    """A time read from a case property: H:MM or HH:MM, optionally followed by more (seconds);
    None when it holds no valid time."""
    if not value:
        return None
    found = _PROPERTY_TIME.match(value)
    if found is None:
        return None
    hour, minute = int(found.group(1)), int(found.group(2))
    if hour > 23 or minute > 59:
        return None
    return dt.time(hour, minute)


def property_time(value: str | None) -> dt.time:
    """The local time an event with ``time_property`` is sent at: the property's time, or
    12:00 (CommCare) when it is missing or not a time."""
    return parse_time_value(value) or DEFAULT_PROPERTY_TIME


def event_reach(sched: TimedSchedule) -> int:
    """The largest day offset of the schedule's events."""
    return max(event.day for event in sched.events)


def timed_occurrences(
    sched: TimedSchedule,
    start: dt.date,
    zone: str,
    *,
    after: dt.datetime,
    time_value: str | None = None,
    key: str = "",
    limit: int = 1,
    until: dt.datetime | None = None,
    last: Last = None,
) -> list[Occurrence]:
    rec = recurrence(sched.repeat)
    found: list[Occurrence] = []
    prop_time = property_time(time_value)
    horizon: dt.date | None = None
    for _, day in period_dates(rec, start, limit=MAX_PERIODS, reach=event_reach(sched)):
        if horizon is not None and day > horizon:
            break
        if until is not None and local_to_utc(day, dt.time(0), zone) > until:
            break
        for index, event in enumerate(sched.events):
            local_day = day + dt.timedelta(days=event.day)
            if local_day < start:
                continue  # the first period's events before the start date are not sent
            send_day = local_day
            if event.time is not None:
                at = parse_hhmm(event.time)
            elif event.window_start is not None and event.window_end is not None:
                spill, at = random_moment(
                    parse_hhmm(event.window_start),
                    parse_hhmm(event.window_end),
                    f"{key}:{local_day.isoformat()}:{index}",
                )
                send_day = local_day + dt.timedelta(days=spill)  # a window past midnight
            else:
                at = prop_time
            if last is not None and (local_day, index) <= last:
                continue
            due = local_to_utc(send_day, at, zone)
            if due > after and (until is None or due <= until):
                found.append(Occurrence(due, index, local_day))
        if len(found) >= limit:
            found.sort(key=lambda o: (o.due, o.event))
            # Later periods start later; an event's day offset can still place it before
            # one already found, so look until the period passes the limit-th date.
            horizon = found[limit - 1].due.date() + dt.timedelta(days=2)
    found.sort(key=lambda o: (o.due, o.event))
    unique: list[Occurrence] = []
    for occ in found:
        if not unique or unique[-1].due != occ.due:
            unique.append(occ)
    return unique[:limit]


def alert_occurrences(
    sched: AlertSchedule,
    start: dt.datetime,
    *,
    after: dt.datetime,
    limit: int = 1,
    until: dt.datetime | None = None,
) -> list[Occurrence]:
    offsets: list[int] = []
    total = 0
    for event in sched.events:
        total += event.wait_minutes
        offsets.append(total)
    cycle = total
    found: list[Occurrence] = []
    iteration = 0
    if cycle > 0 and after > start:  # jump close to ``after`` instead of walking to it
        iteration = max(0, int((after - start).total_seconds() // 60 // cycle) - 1)
    previous: dt.datetime | None = None
    while sched.iterations is None or iteration < sched.iterations:
        try:
            base = start + dt.timedelta(minutes=iteration * cycle)
        except OverflowError:
            break
        if base.date() > LAST_DATE:
            break  # a forever schedule ends there, as timed ones do
        for index, offset in enumerate(offsets):
            due = base + dt.timedelta(minutes=offset)
            if until is not None and due > until:
                return found
            # A wait of 0 puts two sends at one instant (a repeated round that starts with
            # "at once" meets the previous round's last send): that is one occurrence.
            same, previous = due == previous, due
            if due > after and not same:
                found.append(Occurrence(due, index))
                if len(found) >= limit:
                    return found
        iteration += 1
        if cycle == 0 or iteration > MAX_PERIODS * 10:
            break
    return found


def occurrences_after(
    spec: AlertSpec,
    start: dt.datetime,
    zone: str,
    *,
    after: dt.datetime,
    time_value: str | None = None,
    key: str = "",
    limit: int = 1,
    until: dt.datetime | None = None,
    last: Last = None,
) -> list[Occurrence]:
    sched = spec.schedule
    if isinstance(sched, ImmediateSchedule):
        return [Occurrence(start, 0)] if start > after and limit > 0 else []
    if isinstance(sched, AlertSchedule):
        return alert_occurrences(sched, start, after=after, limit=limit, until=until)
    return timed_occurrences(
        sched,
        start_date_of(start),
        zone,
        after=after,
        time_value=time_value,
        key=key,
        limit=limit,
        until=until,
        last=last,
    )


def next_after(
    spec: AlertSpec,
    start: dt.datetime,
    zone: str,
    after: dt.datetime,
    *,
    time_value: str | None = None,
    key: str = "",
    last: Last = None,
) -> Occurrence | None:
    found = occurrences_after(
        spec, start, zone, after=after, time_value=time_value, key=key, limit=1, last=last
    )
    return found[0] if found else None
