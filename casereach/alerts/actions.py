"""The only writers of alerts and their schedule instances.

Rule evaluation is set-based: a batch of cases is read in a few queries, the criteria run over
all of it in memory, and the instances it gains, changes or loses are written with one bulk
statement each. The same function serves activation (every open case of the type, batch by
batch, with progress) and case changes (the batch just written, inside its transaction).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from pydantic import ValidationError

from casereach.alerts.criteria import CaseView, matches, parse_schedule_date
from casereach.alerts.engine import Last, encode_start_date, next_after, timed_occurrences
from casereach.alerts.models import Alert, ScheduleInstance
from casereach.alerts.spec import (
    AlertSchedule,
    AlertSpec,
    ImmediateSchedule,
    TimedSchedule,
    load_stored_spec,
    parse_spec,
)
from casereach.cases.models import Case
from casereach.contacts.models import Contact
from casereach.core import bulk
from casereach.core.errors import BadRequest, NotFound
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.workers.actions import full_username
from casereach.workers.models import MobileWorker

log = logging.getLogger(__name__)

BATCH = 2000
GRACE = dt.timedelta(seconds=60)  # an occurrence due within the last minute still fires
CASE_TABLE = Case._meta.db_table
INSTANCE_TABLE = ScheduleInstance._meta.db_table
CONTACT_TABLE = Contact._meta.db_table


def spec_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function"))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def validated_spec(data: Any) -> AlertSpec:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    try:
        return parse_spec(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid alert: {spec_error(exc)}") from None
    except ValueError as exc:
        raise BadRequest(f"invalid alert: {exc}") from None


_SPEC_CACHE: dict[tuple[int, int, dt.datetime, dt.datetime], AlertSpec] = {}


def spec_of(alert: Alert) -> AlertSpec:
    """The parsed spec, cached per alert definition (ids may repeat across test databases,
    so the key includes the timestamps)."""
    key = (alert.pk, alert.version, alert.created_on, alert.updated_on)
    spec = _SPEC_CACHE.get(key)
    if spec is None:
        if len(_SPEC_CACHE) > 1000:
            _SPEC_CACHE.clear()
        spec = _SPEC_CACHE[key] = load_stored_spec(alert.spec)
    return spec


# -- alert CRUD ----------------------------------------------------------------------------------


def do_create_alert(project: Project, data: Any) -> Alert:
    active = _pop_active(data)
    spec = validated_spec(data)
    check_recipients(project, spec)
    stamp = now()
    alert = Alert.objects.create(
        project=project,
        name=spec.name,
        kind=spec.kind,
        case_type=spec.case_type or "",
        spec=spec.model_dump(mode="json", by_alias=True),
        created_on=stamp,
        updated_on=stamp,
    )
    if active:
        do_activate(alert)
    return alert


def _pop_active(data: Any) -> bool:
    if isinstance(data, dict) and "active" in data:
        active = data.pop("active")
        if not isinstance(active, bool):
            raise BadRequest("active must be true or false")
        return active
    return False


def do_update_alert(alert: Alert, data: Any) -> Alert:
    """An edit is a new version: old instances go, an active alert is re-evaluated."""
    if isinstance(data, dict):
        data = {**data}
        active = _pop_active(data) if "active" in data else alert.active
        merged = {**alert.spec, **data}
    else:
        raise BadRequest("Payload must be a single JSON object")
    spec = validated_spec(merged)
    check_recipients(alert.project, spec)
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(
            name=spec.name,
            kind=spec.kind,
            case_type=spec.case_type or "",
            spec=spec.model_dump(mode="json", by_alias=True),
            version=alert.version + 1,
            updated_on=now(),
        )
        ScheduleInstance.objects.filter(alert=alert).delete()
        alert.refresh_from_db()
    if active:
        do_activate(alert)
    elif alert.active:
        do_deactivate(alert)
    return alert


def do_delete_alert(alert: Alert) -> None:
    alert.delete()


def do_deactivate(alert: Alert) -> Alert:
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(active=False, updated_on=now())
        ScheduleInstance.objects.filter(alert=alert).update(active=False, next_due=None)
    alert.refresh_from_db()
    return alert


# Where the bulk evaluation of an activated alert runs: here, in the caller's process, unless a
# runner is registered (the scale-out mode hands it to a worker by alert id).
EvaluationRunner = Callable[[int], None]
_evaluation_runner: EvaluationRunner | None = None


def register_evaluation_runner(runner: EvaluationRunner | None) -> None:
    global _evaluation_runner
    _evaluation_runner = runner


def do_activate(alert: Alert) -> Alert:
    """Mark active and evaluate every candidate recipient in batches (progress on the alert):
    at once, or — with an evaluation runner — by a worker, the alert showing ``queued``."""
    runner = _evaluation_runner
    check_recipients(alert.project, spec_of(alert))  # before anything changes
    Alert.objects.filter(pk=alert.pk).update(
        active=True,
        eval_state="queued" if runner else "running",
        eval_processed=0,
        eval_total=0,
        updated_on=now(),
    )
    alert.refresh_from_db()
    if runner is not None:
        try:
            runner(alert.pk)
            return alert
        except Exception:  # the broker is unreachable: evaluating here is late but not lost
            log.exception("could not hand alert %s to a worker; evaluating it here", alert.pk)
    return evaluate_alert(alert)


def evaluate_alert(alert: Alert) -> Alert:
    """Bring every candidate recipient's instances in line with an active alert."""
    alert.refresh_from_db()
    if not alert.active:
        return alert
    spec = spec_of(alert)
    Alert.objects.filter(pk=alert.pk).update(eval_state="running", eval_processed=0)
    if spec.kind == "conditional":
        _activate_conditional(alert, spec)
    else:
        _activate_broadcast(alert, spec)
    alert.refresh_from_db()
    return alert


def _activate_conditional(alert: Alert, spec: AlertSpec) -> None:
    pks = open_case_ids(alert.project_id, spec.case_type or "")
    total = len(pks)
    Alert.objects.filter(pk=alert.pk).update(eval_total=total)
    processed = 0
    for start in range(0, total, BATCH):
        chunk = pks[start : start + BATCH]
        with transaction.atomic():
            views, zones = load_open_views(chunk)
            evaluate(alert, spec, views, zones=zones, revive=True)
            processed += len(chunk)
            Alert.objects.filter(pk=alert.pk).update(eval_processed=processed)
    Alert.objects.filter(pk=alert.pk).update(
        eval_state="done", eval_processed=processed, eval_total=max(total, processed)
    )


# -- reading cases in bulk -------------------------------------------------------------------------


def _parent_id(indices: dict[str, Any]) -> str | None:
    parent = indices.get("parent") if isinstance(indices, dict) else None
    if isinstance(parent, dict):
        value = parent.get("case_id")
        return str(value) if value else None
    return None


def open_case_ids(project_id: int, case_type: str) -> list[str]:
    """Ids of the project's open cases of one type, read in one index scan (paging through
    them by case id would sort every matching case again for every page)."""
    return list(
        Case.objects.filter(
            project_id=project_id, case_type=case_type, closed=False, deleted=False
        ).values_list("case_id", flat=True)
    )


CASE_COLUMNS = (
    "c.case_id, c.case_type, c.case_name, c.owner_id, c.properties, c.indices, c.closed, c.deleted"
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _views(rows: Iterable[Sequence[Any]], parents: dict[str, CaseView]) -> list[CaseView]:
    out = []
    for case_id, case_type, name, owner_id, properties, indices, closed, deleted in rows:
        pid = _row_parent_id(indices)
        out.append(
            CaseView(
                case_id=case_id,
                case_type=case_type,
                properties=_json(properties) or {},
                name=name,
                owner_id=owner_id,
                closed=bool(closed),
                deleted=bool(deleted),
                parent_id=pid,
                parent=parents.get(pid) if pid else None,
            )
        )
    return out


def _row_parent_id(indices: Any) -> str | None:
    """The parent case id of a raw ``indices`` value (most cases have none: no decoding)."""
    if indices in (None, "{}", "[]"):
        return None
    return _parent_id(_json(indices) or {})


def _with_parents(rows: list[Sequence[Any]], project_id: int | None) -> list[CaseView]:
    parent_ids = {pid for r in rows if (pid := _row_parent_id(r[5]))}
    parents: dict[str, CaseView] = {}
    if parent_ids:
        parents = {v.case_id: v for v in load_views(project_id, sorted(parent_ids), parents=False)}
    return _views(rows, parents)


def load_views(
    project_id: int | None, case_ids: Sequence[str], *, parents: bool = True
) -> list[CaseView]:
    """Cases (and their parents) as CaseViews: two queries per chunk, no model objects."""
    rows: list[Sequence[Any]] = []
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(list(case_ids)):
            where, params = bulk.in_sql("c.case_id", chunk)
            cursor.execute(f"SELECT {CASE_COLUMNS} FROM {CASE_TABLE} c WHERE {where}", params)
            rows.extend(cursor.fetchall())
    if not parents:
        return _views(rows, {})
    return _with_parents(rows, project_id)


def load_open_views(case_ids: Sequence[str]) -> tuple[list[CaseView], dict[str, str]]:
    """The open cases among ``case_ids`` as CaseViews (with parents), and the effective time
    zone of each one's contact (absent when it has none), read together."""
    rows: list[Sequence[Any]] = []
    zones: dict[str, str] = {}
    with connection.cursor() as cursor:
        for chunk in bulk.in_chunks(list(case_ids)):
            where, params = bulk.in_sql("c.case_id", chunk)
            cursor.execute(
                f"SELECT {CASE_COLUMNS}, k.tz_effective FROM {CASE_TABLE} c "
                f"LEFT JOIN {CONTACT_TABLE} k ON k.contact_id = c.case_id "
                f"WHERE {where} AND NOT c.closed AND NOT c.deleted",
                params,
            )
            for row in cursor.fetchall():
                rows.append(row[:8])
                if row[8]:
                    zones[row[0]] = row[8]
    return _with_parents(rows, None), zones


def contact_zones(contact_ids: Iterable[str], default: str) -> dict[str, str]:
    out: dict[str, str] = {}
    ids = list(contact_ids)
    for chunk in bulk.in_chunks(ids):
        out.update(
            Contact.objects.filter(bulk.is_in("contact_id", chunk)).values_list(
                "contact_id", "tz_effective"
            )
        )
    return {cid: out.get(cid) or default for cid in ids}


def resolve_user_refs(project: Project, refs: Iterable[str]) -> dict[str, str]:
    """Mobile-worker references read from case properties → worker ids: a worker id, a full
    username, or a username without the project's domain."""
    wanted = sorted(set(refs))
    users: dict[str, str] = {}
    if not wanted:
        return users
    for wid in MobileWorker.objects.filter(project=project, id__in=wanted).values_list(
        "id", flat=True
    ):
        users[wid] = wid
    full = {full_username(project, r): r for r in wanted if "@" not in r}
    full.update({r: r for r in wanted if "@" in r})
    for wid, username in MobileWorker.objects.filter(
        project=project, username__in=list(full)
    ).values_list("id", "username"):
        users.setdefault(full[username], wid)
    return users


# Recipient rules naming one person other than the case: an alert with exactly one such rule
# computes its occurrences in that person's zone (SPEC 5: the recipient's time zone).
ZONE_FROM_RECIPIENT = frozenset({"owner", "parent", "user_property"})


def sole_recipient_rule(spec: AlertSpec) -> Any:
    """The recipient rule whose person's zone a conditional alert's times follow, or None when
    they follow the case's zone (the case itself, several rules, children, an email)."""
    if spec.kind != "conditional" or len(spec.recipients) != 1:
        return None
    rule = spec.recipients[0]
    return rule if rule.type in ZONE_FROM_RECIPIENT else None


def recipient_zones(
    project: Project, spec: AlertSpec, views: Sequence[CaseView], case_zones: dict[str, str]
) -> dict[str, str]:
    """Each case's schedule zone: its sole recipient's (owner, parent case or named user) when
    the alert has one such rule, the project's when that person is unknown; else the case's."""
    rule = sole_recipient_rule(spec)
    if rule is None:
        return case_zones
    person: dict[str, str | None] = {}
    if rule.type == "owner":
        person = {v.case_id: v.owner_id for v in views}
    elif rule.type == "parent":
        person = {v.case_id: v.parent_id for v in views}
    else:
        refs = {v.case_id: (v.get(rule.property or "") or "").strip() for v in views}
        users = resolve_user_refs(project, [r for r in refs.values() if r])
        person = {cid: users.get(ref) for cid, ref in refs.items()}
    zones = contact_zones(sorted({p for p in person.values() if p}), project.time_zone)
    return {v.case_id: zones.get(person.get(v.case_id) or "", project.time_zone) for v in views}


# -- evaluation ------------------------------------------------------------------------------------


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


def _time_property(spec: AlertSpec) -> str | None:
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
                time_value = _value(view, _time_property(spec))
                day = first_day(sched, today, zone, at, key, time_value)
            start = encode_start_date(day)
    return Plan(
        start=start,
        start_value=start_value,
        time_value=_value(view, _time_property(spec)),
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


def evaluate(
    alert: Alert,
    spec: AlertSpec,
    views: Sequence[CaseView],
    *,
    zones: dict[str, str] | None = None,
    revive: bool = False,
) -> None:
    """Bring the instances of ``alert`` for these cases in line with the rule: one query to
    read the existing instances, one bulk write each for new, changed and removed ones.
    ``revive`` (an activation): instances stopped by a deactivation are recomputed too."""
    if not views:
        return
    project = Project.objects.get(pk=alert.project_id)
    project_zone = project.time_zone
    at = now()
    today = at.astimezone(ZoneInfo(project_zone)).date()
    mine = ScheduleInstance.objects.filter(alert=alert, alert_version=alert.version)
    existing = (
        {
            i.recipient_key: i
            for chunk in bulk.in_chunks([v.case_id for v in views])
            for i in mine.filter(recipient_key__in=chunk)
        }
        if mine.exists()  # a first activation has none: skip the look-up
        else {}
    )
    if zones is None:
        zones = contact_zones([v.case_id for v in views], project_zone)
    else:
        zones = {v.case_id: zones.get(v.case_id) or project_zone for v in views}
    zones = recipient_zones(project, spec, views, zones)
    create: list[tuple[Any, ...]] = []
    change: list[ScheduleInstance] = []
    remove: list[int] = []
    memo: dict[tuple[Any, ...], dt.datetime | None] = {}
    shared = not per_recipient_times(spec)
    for view in views:
        current = existing.get(view.case_id)
        if view.case_type != spec.case_type or not matches(spec.criteria, view, today):
            if current is not None:
                remove.append(current.pk)
            continue
        zone = zones[view.case_id]
        plan = plan_for(spec, view, zone, at, f"{alert.pk}:{view.case_id}")
        if plan is None:  # CommCare: no usable start date → no instance
            if current is not None:
                remove.append(current.pk)
            continue
        if current is None:
            # Cases with the same start, zone and times share their next occurrence: computed
            # once per distinct plan (not when a random window makes it per recipient).
            memo_key = (plan.start, zone, plan.time_value, plan.stop_value)
            if shared and memo_key in memo:
                due = memo[memo_key]
            else:
                due = schedule_next(alert, spec, view.case_id, plan, zone, at - GRACE, project_zone)
                memo[memo_key] = due
            create.append(
                instance_row(
                    alert,
                    view.case_id,
                    view.case_id,
                    zone,
                    plan,
                    due,
                    at,
                )
            )
            continue
        refresh_instance(alert, spec, current, plan, zone, at, project_zone, change, revive=revive)
    if remove:
        for chunk in bulk.in_chunks(remove):
            ScheduleInstance.objects.filter(pk__in=chunk).delete()
    insert_instances(create)
    write_changes(change)


def write_changes(change: Sequence[ScheduleInstance]) -> None:
    """Recomputed instances, one bulk statement."""
    if change:
        adapt = bulk.adapt_datetime
        bulk.execute_many(
            f"UPDATE {INSTANCE_TABLE} SET start = %s, next_due = %s, active = %s, "
            "time_zone = %s, start_value = %s, time_value = %s, reset_value = %s, "
            "stop_value = %s, updated_on = %s WHERE id = %s",
            [
                (
                    adapt(i.start),
                    adapt(i.next_due),
                    i.active,
                    i.time_zone,
                    i.start_value,
                    i.time_value,
                    i.reset_value,
                    i.stop_value,
                    adapt(i.updated_on),
                    i.pk,
                )
                for i in change
            ],
        )


INSTANCE_COLUMNS = (
    "alert_id",
    "alert_version",
    "project_id",
    "recipient_key",
    "case_id",
    "contact_id",
    "time_zone",
    "start",
    "period",
    "event",
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
) -> tuple[Any, ...]:
    """A new instance as a row of INSTANCE_COLUMNS (no model object on the hot path)."""
    adapt = bulk.adapt_datetime
    stamp = adapt(at)
    return (
        alert.pk,
        alert.version,
        alert.project_id,
        recipient_key,
        case_id,
        recipient_key,
        zone,
        adapt(plan.start),
        0,
        0,
        adapt(due),
        due is not None,
        plan.start_value,
        plan.time_value,
        plan.reset_value,
        plan.stop_value,
        stamp,
        stamp,
    )


def insert_instances(rows: Sequence[tuple[Any, ...]]) -> None:
    """New instances in one statement per batch; one that exists already is left alone."""
    bulk.upsert(
        INSTANCE_TABLE,
        INSTANCE_COLUMNS,
        rows,
        conflict=("alert_id", "alert_version", "recipient_key"),
        update=(),
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


def on_cases_changed(project: Project, states: Sequence[Any]) -> None:
    """The case-change hook: re-evaluate the active rules of the changed cases' types, in the
    writing transaction. Closed or deleted cases lose their instances."""
    types = {s.case_type for s in states}
    alerts = list(
        Alert.objects.filter(
            project_id=project.pk, kind="conditional", active=True, case_type__in=types
        )
    )
    gone = [s.case_id for s in states if s.closed or s.deleted]
    if gone:
        for chunk in bulk.in_chunks(gone):
            ScheduleInstance.objects.filter(
                project_id=project.pk, case_id__in=chunk, alert__kind="conditional"
            ).delete()
    if not alerts:
        return
    live = [s.case_id for s in states if not (s.closed or s.deleted)]
    if not live:
        return
    views = load_views(project.pk, live)
    for alert in alerts:
        spec = spec_of(alert)
        evaluate(alert, spec, [v for v in views if v.case_type == alert.case_type])


# -- broadcasts ------------------------------------------------------------------------------------


def check_recipients(project: Project, spec: AlertSpec) -> None:
    """A broadcast's listed cases and workers must exist: BadRequest naming the first that
    does not (checked when an alert is saved and again when it is activated)."""
    if spec.kind != "broadcast":
        return
    cases = {str(r.id) for r in spec.recipients if r.type == "case"}
    workers = {str(r.id) for r in spec.recipients if r.type == "worker"}
    known_cases = set(
        Contact.objects.filter(
            project=project, contact_type="case", contact_id__in=sorted(cases)
        ).values_list("contact_id", flat=True)
    )
    known_workers = set(
        MobileWorker.objects.filter(project=project, id__in=sorted(workers)).values_list(
            "id", flat=True
        )
    )
    for r in spec.recipients:
        if r.type == "case" and str(r.id) not in known_cases:
            raise BadRequest(f"recipient case '{r.id}' not found")
        if r.type == "worker" and str(r.id) not in known_workers:
            raise BadRequest(f"recipient worker '{r.id}' not found")


def broadcast_contacts(project: Project, spec: AlertSpec) -> list[str]:
    """The contact ids a broadcast goes to, each once, in the order given."""
    from casereach.alerts.criteria import matching

    check_recipients(project, spec)
    ids: list[str] = []
    for r in spec.recipients:
        if r.type in ("case", "worker"):
            ids.append(str(r.id))
        elif r.type == "user_group":
            for wid, groups in MobileWorker.objects.filter(
                project=project, is_active=True
            ).values_list("id", "groups"):
                if r.id in (groups or []):
                    ids.append(wid)
        elif r.type == "case_group":
            case_ids = list(
                Case.objects.filter(
                    project=project, case_type=r.case_type, closed=False, deleted=False
                ).values_list("case_id", flat=True)
            )
            today = now().astimezone(ZoneInfo(project.time_zone)).date()
            for start in range(0, len(case_ids), BATCH):
                views = load_views(project.pk, case_ids[start : start + BATCH])
                if r.criteria is None:
                    ids.extend(v.case_id for v in views)
                    continue
                ok = matching(r.criteria, views, today)
                ids.extend(v.case_id for v, yes in zip(views, ok, strict=True) if yes)
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _activate_broadcast(alert: Alert, spec: AlertSpec) -> None:
    project = Project.objects.get(pk=alert.project_id)
    contact_ids = broadcast_contacts(project, spec)
    Alert.objects.filter(pk=alert.pk).update(eval_total=len(contact_ids))
    at = now()
    processed = 0
    for start in range(0, len(contact_ids), BATCH):
        chunk = contact_ids[start : start + BATCH]
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
        rows: list[tuple[Any, ...]] = []
        change: list[ScheduleInstance] = []
        for cid in chunk:
            zone = zones[cid]
            plan = plan_for(spec, None, zone, at, f"{alert.pk}:{cid}")
            if plan is None:
                continue
            current = existing.get(cid)
            if current is not None:  # a re-activation: continue where it stopped
                refresh_instance(
                    alert, spec, current, plan, zone, at, project.time_zone, change, revive=True
                )
                continue
            after = at - GRACE if not isinstance(spec.schedule, ImmediateSchedule) else at
            due = (
                at
                if isinstance(spec.schedule, ImmediateSchedule)
                else schedule_next(alert, spec, cid, plan, zone, after, project.time_zone)
            )
            rows.append(
                instance_row(
                    alert, cid, cid if kinds.get(cid) == "case" else None, zone, plan, due, at
                )
            )
        with transaction.atomic():
            insert_instances(rows)
            write_changes(change)
        processed += len(chunk)
        Alert.objects.filter(pk=alert.pk).update(eval_processed=processed)
    Alert.objects.filter(pk=alert.pk).update(eval_state="done")


def get_alert(project: Project, alert_id: int) -> Alert:
    alert = Alert.objects.filter(project=project, pk=alert_id).first()
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    return alert
