"""Evaluation: which recipients an alert's rule gives a schedule, and where each one stands.

Set-based: a batch of cases is read in a few queries, the criteria run over all of it in
memory, and the result is the instances it gains, changes or loses (``Changes``), which
``actions`` writes with one bulk statement each. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from casereach.alerts.caseviews import contact_zones
from casereach.alerts.criteria import CaseView, matches, parse_schedule_date
from casereach.alerts.engine import Last, encode_start_date, next_after, timed_occurrences
from casereach.alerts.models import Alert, ScheduleInstance
from casereach.alerts.recipients import recipient_zones
from casereach.alerts.spec import (
    AlertSchedule,
    AlertSpec,
    ImmediateSchedule,
    TimedSchedule,
)
from casereach.contacts.models import Contact
from casereach.core import bulk, rows
from casereach.core.timeutil import now
from casereach.projects.models import Project

GRACE = dt.timedelta(seconds=60)  # an occurrence due within the last minute still fires


@dataclass
class Plan:
    """Where a recipient's schedule starts and what it was computed from."""

    start: dt.datetime
    start_value: str
    time_value: str
    reset_value: str
    stop_value: str


def _value(view: CaseView | None, name: str | None) -> str:
    if view is None or not name:
        return ""
    return (view.get(name) or "")[:255]


def time_property(spec: AlertSpec) -> str | None:
    sched = spec.schedule
    if isinstance(sched, TimedSchedule):
        for event in sched.events:
            if event.time_property:
                return event.time_property
    return None


def first_day(
    sched: TimedSchedule, day: dt.date, zone: str, at: dt.datetime, key: str, time_value: str
) -> dt.date:
    """The start date of a timed schedule that starts "today" (no start date given): CommCare
    moves it forward when its first event is already past, so no iteration is lost — by a day
    (daily or once), a week (weekly), or to the 1st of the next month (monthly)."""
    first = timed_occurrences(
        sched, day, zone, after=FAR_PAST, time_value=time_value or None, key=key, limit=1
    )
    if not first or first[0].due > at - GRACE:
        return day
    unit = sched.repeat.unit
    if unit == "weeks":
        return day + dt.timedelta(weeks=1)
    if unit == "months":
        return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return day + dt.timedelta(days=1)


FAR_PAST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def plan_for(
    spec: AlertSpec, view: CaseView | None, zone: str, at: dt.datetime, key: str = ""
) -> Plan | None:
    """None when the schedule cannot start (a start-date property that holds no date).
    ``key`` is the instance's key (``alert:recipient``) that random times are drawn with."""
    sched = spec.schedule
    start_value = ""
    if isinstance(sched, ImmediateSchedule):
        start = at
    else:
        source = sched.start
        day: dt.date | None
        if source.source == "property":
            start_value = _value(view, source.property)
            day = parse_schedule_date(start_value)
            if day is None:
                return None
        elif source.source == "date":
            day = source.date
            start_value = day.isoformat() if day else ""
        else:
            day = None
        if isinstance(sched, AlertSchedule):
            if day is None:
                start = at
            else:
                start = dt.datetime.combine(day, dt.time(0), ZoneInfo(zone)).astimezone(dt.UTC)
        else:
            if day is None:
                today = at.astimezone(ZoneInfo(zone)).date()
                time_value = _value(view, time_property(spec))
                day = first_day(sched, today, zone, at, key, time_value)
            start = encode_start_date(day)
    return Plan(
        start=start,
        start_value=start_value,
        time_value=_value(view, time_property(spec)),
        reset_value=_value(view, spec.reset_property),
        stop_value=_value(view, spec.stop_property),
    )


def per_recipient_times(spec: AlertSpec) -> bool:
    """Whether occurrence times differ per recipient (a random time in a window)."""
    sched = spec.schedule
    return isinstance(sched, TimedSchedule) and any(
        e.window_start is not None for e in sched.events
    )


class HasPosition(Protocol):
    period: int
    event: int


def last_fired(inst: HasPosition) -> Last:
    """(local date, event) of the last occurrence fired; ``period`` holds the date's ordinal."""
    return (dt.date.fromordinal(inst.period), inst.event) if inst.period > 0 else None


def stop_instant(spec: AlertSpec, stop_value: str, project_zone: str) -> dt.datetime | None:
    day = parse_schedule_date(stop_value) if spec.stop_property else None
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(0), ZoneInfo(project_zone)).astimezone(dt.UTC)


def schedule_next(
    alert: Alert,
    spec: AlertSpec,
    recipient_key: str,
    plan: Plan,
    zone: str,
    after: dt.datetime,
    project_zone: str,
    last: Last = None,
) -> dt.datetime | None:
    occ = next_after(
        spec,
        plan.start,
        zone,
        after,
        time_value=plan.time_value or None,
        key=f"{alert.pk}:{recipient_key}",
        last=last,
    )
    if occ is None:
        return None
    stop = stop_instant(spec, plan.stop_value, project_zone)
    if stop is not None and occ.due >= stop:
        return None
    return occ.due


@dataclass
class Changes:
    """What an evaluation found: instances to create (rows built by ``instance_row``), to
    update (recomputed in place) and to delete (ids)."""

    create: list[list[Any]] = field(default_factory=list)
    change: list[ScheduleInstance] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)


def evaluate(
    alert: Alert,
    spec: AlertSpec,
    views: Sequence[CaseView],
    *,
    zones: dict[str, str] | None = None,
    revive: bool = False,
) -> Changes:
    """The instances of ``alert`` for these cases brought in line with the rule: one query to
    read the existing instances (and the zones, unless given). ``revive`` (an activation):
    instances stopped by a deactivation are recomputed too."""
    out = Changes()
    if not views:
        return out
    project = Project.objects.get(pk=alert.project_id)
    project_zone = project.time_zone
    at = now()
    today = at.astimezone(ZoneInfo(project_zone)).date()
    existing = _existing(alert, [v.case_id for v in views])
    if zones is None:
        zones = contact_zones([v.case_id for v in views], project_zone)
    else:
        zones = {v.case_id: zones.get(v.case_id) or project_zone for v in views}
    zones = recipient_zones(project, spec, views, zones)
    memo: dict[tuple[Any, ...], dt.datetime | None] = {}
    shared = not per_recipient_times(spec)
    for view in views:
        current = existing.get(view.case_id)
        zone = zones[view.case_id]
        plan = None
        if view.case_type == spec.case_type and matches(spec.criteria, view, today):
            plan = plan_for(spec, view, zone, at, f"{alert.pk}:{view.case_id}")
        if plan is None:  # no match, or (CommCare) no usable start date → no instance
            if current is not None:
                out.remove.append(current.pk)
            continue
        if current is not None:
            refresh_instance(
                alert, spec, current, plan, zone, at, project_zone, out.change, revive=revive
            )
            continue
        # Cases with the same start, zone and times share their next occurrence: computed
        # once per distinct plan (not when a random window makes it per recipient).
        memo_key = (plan.start, zone, plan.time_value, plan.stop_value)
        if shared and memo_key in memo:
            due = memo[memo_key]
        else:
            due = schedule_next(alert, spec, view.case_id, plan, zone, at - GRACE, project_zone)
            memo[memo_key] = due
        out.create.append(instance_row(alert, view.case_id, view.case_id, zone, plan, due, at))
    return out


def _existing(alert: Alert, case_ids: Sequence[str]) -> dict[str, ScheduleInstance]:
    """The alert's current instances for these recipients (a first activation has none: the
    look-up is skipped)."""
    mine = ScheduleInstance.objects.filter(alert=alert, alert_version=alert.version)
    if not mine.exists():
        return {}
    return {
        i.recipient_key: i
        for chunk in bulk.in_chunks(list(case_ids))
        for i in mine.filter(recipient_key__in=chunk)
    }


def evaluate_broadcast(
    alert: Alert, spec: AlertSpec, project: Project, chunk: Sequence[str], at: dt.datetime
) -> Changes:
    """A broadcast's instances for a chunk of its contacts: new ones, and re-activated ones
    continuing where they stopped."""
    out = Changes()
    zones = contact_zones(chunk, project.time_zone)
    kinds = dict(
        Contact.objects.filter(bulk.is_in("contact_id", chunk)).values_list(
            "contact_id", "contact_type"
        )
    )
    existing = {
        i.recipient_key: i
        for i in ScheduleInstance.objects.filter(
            alert=alert, alert_version=alert.version, recipient_key__in=chunk
        )
    }
    immediate = isinstance(spec.schedule, ImmediateSchedule)
    for cid in chunk:
        zone = zones[cid]
        plan = plan_for(spec, None, zone, at, f"{alert.pk}:{cid}")
        if plan is None:
            continue
        current = existing.get(cid)
        if current is not None:  # a re-activation: continue where it stopped
            refresh_instance(
                alert, spec, current, plan, zone, at, project.time_zone, out.change, revive=True
            )
            continue
        if immediate:
            due: dt.datetime | None = at
        else:
            due = schedule_next(alert, spec, cid, plan, zone, at - GRACE, project.time_zone)
        case_id = cid if kinds.get(cid) == "case" else None
        out.create.append(instance_row(alert, cid, case_id, zone, plan, due, at))
    return out


# A new instance's row, built from the fields it sets (the others take the model's defaults):
# no model object on the hot path.
_NEW_INSTANCE = rows.table(ScheduleInstance).builder(
    "alert_id",
    "alert_version",
    "project_id",
    "recipient_key",
    "case_id",
    "contact_id",
    "time_zone",
    "start",
    "next_due",
    "active",
    "start_value",
    "time_value",
    "reset_value",
    "stop_value",
    "created_on",
    "updated_on",
)


def instance_row(
    alert: Alert,
    recipient_key: str,
    case_id: str | None,
    zone: str,
    plan: Plan,
    due: dt.datetime | None,
    at: dt.datetime,
) -> list[Any]:
    """A new instance as the parameters of a ``ScheduleInstance`` row (``rows.insert_rows``)."""
    return _NEW_INSTANCE(
        alert.pk,
        alert.version,
        alert.project_id,
        recipient_key,
        case_id,
        recipient_key,
        zone,
        plan.start,
        due,
        due is not None,
        plan.start_value,
        plan.time_value,
        plan.reset_value,
        plan.stop_value,
        at,
        at,
    )


def refresh_instance(
    alert: Alert,
    spec: AlertSpec,
    inst: ScheduleInstance,
    plan: Plan,
    zone: str,
    at: dt.datetime,
    project_zone: str,
    change: list[ScheduleInstance],
    *,
    revive: bool = False,
) -> None:
    """A matching recipient that already has an instance: restart, recompute or leave it.
    ``revive``: an instance without a next occurrence (stopped by a deactivation, or done)
    is recomputed from now, continuing after the last occurrence it fired."""
    reset = plan.reset_value != inst.reset_value
    moved = (
        plan.start_value != inst.start_value
        or plan.time_value != inst.time_value
        or zone != inst.time_zone
        or plan.stop_value != inst.stop_value
        or (revive and inst.next_due is None)
    )
    if not reset and not moved:
        return
    if reset:
        # CommCare: a reset restarts the schedule — alert schedules from now, timed ones
        # with today as the new start date (unless the start comes from a property/date).
        sched = spec.schedule
        if isinstance(sched, TimedSchedule) and sched.start.source == "match":
            plan.start = encode_start_date(at.astimezone(ZoneInfo(zone)).date())
        elif isinstance(sched, AlertSchedule) and sched.start.source == "match":
            plan.start = at
        inst.start = plan.start
    elif plan.start_value != inst.start_value:
        inst.start = plan.start  # the start-date property changed
    plan.start = inst.start  # a start "from match" stays where it was
    # Never re-fire: continue after now and after the last occurrence fired (a zone or
    # time change must not send today's occurrence a second time).
    last = last_fired(inst) if not reset else None
    due = schedule_next(alert, spec, inst.recipient_key, plan, zone, at - GRACE, project_zone, last)
    inst.next_due = due
    inst.active = due is not None
    inst.time_zone = zone
    inst.start_value = plan.start_value
    inst.time_value = plan.time_value
    inst.reset_value = plan.reset_value
    inst.stop_value = plan.stop_value
    inst.updated_on = at
    change.append(inst)
