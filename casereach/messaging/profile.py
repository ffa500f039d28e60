"""The opt-out part of a contact's profile."""

from __future__ import annotations

from typing import Any

from casereach.contacts.models import Contact
from casereach.messaging.models import OptOut
from casereach.projects.models import Project


def opt_out_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    number = contact.phone_number
    profile["opted_out"] = bool(
        number and OptOut.objects.filter(phone_number=number, opted_out=True).exists()
    )
