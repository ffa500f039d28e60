"""The one writer of ``GatewayState`` and ``RateWindow``: the per-gateway token bucket,
circuit breaker and per-minute windows that every dispatcher shares.

This module locks, reads and writes the rows; when a message waits or a circuit opens is the
dispatcher's policy (``messaging.dispatch.breaker``), decided on the rows read here. Every
function runs inside the caller's transaction (the locks last until it ends).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Q

from casereach.gateways.models import GatewayState, RateWindow


def lock_states(gateway_ids: Iterable[int]) -> dict[int, GatewayState]:
    """The existing state rows of these gateways, locked, by gateway id."""
    rows = GatewayState.objects.select_for_update().filter(pk__in=list(gateway_ids))
    return {s.pk: s for s in rows}


def new_state(gateway_id: int, tokens: float, at: dt.datetime) -> GatewayState:
    """A gateway's first state (not stored until ``save_state``): a full bucket."""
    return GatewayState(gateway_id=gateway_id, tokens=tokens, refilled_on=at)


def save_state(state: GatewayState) -> None:
    state.save()


def lock_windows(gateway_id: int, senders: Iterable[str]) -> dict[str, RateWindow]:
    """The gateway's current per-minute windows of these senders, locked, by sender."""
    rows = RateWindow.objects.select_for_update().filter(
        gateway_id=gateway_id, sender__in=list(senders)
    )
    return {w.sender: w for w in rows}


def new_window(gateway_id: int, sender: str, at: dt.datetime) -> RateWindow:
    """A sender's first minute (not stored until ``save_window``)."""
    return RateWindow(gateway_id=gateway_id, sender=sender, started_on=at, sent=0)


def save_window(window: RateWindow) -> None:
    window.save()


def close_circuit(gateway_id: int) -> None:
    """A success: the failure count back to zero, the circuit closed (one statement, and no
    write at all when it is closed already)."""
    GatewayState.objects.filter(
        Q(consecutive_failures__gt=0) | Q(open_until__isnull=False), gateway_id=gateway_id
    ).update(consecutive_failures=0, open_until=None)


def lock_circuit(gateway_id: int, at: dt.datetime) -> GatewayState:
    """The gateway's state row, locked, created when it has none yet."""
    state, _ = GatewayState.objects.select_for_update().get_or_create(
        gateway_id=gateway_id, defaults={"refilled_on": at}
    )
    return state


def save_circuit(state: GatewayState) -> None:
    state.save(update_fields=["consecutive_failures", "open_until"])
