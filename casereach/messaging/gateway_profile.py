"""The gateway part of a contact's profile, plugged into ``contacts.queries`` from messaging
(the first app that knows both contacts and gateways): the contact's phone entry gives the
number and the gateway it asks for, ``gateways.profile`` decides the rest."""

from __future__ import annotations

from typing import Any

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.gateways.profile import gateway_choice, unknown_gateways
from casereach.projects.models import Project


def gateway_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    entry = (
        PhoneEntry.objects.filter(contact=contact).order_by(*send_order()).first()
        if contact.active
        else None
    )
    override = entry.gateway if entry else contact.gateway_requested
    number = entry.number if entry else contact.phone_number or ""
    profile["gateway"] = gateway_choice(project, number, override)


def unknown_gateways_hook(project: Project, names: set[str]) -> set[str]:
    return unknown_gateways(project, names)
