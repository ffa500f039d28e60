"""Sending, the message log and error codes under ``/a/{project}/api/messaging/v1/``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from ninja import Router

from casereach.core.errors import BadRequest, CasereachError
from casereach.core.openapi import ApiError
from casereach.core.requests import json_body, paged
from casereach.gateways.queries import project_settings
from casereach.messaging.actions import SendRequest, do_send_batch
from casereach.messaging.costs import breakdown, budget_status
from casereach.messaging.errors import ERRORS
from casereach.messaging.models import Message
from casereach.messaging.queries import filter_messages
from casereach.messaging.sending import MAX_BATCH, ItemError, as_json
from casereach.messaging.sending_group import send_single
from casereach.messaging.serializers import (
    BatchError,
    ErrorCodeList,
    MessageDetail,
    MessageList,
    SendBatchOut,
    SendOut,
    message_csv_rows,
    serialize_attempt,
    serialize_message,
)
from casereach.messaging.serializers_chain import serialize_chain
from casereach.messaging.serializers_costs import CostsOut
from casereach.messaging.whatsapp import parse_content as parse_whatsapp
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["messaging"])
BASE = "/a/{project}/api/messaging/v1"

# Response documents: the schemas are in casereach.messaging.serializers.


AUTH_ERRORS: dict[int, Any] = {
    401: ApiError,
    403: ApiError,
    429: ApiError,
}
API_ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}


MESSAGES_CSV = {
    "responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
}

SEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "contact_id": {"type": "string"},
        "phone_number": {"type": "string"},
        "email_address": {"type": "string"},
        "channel": {"type": "string", "enum": ["sms", "email", "whatsapp"]},
        "gateway": {
            "type": "string",
            "description": (
                "Send through this gateway (by name) instead of routing: one "
                "the project owns, is shared with, or a global one, active and "
                "of the message's channel. Every other check still applies."
            ),
        },
        "text": {"type": "string"},
        "content": {
            "type": "object",
            "properties": {
                "sms": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "whatsapp": {
                    "type": "object",
                    "description": (
                        "channel whatsapp: free text per language and/or an approved "
                        "template (sent outside the 24-hour window) with its {{n}} params"
                    ),
                    "properties": {
                        "text": {"type": "object", "additionalProperties": {"type": "string"}},
                        "template": {"type": "string"},
                        "params": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "email": {
                    "type": "object",
                    "properties": {
                        "subject": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "body": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
SEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SEND_SCHEMA}},
    }
}
SEND_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["messages"],
                    "properties": {
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": SEND_SCHEMA,
                            "description": "Each item exactly the body of POST …/send.",
                        }
                    },
                }
            }
        },
    }
}
SEND_FIELDS = frozenset(
    {"contact_id", "phone_number", "email_address", "channel", "text", "content", "gateway"}
)


def parse_send(data: Any, user: str) -> SendRequest:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - SEND_FIELDS)
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not a valid field.")
    for key in ("contact_id", "phone_number", "email_address", "text", "gateway"):
        if key in data and not isinstance(data[key], str):
            raise BadRequest(f"{key} must be a string")
    if "gateway" in data and not data["gateway"].strip():
        raise BadRequest("gateway must name a gateway (leave it out to route the message)")
    targets = [k for k in ("contact_id", "phone_number", "email_address") if data.get(k)]
    if len(targets) != 1:
        raise BadRequest("give exactly one of contact_id, phone_number or email_address")
    content = data.get("content")
    if content is not None and not isinstance(content, dict):
        raise BadRequest("content must be an object")
    if ("text" in data) == (content is not None):
        raise BadRequest("give either text or content")
    channel = data.get("channel")
    if channel is None:
        channel = (
            "email"
            if (data.get("email_address") or (content and "email" in content))
            else "whatsapp"
            if content and "whatsapp" in content
            else "sms"
        )
    if channel not in ("sms", "email", "whatsapp"):
        raise BadRequest("channel must be 'sms', 'email' or 'whatsapp'")
    if channel in ("sms", "whatsapp") and data.get("email_address"):
        what = "an SMS" if channel == "sms" else "a WhatsApp message"
        raise BadRequest(f"{what} goes to a contact_id or a phone_number")
    if channel == "email" and data.get("phone_number"):
        raise BadRequest("an email goes to a contact_id or an email_address")
    req = SendRequest(
        channel="email" if channel == "email" else "whatsapp" if channel == "whatsapp" else "sms",
        contact_id=data.get("contact_id"),
        phone_number=data.get("phone_number"),
        email_address=data.get("email_address"),
        triggered_by=user,
        gateway=data.get("gateway"),
    )
    if "text" in data:
        if channel == "whatsapp":
            req.whatsapp = parse_whatsapp({"text": {"*": data["text"]}})
        elif channel == "sms":
            req.sms = {"*": data["text"]}
        else:
            req.body = {"*": data["text"]}
        return req
    assert content is not None
    unknown = sorted(set(content) - {"sms", "email", "whatsapp"})
    if unknown:
        raise BadRequest(f"'content.{unknown[0]}' is not a valid field.")
    if channel == "whatsapp":
        if "whatsapp" not in content:
            raise BadRequest("content.whatsapp must give the text and/or a template")
        req.whatsapp = parse_whatsapp(content["whatsapp"])
    elif channel == "sms":
        if not isinstance(content.get("sms"), dict):
            raise BadRequest("content.sms must be an object of language → text")
        req.sms = content["sms"]
    else:
        email = content.get("email")
        if not isinstance(email, dict) or not isinstance(email.get("body"), dict):
            raise BadRequest("content.email needs body (and subject) objects of language → text")
        subject = email.get("subject", {})
        if not isinstance(subject, dict):
            raise BadRequest("content.email.subject must be an object of language → text")
        req.subject, req.body = subject, email["body"]
    return req


@router.api_operation(
    ["POST"],
    BASE + "/send",
    operation_id="send",
    summary="Send an SMS or email now",
    response={202: SendOut, **API_ERRORS, **NOT_FOUND},
    openapi_extra=SEND_BODY,
)
@requires(Role.MEMBER)
def send(request: HttpRequest, project: str) -> JsonResponse:
    """Queue one message to a contact or a raw number/address. 202 even when a check failed:
    the message is recorded with its error code."""
    proj = project_for(request, project)
    req = parse_send(json_body(request), principal_of(request).username)
    return JsonResponse(as_json([send_single(proj, req)])[0], status=202)


@router.api_operation(
    ["POST"],
    BASE + "/send-batch",
    operation_id="send_batch",
    summary="Send up to 1,000 SMS or emails at once",
    response={202: SendBatchOut, 400: BatchError, **AUTH_ERRORS},
    openapi_extra=SEND_BATCH_BODY,
)
@requires(Role.MEMBER)
def send_batch(request: HttpRequest, project: str) -> JsonResponse:
    """Queue each item (the body of ``send``) as ``send`` would, in one transaction. 202 with
    one result per item, in order, even when checks failed (those messages are recorded with
    their error code); 400 naming the first bad item, and nothing stored."""
    proj = project_for(request, project)
    items = parse_batch(json_body(request))
    user = principal_of(request).username
    reqs = []
    for i, item in enumerate(items):
        try:
            reqs.append(parse_send(item, user))
        except CasereachError as exc:
            return _item_error(ItemError(i, exc))
    try:
        sent = do_send_batch(proj, reqs)
    except ItemError as exc:
        return _item_error(exc)
    return JsonResponse({"objects": as_json(sent)}, status=202)


def parse_batch(data: Any) -> list[Any]:
    """The items of a batch send body: ``{"messages": [ … ]}``, 1 to ``MAX_BATCH`` of them."""
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - {"messages"})
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not a valid field.")
    items = data.get("messages")
    if not isinstance(items, list):
        raise BadRequest("messages must be a list of send requests")
    if not 1 <= len(items) <= MAX_BATCH:
        raise BadRequest(f"messages must hold 1 to {MAX_BATCH} items (got {len(items)})")
    return items


def _item_error(exc: ItemError) -> JsonResponse:
    return JsonResponse(
        {"error": exc.message, "detail": exc.detail, "index": exc.index}, status=400
    )


@router.api_operation(
    ["GET"],
    BASE + "/messages",
    operation_id="messages_list",
    summary="The message log",
    response={200: MessageList, **API_ERRORS},
    openapi_extra=MESSAGES_CSV,
)
@requires(Role.VIEWER)
def messages_list(request: HttpRequest, project: str) -> Any:
    """Filters: status, error_code, contact_id, phone_number, gateway, alert, direction,
    since/until (ISO dates); ``format=csv`` or ``Accept: text/csv`` streams CSV."""
    proj = project_for(request, project)
    qs = filter_messages(proj, request.GET)
    if request.GET.get("format") == "csv" or "text/csv" in request.headers.get("Accept", ""):
        response = StreamingHttpResponse(
            message_csv_rows(qs.order_by("created_on", "id")), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{proj.name}-messages.csv"'
        return response
    return JsonResponse(paged(request, qs.order_by("-created_on", "-id"), serialize_message))


@router.api_operation(
    ["GET"],
    BASE + "/messages/{message_id}",
    operation_id="messages_get",
    summary="One message with its attempts",
    response={200: MessageDetail, **AUTH_ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def messages_get(request: HttpRequest, project: str, message_id: str) -> JsonResponse:
    proj = project_for(request, project)
    m = Message.objects.filter(project=proj, id=message_id).first()
    if m is None:
        return JsonResponse(
            {"error": f"message '{message_id}' not found", "detail": None}, status=404
        )
    data = serialize_message(m)
    data["attempt_log"] = [serialize_attempt(a) for a in m.send_attempts.order_by("id")]
    data["chain"] = (
        serialize_chain(
            Message.objects.filter(project=proj, chain_id=m.chain_id).order_by("chain_step", "id")
        )
        if m.chain_id
        else []
    )
    return JsonResponse(data)


@router.api_operation(
    ["GET"],
    BASE + "/costs",
    operation_id="costs",
    summary="What messages cost: totals, per day and per gateway, and the monthly budget",
    response={200: CostsOut, **API_ERRORS},
)
@requires(Role.VIEWER)
def costs(request: HttpRequest, project: str) -> JsonResponse:
    """The message log's filters (``alert=<id>`` for one alert's messages, ``since``,
    ``gateway``, …); outbound messages only. ``budget``: the project's monthly budget, spent
    this month, and whether the 80% warning applies (null without a budget)."""
    proj = project_for(request, project)
    qs = filter_messages(proj, request.GET)
    data = breakdown(qs, project_settings(proj).currency)
    data["budget"] = budget_status(proj)
    return JsonResponse(data)


@router.api_operation(
    ["GET"],
    BASE + "/error-codes",
    operation_id="error_codes",
    summary="Every error code with description and hint",
    response={200: ErrorCodeList, **AUTH_ERRORS},
)
@requires(Role.VIEWER)
def error_codes(request: HttpRequest, project: str) -> JsonResponse:
    project_for(request, project)
    return JsonResponse(
        {
            "objects": [
                {"code": e.code, "description": e.description, "hint": e.hint} for e in ERRORS
            ]
        }
    )
