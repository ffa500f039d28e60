"""The only writers of alerts, their schedule instances and their firings.

Evaluation (``alerts.evaluation``) decides which instances an alert gains, changes or loses;
this writes them, one bulk statement each. The same path serves activation (every open case of
the type, batch by batch, with progress on the alert) and case changes (the batch just
written, inside its transaction). The scheduler records its firings and advances the instances
it fired through here too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.db import transaction

from casereach.alerts.caseviews import BATCH, load_open_views, load_views, open_case_ids
from casereach.alerts.content_hooks import check_content
from casereach.alerts.evaluation import Changes, evaluate, evaluate_broadcast
from casereach.alerts.models import (
    CONDITIONAL,
    EVAL_DONE,
    EVAL_QUEUED,
    EVAL_RUNNING,
    Alert,
    Firing,
    ScheduleInstance,
)
from casereach.alerts.recipients import broadcast_contacts, check_recipients
from casereach.alerts.replywait_queries import check_reply_texts
from casereach.alerts.spec import AlertSpec, spec_of, validated_spec
from casereach.alerts.whatsapp_check import check_whatsapp_templates
from casereach.core import bulk, rows
from casereach.core.errors import BadRequest
from casereach.core.timeutil import now
from casereach.projects.models import Project

log = logging.getLogger(__name__)

INSTANCE_TABLE = ScheduleInstance._meta.db_table


# -- alert CRUD ----------------------------------------------------------------------------------


def do_create_alert(project: Project, data: Any) -> Alert:
    active = _pop_active(data)
    spec = validated_spec(data)
    check_recipients(project, spec)
    check_reply_texts(project, spec)
    check_content(project, spec)
    if active:
        check_whatsapp_templates(project, spec)
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
    check_reply_texts(alert.project, spec)
    check_content(alert.project, spec)
    if active:
        check_whatsapp_templates(alert.project, spec)
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
    check_content(alert.project, spec_of(alert))
    check_whatsapp_templates(alert.project, spec_of(alert))
    Alert.objects.filter(pk=alert.pk).update(
        active=True,
        eval_state=EVAL_QUEUED if runner else EVAL_RUNNING,
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
    Alert.objects.filter(pk=alert.pk).update(eval_state=EVAL_RUNNING, eval_processed=0)
    if spec.kind == CONDITIONAL:
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
            apply_changes(evaluate(alert, spec, views, zones=zones, revive=True))
            processed += len(chunk)
            Alert.objects.filter(pk=alert.pk).update(eval_processed=processed)
    Alert.objects.filter(pk=alert.pk).update(
        eval_state=EVAL_DONE, eval_processed=processed, eval_total=max(total, processed)
    )


def _activate_broadcast(alert: Alert, spec: AlertSpec) -> None:
    project = Project.objects.get(pk=alert.project_id)
    contact_ids = broadcast_contacts(project, spec)
    Alert.objects.filter(pk=alert.pk).update(eval_total=len(contact_ids))
    at = now()
    processed = 0
    for start in range(0, len(contact_ids), BATCH):
        chunk = contact_ids[start : start + BATCH]
        changes = evaluate_broadcast(alert, spec, project, chunk, at)
        with transaction.atomic():
            apply_changes(changes)
        processed += len(chunk)
        Alert.objects.filter(pk=alert.pk).update(eval_processed=processed)
    Alert.objects.filter(pk=alert.pk).update(eval_state=EVAL_DONE)


def on_cases_changed(project: Project, states: Sequence[Any]) -> None:
    """The case-change hook: re-evaluate the active rules of the changed cases' types, in the
    writing transaction. Closed or deleted cases lose their instances."""
    types = sorted({s.case_type for s in states})
    where, params = bulk.in_sql("case_type", types)
    # Most case writes meet no active rule: a raw probe first (the ORM's query building
    # cost more than the query on this path, which every case write takes).
    ids = rows.fetch_all(
        f"SELECT id FROM {Alert._meta.db_table} WHERE project_id = %s AND kind = %s "
        f"AND active = %s AND {where}",
        [project.pk, CONDITIONAL, True, *params],
    )
    alerts = list(Alert.objects.filter(pk__in=[i for (i,) in ids])) if ids else []
    gone = [s.case_id for s in states if s.closed or s.deleted]
    if gone:
        for chunk in bulk.in_chunks(gone):
            ScheduleInstance.objects.filter(
                project_id=project.pk, case_id__in=chunk, alert__kind=CONDITIONAL
            ).delete()
    if not alerts:
        return
    live = [s.case_id for s in states if not (s.closed or s.deleted)]
    if not live:
        return
    views = load_views(project.pk, live)
    for alert in alerts:
        spec = spec_of(alert)
        apply_changes(evaluate(alert, spec, [v for v in views if v.case_type == alert.case_type]))


# -- schedule instances --------------------------------------------------------------------------


def do_evaluate(alert: Alert, spec: AlertSpec, views: Sequence[Any]) -> None:
    """Bring the alert's instances for these cases in line with its rule (a case or zone
    change)."""
    apply_changes(evaluate(alert, spec, views))


def apply_changes(changes: Changes) -> None:
    """An evaluation's result: removed instances deleted, new ones inserted, changed ones
    updated."""
    for chunk in bulk.in_chunks(changes.remove):
        ScheduleInstance.objects.filter(pk__in=chunk).delete()
    insert_instances(changes.create)
    write_changes(changes.change)


# What a recomputation changes in an instance (``evaluation.refresh_instance``).
RECOMPUTED = (
    "start",
    "next_due",
    "active",
    "time_zone",
    "start_value",
    "time_value",
    "reset_value",
    "stop_value",
    "updated_on",
)


def write_changes(change: Sequence[ScheduleInstance]) -> None:
    """Recomputed instances, one bulk statement."""
    if change:
        rows.update(ScheduleInstance, change, fields=RECOMPUTED)


def insert_instances(new: Sequence[Sequence[Any]]) -> None:
    """New instances (``evaluation.instance_row``) in one statement per batch; one that
    exists already is left alone."""
    rows.insert_rows(
        ScheduleInstance, new, skip_conflicts=("alert_id", "alert_version", "recipient_key")
    )


class Advanced(Protocol):
    """An instance the scheduler moved on (``scheduler.Claimed``)."""

    @property
    def pk(self) -> int: ...
    @property
    def next_due(self) -> dt.datetime | None: ...
    @property
    def active(self) -> bool: ...
    @property
    def period(self) -> int: ...
    @property
    def event(self) -> int: ...
    @property
    def updated_on(self) -> dt.datetime | None: ...


# What firing an instance moves on (``scheduler._advance``).
ADVANCED = ("next_due", "active", "period", "event", "updated_on")


def save_advanced(instances: Sequence[Advanced]) -> None:
    """Fired (or stale) instances moved to their next occurrence, one bulk statement."""
    rows.update(ScheduleInstance, instances, fields=ADVANCED)


class FiringDraft(rows.Draft):
    model = Firing


def record_firings(firings: Sequence[FiringDraft]) -> None:
    """The batch's firings, one batch INSERT. The unique key is the last guard: a firing
    recorded twice fails the whole batch."""
    rows.insert(firings)  # writes: alerts.Firing
