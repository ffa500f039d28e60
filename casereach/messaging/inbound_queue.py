"""Inbound SMS handled by workers (the scale-out mode).

In the embedded mode the webhook handles each message in its own request. With a broker, the
scale-out app registers a *kick* here: the webhook then only stores the messages it accepted
(``do_queue_inbound``), answers the provider, and kicks a worker once the rows are committed.
Workers claim rows with ``FOR UPDATE SKIP LOCKED`` and handle each one with ``do_receive`` in
the transaction that deletes it, so a crash leaves the row for the next claim and a message
is never handled twice. Beat kicks too, so a lost kick only delays a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import transaction
from django.db.models import F

from casereach.core import bulk
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging.inbound import InboundResult, do_receive
from casereach.messaging.models import InboundQueue

log = logging.getLogger(__name__)

Kick = Callable[[], None]
_kick: Kick | None = None


def register_inbound_kick(kick: Kick | None) -> None:
    """With a kick registered, webhooks queue inbound SMS for workers instead of handling
    them in the request."""
    global _kick
    _kick = kick


def queues_inbound() -> bool:
    return _kick is not None


def do_queue_inbound(gw: GatewayConfig, messages: Sequence[InboundMessage]) -> list[InboundResult]:
    """Store the messages for a worker; the kick goes out once they are committed."""
    stamp = now()
    with transaction.atomic():
        InboundQueue.objects.bulk_create(
            [
                InboundQueue(
                    gateway_id=gw.pk,
                    sender=m.sender,
                    to=m.to,
                    text=m.text,
                    provider_id=m.provider_id,
                    received_on=stamp,
                )
                for m in messages
            ]
        )
        kick = _kick
        if kick is not None:
            transaction.on_commit(_safe(kick))
    return [InboundResult(message_id="", action="queued") for _ in messages]


def _safe(kick: Kick) -> Kick:
    def run() -> None:
        try:
            kick()
        except Exception:  # the broker is away: beat's next kick (or the next message) will do
            log.warning("could not kick a worker for inbound SMS")

    return run


MAX_INBOUND_ATTEMPTS = 5


def handle_queued(limit: int = 50) -> int:
    """Claim up to ``limit`` queued messages, oldest first, and handle each one in the
    transaction that removes it; how many were handled. One whose handling raises is rolled
    back, counted and retried on a later claim, and left aside after MAX_INBOUND_ATTEMPTS."""
    handled = 0
    gateways: dict[int, GatewayConfig | None] = {}
    for _ in range(limit):
        failed: tuple[int, str] | None = None
        with transaction.atomic():
            qs = InboundQueue.objects.filter(attempts__lt=MAX_INBOUND_ATTEMPTS).order_by(
                "received_on", "id"
            )
            if bulk.has_row_locks():
                qs = qs.select_for_update(skip_locked=True)
            row = qs.first()
            if row is None:
                break
            if row.gateway_id not in gateways:
                gateways[row.gateway_id] = GatewayConfig.objects.filter(pk=row.gateway_id).first()
            gw = gateways[row.gateway_id]
            try:
                with transaction.atomic():
                    if gw is not None:  # a gateway deleted meanwhile: nothing to answer through
                        message = InboundMessage(row.sender, row.to, row.text, row.provider_id)
                        do_receive(gw, message)
                    row.delete()
            except Exception as exc:
                log.exception("inbound SMS %s could not be handled", row.pk)
                failed = (row.pk, f"{type(exc).__name__}: {exc}"[:500])
            if failed is not None:
                InboundQueue.objects.filter(pk=failed[0]).update(
                    attempts=F("attempts") + 1, last_error=failed[1]
                )
                continue
        handled += 1
    return handled


def pending_inbound() -> int:
    return InboundQueue.objects.filter(attempts__lt=MAX_INBOUND_ATTEMPTS).count()
