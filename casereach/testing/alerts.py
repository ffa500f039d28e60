"""Alerts through the messaging API (tests only); their bodies are in ``world``."""

from __future__ import annotations

from typing import Any

from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def create_alert(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """POST /alerts; the created alert."""
    r = api.post(M + "alerts", body)
    assert 201 == r.status, r.body
    out: dict[str, Any] = r.body
    return out
