"""The alerts part of a contact's profile: its next few scheduled sends, and a warning for
each alert that sends at 12:00 because the case property it reads its time from holds none."""

from __future__ import annotations

from typing import Any

from casereach.alerts.queries import upcoming
from casereach.contacts.models import Contact
from casereach.projects.models import Project

PROFILE_UPCOMING = 3
TIME_DEFAULT_WARNING = (
    "Alert {name!r} reads its send time from a case property that holds no time (H:MM or "
    "HH:MM): it sends at 12:00 local time."
)


def upcoming_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    rows = upcoming(project, contact.contact_id, PROFILE_UPCOMING)
    profile["upcoming"] = rows
    warned: set[int] = set()
    for row in rows:
        if row.get("warning") == "alert_time_default" and row["alert_id"] not in warned:
            warned.add(row["alert_id"])
            profile.setdefault("warnings", []).append(
                {
                    "code": "alert_time_default",
                    "message": TIME_DEFAULT_WARNING.format(name=row["alert_name"]),
                }
            )
