"""Alert reply waits under ``/a/{project}/api/messaging/v1/alert-reply-waits`` (viewer): which
alert messages are waiting for a reply, which got one, and what each no-reply action did."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.alerts.api import BASE, ERRORS
from casereach.alerts.models import REPLY_WAIT_STATUSES, AlertReplyWait
from casereach.alerts.replywait_queries import filter_waits
from casereach.core.openapi import OpenSchema, query_param
from casereach.core.requests import paged
from casereach.core.timeutil import iso
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Role

router = Router(tags=["alerts"])


class ReplyWaitOut(OpenSchema):
    """One alert SMS that expects a reply: where it stands and what the no-reply action did."""

    id: int
    alert_id: int
    alert_version: int
    event_id: int
    message_id: str
    contact_id: str | None
    case_id: str | None
    phone_number: str
    gateway: str | None
    status: str = Field(json_schema_extra={"enum": list(REPLY_WAIT_STATUSES)})
    detail: str
    expect_reply_within_minutes: int
    no_reply: dict[str, Any] | None
    created_on: str = Field(json_schema_extra={"format": "date-time"})
    sent_on: str | None
    due_at: str = Field(json_schema_extra={"format": "date-time"})
    replied_on: str | None
    reply_message_id: str | None
    ended_on: str | None


class ReplyWaitList(OpenSchema):
    objects: list[ReplyWaitOut]
    meta: dict[str, Any]


LIST_QUERY = {
    "parameters": [
        query_param("alert", "only this alert's (its id)", {"type": "integer"}),
        query_param(
            "status", "only this status", {"type": "string", "enum": list(REPLY_WAIT_STATUSES)}
        ),
        query_param("contact_id", "only this contact's", {"type": "string"}),
        query_param("limit", "page size (default 50)", {"type": "integer", "minimum": 1}),
        query_param("offset", "where the page starts", {"type": "integer", "minimum": 0}),
    ]
}


def serialize_wait(w: AlertReplyWait) -> dict[str, Any]:
    sent_on = w.sent_on or getattr(w, "msg_sent_on", None)
    return {
        "id": w.pk,
        "alert_id": w.alert_id,
        "alert_version": w.alert_version,
        "event_id": w.event_id,
        "message_id": w.message_id,
        "contact_id": w.contact_id,
        "case_id": w.case_id,
        "phone_number": w.phone_number,
        "gateway": w.gateway_name or getattr(w, "msg_gateway_name", None) or None,
        "status": w.status,
        "detail": w.detail,
        "expect_reply_within_minutes": w.within_minutes,
        "no_reply": w.no_reply,
        "created_on": iso(w.created_on),
        "sent_on": iso(sent_on),
        "due_at": iso(w.due_at),
        "replied_on": iso(w.replied_on),
        "reply_message_id": w.reply_message_id,
        "ended_on": iso(w.ended_on),
    }


@router.api_operation(
    ["GET"],
    BASE + "/alert-reply-waits",
    operation_id="alert_reply_waits_list",
    summary="Alert messages expecting a reply (filters: alert, status, contact_id)",
    response={200: ReplyWaitList, **ERRORS},
    openapi_extra=LIST_QUERY,
)
@requires(Role.VIEWER)
def alert_reply_waits_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    qs = filter_waits(proj, request.GET)
    return JsonResponse(paged(request, qs.order_by("-created_on", "-id"), serialize_wait))
