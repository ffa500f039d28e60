"""A fallback chain as the message detail shows it (``messaging.chains``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from casereach.core.openapi import OpenSchema
from casereach.core.timeutil import iso
from casereach.messaging.models import Message


class ChainAttempt(OpenSchema):
    """One attempt of a fallback chain, in the chain's order."""

    id: str
    chain_step: int
    channel: str
    status: str
    error_code: str | None
    gateway: str | None
    fallback_reason: str | None
    moved_on: bool


def serialize_chain(attempts: Iterable[Message]) -> list[dict[str, Any]]:
    """A fallback chain's attempts (``Message`` rows in step order), as the detail lists them."""
    return [
        {
            "id": m.id,
            "chain_step": m.chain_step,
            "channel": m.channel,
            "status": m.status,
            "error_code": m.error_code,
            "gateway": m.gateway_name or None,
            "fallback_reason": m.fallback_reason or None,
            "moved_on": m.moved_on_at is not None,
        }
        for m in attempts
    ]


def chain_fields(m: Message) -> dict[str, Any]:
    """A message's fallback-chain fields, as the log and its CSV show them."""
    return {
        "chain_id": m.chain_id,
        "chain_step": m.chain_step if m.chain_id else None,
        "fallback_reason": m.fallback_reason or None,
        "moved_on": m.moved_on_at is not None,
        "moved_on_at": iso(m.moved_on_at),
    }
