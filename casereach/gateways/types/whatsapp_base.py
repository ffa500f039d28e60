"""What the two WhatsApp gateway types share as a ``Gateway``: the HTTP client, sending (plain
and through the lean client), the template list and the webhook's two halves. They differ in
their config, URLs and webhook signatures (``whatsapp_cloud``, ``turn``)."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, cast

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

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
)
from casereach.gateways.types import whatsapp_common as wa
from casereach.gateways.types import whatsapp_templates as templates
from casereach.gateways.wire import WirePool

_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")


class WhatsAppConfigChecks(BaseModel):
    """The checks of the fields the WhatsApp types' configs share (each config declares its
    own fields, in its own order; a check applies to the fields a config has)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("waba_id", check_fields=False)
    @classmethod
    def _waba_id(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.isdigit() or len(value) > 32):
            raise ValueError("waba_id must be digits")
        return value

    @field_validator(
        "access_token", "app_secret", "verify_token", "hook_secret", check_fields=False
    )
    @classmethod
    def _secret(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 8:
            raise ValueError("must be at least 8 characters")
        return value

    @field_validator("api_version", check_fields=False)
    @classmethod
    def _api_version(cls, value: str) -> str:
        value = value.strip()
        if not _VERSION.fullmatch(value):
            raise ValueError("api_version must look like v21.0")
        return value

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, value: str) -> str:
        return netpolicy.check_url(value.rstrip("/"))


class WhatsAppSettings(Protocol):
    """The config fields both WhatsApp types have."""

    access_token: str
    waba_id: str
    timeout_s: float


class WhatsAppGateway(Gateway):
    channel = "whatsapp"
    supports_idempotency = False  # neither Meta nor Turn takes an idempotency key
    sends_async = True  # ``send_async``: the dispatcher's lean-client path
    # Meta's Cloud API shapes (``whatsapp_cloud``) or the on-premises API's (``turn``).
    cloud: ClassVar[bool]

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)
        self._plan: wa.WirePlan | None = None

    @property
    def settings(self) -> WhatsAppSettings:
        return cast(WhatsAppSettings, self.config)

    @abstractmethod
    def send_url(self) -> str:
        """Where messages are posted."""

    @abstractmethod
    def templates_url(self) -> str:
        """Where the template list starts (its first page)."""

    def _wire_plan(self) -> wa.WirePlan:
        if self._plan is None:
            token = self.settings.access_token
            self._plan = wa.wire_plan(self.send_url(), token, self.secret_values())
        return self._plan

    async def send_async(
        self, message: OutgoingMessage, pool: WirePool, record: Callable[[Exchange], None]
    ) -> SendResult:
        """``send`` through the lean client: the same request, checks, classification."""
        wa.check_destination(message)
        return await wa.send_json_async(
            pool,
            self._wire_plan(),
            wa.message_payload(message, cloud=self.cloud),
            timeout_s=self.settings.timeout_s,
            secrets=self.secret_values(),
            record=record,
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        self.last_exchange = None
        wa.check_destination(message)
        return wa.send_json(
            self._http_client(),
            self.send_url(),
            wa.message_payload(message, cloud=self.cloud),
            token=self.settings.access_token,
            timeout_s=self.settings.timeout_s,
            secrets=self.secret_values(),
            record=self._record,
        )

    def list_templates(self) -> list[ProviderTemplate]:
        if not self.settings.waba_id:
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                detail="set waba_id on the gateway to sync its templates",
            )
        self.last_exchange = None
        return templates.list_templates(
            self._http_client(),
            self.templates_url(),
            token=self.settings.access_token,
            timeout_s=self.settings.timeout_s,
            secrets=self.secret_values(),
            record=self._record,
        )

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        return self.parse_webhook(form, body, content_type)[0]

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        return self.parse_webhook(form, body, content_type)[1]
