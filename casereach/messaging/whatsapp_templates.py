"""WhatsApp message templates, synced from the provider: the one writer of
``WhatsAppTemplate``.

A sync asks the gateway's type for its templates (``Gateway.list_templates``: a network call,
made outside any transaction), then in one transaction inserts the new (name, language) pairs,
updates the ones that changed (status, category, body, params) and marks those the provider no
longer lists (``removed_on``; one that comes back is unmarked). Syncing twice changes nothing
the second time but ``synced_on``. It runs on demand (API, CLI) and on a schedule
(``sync_all``: the ``serve`` loop and Celery beat, every CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS,
6 by default).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from casereach.core.timeutil import now
from casereach.gateways.base import GatewayError, ProviderTemplate
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate
from casereach.messaging.models import WhatsAppTemplate
from casereach.messaging.whatsapp import is_whatsapp

log = logging.getLogger(__name__)

SYNC_HOURS_ENV = "CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS"
DEFAULT_SYNC_HOURS = 6.0


def sync_interval_s() -> float:
    """Seconds between scheduled syncs (CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS, 6 h)."""
    raw = os.environ.get(SYNC_HOURS_ENV, "").strip()
    try:
        hours = float(raw) if raw else DEFAULT_SYNC_HOURS
    except ValueError:
        hours = DEFAULT_SYNC_HOURS
    return max(hours, 0.01) * 3600


@dataclass
class SyncResult:
    gateway: str
    listed: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "listed": self.listed,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "error": self.error or None,
        }


class NotWhatsApp(ValueError):
    """The gateway does not send WhatsApp messages: it has no templates."""


def do_sync_templates(gw: GatewayConfig) -> SyncResult:
    """Fetch ``gw``'s templates from its provider and store them (see the module).

    Raises:
        NotWhatsApp: ``gw`` is not a WhatsApp gateway.
        GatewayError: the provider could not be asked (nothing is changed).
    """
    if not is_whatsapp(gw.type):
        raise NotWhatsApp(f"gateway '{gw.name}' is not a WhatsApp gateway: it has no templates")
    gateway = instantiate(gw)
    try:
        listed = gateway.list_templates()
    finally:
        gateway.close()  # the HTTP client it made for the listing
    return _store(gw, listed)


def _store(gw: GatewayConfig, listed: list[ProviderTemplate]) -> SyncResult:
    stamp = now()
    result = SyncResult(gw.name, listed=len(listed))
    fresh: dict[tuple[str, str], ProviderTemplate] = {(t.name, t.language): t for t in listed}
    with transaction.atomic():
        stored = {(t.name, t.language): t for t in WhatsAppTemplate.objects.filter(gateway=gw)}
        new = [
            WhatsAppTemplate(
                gateway=gw,
                name=t.name,
                language=t.language,
                status=t.status,
                category=t.category,
                body=t.body,
                params=t.params,
                synced_on=stamp,
            )
            for key, t in fresh.items()
            if key not in stored
        ]
        WhatsAppTemplate.objects.bulk_create(new)
        result.added = len(new)
        changed: list[WhatsAppTemplate] = []
        for key, row in stored.items():
            t = fresh.get(key)
            if t is None:
                if row.removed_on is None:
                    row.removed_on = stamp
                    result.removed += 1
                    changed.append(row)
                continue
            values = (t.status, t.category, t.body, t.params, None)
            if (row.status, row.category, row.body, row.params, row.removed_on) != values:
                row.status, row.category, row.body, row.params, row.removed_on = values
                result.updated += 1
            changed.append(row)
        for row in changed:
            if row.name and (row.name, row.language) in fresh:
                row.synced_on = stamp
        WhatsAppTemplate.objects.bulk_update(  # writes: messaging.WhatsAppTemplate
            changed, ["status", "category", "body", "params", "removed_on", "synced_on"]
        )
    return result


def sync_all() -> list[SyncResult]:
    """Sync every active WhatsApp gateway (the schedule); a gateway whose provider fails is
    reported and left as it was."""
    out = []
    for gw in GatewayConfig.objects.filter(is_active=True).order_by("pk"):
        if not is_whatsapp(gw.type):
            continue
        try:
            out.append(do_sync_templates(gw))
        except GatewayError as exc:
            log.warning("template sync of gateway %s failed: %s", gw.name, exc)
            out.append(SyncResult(gw.name, error=str(exc)))
    return out


class _Schedule:
    """When the ``serve`` loop syncs next (a monotonic time; due at start)."""

    def __init__(self) -> None:
        self.next_at = 0.0
        self.lock = threading.Lock()


_schedule = _Schedule()


def scheduled_sync() -> int:
    """The ``serve`` loop's step: ``sync_all`` when due (every ``sync_interval_s``). Always
    0: the loop then waits its idle time before asking again."""
    with _schedule.lock:
        if time.monotonic() < _schedule.next_at:
            return 0
        _schedule.next_at = time.monotonic() + sync_interval_s()
    sync_all()
    return 0  # never "busy": the loop waits its idle time either way
