"""The ``test`` gateway: accepts everything and records it in memory (demos and tests).

Real product code, like Django's locmem mail backend: a developer runs the whole flow
offline, and the UI's test phone reads what it recorded.

Inbound (``POST /gateways/test/{inbound_key}/inbound``): ``from``, ``to``, ``text`` and an
optional ``id``, form-encoded or a JSON object; the webhook answers ``{"status": "received"}``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

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
)

OUTBOX: deque[OutgoingMessage] = deque(maxlen=10_000)
_LOCK = threading.Lock()

MAX_INBOUND_TEXT = 10_000  # characters
MAX_PROVIDER_ID = 128  # the message log's provider_id column
_PHONE_DIGITS = re.compile(r"[0-9]{3,20}")
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


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


def _inbound_fields(form: Mapping[str, str], body: bytes, content_type: str) -> dict[str, object]:
    media = content_type.split(";", 1)[0].strip().lower()
    fields: dict[str, object] = dict(form)
    if media == _FORM:
        if body:
            try:
                text = body.decode("utf-8")
                pairs = parse_qsl(
                    text, keep_blank_values=True, strict_parsing=True, errors="strict"
                )
            except UnicodeDecodeError:
                raise ValueError("the form body is not valid UTF-8") from None
            except ValueError:
                raise ValueError(
                    "the body is not a form (name=value pairs joined by '&')"
                ) from None
            fields.update(pairs)
        return fields
    if media == _MULTIPART:
        return fields  # the web layer parsed it into ``form``
    if media == "application/json" or media.endswith("+json"):
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError("the JSON body is not valid UTF-8") from None
        except (ValueError, RecursionError):
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        fields.update(data)
        return fields
    raise ValueError(
        f"unsupported content type {media or '(none)'!r}: send {_FORM} or application/json"
    )


def _optional(fields: Mapping[str, object], name: str, *, numeric: bool = False) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if numeric and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise ValueError(f"{name!r} must be a string" + (" or a number" if numeric else ""))


def _required(fields: Mapping[str, object], name: str, *, numeric: bool = False) -> str:
    if fields.get(name) is None:
        raise ValueError(f"missing field {name!r}")
    return _optional(fields, name, numeric=numeric)


def _phone(value: str, name: str) -> str:
    """Digits only: ``+``, spaces and dashes dropped; 3 to 20 digits (short codes allowed)."""
    digits = value.strip().removeprefix("+").replace(" ", "").replace("-", "")
    if not _PHONE_DIGITS.fullmatch(digits):
        raise ValueError(f"{name!r} is not a phone number (3 to 20 digits, optional '+')")
    return digits


def _inbound_message(sender: str, to: str, text: str, provider_id: str) -> InboundMessage:
    """Checked and normalised; every failure is a ValueError naming the field."""
    if len(text) > MAX_INBOUND_TEXT:
        raise ValueError(f"'text' is longer than {MAX_INBOUND_TEXT} characters")
    if "\x00" in text:
        raise ValueError("'text' contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("'text' is not valid Unicode (lone surrogate)") from None
    provider_id = provider_id.strip()
    if len(provider_id) > MAX_PROVIDER_ID or not provider_id.isprintable():
        raise ValueError(f"'id' must be at most {MAX_PROVIDER_ID} printable characters")
    return InboundMessage(
        sender=_phone(sender, "from"), to=_phone(to, "to"), text=text, provider_id=provider_id
    )


GATEWAY = TestGateway
