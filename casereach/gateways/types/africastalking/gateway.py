"""The ``africastalking`` gateway: Africa's Talking bulk SMS API and delivery reports.

Send: ``POST {base_url}/version1/messaging`` with the ``apiKey`` header, ``Accept:
application/json`` and the form fields ``username``, ``to`` (``+digits``), ``message`` and,
when there is a sender, ``from``. Africa's Talking takes no idempotency key
(``supports_idempotency = False``).

The reply lists one recipient per number: ``SMSMessageData.Recipients[0]`` with ``statusCode``,
``status`` and ``messageId``::

    HTTP 2xx, statusCode 100-102        SendResult(provider_id=messageId)
    HTTP 2xx, statusCode 500-502        GATEWAY_ERROR, retried
    HTTP 2xx, other statusCode          RECIPIENT_CODES[code] or GATEWAY_ERROR, not retried
    HTTP 2xx, no recipient              the reply's Message word (e.g. InvalidSenderId) mapped
                                        the same way, else GATEWAY_ERROR, not retried
    HTTP 2xx, garbage body              GATEWAY_ERROR, not retried (it may have been accepted,
                                        and a retry without an idempotency key could repeat it)
    HTTP 408 / 429 / 5xx                GATEWAY_ERROR, retried (Retry-After kept)
    other HTTP status                   GATEWAY_ERROR, not retried, provider_code = the status

Delivery reports are form posts with ``id``, ``status`` and, on failure, ``failureReason``.

Incoming messages (``POST /gateways/africastalking/{inbound_key}/inbound``) are form posts with
``from``, ``to`` (the short code or number), ``text``, ``id``, ``date`` and, for premium
services, ``linkId``. ``date`` and ``linkId`` are not kept (we do not run premium services).
Africa's Talking does not sign callbacks: the secret inbound key in the URL is the credential.
The webhook answers ``{"status": "received"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casereach.core import text as core_text
from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    PHONE_NUMBER_OPTED_OUT,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    SendResult,
    Status,
    StatusUpdate,
    max_in_flight_field,
)
from casereach.gateways.inbound import FORM as _FORM
from casereach.gateways.inbound import MAX_INBOUND_TEXT, MAX_PROVIDER_ID, callback_fields
from casereach.gateways.inbound import MULTIPART as _MULTIPART
from casereach.gateways.inbound import (
    phone_digits as _phone,
)

DEFAULT_BASE_URL = "https://api.africastalking.com"
SANDBOX_BASE_URL = "https://api.sandbox.africastalking.com"


SUCCESS_CODES = frozenset({100, 101, 102})  # Processed, Sent, Queued
RETRYABLE_CODES = frozenset({500, 501, 502})  # InternalServerError, GatewayError, RejectedByGateway

# Recipient statusCode → (our code, Africa's Talking's name for it). Unlisted codes are a
# permanent GATEWAY_ERROR.
RECIPIENT_CODES: dict[int, tuple[str, str]] = {
    401: (GATEWAY_ERROR, "RiskHold"),
    402: (GATEWAY_ERROR, "InvalidSenderId"),
    403: (INVALID_DESTINATION_NUMBER, "InvalidPhoneNumber"),
    404: (INVALID_DESTINATION_NUMBER, "UnsupportedNumberType"),
    405: (GATEWAY_ERROR, "InsufficientBalance"),
    406: (PHONE_NUMBER_OPTED_OUT, "UserInBlacklist"),
    407: (GATEWAY_ERROR, "CouldNotRoute"),
    409: (GATEWAY_ERROR, "DoNotDisturbRejection"),
}
_CODE_BY_NAME: dict[str, int] = {name.lower(): code for code, (_, name) in RECIPIENT_CODES.items()}

# Delivery-report status words → ours.
STATUS_WORDS: dict[str, Status] = {
    "sent": "sent",
    "submitted": "sent",
    "buffered": "sent",
    "success": "delivered",
    "failed": "failed",
    "rejected": "failed",
}

# Delivery-report failureReason → our code; other reasons are GATEWAY_ERROR.
FAILURE_REASONS: dict[str, str] = {
    "userinblacklist": PHONE_NUMBER_OPTED_OUT,
    "userdoesnotexist": INVALID_DESTINATION_NUMBER,
    "notnetworksubcriber": INVALID_DESTINATION_NUMBER,  # sic: Africa's Talking's spelling
    "notnetworksubscriber": INVALID_DESTINATION_NUMBER,
    "invalidphonenumber": INVALID_DESTINATION_NUMBER,
}


class AfricasTalkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(description="Africa's Talking app username ('sandbox' for the sandbox)")
    api_key: str = Field(description="API key (secret)")
    sender_id: str = Field(default="", description="Default short code or alphanumeric sender")
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # Sent from the dispatcher's threads: at most CASEREACH_DISPATCH_THREADS at once.
    max_in_flight: int = max_in_flight_field(16)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("username is required")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 8:
            raise ValueError("api_key is missing or too short")
        return value

    @field_validator("sender_id")
    @classmethod
    def _sender_id(cls, value: str) -> str:
        value = value.strip()
        if value and not (value.lstrip("+").isdigit() or (value.isalnum() and len(value) <= 11)):
            raise ValueError(
                "sender_id must be a short code or number, or at most 11 letters and digits"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return netpolicy.check_url(value.rstrip("/"))

    @model_validator(mode="after")
    def _sandbox(self) -> AfricasTalkingConfig:
        # The sandbox app only exists on the sandbox host; spare people a confusing 401.
        if self.username == "sandbox" and "base_url" not in self.model_fields_set:
            self.base_url = SANDBOX_BASE_URL
        return self


def _recipient(response: httpx.Response) -> tuple[dict[str, Any] | None, str]:
    """The first recipient of a reply and the reply's ``Message``; raises ValueError if garbage."""
    data = json.loads(response.content)
    if not isinstance(data, dict) or not isinstance(data.get("SMSMessageData"), dict):
        raise ValueError("no SMSMessageData")
    sms_data = data["SMSMessageData"]
    summary = sms_data.get("Message")
    recipients = sms_data.get("Recipients")
    if not isinstance(recipients, list):
        raise ValueError("no Recipients list")
    first = recipients[0] if recipients else None
    if first is not None and not isinstance(first, dict):
        raise ValueError("recipient is not an object")
    return first, summary if isinstance(summary, str) else ""


def _status_code(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class AfricasTalkingGateway(Gateway):
    slug = "africastalking"
    label = "Africa's Talking"
    config_model = AfricasTalkingConfig
    secret_fields = ("api_key",)
    supports_idempotency = False

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)

    @property
    def cfg(self) -> AfricasTalkingConfig:
        assert isinstance(self.config, AfricasTalkingConfig)
        return self.config

    def secret_values(self) -> list[str]:
        return [self.cfg.api_key]

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.cfg
        self.last_exchange = None
        if not message.to.isdigit():
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="destination is not E.164 digits",
            )
        form = {"username": cfg.username, "to": message.to_plus, "message": message.text}
        sender = message.sender or cfg.sender_id
        if sender:
            form["from"] = sender
        url = f"{cfg.base_url}/version1/messaging"
        netpolicy.check_url_before_send(url)
        client = self._http_client()
        request = client.build_request(
            "POST",
            url,
            data=form,
            headers={"apiKey": cfg.api_key, "Accept": "application/json"},
            timeout=cfg.timeout_s,
        )
        response = netpolicy.send_logged(
            client, request, secrets=self.secret_values(), record=self._record
        )
        return self._interpret(response)

    def _interpret(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if not 200 <= status <= 299:
            retry = netpolicy.retryable_http_error(response)
            if retry is not None:
                raise retry
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                provider_code=str(status),
                detail=f"Africa's Talking replied HTTP {status}",
            )
        try:
            recipient, summary = _recipient(response)
        except ValueError as exc:
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                provider_code=str(status),
                detail=f"HTTP {status} but the reply is unreadable ({exc}); it may have been "
                "accepted, so it is not retried",
            ) from None
        if recipient is None:
            code = _CODE_BY_NAME.get(summary.strip().lower())
            self._refuse(code, summary or "no recipient in the reply")
        code = _status_code(recipient.get("statusCode"))
        word = str(recipient.get("status") or "")
        if code in SUCCESS_CODES:
            message_id = recipient.get("messageId")
            provider_id = str(message_id) if message_id not in (None, "", "None") else None
            return SendResult(provider_id=provider_id, status="sent", detail=word)
        if code in RETRYABLE_CODES:
            raise GatewayError(GATEWAY_ERROR, retryable=True, provider_code=str(code), detail=word)
        self._refuse(code, word)

    def _refuse(self, code: int | None, word: str) -> NoReturn:
        ours = (
            RECIPIENT_CODES.get(code, (GATEWAY_ERROR, ""))[0] if code is not None else GATEWAY_ERROR
        )
        raise GatewayError(
            ours,
            retryable=False,
            provider_code=str(code) if code is not None else word,
            detail=word,
        )

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        fields = callback_fields(form, body, content_type, what="delivery report")
        message_id = fields.get("id", "").strip()
        word = fields.get("status", "").strip()
        if not message_id:
            raise ValueError("delivery report has no id")
        if not word:
            raise ValueError("delivery report has no status")
        status = STATUS_WORDS.get(word.lower())
        if status is None:
            raise ValueError(f"unknown delivery status {word!r}")
        if status != "failed":
            return [StatusUpdate(provider_id=message_id, status=status)]
        reason = fields.get("failureReason", "").strip()
        return [
            StatusUpdate(
                provider_id=message_id,
                status="failed",
                error_code=FAILURE_REASONS.get(reason.lower(), GATEWAY_ERROR),
                provider_code=reason or word,
            )
        ]

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        """An incoming-message callback (a form post); raises ValueError if malformed."""
        fields = _inbound_form(form, body, content_type)
        for name in ("from", "to", "text", "id"):
            if name not in fields:
                raise ValueError(f"missing field {name!r}")
        message_id = fields["id"].strip()
        if not message_id:
            raise ValueError("'id' is empty")
        text = fields["text"]
        if len(text) > MAX_INBOUND_TEXT:
            raise ValueError(f"'text' is longer than {MAX_INBOUND_TEXT} characters")
        if "\x00" in text:
            raise ValueError("'text' contains a NUL character")
        if not core_text.is_text(text):
            raise ValueError("'text' is not valid Unicode (lone surrogate)")
        if len(message_id) > MAX_PROVIDER_ID or not message_id.isprintable():
            raise ValueError(f"'id' must be at most {MAX_PROVIDER_ID} printable characters")
        return [
            InboundMessage(
                sender=_phone(fields["from"], "from"),
                to=_phone(fields["to"], "to"),
                text=text,
                provider_id=message_id,
            )
        ]

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]:
        """``{"status": "received"}``; ``text`` is unused (replies go out through ``send``)."""
        return 200, "application/json", b'{"status": "received"}'


def _inbound_form(form: Mapping[str, str], body: bytes, content_type: str) -> dict[str, str]:
    """``form`` plus a urlencoded body parsed strictly (UTF-8, name=value pairs)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (_FORM, _MULTIPART):
        raise ValueError(
            f"Africa's Talking inbound messages are form posts; got content type {media or '(none)'!r}"
        )
    fields = dict(form)
    if media == _FORM and body:
        fields.update(core_text.parse_form(body))
    return fields


GATEWAY = AfricasTalkingGateway
