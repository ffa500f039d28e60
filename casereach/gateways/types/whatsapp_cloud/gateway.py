"""The ``whatsapp_cloud`` gateway: Meta's WhatsApp Cloud API.

Send: ``POST {base_url}/{api_version}/{phone_number_id}/messages`` with the bearer access
token and a JSON message — free text, a template (name, language, body parameters) or an
interactive message (reply buttons, or a list), shaped and cut by ``whatsapp_common``. Meta has
no idempotency key, so a send whose outcome is unknown may be sent twice if retried
(``supports_idempotency = False``).

Replies::

    2xx with messages[0].id       SendResult(provider_id=the wamid)
    2xx without one (garbage)     GATEWAY_ERROR, not retried: Meta may well have accepted it,
                                  and a retry without an idempotency key could send it twice
    an error with Meta's code     mapped by whatsapp_common.classify (not a WhatsApp user,
                                  outside the window, template, number, rate limit, token)
    other 408 / 429 / 5xx         GATEWAY_ERROR, retried (Retry-After kept)

Webhooks (``/gateways/whatsapp_cloud/{inbound_key}/webhook``): a GET with ``hub.mode``,
``hub.verify_token`` and ``hub.challenge`` when the URL is registered (``verify_subscription``);
POSTs signed ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` carrying
``entry[].changes[].value`` with ``statuses[]`` and ``messages[]`` (``parse_webhook``).

Templates: ``GET {base_url}/{api_version}/{waba_id}/message_templates``, page by page.
"""

from __future__ import annotations

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
from casereach.gateways.types import whatsapp_hooks as hooks
from casereach.gateways.types.whatsapp_base import WhatsAppConfigChecks, WhatsAppGateway

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WhatsAppCloudConfig(WhatsAppConfigChecks):
    phone_number_id: str = Field(description="The sending number's id in WhatsApp Manager")
    waba_id: str = Field(
        default="", description="WhatsApp Business Account id (needed to sync templates)"
    )
    access_token: str = Field(description="A system user's access token (secret)")
    app_secret: str = Field(description="The Meta app's secret: checks webhook signatures")
    verify_token: str = Field(description="Any text, also given to Meta for the webhook check")
    api_version: str = DEFAULT_API_VERSION
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # Sent from the dispatcher's event loop (``send_async``); Meta's default throughput is
    # 80 messages a second per number.
    max_in_flight: int = max_in_flight_field(100)

    @field_validator("phone_number_id")
    @classmethod
    def _phone_number_id(cls, value: str) -> str:
        value = value.strip()
        if not value.isdigit() or len(value) > 32:
            raise ValueError("phone_number_id must be the number's id (digits), not the number")
        return value


class WhatsAppCloudGateway(WhatsAppGateway):
    slug = "whatsapp_cloud"
    label = "WhatsApp (Meta Cloud API)"
    config_model = WhatsAppCloudConfig
    secret_fields = ("access_token", "app_secret", "verify_token")
    cloud = True

    @property
    def cfg(self) -> WhatsAppCloudConfig:
        assert isinstance(self.config, WhatsAppCloudConfig)
        return self.config

    def send_url(self) -> str:
        cfg = self.cfg
        return f"{cfg.base_url}/{cfg.api_version}/{cfg.phone_number_id}/messages"

    def templates_url(self) -> str:
        cfg = self.cfg
        return f"{cfg.base_url}/{cfg.api_version}/{cfg.waba_id}/message_templates"

    def valid_webhook_signature(self, headers: Mapping[str, str], body: bytes) -> bool:
        given = hooks.header(headers, SIGNATURE_HEADER).strip()
        if not given.startswith("sha256="):
            return False
        expected = hub_signature(self.cfg.app_secret, body)
        return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))

    def verify_subscription(self, query: Mapping[str, str]) -> str | None:
        if query.get("hub.mode") != "subscribe":
            return None
        token = query.get("hub.verify_token", "")
        if not hmac.compare_digest(
            token.encode("utf-8", "replace"), self.cfg.verify_token.encode()
        ):
            return None
        return hooks.challenge_text(query.get("hub.challenge", ""))

    def parse_webhook(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> tuple[list[StatusUpdate], list[InboundMessage]]:
        return hooks.parse_webhook(body, "", self.cfg.phone_number_id)


GATEWAY = WhatsAppCloudGateway
