"""The ``test`` gateway: accepts everything and records it in memory (demos and tests).

Real product code, like Django's locmem mail backend: a developer runs the whole flow
offline, and the UI's test phone reads what it recorded.

Inbound (``POST /gateways/test/{inbound_key}/inbound``): ``from``, ``to``, ``text`` and an
optional ``id``, form-encoded or a JSON object; the webhook answers ``{"status": "received"}``.
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
    InboundMessage,
    OutgoingMessage,
    SendResult,
    StatusUpdate,
    max_in_flight_field,
)
from casereach.gateways.inbound import (
    checked_inbound as _inbound_message,
)
from casereach.gateways.inbound import (
    inbound_fields as _inbound_fields,
)
from casereach.gateways.inbound import (
    optional_field as _optional,
)
from casereach.gateways.inbound import (
    required_field as _required,
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
    max_in_flight: int = max_in_flight_field(16)


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
            except (ValueError, RecursionError):
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

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        """``from``, ``to``, ``text`` and optional ``id``, form-encoded or a JSON object (the
        content type decides). Query-string fields (merged into ``form``) count too; the body
        wins. Raises ValueError for anything malformed."""
        fields = _inbound_fields(form, body, content_type)
        return [
            _inbound_message(
                sender=_required(fields, "from", numeric=True),
                to=_required(fields, "to", numeric=True),
                text=_required(fields, "text"),
                provider_id=_optional(fields, "id", numeric=True),
            )
        ]

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]:
        """``{"status": "received"}``; ``text`` is unused (replies go out through ``send``)."""
        return 200, "application/json", b'{"status": "received"}'


# --- inbound helpers ---------------------------------------------------------------------------


GATEWAY = TestGateway
