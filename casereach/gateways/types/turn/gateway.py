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
from collections.abc import Mapping

from pydantic import Field, field_validator

from casereach.gateways import netpolicy
from casereach.gateways.base import (
    InboundMessage,
    StatusUpdate,
    max_in_flight_field,
)
from casereach.gateways.inbound import phone_digits
from casereach.gateways.types import whatsapp_hooks as hooks
from casereach.gateways.types.whatsapp_base import WhatsAppConfigChecks, WhatsAppGateway

DEFAULT_BASE_URL = "https://whatsapp.turn.io"
DEFAULT_API_VERSION = "v21.0"
SIGNATURE_HEADER = "X-Turn-Hook-Signature"


def turn_signature(secret: str, body: bytes) -> str:
    """The ``X-Turn-Hook-Signature`` value Turn sends with ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class TurnConfig(WhatsAppConfigChecks):
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


class TurnGateway(WhatsAppGateway):
    slug = "turn"
    label = "WhatsApp (Turn.io)"
    config_model = TurnConfig
    secret_fields = ("access_token", "hook_secret")
    cloud = False

    @property
    def cfg(self) -> TurnConfig:
        assert isinstance(self.config, TurnConfig)
        return self.config

    def send_url(self) -> str:
        return f"{self.cfg.base_url}/v1/messages"

    def templates_url(self) -> str:
        cfg = self.cfg
        return f"{cfg.base_url}/graph/{cfg.api_version}/{cfg.waba_id}/message_templates"

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


GATEWAY = TurnGateway
