"""Conversations told when one of their messages failed for good at the dispatcher — a
refusal, retries exhausted, a WhatsApp number outside its window with no template — so that a
survey whose question cannot reach the person ends, instead of holding its (gateway, number)
pair until it expires. Plugged in by the layer that owns the conversation (messaging cannot
import it), like ``inbound_conversations``.

A hook gets (message id, error code) of each such message that is in the event log and whose
fallback chain, if any, had no channel left, inside the transaction that records the failure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

FailureHook = Callable[[Sequence[tuple[str, str | None]], dt.datetime], None]
FAILURE_HOOKS: list[FailureHook] = []


def register_failure_hook(hook: FailureHook) -> None:
    if hook not in FAILURE_HOOKS:
        FAILURE_HOOKS.append(hook)


def failed_for_good(failures: Sequence[tuple[str, str | None]], at: dt.datetime) -> None:
    if not failures:
        return
    for hook in FAILURE_HOOKS:
        hook(failures, at)
