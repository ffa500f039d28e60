"""A WhatsApp gateway's message templates under ``/a/{project}/api/messaging/v1/gateways/{id}/``:
the list as last synced, and a sync from the provider now."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core.errors import BadRequest, CasereachError, NotFound
from casereach.core.openapi import DATE_TIME, ApiError, OpenSchema
from casereach.core.timeutil import iso
from casereach.gateways.base import GatewayError
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import visible_gateways
from casereach.messaging.models import WhatsAppTemplate
from casereach.messaging.whatsapp import is_whatsapp
from casereach.messaging.whatsapp_templates import NotWhatsApp, do_sync_templates
from casereach.projects.auth import Forbidden, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["messaging"])
BASE = "/a/{project}/api/messaging/v1/gateways/{gateway_id}/templates"
ERRORS: dict[int, Any] = {400: ApiError, 401: ApiError, 403: ApiError, 404: ApiError}


class ProviderUnavailable(CasereachError):
    status = 502


class TemplateOut(OpenSchema):
    name: str
    language: str
    status: str = Field(description="as the provider says it: APPROVED, PENDING, REJECTED, …")
    category: str
    body: str
    params: int = Field(description="how many {{n}} variables the body has")
    synced_on: str | None = Field(json_schema_extra=DATE_TIME)
    removed_on: str | None = Field(
        json_schema_extra=DATE_TIME, description="when a sync no longer found it at the provider"
    )


class TemplateList(OpenSchema):
    objects: list[TemplateOut]


class TemplateSyncOut(OpenSchema):
    gateway: str
    listed: int
    added: int
    updated: int
    removed: int
    error: str | None


def _gateway(request: HttpRequest, project: str, gateway_id: int) -> GatewayConfig:
    """A WhatsApp gateway the project may use (its own, shared with it, global); 404 for
    any other (another project's id included)."""
    proj = project_for(request, project)
    gw = visible_gateways(proj).filter(pk=gateway_id).first()
    if gw is None:
        raise NotFound(f"gateway {gateway_id} not found")
    if not is_whatsapp(gw.type):
        raise BadRequest(f"gateway '{gw.name}' is not a WhatsApp gateway: it has no templates")
    return gw


def serialize_template(t: WhatsAppTemplate) -> dict[str, Any]:
    return {
        "name": t.name,
        "language": t.language,
        "status": t.status,
        "category": t.category,
        "body": t.body,
        "params": t.params,
        "synced_on": iso(t.synced_on),
        "removed_on": iso(t.removed_on),
    }


@router.api_operation(
    ["GET"],
    BASE,
    operation_id="whatsapp_templates_list",
    summary="A WhatsApp gateway's message templates, as last synced",
    response={200: TemplateList, **ERRORS},
)
@requires(Role.VIEWER)
def templates_list(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    gw = _gateway(request, project, gateway_id)
    rows = WhatsAppTemplate.objects.filter(gateway=gw).order_by("name", "language")
    return JsonResponse({"objects": [serialize_template(t) for t in rows]})


@router.api_operation(
    ["POST"],
    BASE + "/sync",
    operation_id="whatsapp_templates_sync",
    summary="Sync a WhatsApp gateway's templates from its provider now",
    response={200: TemplateSyncOut, 502: ApiError, **ERRORS},
)
@requires(Role.ADMIN)
def templates_sync(request: HttpRequest, project: str, gateway_id: int) -> JsonResponse:
    """New templates are added, changed ones updated, those the provider no longer lists
    marked removed; syncing again changes nothing. 403 for a gateway the project uses but does
    not own (shared with it, or global); 502 when the provider cannot be asked."""
    gw = _gateway(request, project, gateway_id)
    if gw.project_id != project_for(request, project).pk:
        # A shared or global gateway's provider account is its owner's to call.
        raise Forbidden(
            f"gateway '{gw.name}' is not this project's own: its owner syncs its templates"
            + (
                " (a global gateway: 'casereach gateway templates-sync' on the server)"
                if gw.project_id is None
                else ""
            )
        )
    try:
        result = do_sync_templates(gw)
    except NotWhatsApp as exc:
        raise BadRequest(str(exc)) from None
    except GatewayError as exc:
        raise ProviderUnavailable(f"the provider could not list templates: {exc}") from None
    return JsonResponse(result.as_json())
