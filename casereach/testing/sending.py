"""Sending through the messaging API and running the dispatcher to the end (tests only)."""

from __future__ import annotations

from typing import Any

from casereach.messaging.dispatch import Dispatcher
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def send(api: Api, **body: Any) -> dict[str, Any]:
    """POST /send; the first queued message."""
    r = api.post(M + "send", body)
    assert 202 == r.status, r.body
    msg: dict[str, Any] = r.body["messages"][0]
    return msg


def drain(concurrency: int = 2) -> int:
    """Send everything due, as the dispatcher would; how many messages it handled."""
    dispatcher = Dispatcher(concurrency=concurrency)
    try:
        return dispatcher.drain()
    finally:
        dispatcher.close()


def run_once(concurrency: int = 1) -> None:
    """One pass of the dispatcher (what is due now, within the rate limits)."""
    dispatcher = Dispatcher(concurrency=concurrency)
    try:
        dispatcher.run_once()
    finally:
        dispatcher.close()
