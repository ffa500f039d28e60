"""The ``turn`` gateway: Turn.io's WhatsApp API (the WhatsApp Business API shapes).

Send: ``POST {base_url}/v1/messages`` with the bearer API token and the same message JSON as
``whatsapp_cloud`` (text, template, interactive; see ``whatsapp_common``). Turn forwards to
Meta and answers synchronously: a 2xx with ``messages[0].id`` means Meta accepted it; errors
carry Meta's codes (``{"errors": [...]}`` or ``{"error": {...}}``), classified alike. There is
no idempotency key (``supports_idempotency = False``).

Webhooks (``/gateways/turn/{inbound_key}/webhook``): POSTs signed
``X-Turn-Hook-Signature: base64(HMAC-SHA256(hook secret, raw body))`` with ``statuses[]`` and
``messages[]`` at the top level (or wrapped in Meta's ``entry[].changes[].value``). Inbound
messages are addressed to the gateway's ``number``. Turn has no GET verification.

Templates: Turn's passthrough of Meta's Graph endpoint,
``GET {base_url}/graph/{api_version}/{waba_id}/message_templates``, page by page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    Exchange,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    ProviderTemplate,
    SendResult,
    StatusUpdate,
    max_in_flight_field,
)
from casereach.gateways.inbound import phone_digits
from casereach.gateways.types import whatsapp_common as wa
from casereach.gateways.types import whatsapp_hooks as hooks
from casereach.gateways.types import whatsapp_templates as templates
from casereach.gateways.wire import WirePool

DEFAULT_BASE_URL = "https://whatsapp.turn.io"
DEFAULT_API_VERSION = "v21.0"
SIGNATURE_HEADER = "X-Turn-Hook-Signature"
_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")


def turn_signature(secret: str, body: bytes) -> str:
    """The ``X-Turn-Hook-Signature`` value Turn sends with ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class TurnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="The Turn line's WhatsApp number (digits, optional '+')")
    access_token: str = Field(description="API token from Settings > API & Webhooks (secret)")
    hook_secret: str = Field(description="The webhook's secret: checks X-Turn-Hook-Signature")
    waba_id: str = Field(
        default="", description="WhatsApp Business Account id (needed to sync templates)"
    )
    api_version: str = Field(
        default=DEFAULT_API_VERSION, description="Graph API version of the template list"
    )
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # Sent from the dispatcher's event loop (``send_async``); Meta's default throughput is
    # 80 messages a second per number.
    max_in_flight: int = max_in_flight_field(100)

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return phone_digits(value, "number")

    @field_validator("waba_id")
    @classmethod
    def _waba_id(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.isdigit() or len(value) > 32):
            raise ValueError("waba_id must be digits")
        return value

    @field_validator("access_token", "hook_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 8:
            raise ValueError("must be at least 8 characters")
        return value

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        value = value.strip()
        if not _VERSION.fullmatch(value):
            raise ValueError("api_version must look like v21.0")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return netpolicy.check_url(value.rstrip("/"))


class TurnGateway(Gateway):
    slug = "turn"
    label = "WhatsApp (Turn.io)"
    channel = "whatsapp"
    config_model = TurnConfig
    secret_fields = ("access_token", "hook_secret")
    supports_idempotency = False
    sends_async = True  # ``send_async``: the dispatcher's lean-client path

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)
        self._owns_http = http is None
        self._plan: wa.WirePlan | None = None

    @property
    def cfg(self) -> TurnConfig:
        assert isinstance(self.config, TurnConfig)
        return self.config

    def _client(self) -> httpx.Client:
        if self.http is None:
            self.http = netpolicy.make_client(self.cfg.timeout_s)
        return self.http

    def _record(self, exchange: Exchange) -> None:
        self.last_exchange = exchange

    def close(self) -> None:
        if self._owns_http and self.http is not None:
            self.http.close()
            self.http = None

    def _wire_plan(self) -> wa.WirePlan:
        if self._plan is None:
            self._plan = wa.wire_plan(self.send_url(), self.cfg.access_token, self.secret_values())
        return self._plan

    async def send_async(
        self, message: OutgoingMessage, pool: WirePool, record: Callable[[Exchange], None]
    ) -> SendResult:
        """``send`` through the lean client: the same request, checks, classification."""
        wa.check_destination(message)
        return await wa.send_json_async(
            pool,
            self._wire_plan(),
            wa.message_payload(message, cloud=False),
            timeout_s=self.cfg.timeout_s,
            secrets=self.secret_values(),
            record=record,
        )

    def send_url(self) -> str:
        return f"{self.cfg.base_url}/v1/messages"

    def send(self, message: OutgoingMessage) -> SendResult:
        self.last_exchange = None
        wa.check_destination(message)
        return wa.send_json(
            self._client(),
            self.send_url(),
            wa.message_payload(message, cloud=False),
            token=self.cfg.access_token,
            timeout_s=self.cfg.timeout_s,
            secrets=self.secret_values(),
            record=self._record,
        )

    def list_templates(self) -> list[ProviderTemplate]:
        cfg = self.cfg
        if not cfg.waba_id:
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                detail="set waba_id on the gateway to sync its templates",
            )
        self.last_exchange = None
        return templates.list_templates(
            self._client(),
            f"{cfg.base_url}/graph/{cfg.api_version}/{cfg.waba_id}/message_templates",
            token=cfg.access_token,
            timeout_s=cfg.timeout_s,
            secrets=self.secret_values(),
            record=self._record,
        )

    def valid_webhook_signature(self, headers: Mapping[str, str], body: bytes) -> bool:
        given = hooks.header(headers, SIGNATURE_HEADER).strip()
        if not given:
            return False
        expected = turn_signature(self.cfg.hook_secret, body)
        return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))

    def parse_webhook(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> tuple[list[StatusUpdate], list[InboundMessage]]:
        return hooks.parse_webhook(body, self.cfg.number)

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        return self.parse_webhook(form, body, content_type)[0]

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        return self.parse_webhook(form, body, content_type)[1]


GATEWAY = TurnGateway
