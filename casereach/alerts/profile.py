"""The alerts part of a contact's profile: its next few scheduled sends."""

from __future__ import annotations

from typing import Any

from casereach.alerts.queries import upcoming
from casereach.contacts.models import Contact
from casereach.projects.models import Project

PROFILE_UPCOMING = 3


def upcoming_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    profile["upcoming"] = upcoming(project, contact.contact_id, PROFILE_UPCOMING)
