"""The opt-out part of a contact's profile, in the viewing project's scope."""

from __future__ import annotations

from typing import Any

from casereach.contacts.models import Contact, PhoneEntry
from casereach.gateways.queries import route
from casereach.messaging.optouts import scopes_of, serialize_scope
from casereach.projects.models import Project


def opt_out_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    """``opted_out``: whether an SMS from this project would be refused (opted out in the
    project's scope, or for the gateway it would use); ``opt_outs``: the scopes that bind the
    project's sends — its own and those of gateways it may use — never another project's."""
    number = contact.phone_number
    rows = scopes_of(project, number) if number else []
    opted = False
    for row in rows:
        if not row.opted_out:
            continue
        if row.project_id is not None:
            opted = True
        elif not opted:
            entry = PhoneEntry.objects.filter(contact=contact).order_by("position", "id").first()
            override = entry.gateway if entry else contact.gateway_requested
            chosen = route(project, number or "", override)
            opted = chosen.gateway is not None and chosen.gateway.pk == row.gateway_id
    profile["opted_out"] = opted
    profile["opt_outs"] = [serialize_scope(r) for r in rows]
