"""Alerts under ``/a/{project}/api/messaging/v1/``: broadcasts and conditional alerts, their
dry run and progress, and a contact's upcoming sends."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.alerts.actions import (
    do_activate,
    do_create_alert,
    do_deactivate,
    do_delete_alert,
    do_update_alert,
)
from casereach.alerts.dryrun import dry_run
from casereach.alerts.models import BROADCAST, CONDITIONAL, Alert
from casereach.alerts.queries import get_alert, upcoming
from casereach.alerts.serializers import (
    ALERT_BODY,
    PATCH_BODY,
    AlertList,
    AlertOut,
    DryRunOut,
    UpcomingList,
    serialize_alert,
)
from casereach.contacts.models import Contact
from casereach.core.errors import BadRequest, NotFound
from casereach.core.openapi import ApiError, query_param
from casereach.core.requests import json_object
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Role

router = Router(tags=["alerts"])
BASE = "/a/{project}/api/messaging/v1"

ERRORS: dict[int, Any] = {
    400: ApiError,
    401: ApiError,
    403: ApiError,
    429: ApiError,
}
NOT_FOUND: dict[int, Any] = {404: ApiError}


LIST_QUERY = {
    "parameters": [
        query_param(
            "kind",
            "only this kind",
            {"type": "string", "enum": ["broadcast", "conditional"]},
        )
    ]
}
DRY_RUN_QUERY = {
    "parameters": [
        query_param(
            "days",
            "how many days ahead (default 7)",
            {"type": "integer", "minimum": 1, "maximum": 90, "default": 7},
        )
    ]
}
UPCOMING_QUERY = {
    "parameters": [
        query_param(
            "limit",
            "at most this many sends (default 10)",
            {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        )
    ]
}


@router.api_operation(
    ["GET"],
    BASE + "/alerts",
    operation_id="alerts_list",
    summary="Alerts",
    response={200: AlertList, **ERRORS},
    openapi_extra=LIST_QUERY,
)
@requires(Role.VIEWER)
def alerts_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    qs = Alert.objects.filter(project=proj).order_by("id")
    kind = request.GET.get("kind")
    if kind:
        if kind not in (BROADCAST, CONDITIONAL):
            raise BadRequest("kind must be broadcast or conditional")
        qs = qs.filter(kind=kind)
    return JsonResponse({"objects": [serialize_alert(a, full=False) for a in qs]})


@router.api_operation(
    ["POST"],
    BASE + "/alerts",
    operation_id="alerts_create",
    summary="Create a broadcast or a conditional alert",
    response={201: AlertOut, **ERRORS},
    openapi_extra=ALERT_BODY,
)
@requires(Role.MEMBER)
def alerts_create(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    alert = do_create_alert(proj, json_object(request))
    return JsonResponse(serialize_alert(alert), status=201)


@router.api_operation(
    ["GET"],
    BASE + "/alerts/{alert_id}",
    operation_id="alerts_get",
    summary="One alert",
    response={200: AlertOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def alerts_get(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(serialize_alert(get_alert(proj, alert_id)))


@router.api_operation(
    ["PUT"],
    BASE + "/alerts/{alert_id}",
    operation_id="alerts_update",
    summary="Edit an alert (a new version; an active alert is re-evaluated)",
    response={200: AlertOut, **ERRORS, **NOT_FOUND},
    openapi_extra=PATCH_BODY,
)
@requires(Role.MEMBER)
def alerts_update(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    proj = project_for(request, project)
    alert = do_update_alert(get_alert(proj, alert_id), json_object(request))
    return JsonResponse(serialize_alert(alert))


@router.api_operation(
    ["PATCH"],
    BASE + "/alerts/{alert_id}",
    operation_id="alerts_patch",
    summary="Edit an alert (the same as PUT: fields not given stay as they are)",
    response={200: AlertOut, **ERRORS, **NOT_FOUND},
    openapi_extra=PATCH_BODY,
)
@requires(Role.MEMBER)
def alerts_patch(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    return alerts_update(request, project, alert_id)


@router.api_operation(
    ["DELETE"],
    BASE + "/alerts/{alert_id}",
    operation_id="alerts_delete",
    summary="Delete",
    response={204: None, **ERRORS, **NOT_FOUND},
)
@requires(Role.MEMBER)
def alerts_delete(request: HttpRequest, project: str, alert_id: int) -> HttpResponse:
    proj = project_for(request, project)
    do_delete_alert(get_alert(proj, alert_id))
    return HttpResponse(status=204)


@router.api_operation(
    ["POST"],
    BASE + "/alerts/{alert_id}/activate",
    operation_id="alerts_activate",
    summary="Activate: evaluate every candidate recipient (progress in the alert's progress)",
    response={200: AlertOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.MEMBER)
def alerts_activate(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(serialize_alert(do_activate(get_alert(proj, alert_id))))


@router.api_operation(
    ["POST"],
    BASE + "/alerts/{alert_id}/deactivate",
    operation_id="alerts_deactivate",
    summary="Deactivate: nothing more is sent",
    response={200: AlertOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.MEMBER)
def alerts_deactivate(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(serialize_alert(do_deactivate(get_alert(proj, alert_id))))


@router.api_operation(
    ["POST"],
    BASE + "/alerts/{alert_id}/dry-run",
    operation_id="alerts_dry_run",
    summary="What the alert would send over the next N days (?days=N, default 7, max 90)",
    response={200: DryRunOut, **ERRORS, **NOT_FOUND},
    openapi_extra=DRY_RUN_QUERY,
    by_alias=True,
)
@requires(Role.VIEWER)
def alerts_dry_run(request: HttpRequest, project: str, alert_id: int) -> JsonResponse:
    proj = project_for(request, project)
    try:
        days = int(request.GET.get("days", "7"))
    except ValueError:
        raise BadRequest("days must be an integer") from None
    if not 1 <= days <= 90:
        raise BadRequest("days must be between 1 and 90")
    return JsonResponse(dry_run(get_alert(proj, alert_id), days))


@router.api_operation(
    ["GET"],
    BASE + "/contacts/{contact_id}/upcoming",
    operation_id="contact_upcoming",
    summary="A contact's next scheduled sends, in time order",
    response={200: UpcomingList, **ERRORS, **NOT_FOUND},
    openapi_extra=UPCOMING_QUERY,
)
@requires(Role.VIEWER)
def contact_upcoming(request: HttpRequest, project: str, contact_id: str) -> JsonResponse:
    proj = project_for(request, project)
    try:
        limit = int(request.GET.get("limit", "10"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= 100:
        raise BadRequest("limit must be between 1 and 100")
    if not Contact.objects.filter(project=proj, contact_id=contact_id).exists():
        raise NotFound(f"contact '{contact_id}' not found")
    return JsonResponse({"objects": upcoming(proj, contact_id, limit)})
