"""What the gateways API and the admin pages show of gateways, offers, types and routes: the
response schemas (OpenAPI only: the views answer JsonResponse, which ninja passes through
untouched, so these never filter a field out; every one allows more fields) and the functions
that make those objects."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from pydantic import Field

from casereach.core.crypto import decrypt_json
from casereach.core.openapi import OpenSchema
from casereach.core.requests import absolute_url
from casereach.core.timeutil import iso
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig, GatewayShare, GlobalRoutes
from casereach.gateways.queries import global_route_uses
from casereach.gateways.registry import gateway_class
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings


class ShareOut(OpenSchema):
    project: str
    accepted: bool
    accepted_on: str | None = Field(json_schema_extra={"format": "date-time"})


class GatewayOut(OpenSchema):
    """A gateway; config, secrets_set, shares and the callback URLs only for the project's own."""

    id: int
    name: str
    type: str
    scope: str = Field(json_schema_extra={"enum": ["project", "shared", "global"]})
    project: str | None
    shared_with: list[str] = Field(
        description="projects it is offered to (owner only); each must accept, see shares"
    )
    rate_limit_per_s: float | None
    rate_limit_per_minute: int | None = Field(
        None, description="segments per minute, sent at once; the rest wait for the next minute"
    )
    rate_limit_per_sender: bool = Field(
        False, description="apply rate_limit_per_minute to each sender number"
    )
    sender_numbers: list[str]
    is_active: bool
    shares: list[ShareOut] | None = Field(None, description="owner only: each offer's state")
    config: dict[str, Any] | None = None
    secrets_set: list[str] | None = Field(
        None, description="names of the secret fields that are set (never their values)"
    )
    inbound_url: str | None = Field(None, description="null when the type takes no webhook")
    status_url: str | None = Field(None, description="null when the type takes no webhook")


class GatewayList(OpenSchema):
    objects: list[GatewayOut]


class GatewayDeleted(OpenSchema):
    id: int
    deleted: bool


class OfferOut(OpenSchema):
    """A gateway another project offers to this one: only what it takes to decide."""

    id: int
    name: str
    type: str
    project: str = Field(description="the project that owns and offers it")
    offered_on: str | None = Field(json_schema_extra={"format": "date-time"})


class OfferList(OpenSchema):
    objects: list[OfferOut]


class Declined(OpenSchema):
    id: int
    declined: bool


class GatewayTypeOut(OpenSchema):
    type: str
    label: str
    channel: str = Field(json_schema_extra={"enum": ["sms", "email", "whatsapp"]})
    secret_fields: list[str]
    config_schema: dict[str, Any] = Field(description="JSON Schema of the type's config")


class GatewayTypeList(OpenSchema):
    objects: list[GatewayTypeOut]


class PrefixRoute(OpenSchema):
    prefix: str
    gateway: str


class RoutesOut(OpenSchema):
    default_gateway: str | None
    prefixes: list[PrefixRoute]


def gateway_urls(request: HttpRequest, gw: GatewayConfig) -> dict[str, str | None]:
    """What the admin pastes into the provider's console: the address the provider must call,
    the same one signatures are checked against. ``None`` for a webhook the type does not
    take (SMPP receives on its session; email takes none)."""
    base = absolute_url(request, f"/gateways/{gw.type}/{gw.inbound_key}/")
    cls = gateway_class(gw.type)
    takes_inbound = cls.parse_inbound is not Gateway.parse_inbound
    takes_status = cls.parse_status is not Gateway.parse_status
    return {
        "inbound_url": base + "inbound" if takes_inbound else None,
        "status_url": base + "status" if takes_status else None,
    }


def serialize_gateway(request: HttpRequest, gw: GatewayConfig, project: Project) -> dict[str, Any]:
    owned = gw.project_id == project.pk
    out: dict[str, Any] = {
        "id": gw.pk,
        "name": gw.name,
        "type": gw.type,
        "scope": "project" if owned else ("global" if gw.project_id is None else "shared"),
        "project": gw.project.name if gw.project is not None else None,
        "shared_with": [],
        "rate_limit_per_s": gw.rate_limit_per_s,
        "rate_limit_per_minute": gw.rate_limit_per_minute,
        "rate_limit_per_sender": gw.rate_limit_per_sender,
        "sender_numbers": gw.sender_numbers,
        "is_active": gw.is_active,
    }
    if owned:
        shares = sorted(gw.shares.all(), key=lambda sh: sh.project.name)
        out["shared_with"] = [sh.project.name for sh in shares]
        out["shares"] = [
            {
                "project": sh.project.name,
                "accepted": sh.accepted_on is not None,
                "accepted_on": iso(sh.accepted_on),
            }
            for sh in shares
        ]
        cls = gateway_class(gw.type)
        out["config"] = cls.public_config(gw.config)
        stored = decrypt_json(gw.secrets) if gw.secrets else {}
        out["secrets_set"] = sorted(k for k in cls.secret_fields if stored.get(k))
        out.update(gateway_urls(request, gw))
    return out


def serialize_offer(sh: GatewayShare) -> dict[str, Any]:
    """A gateway another project offers: only what it takes to decide."""
    return {
        "id": sh.gateway.pk,
        "name": sh.gateway.name,
        "type": sh.gateway.type,
        "project": sh.gateway.project.name if sh.gateway.project else "",
        "offered_on": iso(sh.offered_on),
    }


def serialize_gateway_type(cls: type[Gateway]) -> dict[str, Any]:
    return {
        "type": cls.slug,
        "label": cls.label,
        "channel": cls.channel,
        "secret_fields": list(cls.secret_fields),
        "config_schema": cls.config_model.model_json_schema(),
    }


def serialize_routes(proj: Project) -> dict[str, Any]:
    """The project's default gateway and prefix routes."""
    s = effective_settings(proj.settings)
    return {
        "default_gateway": s.default_gateway,
        "prefixes": [{"prefix": p, "gateway": g} for p, g in sorted(s.prefix_routes.items())],
    }


def serialize_global(
    request: HttpRequest, gw: GatewayConfig, routes: GlobalRoutes | None = None
) -> dict[str, Any]:
    cls = gateway_class(gw.type)
    stored = decrypt_json(gw.secrets) if gw.secrets else {}
    return {
        "id": gw.pk,
        "name": gw.name,
        "type": gw.type,
        "scope": "global",
        "project": None,
        "shared_with": [],
        "rate_limit_per_s": gw.rate_limit_per_s,
        "rate_limit_per_minute": gw.rate_limit_per_minute,
        "rate_limit_per_sender": gw.rate_limit_per_sender,
        "sender_numbers": gw.sender_numbers,
        "is_active": gw.is_active,
        "config": cls.public_config(gw.config),
        "secrets_set": sorted(k for k in cls.secret_fields if stored.get(k)),
        **gateway_urls(request, gw),
        "routes": global_route_uses(gw.name, routes),
    }
