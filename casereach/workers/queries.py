"""Read helpers for mobile workers."""

from __future__ import annotations

from typing import Any

from casereach.contacts.models import Contact
from casereach.projects.models import Project
from casereach.workers.models import MobileWorker


def get_worker(project: Project, worker_id: str) -> MobileWorker | None:
    return MobileWorker.objects.filter(project=project, pk=worker_id).first()


def worker_phone_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    """A mobile worker's ``phone.raw`` is the number SMS go to as it was given (its two-way
    number when it has one, otherwise its first), like ``phone.number``: the contact row
    keeps only the first one's."""
    if contact.contact_type != Contact.WORKER:
        return
    phone = profile.get("phone") or {}
    used = phone.get("number")
    position = next(
        (row["position"] for row in profile.get("phones", []) if row["number"] == used), None
    )
    if position is None:
        return
    numbers = (
        MobileWorker.objects.filter(project=project, pk=contact.contact_id)
        .values_list("phone_numbers", flat=True)
        .first()
    )
    if isinstance(numbers, list) and 0 <= position < len(numbers):
        phone["raw"] = str(numbers[position])[:255]
