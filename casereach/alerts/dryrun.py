"""The dry run: what an alert would send over the next days if it were activated now (for
survey content: the survey starts, each counted where a message would be).

It plans every candidate recipient as activation would (``evaluation``), resolves their
recipients (``recipients``) and builds their messages (``compose``) as the scheduler would,
and asks the dispatcher's pre-send checks whether each would go — writing nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from casereach.alerts.caseviews import (
    BATCH,
    contact_warnings,
    contact_zones,
    load_open_views,
    load_views,
    open_case_ids,
)
from casereach.alerts.compose import TIME_DEFAULT_TEXT, message_for, send_errors, time_default
from casereach.alerts.content_hooks import describe_survey
from casereach.alerts.criteria import CaseView, matching
from casereach.alerts.engine import Occurrence, occurrences_after, recurrence
from casereach.alerts.evaluation import Plan, plan_for, stop_instant, time_property
from casereach.alerts.models import CONDITIONAL, Alert
from casereach.alerts.recipients import (
    Candidate,
    Target,
    addresses,
    broadcast_contacts,
    contact_ids,
    recipient_zones,
    targets_of,
)
from casereach.alerts.spec import AlertSpec, TimedSchedule, spec_of
from casereach.alerts.timing import skipped_months
from casereach.alerts.whatsapp_check import template_problems
from casereach.billing.queries import estimate, from_micros
from casereach.contacts.models import Contact
from casereach.core import bulk
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.messaging import chains
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

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


@dataclass
class DryRun:
    """A dry run under way: what it looks at and what it has counted so far."""

    alert: Alert
    spec: AlertSpec
    project: Project
    settings: ProjectSettings
    at: dt.datetime
    until: dt.datetime
    per_day: Counter[str] = field(default_factory=Counter)
    reached: set[str] = field(default_factory=set)
    unreachable: list[dict[str, Any]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    candidates: int = 0
    # The estimated cost of what it would send (micros of the project's currency) per day,
    # and how many messages no fee applies to.
    cost_per_day: Counter[str] = field(default_factory=Counter)
    unpriced: int = 0
    survey: dict[str, Any] | None = None  # survey content: the survey each recipient gets
    survey_problem: str | None = None  # why no survey can start (missing, inactive)
    # The channel each reached contact would get first → those contacts (fallback chains).
    first_channels: dict[str, set[str]] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.project.time_zone)

    def note(
        self,
        who: str | None,
        name: str | None,
        reason: str,
        text: str,
        case_id: str | None = None,
        *,
        reached: bool = False,
    ) -> None:
        """A recipient that gets nothing (counted by reason), or one reached with a caveat."""
        if not reached:
            self.reasons[reason] += 1
        _note(self.unreachable, who, name, reason, text, case_id, reached=reached)


def dry_run(alert: Alert, days: int) -> dict[str, Any]:
    """What the alert would send over the next ``days`` days if it were activated now."""
    project = Project.objects.get(pk=alert.project_id)
    at = now()
    run = DryRun(
        alert=alert,
        spec=spec_of(alert),
        project=project,
        settings=effective_settings(project.settings),
        at=at,
        until=at + dt.timedelta(days=days),
    )
    _survey(run)
    for keys, views in _candidates(run):
        _consider(run, keys, views)
    return _summary(run, days)


def _survey(run: DryRun) -> None:
    """Survey content: the survey (shown with the counts), and why none would start."""
    content = run.spec.content
    if not content.is_survey or content.survey_id is None:
        return
    run.survey = describe_survey(run.project, content.survey_id)
    if run.survey is None:
        run.survey = {"id": content.survey_id, "name": None, "active": False}
        run.survey_problem = "SURVEY_NOT_FOUND"
    elif not run.survey["active"]:
        run.survey_problem = "SURVEY_INACTIVE"


def _candidates(run: DryRun) -> Iterator[tuple[list[str], dict[str, CaseView]]]:
    """The candidate recipients in batches, with the case each one reads: the open cases of
    a conditional alert's type that match its criteria, or a broadcast's contacts."""
    spec, project = run.spec, run.project
    if spec.kind == CONDITIONAL:
        pks = open_case_ids(project.pk, spec.case_type or "")
        today = run.at.astimezone(run.zone).date()
        for start in range(0, len(pks), BATCH):
            views, _ = load_open_views(pks[start : start + BATCH])
            ok = matching(spec.criteria, views, today)
            hits = [v for v, yes in zip(views, ok, strict=True) if yes]
            yield [v.case_id for v in hits], {v.case_id: v for v in hits}
        return
    keys = broadcast_contacts(project, spec)
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        case_keys = list(
            Contact.objects.filter(
                bulk.is_in("contact_id", chunk), contact_type="case"
            ).values_list("contact_id", flat=True)
        )
        yield chunk, {v.case_id: v for v in load_views(project.pk, case_keys)}


def _consider(run: DryRun, keys: Sequence[str], views: dict[str, CaseView]) -> None:
    """One batch of candidates: planned as activation would, their messages built as the
    scheduler would, each counted as reached (per day) or unreachable (with the reason)."""
    alert, spec, project, at = run.alert, run.spec, run.project, run.at
    own = contact_zones(keys, project.time_zone)
    # As activation will: a sole owner, parent or named user's zone, else the case's.
    zones = own | recipient_zones(project, spec, [views[k] for k in keys if k in views], own)
    slots: list[Candidate] = []
    plans: list[Plan] = []
    occ: list[list[Occurrence]] = []
    for key in keys:
        zone = zones.get(key) or project.time_zone
        plan = plan_for(spec, views.get(key), zone, at, f"{alert.pk}:{key}")
        if plan is None:
            run.note(key, None, "no_start_date", "the start-date property holds no date")
            continue
        slots.append(Candidate(alert.pk, key, key if key in views else None))
        plans.append(plan)
        # From this very instant: an immediate send, or an alert schedule's first event
        # after a wait of 0, is due now and belongs to the dry run.
        since = at - ONE_MICROSECOND
        occ.append(_occurrences(alert, spec, key, plan, zone, since, run.until, project.time_zone))
    run.candidates += len(slots)
    if not slots:
        return
    targets = targets_of(project, {alert.pk: alert}, slots, views)
    reach = addresses(targets, views.values())
    warnings = contact_warnings(contact_ids(targets))
    built = [
        (n, target, message_for(project, run.settings, spec, view, target, reach, at))
        for n, slot in enumerate(slots)
        for view in [views.get(slot.case_id or "")]
        for target in targets[n]
    ]
    if not spec.content.is_survey:  # each message on its fallback chain's first channel
        chains.plan_drafts(project, [msg for _, _, msg in built])
    errors = send_errors(project, [msg for _, _, msg in built], at)
    estimate([msg for _, _, msg in built], {project.pk: project})  # at today's fees
    if run.survey_problem is not None:  # no session can start: every recipient says why
        errors = [e or run.survey_problem for e in errors]
    for (n, target, msg), error in zip(built, errors, strict=True):
        _tally(run, slots[n], plans[n], target, error, warnings, occ[n])
        if error is None:
            who = target.contact["contact_id"] if target.contact else target.email
            run.first_channels.setdefault(msg.channel, set()).add(str(who))
            _cost(run, msg.estimated_cost_micros, occ[n])


def _cost(run: DryRun, micros: int | None, occ: Sequence[Occurrence]) -> None:
    """Each message a recipient would get costs its estimate (today's fee for its gateway)."""
    if micros is None:
        run.unpriced += len(occ)
        return
    for o in occ:
        run.cost_per_day[o.due.astimezone(run.zone).date().isoformat()] += micros


def _tally(
    run: DryRun,
    slot: Candidate,
    plan: Plan,
    target: Target,
    error: str | None,
    warnings: Mapping[str, list[Any]],
    occ: Sequence[Occurrence],
) -> None:
    """Count one recipient's messages, or note why it gets none (or gets them with a caveat)."""
    who = target.contact["contact_id"] if target.contact else target.email or None
    name = target.contact["name"] if target.contact else ""
    key = slot.recipient_key
    if error is not None:
        run.note(who, name, error, _explain(error), key)
        return
    codes = {w.get("code") for w in warnings.get(str(who), []) if isinstance(w, dict)}
    if "unknown_time_zone" in codes:
        text = "reached, but at the project's time zone: the contact's zone is unknown"
        run.note(who, name, "time_zone_fallback", text, key, reached=True)
    if time_default(run.spec, plan.time_value):
        text = TIME_DEFAULT_TEXT.format(prop=time_property(run.spec))
        run.note(who, name, "time_property_default", text, key, reached=True)
    run.reached.add(str(who))
    for o in occ:
        run.per_day[o.due.astimezone(run.zone).date().isoformat()] += 1


def _summary(run: DryRun, days: int) -> dict[str, Any]:
    start_day = run.at.astimezone(run.zone).date()
    days_list = [
        {"date": (start_day + dt.timedelta(days=d)).isoformat(), "messages": 0}
        for d in range(days + 1)
    ]
    for entry in days_list:
        entry["messages"] = run.per_day.get(str(entry["date"]), 0)
        if run.survey is not None:
            entry["survey_starts"] = entry["messages"]
        entry["estimated_cost"] = from_micros(run.cost_per_day.get(str(entry["date"]), 0))
    out = {
        "alert_id": run.alert.pk,
        "days": days,
        "from": run.at.isoformat(),
        "until": run.until.isoformat(),
        "time_zone": run.project.time_zone,
        "recipients": run.candidates,
        "contacts": len(run.reached),
        "messages": sum(run.per_day.values()),
        "per_day": days_list,
        "unreachable_count": sum(run.reasons.values()),
        "unreachable_by_reason": dict(sorted(run.reasons.items())),
        "unreachable": run.unreachable,
        "notes": _month_notes(run.spec, start_day, run.until.date()),
        # What it would cost (docs/costs.md): today's fees, in the project's currency.
        "estimated_cost": {
            "currency": run.settings.currency,
            "total": from_micros(sum(run.cost_per_day.values())),
            "unpriced_messages": run.unpriced,
        },
    }
    # Survey content: a survey start is counted where a message alert counts a message.
    out["content"] = "message" if run.survey is None else "survey"
    out["survey"] = run.survey
    out["survey_starts"] = None if run.survey is None else out["messages"]
    # Reached contacts by the channel each would get first (a fallback chain's first
    # channel that reaches it; otherwise the alert's own channel).
    out["first_channel_contacts"] = {c: len(w) for c, w in sorted(run.first_channels.items())}
    # WhatsApp: a template that keeps the alert from being activated (``whatsapp_check``).
    out["whatsapp_template_problems"] = template_problems(run.project, run.spec)
    return out


def _month_notes(spec: AlertSpec, start_day: dt.date, until: dt.date) -> list[str]:
    """A monthly schedule on a day some months lack: a note for each such month."""
    notes = []
    sched = spec.schedule
    if isinstance(sched, TimedSchedule) and sched.repeat.unit == "months":
        base = sched.start.date or start_day
        for month in skipped_months(recurrence(sched.repeat), base, until):
            if month >= start_day.replace(day=1):
                notes.append(
                    f"{month.strftime('%Y-%m')} has no day {sched.repeat.day_of_month}: "
                    f"no {'survey start' if spec.content.is_survey else 'message'} that month"
                )
    return notes


REASONS = {
    "NO_PHONE_NUMBER": "has no usable phone number",
    "NO_EMAIL_ADDRESS": "has no email address",
    "ERROR_INVALID_EMAIL_ADDRESS": "the email address is not valid",
    "NO_MESSAGE": "no translation in the contact's language (and the fallback finds none)",
    "NO_RECIPIENT": "the recipient rule finds nobody (no owner, parent, child or user)",
    "CONTACT_IS_INACTIVE": "the contact is closed, deleted or deactivated",
    "PHONE_NUMBER_OPTED_OUT": "the number has opted out",
    "SURVEY_NOT_FOUND": "the survey no longer exists: no survey would start",
    "SURVEY_INACTIVE": "the survey is inactive: no survey would start",
    "NO_SUITABLE_GATEWAY": "no gateway would take the number",
}


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
