"""Gateways and routes under ``/a/{project}/api/messaging/v1/``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core.crypto import decrypt_json
from casereach.core.errors import NotFound
from casereach.core.openapi import ApiError, OpenSchema
from casereach.core.requests import absolute_url, json_body
from casereach.core.timeutil import iso
from casereach.gateways.actions import (
    do_accept_share,
    do_create_gateway,
    do_decline_share,
    do_delete_gateway,
    do_set_routes,
    do_update_gateway,
)
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import share_offers, visible_gateways
from casereach.gateways.registry import available_types, gateway_class
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Project, Role
from casereach.projects.settings_schema import effective_settings

router = Router(tags=["gateways and routes"])
BASE = "/a/{project}/api/messaging/v1"

GATEWAY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "type": {
                            "type": "string",
                            "enum": ["test", "http", "twilio", "africastalking", "smpp", "email"],
                        },
                        "config": {"type": "object"},
                        "shared_with": {"type": "array", "items": {"type": "string"}},
                        "rate_limit_per_s": {"type": ["number", "null"]},
                        "sender_numbers": {"type": "array", "items": {"type": "string"}},
                        "is_active": {"type": "boolean"},
                    },
                }
            }
        },
    }
}
ROUTES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "default_gateway": {"type": ["string", "null"]},
                        "prefixes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "prefix": {"type": "string"},
                                    "gateway": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            }
        },
    }
}


# Response documents. The views answer JsonResponse, which ninja passes through untouched, so
# these schemas only document (they never filter a field out); every one allows more fields.


AUTH_ERRORS: dict[int, Any] = {401: ApiError, 403: ApiError, 429: ApiError}
ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}
CONFLICT: dict[int, Any] = {409: ApiError}


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
    channel: str = Field(json_schema_extra={"enum": ["sms", "email"]})
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


def _own(project: Project, gateway_id: int) -> GatewayConfig:
    gw = GatewayConfig.objects.filter(project=project, pk=gateway_id).first()
    if gw is None:
        raise NotFound(f"gateway {gateway_id} not found in this project")
    return gw


@router.api_operation(
    ["GET"],
    BASE + "/gateways",
    operation_id="gateways_list",
    summary="List gateways",
    response={200: GatewayList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def gateways_list(request: HttpRequest, project: str) -> JsonResponse:
    """Gateways this project may use: its own (with config and callback URLs), shared, global."""
    proj = project_for(request, project)
    gws = (
        visible_gateways(proj)
        .select_related("project")
        .prefetch_related("shares__project")
        .order_by("name_key", "pk")
    )
    return JsonResponse({"objects": [serialize_gateway(request, g, proj) for g in gws]})


@router.api_operation(
    ["POST"],
    BASE + "/gateways",
    operation_id="gateways_create",
    summary="Create a gateway",
    response={201: GatewayOut, **ERRORS, **CONFLICT},
    openapi_extra=GATEWAY_BODY,
)
@requires(Role.ADMIN)
def gateways_create(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    gw = do_create_gateway(proj, json_body(request))
    return JsonResponse(serialize_gateway(request, gw, proj), status=201)


@router.api_operation(
    ["GET"],
    BASE + "/gateways/{gateway_id}",
    operation_id="gateways_get",
    summary="Get a gateway",
    response={200: GatewayOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def gateways_get(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    proj = project_for(request, project)
    gw = visible_gateways(proj).filter(pk=gateway_id).first()
    if gw is None:
        raise NotFound(f"gateway {gateway_id} not found")
    return JsonResponse(serialize_gateway(request, gw, proj))


@router.api_operation(
    ["PUT"],
    BASE + "/gateways/{gateway_id}",
    operation_id="gateways_update",
    summary="Update a gateway (credentials not sent are kept)",
    response={200: GatewayOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=GATEWAY_BODY,
)
@requires(Role.ADMIN)
def gateways_update(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    proj = project_for(request, project)
    gw = do_update_gateway(_own(proj, gateway_id), json_body(request))
    return JsonResponse(serialize_gateway(request, gw, proj))


@router.api_operation(
    ["DELETE"],
    BASE + "/gateways/{gateway_id}",
    operation_id="gateways_delete",
    summary="Delete a gateway",
    response={200: GatewayDeleted, **ERRORS, **NOT_FOUND},
)
@requires(Role.ADMIN)
def gateways_delete(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    proj = project_for(request, project)
    gw = _own(proj, gateway_id)
    do_delete_gateway(gw)
    return JsonResponse({"id": gateway_id, "deleted": True})


@router.api_operation(
    ["GET"],
    BASE + "/gateway-offers",
    operation_id="gateway_offers_list",
    summary="Gateways other projects offer to this one, not yet accepted",
    response={200: OfferList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def gateway_offers_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    rows = [
        {
            "id": sh.gateway.pk,
            "name": sh.gateway.name,
            "type": sh.gateway.type,
            "project": sh.gateway.project.name if sh.gateway.project else "",
            "offered_on": iso(sh.offered_on),
        }
        for sh in share_offers(proj)
    ]
    return JsonResponse({"objects": rows})


@router.api_operation(
    ["POST"],
    BASE + "/gateways/{gateway_id}/accept",
    operation_id="gateways_accept",
    summary="Accept a gateway another project offers (admin)",
    response={200: GatewayOut, **AUTH_ERRORS, **NOT_FOUND},
)
@requires(Role.ADMIN)
def gateways_accept(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    """From now on the project sees the gateway, may route through it, and its contacts are
    matched by SMS received on it (and a STOP received on it applies to the project)."""
    proj = project_for(request, project)
    gw = do_accept_share(gateway_id, proj, by=principal_of(request).username)
    gw = GatewayConfig.objects.select_related("project").get(pk=gw.pk)
    return JsonResponse(serialize_gateway(request, gw, proj))


@router.api_operation(
    ["POST"],
    BASE + "/gateways/{gateway_id}/decline",
    operation_id="gateways_decline",
    summary="Decline a gateway offered to this project, or stop using one accepted (admin)",
    response={200: Declined, **AUTH_ERRORS, **NOT_FOUND},
)
@requires(Role.ADMIN)
def gateways_decline(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    proj = project_for(request, project)
    do_decline_share(gateway_id, proj)
    return JsonResponse({"id": gateway_id, "declined": True})


@router.api_operation(
    ["GET"],
    BASE + "/gateway-types",
    operation_id="gateway_types",
    summary="Gateway types and their config fields",
    response={200: GatewayTypeList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def gateway_types(request: HttpRequest, project: str) -> JsonResponse:
    project_for(request, project)
    return JsonResponse(
        {
            "objects": [
                {
                    "type": cls.slug,
                    "label": cls.label,
                    "channel": cls.channel,
                    "secret_fields": list(cls.secret_fields),
                    "config_schema": cls.config_model.model_json_schema(),
                }
                for cls in available_types()
            ]
        }
    )


def _routes_body(proj: Project) -> dict[str, Any]:
    s = effective_settings(proj.settings)
    return {
        "default_gateway": s.default_gateway,
        "prefixes": [{"prefix": p, "gateway": g} for p, g in sorted(s.prefix_routes.items())],
    }


@router.api_operation(
    ["GET"],
    BASE + "/routes",
    operation_id="routes_get",
    summary="Prefix routes and default gateway",
    response={200: RoutesOut, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def routes_get(request: HttpRequest, project: str) -> JsonResponse:
    return JsonResponse(_routes_body(project_for(request, project)))


@router.api_operation(
    ["PUT"],
    BASE + "/routes",
    operation_id="routes_put",
    summary="Replace prefix routes and default gateway",
    response={200: RoutesOut, **ERRORS},
    openapi_extra=ROUTES_BODY,
)
@requires(Role.ADMIN)
def routes_put(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    known = set(visible_gateways(proj).values_list("name_key", flat=True))
    do_set_routes(proj, json_body(request), known)
    proj.refresh_from_db()
    return JsonResponse(_routes_body(proj))
