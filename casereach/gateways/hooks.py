"""Hooks higher layers register to act when a gateway goes away.

The gateways layer sits below messaging, so it cannot keep what messaging keeps about a
gateway (a global gateway's opt-outs) alive itself: messaging registers a hook that runs in the
deleting transaction, before the gateway's rows are gone.
"""

from __future__ import annotations

from collections.abc import Callable

from casereach.gateways.models import GatewayConfig

BeforeDelete = Callable[[GatewayConfig], object]
_BEFORE_DELETE: list[BeforeDelete] = []


def register_before_delete(hook: BeforeDelete) -> None:
    if hook not in _BEFORE_DELETE:
        _BEFORE_DELETE.append(hook)


def run_before_delete(gw: GatewayConfig) -> None:
    for hook in _BEFORE_DELETE:
        hook(gw)
