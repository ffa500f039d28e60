"""The webhook of providers that send statuses and inbound messages to one URL (WhatsApp):
``GET|POST /gateways/{gateway_type}/{inbound_key}/webhook``.

- GET is the subscription check (Meta's ``hub.mode``/``hub.verify_token``/``hub.challenge``):
  the type's ``verify_subscription`` gives the text to echo back, or None → 403.
- POST: the type checks the signature over the raw body (``valid_webhook_signature``; a
  tampered byte → 403 and nothing stored), then ``parse_webhook`` returns the statuses and
  the inbound messages of the one POST. Statuses are applied as on the status callback
  (forward only: a late ``sent`` never moves a read message back); inbound messages are
  received as inbound SMS are (``do_receive``: opt-out words, keywords, surveys; a provider
  id stored once), on the SQLite worker thread like the inbound webhook.

The inbound key in the URL is the credential (401 when unknown), as on every callback.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core.errors import BadRequest, NotFound
from casereach.core.openapi import ApiError, OpenSchema
from casereach.gateways.base import Gateway, InboundMessage, StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.callbacks import (
    CALLBACK_ERRORS,
    MAX_CALLBACK_BYTES,
    BadSignature,
    InboundMessageResult,
    PayloadTooLarge,
    callback_gateway,
)
from casereach.messaging.inbound import InboundResult, do_receive
from casereach.messaging.inbound_queue import do_queue_inbound, queues_inbound
from casereach.messaging.inbound_worker import on_db_thread

log = logging.getLogger(__name__)
router = Router(tags=["gateway callbacks"], auth=None)


class WebhookOut(OpenSchema):
    status: str = Field(json_schema_extra={"enum": ["received"]})
    statuses: int = Field(description="status reports in the POST")
    applied: int = Field(description="those that changed a message")
    messages: list[InboundMessageResult]


VERIFY_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The subscription is ours: the challenge, echoed as plain text.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
}


@router.api_operation(
    ["GET"],
    "/gateways/{gateway_type}/{inbound_key}/webhook",
    operation_id="gateway_webhook_verify",
    summary="A provider checks its webhook subscription (WhatsApp's hub.challenge)",
    response={404: ApiError, **CALLBACK_ERRORS},
    openapi_extra=VERIFY_DOC,
)
def webhook_verify(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    _, gateway = _webhook_gateway(gateway_type, inbound_key)
    query = {k: request.GET.get(k, "") for k in request.GET}
    echo = gateway.verify_subscription(query)
    if echo is None:
        raise BadSignature("the subscription check failed (wrong mode or verify token)")
    return HttpResponse(echo, content_type="text/plain", status=200)


@router.api_operation(
    ["POST"],
    "/gateways/{gateway_type}/{inbound_key}/webhook",
    operation_id="gateway_webhook",
    summary="Statuses and inbound messages from a provider, in one POST (WhatsApp)",
    response={200: WebhookOut, 404: ApiError, **CALLBACK_ERRORS},
)
def webhook(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"webhook bodies are limited to {MAX_CALLBACK_BYTES} bytes")
    body = request.body
    headers = {k: v for k, v in request.headers.items()}
    content_type = request.content_type or ""

    def receive() -> tuple[Gateway, int, int, list[InboundResult]]:
        gw, gateway = _webhook_gateway(gateway_type, inbound_key)
        if not gateway.valid_webhook_signature(headers, body):
            raise BadSignature("invalid or missing request signature")
        updates, messages = _parse(gateway, body, content_type)
        applied = sum(1 for u in updates if do_apply_status_update(gw, u))
        if queues_inbound():  # scale-out: a worker handles them (messaging/inbound_queue.py)
            return gateway, len(updates), applied, do_queue_inbound(gw, messages)
        return gateway, len(updates), applied, [do_receive(gw, m) for m in messages]

    _, received, applied, results = on_db_thread(receive)
    return JsonResponse(
        {
            "status": "received",
            "statuses": received,
            "applied": applied,
            "messages": [
                {"id": r.message_id or None, "duplicate": r.duplicate, "action": r.action}
                for r in results
            ],
        }
    )


def _webhook_gateway(gateway_type: str, inbound_key: str) -> tuple[GatewayConfig, Gateway]:
    """The gateway of the key (401 when unknown), of a type that receives webhooks (its own
    ``parse_webhook``: WhatsApp); 404 for the others, whose callbacks have their own URLs
    (``…/status``, ``…/inbound``) and their own signature checks."""
    gw, gateway = callback_gateway(gateway_type, inbound_key)
    if type(gateway).parse_webhook is Gateway.parse_webhook:
        raise NotFound(
            f"the {gateway_type} gateway type has no webhook: its providers post to …/status "
            "and …/inbound"
        )
    return gw, gateway


def _parse(
    gateway: Gateway, body: bytes, content_type: str
) -> tuple[list[StatusUpdate], list[InboundMessage]]:
    try:
        return gateway.parse_webhook({}, body, content_type)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a body the type cannot read
        raise BadRequest(f"malformed webhook: {exc}") from None
