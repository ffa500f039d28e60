"""Provider callbacks under ``/gateways/{gateway_type}/{inbound_key}/…``.

The inbound key in the URL is the credential: an unknown key gets 401 and nothing is stored.
Parsing is the gateway type's job; storing the result is ours.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.core.errors import BadRequest, CasereachError
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.dispatch import public_base_url
from casereach.messaging.inbound import do_receive

log = logging.getLogger(__name__)
router = Router(tags=["gateway callbacks"], auth=None)
MAX_CALLBACK_BYTES = 64 * 1024


class PayloadTooLarge(CasereachError):
    status = 413


class UnknownKey(CasereachError):
    status = 401


class BadSignature(CasereachError):
    status = 403


def gateway_for(gateway_type: str, inbound_key: str) -> GatewayConfig:
    gw = GatewayConfig.objects.filter(type=gateway_type, inbound_key=inbound_key).first()
    if gw is None:
        raise UnknownKey("unknown gateway key")
    return gw


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
)
def status_callback(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"callback bodies are limited to {MAX_CALLBACK_BYTES} bytes")
    gw = gateway_for(gateway_type, inbound_key)
    gateway = instantiate(gw)
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
)
def inbound_sms(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    """Each type reads its provider's native format; the message is stored once per
    provider message id and handled in the same request (SPEC 6)."""
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"inbound bodies are limited to {MAX_CALLBACK_BYTES} bytes")
    gw = gateway_for(gateway_type, inbound_key)
    gateway = instantiate(gw)
    form = _form_of(request)
    check_signature(request, gateway, form)
    try:
        messages = gateway.parse_inbound(form, request.body, request.content_type or "")
    except ValueError as exc:
        raise BadRequest(f"malformed inbound message: {exc}") from None
    results = [do_receive(gw, m) for m in messages]
    status, content_type, body = gateway.inbound_reply(None)
    if content_type == "application/json":
        return JsonResponse(
            {
                "status": "received",
                "messages": [
                    {"id": r.message_id, "duplicate": r.duplicate, "action": r.action}
                    for r in results
                ],
            },
            status=status,
        )
    return HttpResponse(body, status=status, content_type=content_type)
