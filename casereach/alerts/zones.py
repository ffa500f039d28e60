"""Schedules follow their recipients' current time zone (SPEC 5).

Contacts report the contacts whose effective zone a sync changed (a case's or a worker's own
zone, or the project's for contacts without one); this moves every active schedule whose times
follow one of them. It writes through the alerts actions (``do_evaluate``, ``write_changes``).
"""

from __future__ import annotations

from collections.abc import Sequence

from casereach.alerts.actions import do_evaluate, write_changes
from casereach.alerts.caseviews import contact_zones, load_views
from casereach.alerts.evaluation import plan_for, refresh_instance
from casereach.alerts.models import BROADCAST, Alert, ScheduleInstance
from casereach.alerts.recipients import sole_recipient_rule
from casereach.alerts.spec import spec_of
from casereach.cases.models import Case, CaseIndex
from casereach.core import bulk
from casereach.core.timeutil import now
from casereach.projects.models import Project


def on_zones_changed(project_id: int, contact_ids: Sequence[str]) -> None:
    """The zone-change hook (inside the contact write): every active schedule whose times
    follow one of these contacts moves to the contact's new zone, as a conditional alert's
    does when its case changes (``refresh_instance``: recomputed after the last occurrence fired, so
    nothing is sent twice): broadcasts to the contacts, and conditional alerts whose times
    follow the cases themselves or their owner or parent."""
    alerts = list(Alert.objects.filter(project_id=project_id, active=True))
    if not alerts:
        return
    project = Project.objects.get(pk=project_id)
    at = now()
    zones: dict[str, str] | None = None
    for alert in alerts:
        spec = spec_of(alert)
        if alert.kind == BROADCAST:
            mine = ScheduleInstance.objects.filter(
                alert=alert, alert_version=alert.version, active=True
            )
            instances = [
                i
                for chunk in bulk.in_chunks(list(contact_ids))
                for i in mine.filter(recipient_key__in=chunk)
            ]
            if not instances:
                continue
            if zones is None:
                zones = contact_zones(contact_ids, project.time_zone)
            change: list[ScheduleInstance] = []
            for inst in instances:
                zone = zones[inst.recipient_key]
                plan = plan_for(spec, None, zone, at, f"{alert.pk}:{inst.recipient_key}")
                if plan is not None:
                    refresh_instance(alert, spec, inst, plan, zone, at, project.time_zone, change)
            write_changes(change)
            continue
        rule = sole_recipient_rule(spec)
        if rule is not None and rule.type not in ("owner", "parent"):
            continue  # the user named in a property: followed from the case's next change
        cases = Case.objects.filter(
            project_id=project_id, case_type=alert.case_type, closed=False, deleted=False
        )
        case_ids: list[str] = []
        for chunk in bulk.in_chunks(list(contact_ids)):
            if rule is None:  # the case's own zone (also when no case changed: a new
                found = cases.filter(case_id__in=chunk)  # project zone re-derives contacts)
            elif rule.type == "owner":
                found = cases.filter(owner_id__in=chunk)
            else:
                children = CaseIndex.objects.filter(
                    project_id=project_id, name="parent", referenced_id__in=chunk
                ).values("case_id")
                found = cases.filter(case_id__in=children)
            case_ids.extend(found.values_list("case_id", flat=True))
        if case_ids:
            do_evaluate(alert, spec, load_views(project_id, case_ids))
