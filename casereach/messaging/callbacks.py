"""Provider callbacks under ``/gateways/{gateway_type}/{inbound_key}/…``.

The inbound key in the URL is the credential: an unknown key gets 401 and nothing is stored.
Parsing is the gateway type's job; storing the result is ours. On SQLite the inbound webhook's
database work is done by one worker thread (``SqliteWorker``) while the request waits for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core.errors import BadRequest, CasereachError
from casereach.core.openapi import ApiError, OpenSchema
from casereach.core.requests import public_base_url
from casereach.core.rows import RawRows
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate
from casereach.gateways.registry import gateway_class
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.inbound import InboundResult, do_receive
from casereach.messaging.inbound_queue import do_queue_inbound, queues_inbound
from casereach.messaging.inbound_worker import Job, Parsed, _batch_read, on_db_thread

log = logging.getLogger(__name__)
router = Router(tags=["gateway callbacks"], auth=None)
MAX_CALLBACK_BYTES = 64 * 1024


class PayloadTooLarge(CasereachError):
    status = 413


class UnknownKey(CasereachError):
    status = 401


class BadSignature(CasereachError):
    status = 403


# Response documents. The views answer HttpResponse/JsonResponse, which ninja passes through
# untouched, so these schemas only document (they never filter a field out).


CALLBACK_ERRORS: dict[int, Any] = {
    400: ApiError,  # a body the gateway type cannot read
    401: ApiError,  # no gateway of that type has that inbound key
    403: ApiError,  # a signed provider's (Twilio's) signature is missing or wrong
    413: ApiError,  # a body over MAX_CALLBACK_BYTES
}


class StatusCallbackOut(OpenSchema):
    received: int = Field(description="delivery reports in the callback")
    applied: int = Field(description="those that changed a message")


class InboundMessageResult(OpenSchema):
    id: str | None
    duplicate: bool
    action: str


class InboundOut(OpenSchema):
    status: str = Field(json_schema_extra={"enum": ["received"]})
    messages: list[InboundMessageResult]


INBOUND_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "Received. JSON for most gateway types; Twilio gets empty TwiML "
            "(text/xml).",
            "content": {
                "text/xml": {
                    "schema": {"type": "string"},
                    "example": '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
                }
            },
        }
    }
}


INBOUND_GET_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "Received. Kannel gets an empty text/plain body, so it sends no SMS "
            "back.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": ""}},
        }
    }
}


# Callbacks arrive by the thousand for a handful of gateways: the configuration and its
# instantiated Gateway (decrypted secrets, validated config) are kept per key, and reused only
# while the row read by every request is unchanged to the byte — an edited, re-keyed or
# deleted gateway is seen by the next request. Callbacks only parse with them, never send.
_GATEWAY = RawRows(GatewayConfig)
_GATEWAY_SQL = (
    f"SELECT {_GATEWAY.columns('g')} FROM gateways_gatewayconfig g"
    " WHERE g.type = %s AND g.inbound_key = %s"
)
_MAX_CACHED = 256
_cache: dict[tuple[str, str], tuple[tuple[Any, ...], GatewayConfig, Gateway]] = {}
_cache_lock = threading.Lock()


def callback_gateway(gateway_type: str, inbound_key: str) -> tuple[GatewayConfig, Gateway]:
    """The gateway with this type and inbound key, and its instantiated Gateway, for one
    light query; UnknownKey (401) when there is none. The GatewayConfig returned is shared:
    read it, never change it."""
    key = (gateway_type, inbound_key)
    read: dict[tuple[str, str], tuple[GatewayConfig, Gateway]] | None = getattr(
        _batch_read, "gateways", None
    )
    if read is not None and key in read:  # read already in this batch's transaction
        return read[key]
    with connection.cursor() as cursor:
        cursor.execute(_GATEWAY_SQL, [gateway_type, inbound_key])
        found = cursor.fetchone()
    if found is None:
        raise UnknownKey("unknown gateway key")
    row = tuple(found)
    hit = _cache.get(key)
    if hit is not None and hit[0] == row:
        found_gw, found_gateway = hit[1], hit[2]
    else:
        found_gw = _GATEWAY.build(row)
        found_gateway = instantiate(found_gw)
        with _cache_lock:
            if len(_cache) >= _MAX_CACHED:
                _cache.clear()
            _cache[key] = (row, found_gw, found_gateway)
    if read is not None:
        read[key] = (found_gw, found_gateway)
    return found_gw, found_gateway


def public_url(request: HttpRequest) -> str:
    """The URL the provider called: CASEREACH_PUBLIC_URL + path when set (behind a proxy),
    else what this server saw."""
    base = public_base_url()
    if base:
        query = request.META.get("QUERY_STRING", "")
        return base + request.path + (f"?{query}" if query else "")
    return request.build_absolute_uri()


def check_signature(request: HttpRequest, gateway: Gateway, form: dict[str, str]) -> None:
    """Providers that sign their callbacks (Twilio) must sign them right."""
    validate = getattr(gateway, "valid_callback_signature", None)
    if validate is None:
        return
    signature = request.headers.get("X-Twilio-Signature", "")
    post_only = {k: request.POST.get(k, "") for k in request.POST}
    if not signature or not validate(public_url(request), post_only, signature):
        raise BadSignature("invalid or missing request signature")


@router.api_operation(
    ["POST"],
    "/gateways/{gateway_type}/{inbound_key}/status",
    operation_id="gateway_status_callback",
    summary="Delivery reports from a provider",
    response={200: StatusCallbackOut, **CALLBACK_ERRORS},
)
def status_callback(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    return _status(request, gateway_type, inbound_key)


@router.api_operation(
    ["GET"],
    "/gateways/{gateway_type}/{inbound_key}/status",
    operation_id="gateway_status_callback_get",
    summary="Delivery reports from a provider that calls with GET (Kannel's dlr-url)",
    response={200: StatusCallbackOut, **CALLBACK_ERRORS, 405: ApiError},
)
def status_callback_get(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if not _takes_get(gateway_type):
        return HttpResponseNotAllowed(["POST"])
    return _status(request, gateway_type, inbound_key)


def _takes_get(gateway_type: str) -> bool:
    """Whether the type's provider calls its webhooks with GET; True for an unknown type,
    which the key lookup then answers 401 as POST does."""
    try:
        return gateway_class(gateway_type).callbacks_by_get
    except KeyError:
        return True


def _status(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"callback bodies are limited to {MAX_CALLBACK_BYTES} bytes")
    gw, gateway = callback_gateway(gateway_type, inbound_key)
    content_type = request.content_type or ""
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))
    try:
        form = {k: request.POST.get(k, "") for k in request.POST} if is_form else {}
        form.update({k: request.GET.get(k, "") for k in request.GET if k not in form})
    except Exception as exc:  # Django's form parsing: bad multipart, too many fields, …
        raise BadRequest(f"malformed callback body: {type(exc).__name__}") from None
    check_signature(request, gateway, form)
    try:
        updates = gateway.parse_status(form, request.body, content_type)
    except ValueError as exc:
        raise BadRequest(f"malformed status callback: {exc}") from None
    applied = sum(1 for u in updates if do_apply_status_update(gw, u))
    return JsonResponse({"received": len(updates), "applied": applied})


def _form_of(request: HttpRequest) -> dict[str, str]:
    content_type = request.content_type or ""
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))
    try:
        form = {k: request.POST.get(k, "") for k in request.POST} if is_form else {}
        form.update({k: request.GET.get(k, "") for k in request.GET if k not in form})
    except Exception as exc:  # Django's form parsing: bad multipart, too many fields, …
        raise BadRequest(f"malformed body: {type(exc).__name__}") from None
    return form


@router.api_operation(
    ["POST"],
    "/gateways/{gateway_type}/{inbound_key}/inbound",
    operation_id="gateway_inbound_sms",
    summary="Inbound SMS from a provider",
    response={200: InboundOut, **CALLBACK_ERRORS},
    openapi_extra=INBOUND_DOC,
)
def inbound_sms(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    """Each type reads its provider's native format; the message is stored once per
    provider message id and handled in the same request (SPEC 6)."""
    return _inbound(request, gateway_type, inbound_key)


@router.api_operation(
    ["GET"],
    "/gateways/{gateway_type}/{inbound_key}/inbound",
    operation_id="gateway_inbound_sms_get",
    summary="Inbound SMS from a provider that calls with GET (Kannel's sms-service get-url)",
    response={200: InboundOut, **CALLBACK_ERRORS, 405: ApiError},
    openapi_extra=INBOUND_GET_DOC,
)
def inbound_sms_get(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    """The fields are in the query; the answer is the type's (Kannel: an empty body)."""
    if not _takes_get(gateway_type):
        return HttpResponseNotAllowed(["POST"])
    return _inbound(request, gateway_type, inbound_key)


def _inbound(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"inbound bodies are limited to {MAX_CALLBACK_BYTES} bytes")

    def parse() -> Parsed:
        # On the SQLite worker (see SqliteWorker), while this thread waits for it.
        gw, gateway = callback_gateway(gateway_type, inbound_key)
        form = _form_of(request)
        check_signature(request, gateway, form)
        try:
            messages = gateway.parse_inbound(form, request.body, request.content_type or "")
        except ValueError as exc:
            raise BadRequest(f"malformed inbound message: {exc}") from None
        return gw, gateway, messages

    def receive(parsed: Parsed) -> tuple[Gateway, list[InboundResult]]:
        gw, gateway, messages = parsed
        if queues_inbound():  # scale-out: a worker handles them (messaging/inbound_queue.py)
            return gateway, do_queue_inbound(gw, messages)
        return gateway, [do_receive(gw, m) for m in messages]

    def both() -> tuple[Gateway, list[InboundResult]]:
        return receive(parse())

    gateway, results = on_db_thread(both, Job(both, parse))
    status, content_type, body = gateway.inbound_reply(None)
    if content_type == "application/json":
        return JsonResponse(
            {
                "status": "received",
                "messages": [
                    {"id": r.message_id or None, "duplicate": r.duplicate, "action": r.action}
                    for r in results
                ],
            },
            status=status,
        )
    return HttpResponse(body, status=status, content_type=content_type)
