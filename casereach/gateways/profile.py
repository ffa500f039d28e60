"""The gateway part of a contact's profile: which gateway its SMS would use and why.

Gateways does not know contacts (it depends only on core and projects): the caller passes the
number SMS would go to and the gateway it asks for. ``messaging.gateway_profile`` reads those
from the contact and plugs these into ``contacts.queries``' profile hooks.
"""

from __future__ import annotations

from typing import Any

from casereach.gateways.queries import route, visible_gateways
from casereach.projects.models import Project


def gateway_choice(project: Project, number: str, override: str) -> dict[str, Any]:
    """The profile's ``gateway``: the gateway an SMS to ``number`` would use, asking for
    ``override`` (a gateway name, or empty to route), and why."""
    chosen = route(project, number, override)
    if chosen.gateway is not None:
        return {"name": chosen.gateway.name, "source": chosen.source, "status": "ok"}
    if chosen.error_code == "GATEWAY_NOT_FOUND":
        # Its warning is decided with every other one, by contacts.queries.contact_warnings.
        return {"name": chosen.requested, "source": "contact", "status": "unknown_gateway"}
    return {"name": None, "source": "none", "status": "no_gateway"}


def unknown_gateways(project: Project, names: set[str]) -> set[str]:
    """Which of ``names`` name no active gateway available to the project."""
    known = set(visible_gateways(project).filter(is_active=True).values_list("name_key", flat=True))
    return {n for n in names if n.strip().lower() not in known}
