"""The alerts part of a contact's profile: its next few scheduled sends, and a warning for
each alert that sends at 12:00 because the case property it reads its time from holds none.

The same ``alert_time_default`` warnings go into the data-quality report
(``time_default_warnings``, registered as a contacts data-quality hook), so every contact the
profile warns about is in the report with that code.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from casereach.alerts.compose import time_default
from casereach.alerts.models import Alert, ScheduleInstance
from casereach.alerts.queries import upcoming
from casereach.alerts.spec import spec_of
from casereach.contacts.models import Contact
from casereach.core import bulk
from casereach.projects.models import Project

PROFILE_UPCOMING = 3
TIME_DEFAULT_WARNING = (
    "Alert {name!r} reads its send time from a case property that holds no time (H:MM or "
    "HH:MM): it sends at 12:00 local time."
)
IN_CHUNK = 900


def _warning(name: str) -> dict[str, str]:
    return {"code": "alert_time_default", "message": TIME_DEFAULT_WARNING.format(name=name)}


def time_default_warnings(
    project: Project, contact_ids: Collection[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """``alert_time_default`` per contact id: the live instances (of the alert's current
    version) of active alerts that read their time from a case property, whose value is no
    time, for the contact each sends to (a broadcast's recipient, or the case itself for an
    alert to ``self``). A few queries whatever the project's size; ``contact_ids`` narrows."""
    alerts: dict[int, Alert] = {}
    for alert in Alert.objects.filter(project=project, active=True).order_by("pk"):
        spec = spec_of(alert)
        to_self = alert.kind == "broadcast" or any(r.type == "self" for r in spec.recipients)
        if to_self and time_default(spec, ""):  # true only when it reads a time property
            alerts[alert.pk] = alert
    if not alerts:
        return {}
    live = ScheduleInstance.objects.filter(
        project=project, active=True, next_due__isnull=False, alert_id__in=list(alerts)
    )
    chunks = [live] if contact_ids is None else []
    for chunk in bulk.chunks(sorted(set(contact_ids or ())), IN_CHUNK):
        chunks.append(live.filter(contact_id__in=chunk))
    found: dict[str, list[dict[str, str]]] = {}
    for qs in chunks:
        rows = qs.values_list("alert_id", "alert_version", "contact_id", "time_value")
        for alert_id, version, contact_id, time_value in rows.order_by("alert_id").iterator():
            alert = alerts[alert_id]
            if not contact_id or version != alert.version:
                continue
            if time_default(spec_of(alert), time_value):
                warned = found.setdefault(contact_id, [])
                if all(w["message"] != _warning(alert.name)["message"] for w in warned):
                    warned.append(_warning(alert.name))
    return found


def data_quality_hook(project: Project) -> dict[str, list[dict[str, str]]]:
    return time_default_warnings(project)


def upcoming_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    rows = upcoming(project, contact.contact_id, PROFILE_UPCOMING)
    profile["upcoming"] = rows
    warnings = profile.setdefault("warnings", [])
    warned: set[str] = set()
    for row in rows:
        if row.get("warning") == "alert_time_default" and row["alert_name"] not in warned:
            warned.add(row["alert_name"])
            warnings.append(_warning(row["alert_name"]))
    for w in time_default_warnings(project, [contact.contact_id]).get(contact.contact_id, []):
        if w not in warnings:
            warnings.append(w)
