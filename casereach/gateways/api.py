"""Gateways and routes under ``/a/{project}/api/messaging/v1/``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router

from casereach.core.errors import NotFound
from casereach.core.openapi import ApiError
from casereach.core.requests import json_body
from casereach.gateways.actions import (
    do_accept_share,
    do_create_gateway,
    do_decline_share,
    do_delete_gateway,
    do_set_routes,
    do_update_gateway,
)
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import owned_gateway, share_offers, visible_gateways
from casereach.gateways.registry import GATEWAY_TYPES, available_types
from casereach.gateways.serializers import (
    Declined,
    GatewayDeleted,
    GatewayList,
    GatewayOut,
    GatewayTypeList,
    OfferList,
    RoutesOut,
    serialize_gateway,
    serialize_gateway_type,
    serialize_offer,
    serialize_routes,
)
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

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
                            "enum": list(GATEWAY_TYPES),
                        },
                        "config": {"type": "object"},
                        "shared_with": {"type": "array", "items": {"type": "string"}},
                        "rate_limit_per_s": {"type": ["number", "null"]},
                        "rate_limit_per_minute": {"type": ["integer", "null"]},
                        "rate_limit_per_sender": {"type": "boolean"},
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


# Response documents: the schemas are in casereach.gateways.serializers.


AUTH_ERRORS: dict[int, Any] = {401: ApiError, 403: ApiError, 429: ApiError}
ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}
CONFLICT: dict[int, Any] = {409: ApiError}


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
    gw = do_update_gateway(owned_gateway(proj, gateway_id), json_body(request))
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
    gw = owned_gateway(proj, gateway_id)
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
    rows = [serialize_offer(sh) for sh in share_offers(proj)]
    return JsonResponse({"objects": rows})


@router.api_operation(
    ["POST"],
    BASE + "/gateways/{gateway_id}/accept",
    operation_id="gateways_accept",
    summary="Accept a gateway another project offers (admin)",
    response={200: GatewayOut, **ERRORS, **NOT_FOUND},
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
    response={200: Declined, **ERRORS, **NOT_FOUND},
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
    return JsonResponse({"objects": [serialize_gateway_type(cls) for cls in available_types()]})


@router.api_operation(
    ["GET"],
    BASE + "/routes",
    operation_id="routes_get",
    summary="Prefix routes and default gateway",
    response={200: RoutesOut, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def routes_get(request: HttpRequest, project: str) -> JsonResponse:
    return JsonResponse(serialize_routes(project_for(request, project)))


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
    return JsonResponse(serialize_routes(proj))
