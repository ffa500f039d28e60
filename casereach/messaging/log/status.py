"""A message's status moved forward by a delivery report or a gateway's answer (``set_status``),
its sub-event closed and stamped with the project's clock."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce

from casereach.core.timeutil import now
from casereach.messaging.log.events import outcome
from casereach.messaging.models import (
    DELIVERED,
    ERROR,
    FAILED,
    READ,
    SENT,
    STATUS_RANK,
    Message,
    MessagingSubEvent,
)
from casereach.projects.actions import lock_project, tick_clock


def set_status(
    message_id: str,
    status: str,
    *,
    error_code: str | None = None,
    provider_code: str = "",
    price_due: bool = False,
) -> bool:
    """Move a message forward to ``status``; never backwards; its sub-event closes on a final
    status and is stamped with the project's clock. True when it changed. ``price_due``: its
    gateway tells the price on request (``fetch_price``): a final status makes it due.

    ``read`` (WhatsApp) comes after ``delivered``: a late ``sent``/``delivered`` leaves a read
    message as it is, and a read receipt never turns a failed message into a read one. A read
    receipt that arrives first stamps ``delivered_on`` and ``sent_on`` too (read implies both)."""
    lower = [
        s
        for s, rank in STATUS_RANK.items()
        if rank < STATUS_RANK[status] and not (status == READ and s == FAILED)
    ]
    stamp = now()
    changes: dict[str, Any] = {"status": status, "updated_on": stamp}
    at = Value(stamp, output_field=DateTimeField())
    if status == DELIVERED:  # delivered implies sent: a missing sent_on takes the same stamp
        changes.update(delivered_on=stamp, sent_on=Coalesce(F("sent_on"), at))
    elif status == READ:  # read implies delivered and sent (both read the row as it was)
        changes.update(
            read_on=stamp,
            delivered_on=Coalesce(F("delivered_on"), at),
            sent_on=Coalesce(F("sent_on"), F("delivered_on"), at),
        )
    elif status == SENT:
        changes["sent_on"] = stamp
    elif status == FAILED:
        changes.update(
            failed_on=stamp, error_code=error_code or "GATEWAY_ERROR", provider_code=provider_code
        )
    if price_due and status in (DELIVERED, FAILED):
        changes["price_due_at"] = stamp
    with transaction.atomic():
        changed = Message.objects.filter(id=message_id, status__in=lower).update(**changes)
        if changed:
            msg = Message.objects.only(
                "subevent_id", "project_id", "status", "error_code", "moved_on_at"
            ).get(id=message_id)
            # An attempt a fallback chain moved on from keeps its late report, and that is
            # all: its sub-event follows the chain's current attempt.
            if (
                msg.subevent_id is not None
                and msg.project_id is not None
                and msg.moved_on_at is None
            ):
                closed = outcome([msg.status])
                if closed is not None:
                    code = msg.error_code if closed == ERROR else None
                    MessagingSubEvent.objects.filter(pk=msg.subevent_id).update(
                        status=closed, error_code=code
                    )
                MessagingSubEvent.objects.filter(pk=msg.subevent_id).update(
                    date_last_activity=tick_clock(lock_project(msg.project_id))
                )
    return bool(changed)
