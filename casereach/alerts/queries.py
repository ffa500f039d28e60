"""Reading alerts: one alert, the dry run (``alerts.dryrun``), a preview and a contact's
upcoming sends.

All use the scheduler's own computation — the same occurrence arithmetic, recipient
resolution (``recipients``) and message building (``compose``), without writing anything —
so what they predict is what the scheduler will do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from casereach.alerts.caseviews import contact_names, first_phones, load_views
from casereach.alerts.compose import message_for, send_errors, time_default
from casereach.alerts.engine import occurrences_after
from casereach.alerts.evaluation import stop_instant
from casereach.alerts.models import BROADCAST, CONDITIONAL, Alert, ScheduleInstance
from casereach.alerts.recipients import CONTACT_FIELDS, Addresses, Target
from casereach.alerts.spec import AlertSpec, spec_of
from casereach.cases.models import Case, CaseIndex
from casereach.contacts.models import Contact
from casereach.core.errors import NotFound
from casereach.core.timeutil import now
from casereach.messaging import chains
from casereach.messaging.errors import describe
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings
from casereach.workers.models import MobileWorker


def get_alert(project: Project, alert_id: int) -> Alert:
    alert = Alert.objects.filter(project=project, pk=alert_id).first()
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    return alert


def _contact_row(project: Project, contact_id: str) -> dict[str, Any] | None:
    """The contact's fields that building a message reads (``recipients.CONTACT_FIELDS``)."""
    row: dict[str, Any] | None = (
        Contact.objects.filter(project=project, contact_id=contact_id)
        .values(*CONTACT_FIELDS)
        .first()
    )
    return row


def preview(project: Project, alert: Alert, case_id: str) -> dict[str, Any] | None:
    """The alert's message for one case as the scheduler would build it now; None when the
    case has no contact in the project."""
    contact = _contact_row(project, case_id)
    if contact is None:
        return None
    views = load_views(project.pk, [case_id])
    view = views[0] if views else None
    reach = Addresses(
        phones=first_phones([case_id]),
        names=contact_names([view.owner_id] if view is not None and view.owner_id else []),
    )
    settings = effective_settings(project.settings)
    msg = message_for(
        project, settings, spec_of(alert), view, Target(contact=contact), reach, now()
    )
    error = send_errors(project, [msg], now())[0]
    info = describe(error) if error else None
    return {
        "name": contact["name"],
        "language": msg.language or None,
        "text": msg.text,
        "subject": getattr(msg, "subject", ""),
        "error_code": error,
        "error_description": info.description if info else "",
        "error_hint": info.hint if info else "",
        "segments": msg.segments,
        "encoding": msg.encoding,
    }


def _instances_reaching(project: Project, contact_id: str, limit: int) -> list[ScheduleInstance]:
    """The live instances whose sends reach the contact: its own (a broadcast to it, a
    conditional alert to the case itself), and those of cases it is the owner, the parent, a
    child of, or the user named in a property of, for alerts with that recipient rule.

    Each source contributes its ``limit`` instances due first: an instance's occurrences are
    never earlier than its next due time, so the contact's first ``limit`` sends are among
    them."""
    live = ScheduleInstance.objects.filter(
        project=project, active=True, next_due__isnull=False, alert__active=True
    ).select_related("alert")
    rules: dict[str, list[int]] = {}
    named: dict[str, list[int]] = {}  # user_property: property name → alert ids
    for alert in Alert.objects.filter(project=project, kind=CONDITIONAL, active=True):
        for rule in spec_of(alert).recipients:
            rules.setdefault(rule.type, []).append(alert.pk)
            if rule.type == "user_property" and rule.property:
                named.setdefault(rule.property, []).append(alert.pk)
    broadcasts = Alert.objects.filter(project=project, kind=BROADCAST).values("pk")
    sources = [
        live.filter(contact_id=contact_id, alert_id__in=broadcasts),
        live.filter(contact_id=contact_id, alert_id__in=rules.get("self", [])),
    ]
    open_cases = Case.objects.filter(project=project, closed=False, deleted=False)
    parent_links = CaseIndex.objects.filter(project=project, name="parent")
    if rules.get("owner"):
        owned = open_cases.filter(owner_id=contact_id).values("case_id")
        sources.append(live.filter(alert_id__in=rules["owner"], case_id__in=owned))
    if rules.get("parent"):
        children = parent_links.filter(referenced_id=contact_id).values("case_id")
        sources.append(live.filter(alert_id__in=rules["parent"], case_id__in=children))
    if rules.get("children"):
        parents = parent_links.filter(case_id=contact_id).values("referenced_id")
        sources.append(live.filter(alert_id__in=rules["children"], case_id__in=parents))
    if named:
        refs = [contact_id]
        username = (
            MobileWorker.objects.filter(project=project, id=contact_id)
            .values_list("username", flat=True)
            .first()
        )
        if username:
            refs += [username, username.split("@", 1)[0]]
        for prop, alert_ids in named.items():
            if "/" in prop:  # a parent's property: not looked up in reverse
                continue
            naming = open_cases.filter(**{f"properties__{prop}__in": refs}).values("case_id")
            sources.append(live.filter(alert_id__in=alert_ids, case_id__in=naming))
    found: dict[int, ScheduleInstance] = {}
    for qs in sources:
        for inst in qs.order_by("next_due", "id")[:limit]:
            found.setdefault(inst.pk, inst)
    return sorted(found.values(), key=lambda i: (i.next_due, i.pk))


def upcoming(project: Project, contact_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The contact's next scheduled sends, in time order (from its materialised instances)."""
    contact = _contact_row(project, contact_id)
    if contact is None:
        return []
    instances = _instances_reaching(project, contact_id, limit)
    if not instances:
        return []
    views = {
        v.case_id: v
        for v in load_views(project.pk, sorted({i.case_id for i in instances if i.case_id}))
    }
    reach = Addresses(
        phones=first_phones([contact_id]),
        names=contact_names(v.owner_id for v in views.values() if v.owner_id),
    )
    settings = effective_settings(project.settings)
    rows: list[dict[str, Any]] = []
    for inst in instances:
        alert = inst.alert
        if not alert.active or alert.version != inst.alert_version or inst.next_due is None:
            continue
        spec = spec_of(alert)
        view = views.get(inst.case_id or "")
        msg = message_for(
            project, settings, spec, view, Target(contact=dict(contact)), reach, now()
        )
        if not spec.content.is_survey:  # the channel its fallback chain would start on
            chains.plan_drafts(project, [msg])
        rows.extend(_sends(project, spec, inst, msg, limit))
    rows.sort(key=lambda r: (r["_sort"], r["alert_id"]))
    for r in rows:
        del r["_sort"]
    return rows[:limit]


def _sends(
    project: Project, spec: AlertSpec, inst: ScheduleInstance, msg: Any, limit: int
) -> list[dict[str, Any]]:
    """One instance's next ``limit`` sends (before its stop date), each with its message."""
    alert = inst.alert
    assert inst.next_due is not None
    found = occurrences_after(
        spec,
        inst.start,
        inst.time_zone,
        after=inst.next_due - dt.timedelta(microseconds=1),
        time_value=inst.time_value or None,
        key=f"{alert.pk}:{inst.recipient_key}",
        limit=limit,
    )
    stop = stop_instant(spec, inst.stop_value, project.time_zone)
    error = send_errors(project, [msg], now())[0]
    zone = ZoneInfo(inst.time_zone)
    default_time = time_default(spec, inst.time_value)
    rows: list[dict[str, Any]] = []
    for occ in found:
        if stop is not None and occ.due >= stop:
            break
        rows.append(
            {
                "alert_id": alert.pk,
                "alert_name": alert.name,
                "due_utc": occ.due.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                "due_local": occ.due.astimezone(zone).isoformat(),
                "time_zone": inst.time_zone,
                "language": msg.language or None,
                "text": msg.text if spec.channel == "sms" else msg.subject or msg.text,
                "channel": spec.channel,
                # The channel the contact would get first (its fallback chain's first
                # channel that reaches it, in a project with a channel order).
                "first_channel": msg.channel,
                "error_code": error,
                "warning": "alert_time_default" if default_time else None,
                "_sort": occ.due,
            }
        )
    return rows
