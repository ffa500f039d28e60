"""Sends and delivery reports: what to record, checked; ``messaging.log`` writes it.

``do_send`` creates the event, one sub-event per recipient and the messages in one
transaction; ``do_send_batch`` does the same for up to 1,000 sends with one statement set
(``messaging.sending``), and a single send is a batch of one. A send that fails a check
before reaching a gateway is still recorded, with its error code; one that passes is queued
for the dispatcher.
"""

from __future__ import annotations

import logging

from django.db import transaction

from casereach.core.timeutil import now
from casereach.gateways.base import StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.messaging import chains
from casereach.messaging import log as message_log
from casereach.messaging.costs import fetches_price, record_reported_price
from casereach.messaging.models import FAILED, Message
from casereach.messaging.optouts import do_person_opt_out, gateway_scope
from casereach.messaging.sending import Sent, do_send_batch, do_send_one
from casereach.messaging.sending_request import (
    CHOSEN,
    MAX_EMAIL_CHARS,
    MAX_SMS_CHARS,
    SendRequest,
)
from casereach.projects.models import Project

log = logging.getLogger(__name__)

__all__ = [
    "CHOSEN",
    "MAX_EMAIL_CHARS",
    "MAX_SMS_CHARS",
    "SendRequest",
    "do_apply_status",
    "do_apply_status_update",
    "do_send",
    "do_send_batch",
]


def do_send(project: Project, req: SendRequest) -> Sent:
    """Record and queue one send (to one contact or one raw number/address): a batch of one
    (``sending.do_send_batch``), with the same rows, checks and statements."""
    return do_send_one(project, req)


def do_apply_status(
    message_id: str,
    status: str,
    *,
    error_code: str | None = None,
    provider_code: str = "",
    price_due: bool = False,
) -> bool:
    """Move a message forward to ``status``; never backwards. True when it changed."""
    return message_log.set_status(
        message_id, status, error_code=error_code, provider_code=provider_code, price_due=price_due
    )


def do_apply_status_update(gw: GatewayConfig, update: StatusUpdate) -> bool:
    """Apply one delivery report; False when no message matches (nothing is stored)."""
    qs = Message.objects.filter(gateway_id=gw.pk)
    msg = None
    if not update.is_our_id:
        msg = qs.filter(provider_id=update.provider_id).only("id", "phone_number").first()
    if msg is None:
        # Our own id: the type said so, or the provider gave no id of its own at send time.
        msg = qs.filter(id=update.provider_id).only("id", "phone_number").first()
    if msg is None:
        log.info("status callback for unknown message on gateway %s", gw.name)
        return False
    with transaction.atomic():
        changed = do_apply_status(
            msg.id,
            update.status,
            error_code=update.error_code,
            provider_code=update.provider_code,
            price_due=fetches_price(gw),
        )
        record_reported_price(gw, msg.id, update)
        if changed and update.status == FAILED:  # a fallback chain moves on, if it may
            chains.move_on({msg.id: update.error_code or "GATEWAY_ERROR"}, now())
    if changed and update.error_code == "PHONE_NUMBER_OPTED_OUT" and msg.phone_number:
        with transaction.atomic():
            do_person_opt_out(msg.phone_number, gateway_scope(gw), source=f"gateway:{gw.name}")
    return changed
