"""The ``twilio`` gateway: Twilio's Programmable Messaging (Messages API) and status callbacks.

Send: ``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with HTTP Basic auth
(account SID, auth token) and the form fields ``To``, ``From`` and/or ``MessagingServiceSid``,
``Body`` and ``StatusCallback``. Twilio has no idempotency key, so a send whose outcome is
unknown may be sent twice if retried (``supports_idempotency = False``).

Replies::

    2xx with a JSON "sid"         SendResult(provider_id=sid)
    2xx without one (garbage)     GATEWAY_ERROR, not retried: Twilio may well have accepted it,
                                  and a retry without an idempotency key could send it twice
    408 / 429 / 5xx               GATEWAY_ERROR, retried (429 keeps Retry-After)
    other, JSON {"code": n}       ERROR_CODES[n] or GATEWAY_ERROR, not retried
    other, no JSON                GATEWAY_ERROR, not retried, provider_code = the HTTP status

Status callbacks are form posts with ``MessageSid``, ``MessageStatus`` and, on failure,
``ErrorCode``; ``valid_signature`` checks their ``X-Twilio-Signature`` header.

Inbound SMS (``POST /gateways/twilio/{inbound_key}/inbound``) are form posts too, signed the
same way: ``From``, ``To``, ``Body``, ``MessageSid`` (older: ``SmsMessageSid`` / ``SmsSid``) and
``AccountSid``. Numbers become digits without "+". The webhook answers empty TwiML: replies go
out through the Messages API like every other message, so they are logged and retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from casereach.core import text as core_text
from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_TOO_LONG,
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
from casereach.gateways.masking import mask_text

DEFAULT_BASE_URL = "https://api.twilio.com"

# Twilio REST API error codes (the "code" of a JSON error reply) → our codes. Anything else is
# a permanent GATEWAY_ERROR with Twilio's code kept as provider_code.
ERROR_CODES: dict[str, str] = {
    "21211": INVALID_DESTINATION_NUMBER,  # invalid 'To' phone number
    "21614": INVALID_DESTINATION_NUMBER,  # 'To' number is not a valid mobile number
    "21610": PHONE_NUMBER_OPTED_OUT,  # the recipient replied STOP
    "21617": MESSAGE_TOO_LONG,  # the concatenated message body exceeds 1600 characters
}

# Delivery error codes in status callbacks (ErrorCode) → our codes; other failures are
# GATEWAY_ERROR. 30003 unreachable handset, 30004 blocked, 30007 filtered by the carrier and
# 30008 unknown error are about delivery, not the number itself.
CALLBACK_ERROR_CODES: dict[str, str] = {
    **ERROR_CODES,
    "30003": GATEWAY_ERROR,
    "30004": GATEWAY_ERROR,
    "30005": INVALID_DESTINATION_NUMBER,  # unknown destination handset
    "30006": INVALID_DESTINATION_NUMBER,  # landline or unreachable carrier
    "30007": GATEWAY_ERROR,
    "30008": GATEWAY_ERROR,
}

# Twilio message statuses → ours. Statuses before "sent" still mean Twilio has the message,
# which for us is "sent" (handed to the gateway).
STATUS_WORDS: dict[str, Status] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twilio_signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(auth_token, url + sorted key+value pairs)).

    ``url`` is the full URL Twilio requested, query string included; ``params`` are the POST
    form fields (empty for a GET).
    """
    payload = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its default port, and with it (Twilio may sign either)."""
    parts = urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default_port is None or parts.hostname is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    try:
        port = parts.port
    except ValueError:
        return variants
    if port is None:
        netloc = f"{prefix}{host}:{default_port}"
    elif port == default_port:
        netloc = prefix + host
    else:
        return variants
    variants.append(urlunsplit(parts._replace(netloc=netloc)))
    return variants


def valid_signature(url: str, params: Mapping[str, str], auth_token: str, signature: str) -> bool:
    """Whether ``signature`` (the X-Twilio-Signature header) signs this request."""
    if not signature or not auth_token:
        return False
    given = signature.encode()
    return any(
        hmac.compare_digest(twilio_signature(candidate, params, auth_token).encode(), given)
        for candidate in _url_variants(url)
    )


class TwilioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_sid: str = Field(description="Account SID, 'AC' followed by 32 hex digits")
    auth_token: str = Field(description="Auth token (secret)")
    from_number: str = Field(default="", description="Default sender: a number or sender id")
    messaging_service_sid: str = Field(default="", description="'MG…' — send via a service")
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # Sent from the dispatcher's threads: at most CASEREACH_DISPATCH_THREADS at once.
    max_in_flight: int = max_in_flight_field(16)

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        value = value.strip()
        if not _is_sid(value, "AC"):
            raise ValueError("account_sid must be 'AC' followed by 32 hexadecimal characters")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str) -> str:
        value = value.strip()
        if value and not _is_sid(value, "MG"):
            raise ValueError(
                "messaging_service_sid must be 'MG' followed by 32 hexadecimal characters"
            )
        return value

    @field_validator("auth_token")
    @classmethod
    def _auth_token(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 8:
            raise ValueError("auth_token is missing or too short (Twilio tokens are 32 characters)")
        return value

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str) -> str:
        value = value.strip()
        digits = value.removeprefix("+")
        if value and not (digits.isdigit() or (value.isalnum() and len(value) <= 11)):
            raise ValueError(
                "from_number must be a phone number (digits, optional '+') or an alphanumeric "
                "sender id of at most 11 characters"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return netpolicy.check_url(value.rstrip("/"))


def _is_sid(value: str, prefix: str) -> bool:
    rest = value[len(prefix) :]
    return (
        value.startswith(prefix)
        and len(rest) == 32
        and all(c in "0123456789abcdefABCDEF" for c in rest)
    )


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class TwilioGateway(Gateway):
    slug = "twilio"
    label = "Twilio"
    config_model = TwilioConfig
    secret_fields = ("auth_token",)
    supports_idempotency = False

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)

    @property
    def cfg(self) -> TwilioConfig:
        assert isinstance(self.config, TwilioConfig)
        return self.config

    def secret_values(self) -> list[str]:
        return [self.cfg.auth_token]

    def _basic_auth(self) -> str:
        pair = f"{self.cfg.account_sid}:{self.cfg.auth_token}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.cfg
        self.last_exchange = None
        if not message.to.isdigit():
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="destination is not E.164 digits",
            )
        form = {"To": message.to_plus, "Body": message.text}
        sender = message.sender or cfg.from_number
        if sender:
            form["From"] = "+" + sender if sender.isdigit() else sender
        if cfg.messaging_service_sid:
            form["MessagingServiceSid"] = cfg.messaging_service_sid
        if not sender and not cfg.messaging_service_sid:
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                detail="no sender: set from_number or messaging_service_sid on the gateway",
            )
        if message.status_url:
            form["StatusCallback"] = message.status_url

        url = f"{cfg.base_url}/2010-04-01/Accounts/{cfg.account_sid}/Messages.json"
        netpolicy.check_url_before_send(url)
        client = self._http_client()
        request = client.build_request(
            "POST",
            url,
            data=form,
            headers={"Accept": "application/json", "Authorization": self._basic_auth()},
            timeout=cfg.timeout_s,
        )
        response = netpolicy.send_logged(
            client, request, secrets=self.secret_values(), record=self._record
        )
        return self._interpret(response)

    def _interpret(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        data = _json_object(response)
        if 200 <= status <= 299:
            sid = data.get("sid") if data else None
            if not isinstance(sid, str) or not sid:
                raise GatewayError(
                    GATEWAY_ERROR,
                    retryable=False,
                    provider_code=str(status),
                    detail=f"HTTP {status} but the reply has no message sid; "
                    "Twilio may have accepted the message, so it is not retried",
                )
            return SendResult(provider_id=sid, status="sent")

        code = ""
        detail = f"Twilio replied HTTP {status}"
        if data is not None:
            raw_code = data.get("code")
            if isinstance(raw_code, int | str) and not isinstance(raw_code, bool):
                code = str(raw_code)
            if isinstance(data.get("message"), str):
                detail = mask_text(str(data["message"]), self.secret_values())
        retry = netpolicy.retryable_http_error(response, provider_code=code)
        if retry is not None:
            raise retry
        raise GatewayError(
            ERROR_CODES.get(code, GATEWAY_ERROR),
            retryable=False,
            provider_code=code or str(status),
            detail=detail,
        )

    def fetch_price(self, provider_id: str) -> tuple[str, str] | None:
        """The message's ``price`` and ``price_unit`` (``GET …/Messages/{sid}.json``): Twilio's
        status callbacks carry no price, and the price appears some time after the final
        status. None while it is null, on any error, or for an id that is no message SID."""
        cfg = self.cfg
        if not _is_sid(provider_id, "SM") and not _is_sid(provider_id, "MM"):
            return None
        url = f"{cfg.base_url}/2010-04-01/Accounts/{cfg.account_sid}/Messages/{provider_id}.json"
        try:
            netpolicy.check_url_before_send(url)
            client = self._http_client()
            request = client.build_request(
                "GET",
                url,
                headers={"Accept": "application/json", "Authorization": self._basic_auth()},
                timeout=cfg.timeout_s,
            )
            response = netpolicy.send_logged(
                client, request, secrets=self.secret_values(), record=self._record
            )
        except GatewayError:
            return None
        data = _json_object(response) if response.status_code == 200 else None
        price = data.get("price") if data else None
        unit = data.get("price_unit") if data else None
        if not isinstance(price, str | int | float) or isinstance(price, bool) or price == "":
            return None
        return str(price), unit.upper() if isinstance(unit, str) else ""

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        fields = callback_fields(form, body, content_type, what="status callback")
        sid = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()
        word = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
        if not sid:
            raise ValueError("status callback has no MessageSid")
        if not word:
            raise ValueError("status callback has no MessageStatus")
        account = fields.get("AccountSid", "").strip()
        if account and account != self.cfg.account_sid:
            raise ValueError("status callback is for another Twilio account")
        status = STATUS_WORDS.get(word)
        if status is None:
            raise ValueError(f"unknown MessageStatus {word!r}")
        error_code = fields.get("ErrorCode", "").strip()
        if status != "failed":
            return [StatusUpdate(provider_id=sid, status=status)]
        return [
            StatusUpdate(
                provider_id=sid,
                status="failed",
                error_code=CALLBACK_ERROR_CODES.get(error_code, GATEWAY_ERROR),
                provider_code=error_code or word,
            )
        ]

    def valid_callback_signature(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        """Whether a callback's X-Twilio-Signature matches this gateway's auth token."""
        return valid_signature(url, params, self.cfg.auth_token, signature)

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        """An incoming-message webhook (a form post). The signature is checked by the caller
        with ``valid_callback_signature``; this only reads and validates the fields."""
        fields = _inbound_form(form, body, content_type)
        account = fields.get("AccountSid", "").strip()
        if account and account != self.cfg.account_sid:
            raise ValueError("inbound message is for another Twilio account")
        sid = next(
            (
                fields[name].strip()
                for name in ("MessageSid", "SmsMessageSid", "SmsSid")
                if fields.get(name, "").strip()
            ),
            "",
        )
        if not sid:
            raise ValueError("missing field 'MessageSid'")
        for name in ("From", "To", "Body"):
            if name not in fields:
                raise ValueError(f"missing field {name!r}")
        return [
            _inbound_message(
                sender=fields["From"], to=fields["To"], text=fields["Body"], provider_id=sid
            )
        ]

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]:
        """Empty TwiML; ``text`` is unused (replies go out through the Messages API)."""
        return 200, "text/xml", EMPTY_TWIML


def _inbound_form(form: Mapping[str, str], body: bytes, content_type: str) -> dict[str, str]:
    """``form`` plus a urlencoded body parsed strictly (UTF-8, name=value pairs)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (_FORM, _MULTIPART):
        raise ValueError(
            f"Twilio inbound messages are form posts; got content type {media or '(none)'!r}"
        )
    fields = dict(form)
    if media == _FORM and body:
        fields.update(core_text.parse_form(body))
    return fields


def _inbound_message(sender: str, to: str, text: str, provider_id: str) -> InboundMessage:
    """Checked and normalised; every failure is a ValueError naming the field."""
    if len(text) > MAX_INBOUND_TEXT:
        raise ValueError(f"'Body' is longer than {MAX_INBOUND_TEXT} characters")
    if "\x00" in text:
        raise ValueError("'Body' contains a NUL character")
    if not core_text.is_text(text):
        raise ValueError("'Body' is not valid Unicode (lone surrogate)")
    if len(provider_id) > MAX_PROVIDER_ID or not provider_id.isprintable():
        raise ValueError(f"'MessageSid' must be at most {MAX_PROVIDER_ID} printable characters")
    return InboundMessage(
        sender=_phone(sender, "From"), to=_phone(to, "To"), text=text, provider_id=provider_id
    )


GATEWAY = TwilioGateway
