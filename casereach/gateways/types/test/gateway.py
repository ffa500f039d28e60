"""The ``test`` gateway: accepts everything and records it in memory (demos and tests).

Real product code, like Django's locmem mail backend: a developer runs the whole flow
offline, and the UI's test phone reads what it recorded.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    Gateway,
    GatewayError,
    OutgoingMessage,
    SendResult,
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


GATEWAY = TestGateway
