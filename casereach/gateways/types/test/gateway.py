"""The ``test`` gateway: accepts everything and records it in memory (demos and tests).

Real product code, like Django's locmem mail backend: a developer runs the whole flow
offline, and the UI's test phone reads what it recorded.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    Gateway,
    GatewayError,
    OutgoingMessage,
    SendResult,
    StatusUpdate,
)

OUTBOX: deque[OutgoingMessage] = deque(maxlen=10_000)
_LOCK = threading.Lock()


class TestConfig(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid")
    # Scripted failures for demos/tests: destinations that fail, permanently or retryably.
    fail_numbers: list[str] = Field(default_factory=list)
    retry_numbers: list[str] = Field(default_factory=list)
    sender: str = ""


class TestGateway(Gateway):
    __test__ = False
    slug = "test"
    label = "Test (records messages, sends nothing)"
    config_model = TestConfig
    supports_idempotency = True

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.config
        assert isinstance(cfg, TestConfig)
        if message.to in cfg.fail_numbers:
            raise GatewayError(INVALID_DESTINATION_NUMBER, retryable=False, provider_code="test")
        if message.to in cfg.retry_numbers:
            raise GatewayError(GATEWAY_ERROR, retryable=True, provider_code="test-retry")
        with _LOCK:
            OUTBOX.append(message)
        return SendResult(provider_id=f"test-{uuid.uuid4().hex[:12]}", status="sent")

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        """``id`` (the provider id it returned) and ``status`` (sent|delivered|failed),
        form-encoded or JSON — handy for trying delivery reports by hand."""
        data: Mapping[str, Any] = form
        if content_type.startswith("application/json"):
            try:
                parsed = json.loads(body or b"{}")
            except ValueError:
                raise ValueError("body is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise ValueError("body must be a JSON object")
            data = parsed
        provider_id, status = data.get("id"), data.get("status")
        if not isinstance(provider_id, str) or not provider_id:
            raise ValueError("'id' is required")
        if status not in ("sent", "delivered", "failed"):
            raise ValueError("'status' must be sent, delivered or failed")
        code = "GATEWAY_ERROR" if status == "failed" else None
        return [StatusUpdate(provider_id=provider_id, status=status, error_code=code)]


GATEWAY = TestGateway
