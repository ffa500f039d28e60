"""The gateway part of a contact's profile: which gateway its SMS would use and why."""

from __future__ import annotations

from typing import Any

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import find_gateway, route, visible_gateways
from casereach.projects.models import Project


def gateway_profile_hook(project: Project, contact: Contact, profile: dict[str, Any]) -> None:
    entry = (
        PhoneEntry.objects.filter(contact=contact).order_by(*send_order()).first()
        if contact.active
        else None
    )
    override = entry.gateway if entry else contact.gateway_requested
    chosen = route(project, entry.number if entry else contact.phone_number or "", override)
    if chosen.gateway is not None:
        gateway: dict[str, Any] = {
            "name": chosen.gateway.name,
            "source": chosen.source,
            "status": "ok",
        }
    elif chosen.error_code == "GATEWAY_NOT_FOUND":
        # Its warning is decided with every other one, by contacts.queries.contact_warnings.
        gateway = {"name": chosen.requested, "source": "contact", "status": "unknown_gateway"}
    else:
        gateway = {"name": None, "source": "none", "status": "no_gateway"}
    profile["gateway"] = gateway


def unknown_gateways_hook(project: Project, names: set[str]) -> set[str]:
    known = set(visible_gateways(project).filter(is_active=True).values_list("name_key", flat=True))
    return {n for n in names if n.strip().lower() not in known}


__all__ = ["GatewayConfig", "find_gateway", "gateway_profile_hook", "unknown_gateways_hook"]
