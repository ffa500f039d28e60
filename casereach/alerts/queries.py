"""Reading alerts: the dry run and a contact's upcoming sends.

Both use the scheduler's own computation — the same occurrence arithmetic, recipient
resolution and message building (without writing anything) — so what they predict is what
the scheduler will do.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from casereach.alerts.actions import (
    BATCH,
    Plan,
    _time_property,
    broadcast_contacts,
    load_open_views,
    load_views,
    open_case_ids,
    plan_for,
    recipient_zones,
    spec_of,
    stop_instant,
)
from casereach.alerts.criteria import CaseView, matching
from casereach.alerts.engine import Occurrence, occurrences_after, parse_time_value
from casereach.alerts.models import Alert, ScheduleInstance
from casereach.alerts.scheduler import CONTACT_FIELDS, Claimed, Target, _targets, message_for
from casereach.alerts.spec import AlertSpec, TimedSchedule
from casereach.alerts.timing import skipped_months
from casereach.cases.models import Case, CaseIndex
from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.core import bulk
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.messaging.errors import describe
from casereach.messaging.presend import PresendContext, check
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings
from casereach.workers.models import MobileWorker

MAX_UNREACHABLE = 1000
MAX_PER_RECIPIENT = 400  # occurrences per recipient in a dry run (a minutely alert, say)


def _occurrences(
    alert: Alert,
    spec: AlertSpec,
    key: str,
    plan: Plan,
    zone: str,
    after: dt.datetime,
    until: dt.datetime,
    project_zone: str,
) -> list[Occurrence]:
    found = occurrences_after(
        spec,
        plan.start,
        zone,
        after=after,
        time_value=plan.time_value or None,
        key=f"{alert.pk}:{key}",
        limit=MAX_PER_RECIPIENT,
        until=until,
    )
    stop = stop_instant(spec, plan.stop_value, project_zone)
    return [o for o in found if stop is None or o.due < stop]


def dry_run(alert: Alert, days: int) -> dict[str, Any]:
    """What the alert would send over the next ``days`` days if it were activated now."""
    project = Project.objects.get(pk=alert.project_id)
    settings = effective_settings(project.settings)
    spec = spec_of(alert)
    at = now()
    until = at + dt.timedelta(days=days)
    project_zone = ZoneInfo(project.time_zone)
    per_day: Counter[str] = Counter()
    reached: set[str] = set()
    unreachable: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    candidates = 0

    def consider(keys: Sequence[str], views: dict[str, CaseView], broadcast: bool) -> None:
        nonlocal candidates
        zones = dict(
            Contact.objects.filter(bulk.is_in("contact_id", list(keys))).values_list(
                "contact_id", "tz_effective"
            )
        )
        own = {k: zones.get(k) or project.time_zone for k in keys}
        # As activation will: a sole owner, parent or named user's zone, else the case's.
        zones = own | recipient_zones(project, spec, [views[k] for k in keys if k in views], own)
        fakes: list[Claimed] = []
        occ: dict[int, list[Occurrence]] = {}
        for n, key in enumerate(keys):
            view = views.get(key)
            zone = zones.get(key) or project.time_zone
            plan = plan_for(spec, view, zone, at, f"{alert.pk}:{key}")
            if plan is None:
                reasons["no_start_date"] += 1
                _note(
                    unreachable, key, None, "no_start_date", "the start-date property holds no date"
                )
                continue
            fake = Claimed(
                time_value=plan.time_value,
                pk=n + 1,
                alert_id=alert.pk,
                alert_version=alert.version,
                project_id=project.pk,
                recipient_key=key,
                case_id=None if broadcast and view is None else key,
                contact_id=key,
                time_zone=zone,
                start=plan.start,
            )
            fakes.append(fake)
            # From this very instant: an immediate send, or an alert schedule's first event
            # after a wait of 0, is due now and belongs to the dry run.
            since = at - ONE_MICROSECOND
            occ[n + 1] = _occurrences(alert, spec, key, plan, zone, since, until, project.time_zone)
        candidates += len(fakes)
        if not fakes:
            return
        targets = _targets(project, fakes, {alert.pk: alert}, views)
        contact_ids = sorted(
            {str(t.contact["contact_id"]) for ts in targets.values() for t in ts if t.contact}
        )
        phones: dict[str, str] = {}
        warnings: dict[str, list[Any]] = {}
        for chunk in bulk.in_chunks(contact_ids):
            for cid, number in (
                PhoneEntry.objects.filter(bulk.is_in("contact_id", chunk))
                .order_by(*send_order(last_wins=True))
                .values_list("contact_id", "number")
            ):
                phones[cid] = number
            warnings.update(
                Contact.objects.filter(bulk.is_in("contact_id", chunk)).values_list(
                    "contact_id", "warnings"
                )
            )
        owner_ids = sorted({v.owner_id for v in views.values() if v.owner_id})
        names = (
            dict(
                Contact.objects.filter(bulk.is_in("contact_id", owner_ids)).values_list(
                    "contact_id", "name"
                )
            )
            if owner_ids
            else {}
        )
        built = [
            (fake, target, message_for(project, settings, spec, view, target, names, phones, at))
            for fake in fakes
            for view in [views.get(fake.case_id or "")]
            for target in targets.get(fake.pk, [])
        ]
        errors = send_errors(project, [msg for _, _, msg in built], at)
        for (fake, target, _), error in zip(built, errors, strict=True):
            who = target.contact["contact_id"] if target.contact else target.email or None
            name = target.contact["name"] if target.contact else ""
            if error is not None:
                reasons[error] += 1
                _note(unreachable, who, name, error, _explain(error), fake.recipient_key)
                continue
            codes = {w.get("code") for w in warnings.get(str(who), []) if isinstance(w, dict)}
            if "unknown_time_zone" in codes:
                _note(
                    unreachable,
                    who,
                    name,
                    "time_zone_fallback",
                    "reached, but at the project's time zone: the contact's zone is unknown",
                    fake.recipient_key,
                    reached=True,
                )
            if time_default(spec, fake.time_value):
                _note(
                    unreachable,
                    who,
                    name,
                    "time_property_default",
                    TIME_DEFAULT_TEXT.format(prop=_time_property(spec)),
                    fake.recipient_key,
                    reached=True,
                )
            reached.add(str(who))
            for o in occ.get(fake.pk, []):
                per_day[o.due.astimezone(project_zone).date().isoformat()] += 1

    if spec.kind == "conditional":
        pks = open_case_ids(project.pk, spec.case_type or "")
        today = at.astimezone(project_zone).date()
        for start in range(0, len(pks), BATCH):
            views, _ = load_open_views(pks[start : start + BATCH])
            ok = matching(spec.criteria, views, today)
            hits = [v for v, yes in zip(views, ok, strict=True) if yes]
            consider([v.case_id for v in hits], {v.case_id: v for v in hits}, False)
    else:
        keys = broadcast_contacts(project, spec)
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            case_keys = list(
                Contact.objects.filter(
                    bulk.is_in("contact_id", chunk), contact_type="case"
                ).values_list("contact_id", flat=True)
            )
            by_id = {v.case_id: v for v in load_views(project.pk, case_keys)}
            consider(chunk, by_id, True)
    start_day = at.astimezone(project_zone).date()
    days_list = [
        {"date": (start_day + dt.timedelta(days=d)).isoformat(), "messages": 0}
        for d in range(days + 1)
    ]
    for entry in days_list:
        entry["messages"] = per_day.get(str(entry["date"]), 0)
    notes = []
    sched = spec.schedule
    if isinstance(sched, TimedSchedule) and sched.repeat.unit == "months":
        from casereach.alerts.engine import recurrence

        base = sched.start.date or start_day
        for month in skipped_months(recurrence(sched.repeat), base, until.date()):
            if month >= start_day.replace(day=1):
                notes.append(
                    f"{month.strftime('%Y-%m')} has no day {sched.repeat.day_of_month}: "
                    "no message that month"
                )
    return {
        "alert_id": alert.pk,
        "days": days,
        "from": at.isoformat(),
        "until": until.isoformat(),
        "time_zone": project.time_zone,
        "recipients": candidates,
        "contacts": len(reached),
        "messages": sum(per_day.values()),
        "per_day": days_list,
        "unreachable_count": sum(reasons.values()),
        "unreachable_by_reason": dict(sorted(reasons.items())),
        "unreachable": unreachable,
        "notes": notes,
    }


REASONS = {
    "NO_PHONE_NUMBER": "has no usable phone number",
    "NO_EMAIL_ADDRESS": "has no email address",
    "ERROR_INVALID_EMAIL_ADDRESS": "the email address is not valid",
    "NO_MESSAGE": "no translation in the contact's language (and the fallback finds none)",
    "NO_RECIPIENT": "the recipient rule finds nobody (no owner, parent, child or user)",
    "CONTACT_IS_INACTIVE": "the contact is closed, deleted or deactivated",
    "PHONE_NUMBER_OPTED_OUT": "the number has opted out",
}


def send_errors(project: Project, msgs: Sequence[Any], at: dt.datetime) -> list[str | None]:
    """Why each message built by ``message_for`` would fail, or None: its own error (no
    number, no translation, ...), else the dispatcher's pre-send checks (``presend.check``,
    the very function sending runs: opted out, inactive contact, gateway not found, no
    suitable gateway, ...). A postponement (a window, the daily limit) is not a failure."""
    rows = [
        {
            "project_id": project.pk,
            "contact_id": msg.contact_id,
            "channel": msg.channel,
            "phone_number": msg.phone_number,
            "allow_opted_out": False,
            "gateway_source": "",
            "gateway_id": None,
            "created_on": at,
        }
        for msg in msgs
    ]
    pending = [row for row, msg in zip(rows, msgs, strict=True) if msg.error_code is None]
    ctx = PresendContext.load(pending) if pending else None
    out: list[str | None] = []
    for row, msg in zip(rows, msgs, strict=True):
        if msg.error_code is not None or ctx is None:
            out.append(msg.error_code)
            continue
        verdict = check(ctx, row, at)
        out.append(verdict.error_code if verdict.action == "fail" else None)
    return out


TIME_DEFAULT_TEXT = (
    "reached at 12:00 local time: the case property {prop} holds no time (H:MM or HH:MM)"
)


def time_default(spec: AlertSpec, time_value: str) -> bool:
    """Whether the alert reads its time from a case property that holds none, so that it
    sends at 12:00 local (CommCare's default)."""
    return _time_property(spec) is not None and parse_time_value(time_value) is None


def _explain(code: str) -> str:
    return REASONS.get(code, code)


def _note(
    out: list[dict[str, Any]],
    who: str | None,
    name: str | None,
    reason: str,
    text: str,
    case_id: str | None = None,
    *,
    reached: bool = False,
) -> None:
    if len(out) >= MAX_UNREACHABLE:
        return
    out.append(
        {
            "contact_id": who,
            "name": name or None,
            "case_id": case_id,
            "reason": reason,
            "description": text,
            "gets_messages": reached,
        }
    )


def _contact_row(project: Project, contact_id: str) -> dict[str, Any] | None:
    """The contact's fields that building a message reads (the scheduler's CONTACT_FIELDS)."""
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
    phones = {}
    first = PhoneEntry.objects.filter(contact_id=case_id).order_by(*send_order()).first()
    if first is not None:
        phones[case_id] = first.number
    names: dict[str, str] = {}
    if view is not None and view.owner_id:
        names = dict(
            Contact.objects.filter(project=project, contact_id=view.owner_id).values_list(
                "contact_id", "name"
            )
        )
    msg = message_for(
        project,
        effective_settings(project.settings),
        spec_of(alert),
        view,
        Target(contact=contact),
        names,
        phones,
        now(),
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
    for alert in Alert.objects.filter(project=project, kind="conditional", active=True):
        for rule in spec_of(alert).recipients:
            rules.setdefault(rule.type, []).append(alert.pk)
            if rule.type == "user_property" and rule.property:
                named.setdefault(rule.property, []).append(alert.pk)
    broadcasts = Alert.objects.filter(project=project, kind="broadcast").values("pk")
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
    settings = effective_settings(project.settings)
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
    phones = {}
    first = PhoneEntry.objects.filter(contact_id=contact_id).order_by(*send_order()).first()
    if first is not None:
        phones[contact_id] = first.number
    owner_ids = sorted({v.owner_id for v in views.values() if v.owner_id})
    names = dict(Contact.objects.filter(contact_id__in=owner_ids).values_list("contact_id", "name"))
    rows: list[dict[str, Any]] = []
    for inst in instances:
        alert = inst.alert
        spec = spec_of(alert)
        if not alert.active or alert.version != inst.alert_version or inst.next_due is None:
            continue
        plan = Plan(
            inst.start, inst.start_value, inst.time_value, inst.reset_value, inst.stop_value
        )
        found = occurrences_after(
            spec,
            plan.start,
            inst.time_zone,
            after=inst.next_due - dt.timedelta(microseconds=1),
            time_value=inst.time_value or None,
            key=f"{alert.pk}:{inst.recipient_key}",
            limit=limit,
        )
        stop = stop_instant(spec, inst.stop_value, project.time_zone)
        view = views.get(inst.case_id or "")
        msg = message_for(
            project, settings, spec, view, Target(contact=dict(contact)), names, phones, now()
        )
        error = send_errors(project, [msg], now())[0]
        zone = ZoneInfo(inst.time_zone)
        default_time = time_default(spec, inst.time_value)
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
                    "error_code": error,
                    "warning": "alert_time_default" if default_time else None,
                    "_sort": occ.due,
                }
            )
    rows.sort(key=lambda r: (r["_sort"], r["alert_id"]))
    for r in rows:
        del r["_sort"]
    return rows[:limit]
