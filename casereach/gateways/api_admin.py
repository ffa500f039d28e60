"""The system administrator's API: global gateways and the global routes, under
``/api/admin/v1/``. Only a superuser (their session, or an API key they own) may call it;
a project's admin gets 403 like anyone else.

Routing order (SPEC 4.2, CommCare's): contact override → project prefix → project default →
global prefix → global default.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core.errors import BadRequest
from casereach.core.openapi import OpenSchema
from casereach.core.requests import json_body
from casereach.gateways.actions_global import (
    do_create_global_gateway,
    do_delete_global_gateway,
    do_delete_global_prefix,
    do_replace_global_routes,
    do_set_global_default,
    do_set_global_prefix,
    do_update_global_gateway,
)
from casereach.gateways.api import (
    CONFLICT,
    ERRORS,
    GATEWAY_BODY,
    NOT_FOUND,
    ROUTES_BODY,
)
from casereach.gateways.models import GlobalRoutes
from casereach.gateways.queries import global_gateway, global_gateways, global_routes
from casereach.gateways.serializers import (
    GatewayDeleted,
    GatewayOut,
    RoutesOut,
    serialize_global,
)
from casereach.projects.auth import requires_system_admin

ADMIN = "/api/admin/v1"
TAGS = ["system administration: global gateways and routes"]
router = Router(tags=TAGS)
AUTH_ERRORS: dict[int, Any] = {k: v for k, v in ERRORS.items() if k != 400}

_schema: dict[str, Any] = GATEWAY_BODY["requestBody"]["content"]["application/json"]["schema"]  # type: ignore[index]
GLOBAL_GATEWAY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    **_schema,
                    "properties": {
                        k: v for k, v in _schema["properties"].items() if k != "shared_with"
                    },
                }
            }
        },
    }
}
NAME_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"gateway": {"type": "string"}},
                    "required": ["gateway"],
                }
            }
        },
    }
}


class GlobalGatewayOut(GatewayOut):
    """A global gateway, with its config (secrets only named), callback URLs and the global
    routes that name it."""

    routes: list[str] = Field(
        default_factory=list, description="where the global routes name it: default, prefix 254"
    )


class GlobalGatewayList(OpenSchema):
    objects: list[GlobalGatewayOut]


def routes_body(routes: GlobalRoutes) -> dict[str, Any]:
    return {
        "default_gateway": routes.default_gateway or None,
        "prefixes": [{"prefix": p, "gateway": g} for p, g in sorted(routes.prefixes.items())],
    }


@router.api_operation(
    ["GET"],
    ADMIN + "/gateways",
    operation_id="admin_gateways_list",
    summary="List the global gateways (system administrator)",
    response={200: GlobalGatewayList, **AUTH_ERRORS},
)
@requires_system_admin()
def admin_gateways_list(request: HttpRequest) -> JsonResponse:
    routes = global_routes()
    gws = global_gateways()
    return JsonResponse({"objects": [serialize_global(request, g, routes) for g in gws]})


@router.api_operation(
    ["POST"],
    ADMIN + "/gateways",
    operation_id="admin_gateways_create",
    summary="Create a global gateway (system administrator)",
    response={201: GlobalGatewayOut, **ERRORS, **CONFLICT},
    openapi_extra=GLOBAL_GATEWAY_BODY,
)
@requires_system_admin()
def admin_gateways_create(request: HttpRequest) -> JsonResponse:
    """Every project may route through it once the global routes name it (or a contact or
    a project's routes name it)."""
    gw = do_create_global_gateway(json_body(request))
    return JsonResponse(serialize_global(request, gw), status=201)


@router.api_operation(
    ["GET"],
    ADMIN + "/gateways/{gateway_id}",
    operation_id="admin_gateways_get",
    summary="Get a global gateway (system administrator)",
    response={200: GlobalGatewayOut, **ERRORS, **NOT_FOUND},
)
@requires_system_admin()
def admin_gateways_get(request: HttpRequest, gateway_id: int) -> JsonResponse:
    return JsonResponse(serialize_global(request, global_gateway(gateway_id)))


@router.api_operation(
    ["PUT"],
    ADMIN + "/gateways/{gateway_id}",
    operation_id="admin_gateways_update",
    summary="Rename or change a global gateway (system administrator)",
    response={200: GlobalGatewayOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    openapi_extra=GLOBAL_GATEWAY_BODY,
)
@requires_system_admin()
def admin_gateways_update(request: HttpRequest, gateway_id: int) -> JsonResponse:
    """Fields not sent are kept; so are credentials (secret fields are write-only). A new
    name carries over to the global routes that named the old one."""
    gw = do_update_global_gateway(global_gateway(gateway_id), json_body(request))
    return JsonResponse(serialize_global(request, gw))


@router.api_operation(
    ["DELETE"],
    ADMIN + "/gateways/{gateway_id}",
    operation_id="admin_gateways_delete",
    summary="Delete a global gateway (system administrator)",
    response={200: GatewayDeleted, **ERRORS, **NOT_FOUND, **CONFLICT},
)
@requires_system_admin()
def admin_gateways_delete(request: HttpRequest, gateway_id: int) -> JsonResponse:
    """409 while the global routes name it: change them first."""
    do_delete_global_gateway(global_gateway(gateway_id))
    return JsonResponse({"id": gateway_id, "deleted": True})


def _set_active(request: HttpRequest, gateway_id: int, active: bool) -> JsonResponse:
    gw = do_update_global_gateway(global_gateway(gateway_id), {"is_active": active})
    return JsonResponse(serialize_global(request, gw))


@router.api_operation(
    ["POST"],
    ADMIN + "/gateways/{gateway_id}/deactivate",
    operation_id="admin_gateways_deactivate",
    summary="Deactivate a global gateway: routing skips it (system administrator)",
    response={200: GlobalGatewayOut, **ERRORS, **NOT_FOUND},
)
@requires_system_admin()
def admin_gateways_deactivate(request: HttpRequest, gateway_id: int) -> JsonResponse:
    """Routes naming it fall through to the next step; a contact override naming it fails
    GATEWAY_NOT_FOUND. Nothing is deleted."""
    return _set_active(request, gateway_id, False)


@router.api_operation(
    ["POST"],
    ADMIN + "/gateways/{gateway_id}/activate",
    operation_id="admin_gateways_activate",
    summary="Activate a global gateway (system administrator)",
    response={200: GlobalGatewayOut, **ERRORS, **NOT_FOUND},
)
@requires_system_admin()
def admin_gateways_activate(request: HttpRequest, gateway_id: int) -> JsonResponse:
    return _set_active(request, gateway_id, True)


@router.api_operation(
    ["GET"],
    ADMIN + "/routes",
    operation_id="admin_routes_get",
    summary="The global prefix routes and default gateway (system administrator)",
    response={200: RoutesOut, **AUTH_ERRORS},
)
@requires_system_admin()
def admin_routes_get(request: HttpRequest) -> JsonResponse:
    return JsonResponse(routes_body(global_routes()))


@router.api_operation(
    ["PUT"],
    ADMIN + "/routes",
    operation_id="admin_routes_put",
    summary="Replace the global prefix routes and default gateway (system administrator)",
    response={200: RoutesOut, **ERRORS},
    openapi_extra=ROUTES_BODY,
)
@requires_system_admin()
def admin_routes_put(request: HttpRequest) -> JsonResponse:
    """They apply after each project's own routes and default; only global gateways may be
    named."""
    return JsonResponse(routes_body(do_replace_global_routes(json_body(request))))


def _gateway_name(request: HttpRequest) -> Any:
    body = json_body(request)
    if not isinstance(body, dict) or set(body) != {"gateway"}:
        raise BadRequest('the body is {"gateway": "NAME"}')
    return body["gateway"]


@router.api_operation(
    ["PUT"],
    ADMIN + "/routes/default",
    operation_id="admin_routes_default_set",
    summary="Set the global default gateway (system administrator)",
    response={200: RoutesOut, **ERRORS},
    openapi_extra=NAME_BODY,
)
@requires_system_admin()
def admin_routes_default_set(request: HttpRequest) -> JsonResponse:
    name = _gateway_name(request)
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("gateway must be a global gateway's name")
    return JsonResponse(routes_body(do_set_global_default(name)))


@router.api_operation(
    ["DELETE"],
    ADMIN + "/routes/default",
    operation_id="admin_routes_default_clear",
    summary="Clear the global default gateway (system administrator)",
    response={200: RoutesOut, **AUTH_ERRORS},
)
@requires_system_admin()
def admin_routes_default_clear(request: HttpRequest) -> JsonResponse:
    return JsonResponse(routes_body(do_set_global_default(None)))


@router.api_operation(
    ["PUT"],
    ADMIN + "/routes/prefixes/{prefix}",
    operation_id="admin_routes_prefix_set",
    summary="Add or replace the global route of one prefix (system administrator)",
    response={200: RoutesOut, **ERRORS},
    openapi_extra=NAME_BODY,
)
@requires_system_admin()
def admin_routes_prefix_set(request: HttpRequest, prefix: str) -> JsonResponse:
    """``prefix`` is the number's start with its country code, e.g. ``254`` or ``2547``:
    the longest matching one picks the gateway."""
    return JsonResponse(routes_body(do_set_global_prefix(prefix, _gateway_name(request))))


@router.api_operation(
    ["DELETE"],
    ADMIN + "/routes/prefixes/{prefix}",
    operation_id="admin_routes_prefix_delete",
    summary="Remove the global route of one prefix (system administrator)",
    response={200: RoutesOut, **ERRORS, **NOT_FOUND},
)
@requires_system_admin()
def admin_routes_prefix_delete(request: HttpRequest, prefix: str) -> JsonResponse:
    return JsonResponse(routes_body(do_delete_global_prefix(prefix)))
