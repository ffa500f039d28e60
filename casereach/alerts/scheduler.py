"""The scheduler: due schedule instances → firings → messages in the outbox.

One transaction per batch: claim due instances (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite's write lock serialises schedulers), record one ``Firing`` per occurrence under a unique
key (so a re-run, a crash or a second scheduler can never fire it twice), write one messaging
event per firing, one sub-event and one message per recipient — failed at once with its error
code when it cannot be sent — and advance each instance to its next occurrence. Everything is
read in bulk for the whole batch: the number of statements does not grow with its size.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from casereach.alerts.actions import INSTANCE_TABLE, FiringDraft, record_firings, save_advanced
from casereach.alerts.caseviews import load_views
from casereach.alerts.compose import message_for
from casereach.alerts.engine import next_after
from casereach.alerts.evaluation import (
    GRACE,
    Plan,
    last_fired,
    per_recipient_times,
    schedule_next,
)
from casereach.alerts.models import (
    CONDITIONAL,
    FIRED,
    SKIPPED_LATE,
    Alert,
    Firing,
    ScheduleInstance,
)
from casereach.alerts.recipients import NO_RECIPIENT, Target, addresses, targets_of
from casereach.alerts.replywait import record_waits
from casereach.alerts.spec import AlertSpec, spec_of
from casereach.alerts.survey_firing import start_surveys
from casereach.core import bulk, rows
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.messaging import chains
from casereach.messaging import log as message_log
from casereach.messaging.log import EventDraft, MessageDraft, SubEventDraft
from casereach.messaging.models import COMPLETED, ERROR, FAILED
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings

BATCH = 500


def _source(alert: Alert, spec: AlertSpec) -> str:
    if alert.kind == CONDITIONAL:
        return "conditional_alert"
    return "immediate_broadcast" if spec.schedule.type == "immediate" else "scheduled_broadcast"


CLAIM_FIELDS = (
    "id",
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
)


class Claimed:
    """A claimed schedule instance: the columns the scheduler reads and writes, without a
    model object (cheaper by far at 500 a batch)."""

    __slots__ = (*CLAIM_FIELDS, "updated_on")
    id: int
    alert_id: int
    alert_version: int
    project_id: int
    recipient_key: str
    case_id: str | None
    contact_id: str | None
    time_zone: str
    start: dt.datetime
    period: int
    event: int
    next_due: dt.datetime | None
    active: bool
    start_value: str
    time_value: str
    reset_value: str
    stop_value: str
    updated_on: dt.datetime | None

    def __init__(self, values: Sequence[Any]) -> None:
        """``values``: a claimed row decoded by ``_CLAIMED`` (aware datetimes, a bool)."""
        for name, value in zip(CLAIM_FIELDS, values, strict=True):
            setattr(self, name, value)
        self.updated_on = None

    @property
    def pk(self) -> int:
        return self.id


def firing_key(inst: Claimed, due: dt.datetime) -> str:
    stamp = due.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
    return f"{inst.alert_id}:{inst.alert_version}:{inst.recipient_key}:{stamp}"


def fire_due(at: dt.datetime | None = None, limit: int = BATCH) -> int:
    """Fire one batch of due instances; returns how many instances were handled."""
    at = at or now()
    with transaction.atomic():
        instances = _claim(at, limit)
        if not instances:
            return 0
        _fire(instances, at)
    return len(instances)


_CLAIMED = rows.decoder(ScheduleInstance, *CLAIM_FIELDS)
_CLAIM_SQL = (
    f"SELECT {_CLAIMED.columns()} FROM {INSTANCE_TABLE} "
    "WHERE active AND next_due <= %s ORDER BY next_due, id LIMIT %s"
)


def _claim(at: dt.datetime, limit: int) -> list[Claimed]:
    """The due instances, oldest first; on PostgreSQL locked, skipping ones another
    scheduler holds (SQLite's write transaction already excludes other schedulers)."""
    sql = bulk.for_update(_CLAIM_SQL, skip_locked=True)
    with connection.cursor() as cursor:
        cursor.execute(sql, [bulk.adapt_datetime(at), limit])
        found = cursor.fetchall()
    return [Claimed(values) for values in _CLAIMED.all(found)]


def run_until_idle(at: dt.datetime | None = None, max_batches: int = 10_000) -> int:
    total = 0
    for _ in range(max_batches):
        done = fire_due(at)
        total += done
        if done == 0:
            break
    return total


def _fire(instances: Sequence[Claimed], at: dt.datetime) -> None:
    alerts = {a.pk: a for a in Alert.objects.filter(pk__in={i.alert_id for i in instances})}
    keys = {i.pk: firing_key(i, i.next_due or at) for i in instances}
    already = set(
        Firing.objects.filter(bulk.is_in("key", list(keys.values()))).values_list("key", flat=True)
    )
    by_project: dict[int, list[Claimed]] = defaultdict(list)
    stale: list[Claimed] = []
    for inst in instances:
        alert = alerts.get(inst.alert_id)
        if alert is None or not alert.active or alert.version != inst.alert_version:
            stale.append(inst)
            continue
        by_project[inst.project_id].append(inst)
    for inst in stale:
        inst.active, inst.next_due, inst.updated_on = False, None, at
    advanced: list[Claimed] = list(stale)
    for project_id, group in by_project.items():
        project = lock_project(project_id)
        advanced.extend(_fire_project(project, group, alerts, keys, already, at))
    save_advanced(advanced)


@dataclass
class Firings:
    """What one project's share of a batch writes: per firing its row, its event and its
    recipients' messages (with the target each is for)."""

    firings: list[FiringDraft] = field(default_factory=list)
    events: list[EventDraft] = field(default_factory=list)
    messages: list[list[tuple[Target, MessageDraft]]] = field(default_factory=list)
    surveys: list[int | None] = field(default_factory=list)  # survey content: the survey


def _fire_project(
    project: Project,
    group: Sequence[Claimed],
    alerts: Mapping[int, Alert],
    keys: Mapping[int, str],
    already: set[str],
    at: dt.datetime,
) -> list[Claimed]:
    settings = effective_settings(project.settings)
    case_ids = sorted({i.case_id for i in group if i.case_id})
    views = {v.case_id: v for v in load_views(project.pk, case_ids)} if case_ids else {}
    targets = targets_of(project, alerts, group, views)
    reach = addresses(targets, views.values())
    out = Firings()
    memo: dict[tuple[Any, ...], tuple[int, int, dt.datetime | None]] = {}
    advanced: list[Claimed] = []
    for inst, inst_targets in zip(group, targets, strict=True):
        alert = alerts[inst.alert_id]
        spec = spec_of(alert)
        due = inst.next_due or at
        if keys[inst.pk] not in already:
            view = views.get(inst.case_id or "")
            msgs = [
                (t, message_for(project, settings, spec, view, t, reach, at)) for t in inst_targets
            ]
            _add_firing(out, project, alert, spec, inst, keys[inst.pk], due, msgs, at)
        advanced.append(_advance(alert, spec, inst, due, project, at, memo))
    if out.firings:
        _write(project, out, at, reach.gateways)
        record_waits(alerts, out.firings, out.messages, at)
    return advanced


def _add_firing(
    out: Firings,
    project: Project,
    alert: Alert,
    spec: AlertSpec,
    inst: Claimed,
    key: str,
    due: dt.datetime,
    msgs: list[tuple[Target, MessageDraft]],
    at: dt.datetime,
) -> None:
    """One occurrence: its firing, its event and its messages — failed as stale when it is
    past the alert's late limit."""
    late = at - due > dt.timedelta(hours=spec.late_limit_hours)
    out.firings.append(
        FiringDraft(
            key=key,
            alert_id=alert.pk,
            project_id=project.pk,
            recipient_key=inst.recipient_key,
            due=due,
            outcome=SKIPPED_LATE if late else FIRED,
            created_on=at,
        )
    )
    out.events.append(
        EventDraft(
            project_id=project.pk,
            source=_source(alert, spec),
            source_id=str(alert.pk),
            source_name=alert.name[:255],
            content_type=spec.channel,
            triggered_by=f"alert:{alert.pk}",
            created_on=at,
        )
    )
    if late:
        hours = (at - due).total_seconds() / 3600
        for _, msg in msgs:
            msg.status, msg.error_code, msg.failed_on = FAILED, "MESSAGE_IS_STALE", at
            msg.next_attempt_at = None
            msg.error_detail = (
                f"skipped: {hours:.1f} h overdue (the alert's late limit is "
                f"{spec.late_limit_hours} h)"
            )
    out.messages.append(msgs)
    out.surveys.append(spec.content.survey_id if spec.content.is_survey else None)


def _write(project: Project, out: Firings, at: dt.datetime, gateways: Mapping[str, str]) -> None:
    """The batch's events, firings, sub-events and messages, one statement each (through the
    message log's writer); an event none of whose messages can go is written closed. In a
    project with a channel order, each message starts on its chain's first channel that
    reaches its contact (``chains.plan_drafts``; a survey's first question stays SMS)."""
    chains.plan_drafts(
        project,
        [
            msg
            for msgs, survey in zip(out.messages, out.surveys, strict=True)
            if survey is None
            for _, msg in msgs
        ],
    )
    # The surveys start first (they read the events' sources, not their ids): an event that
    # closes at once is then written closed, instead of updated after.
    started = start_surveys(project, out.surveys, out.events, out.messages, at, gateways)
    for event, msgs in zip(out.events, out.messages, strict=True):
        closing = _closing(msgs, started)
        if closing is not None:
            event.status, event.error_code = closing
    message_log.add_events(out.events)
    for firing, event in zip(out.firings, out.events, strict=True):
        firing.event_id = event.pk
    record_firings(out.firings)
    subs: list[SubEventDraft] = []
    for msgs, event in zip(out.messages, out.events, strict=True):
        for target, msg in msgs:
            contact = target.contact
            sub = SubEventDraft(
                event_id=event.pk,
                project_id=project.pk,
                contact_id=contact["contact_id"] if contact else None,
                contact_type=contact["contact_type"] if contact else "",
                recipient_name=(contact["name"] if contact else target.email)[:255],
                created_on=at,
            )
            if msg.status == FAILED:
                sub.status, sub.error_code = ERROR, msg.error_code
            elif msg.id in started:  # its session's own event holds question 1
                sub.status = COMPLETED
            subs.append(sub)
    message_log.add_subevents(project, subs)  # stamped with the project's clock, in order
    it = iter(subs)
    for msgs, event in zip(out.messages, out.events, strict=True):
        for _, msg in msgs:
            msg.event_id, msg.subevent_id = event.pk, next(it).pk
    message_log.add_messages(
        [msg for msgs in out.messages for _, msg in msgs if msg.id not in started], project
    )


def _closing(
    msgs: Sequence[tuple[Target, MessageDraft]], started: Container[str]
) -> tuple[str, str | None] | None:
    """How a new event closes at once (status, error code): with no recipient at all, or
    when every message failed (``message_log.outcome``), or (survey content) as soon as it
    has started its sessions; otherwise it stays in progress until the dispatcher closes it."""
    if not msgs:
        return (ERROR, NO_RECIPIENT)
    if any(msg.id in started and msg.status != FAILED for _, msg in msgs):
        return (COMPLETED, None)
    if message_log.outcome([msg.status for _, msg in msgs]) == ERROR:
        return (ERROR, message_log.SUBEVENT_ERROR)
    return None


def _advance(
    alert: Alert,
    spec: AlertSpec,
    inst: Claimed,
    due: dt.datetime,
    project: Project,
    at: dt.datetime,
    memo: dict[tuple[Any, ...], tuple[int, int, dt.datetime | None]],
) -> Claimed:
    memo_key = (
        (alert.pk, inst.start, inst.time_zone, inst.time_value, inst.stop_value, due)
        + (last_fired(inst) or ())
        if not per_recipient_times(spec)
        else None
    )
    if memo_key is not None and memo_key in memo:
        inst.period, inst.event, inst.next_due = memo[memo_key]
        inst.active = inst.next_due is not None
        inst.updated_on = at
        return inst
    plan = Plan(inst.start, inst.start_value, inst.time_value, inst.reset_value, inst.stop_value)
    # Remember which occurrence this was (its local date and event), so that a later zone or
    # time change cannot make the same occurrence due again.
    current = next_after(
        spec,
        plan.start,
        inst.time_zone,
        due - ONE_MICROSECOND,
        time_value=plan.time_value or None,
        key=f"{alert.pk}:{inst.recipient_key}",
    )
    if current is not None and current.due == due and current.local_day is not None:
        inst.period, inst.event = current.local_day.toordinal(), current.event
    # After the occurrence just handled; a long outage does not replay every missed one,
    # only the most recent ones within the grace period are still due next.
    after = max(due, at - dt.timedelta(hours=spec.late_limit_hours) - GRACE)
    nxt = schedule_next(
        alert,
        spec,
        inst.recipient_key,
        plan,
        inst.time_zone,
        after,
        project.time_zone,
        last_fired(inst),
    )
    inst.next_due = nxt
    inst.active = nxt is not None
    inst.updated_on = at
    if memo_key is not None:
        memo[memo_key] = (inst.period, inst.event, nxt)
    return inst
