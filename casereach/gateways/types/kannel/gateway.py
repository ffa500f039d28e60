"""The ``kannel`` gateway: an operator's own Kannel (bearerbox + smsbox), over its HTTP API.

Send: ``GET {send_url}`` (smsbox's ``/cgi-bin/sendsms``) with ``username``, ``password``,
``to`` (``+`` and E.164 digits), ``from`` (the message's sender, else ``sender``), ``text``
(UTF-8, ``charset=UTF-8``; a UCS-2 message adds ``coding=2`` and Kannel converts it),
``smsc`` when set, and, when the server has a public URL, ``dlr-mask`` and a ``dlr-url``:
our status URL with our message id and Kannel's escape codes (``%d`` the report type, ``%A``
the SMSC's reply, ``%T`` its time). Kannel gives no message id of its own at submission, so
delivery reports name the message by ours (``is_our_id``).

Replies (smsbox answers text, HTTP 202 when it took the message)::

    2xx "0: Accepted for delivery"       sent
    2xx "3: Queued for later delivery"   sent (the SMSC link is down; Kannel keeps it)
    2xx anything else                    GATEWAY_ERROR, not retried (Kannel may have it)
    400 "Missing receiver number …"      INVALID_DESTINATION_NUMBER, not retried
    403 "Authorization failed …"         GATEWAY_ERROR, not retried (fix the account)
    other 4xx (no sender, not routable)  GATEWAY_ERROR, not retried
    408 / 429 / 5xx ("Sending failed.")  GATEWAY_ERROR, retried
    connection refused                   GATEWAY_ERROR, retried
    timeout after sending                GATEWAY_ERROR, retried, outcome unknown

Delivery reports (``GET /gateways/kannel/{inbound_key}/status?id=…&type=%d…``): ``%d`` 1
delivered, 2 failed on the phone, 4 queued on the SMSC and 8 accepted by the SMSC (both
``sent``: no change), 16 refused by the SMSC (failed).

Inbound SMS (``GET /gateways/kannel/{inbound_key}/inbound?…``, an ``sms-service`` ``get-url``):
``from=%p``, ``to=%P``, ``text=%b``, ``id=%I``, ``coding=%c``, ``charset=%C``. With
``mo-recode = true`` in the smsbox group Kannel recodes UCS-2 messages to UTF-8 before
calling; a message still in UTF-16 is refused with a 400 naming that setting. The webhook
answers an empty ``text/plain`` body: Kannel sends nothing back (``omit-empty``), and
replies go out through ``sendsms`` like every other message, logged and retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from casereach.gateways import netpolicy
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
from casereach.gateways.inbound import callback_fields, checked_inbound, inbound_fields
from casereach.gateways.inbound import required_field as _required

# Kannel's dlr-mask bits (its user guide, "Delivery reports").
DLR_DELIVERED = 1
DLR_UNDELIVERED = 2
DLR_QUEUED_ON_SMSC = 4
DLR_SMSC_ACK = 8
DLR_SMSC_REJECT = 16
DLR_ALL = 31

# The words smsbox answers a message it took: "0: Accepted for delivery", "3: Queued for
# later delivery" (the SMSC connection is down and Kannel queues it).
ACCEPTED = re.compile(r"\s*[03]\s*:")
# What may stand in the dlr-url unescaped: Kannel reads every "%" there as an escape code.
URL_SAFE_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
SMSC_ERR = re.compile(r"\berr:(\w+)")
UTF8_NAMES = frozenset({"", "utf-8", "utf8"})


class KannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_url: str = Field(
        description="smsbox's sendsms URL, e.g. http://127.0.0.1:13013/cgi-bin/sendsms"
    )
    username: str = Field(description="a sendsms-user's username")
    password: str = Field(description="that sendsms-user's password (secret)")
    sender: str = Field(default="", description="default 'from' (a number or sender id)")
    smsc: str = Field(
        default="", description="the smsc-id to send through (Kannel routes if blank)"
    )
    dlr_mask: int = Field(
        default=DLR_ALL,
        ge=1,
        le=DLR_ALL,
        description="delivery reports asked for: 1 delivered, 2 failed, 4 queued on the SMSC, "
        "8 accepted by the SMSC, 16 refused by the SMSC (sum them; 31 = all)",
    )
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)
    # Sent from the dispatcher's threads: at most CASEREACH_DISPATCH_THREADS at once.
    max_in_flight: int = max_in_flight_field(16)

    @field_validator("send_url")
    @classmethod
    def _send_url(cls, value: str) -> str:
        return netpolicy.check_url(value.strip())

    @field_validator("username", "password")
    @classmethod
    def _account(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank (Kannel's sendsms-user needs it)")
        return value

    @field_validator("sender", "smsc")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value.isprintable() or len(value) > 64:
            raise ValueError("must be at most 64 printable characters")
        return value


class KannelGateway(Gateway):
    slug = "kannel"
    label = "Kannel"
    config_model = KannelConfig
    secret_fields = ("password",)
    supports_idempotency = False
    # Kannel calls its dlr-url and its sms-service get-url with GET.
    callbacks_by_get = True

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)

    @property
    def cfg(self) -> KannelConfig:
        assert isinstance(self.config, KannelConfig)
        return self.config

    def secret_values(self) -> list[str]:
        return [self.cfg.password]

    def params(self, message: OutgoingMessage) -> dict[str, str]:
        """The sendsms query for ``message`` (GatewayError when it cannot be sent)."""
        cfg = self.cfg
        if not message.to.isdigit():
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="destination is not E.164 digits",
            )
        params = {
            "username": cfg.username,
            "password": cfg.password,
            "to": message.to_plus,
            "text": message.text,
            "charset": "UTF-8",
        }
        sender = message.sender or cfg.sender
        if sender:
            params["from"] = sender
        if message.encoding.upper() in ("UCS2", "UCS-2", "UTF-16"):
            params["coding"] = "2"
        if cfg.smsc:
            params["smsc"] = cfg.smsc
        if message.status_url:
            if not URL_SAFE_ID.fullmatch(message.message_id):
                raise GatewayError(
                    GATEWAY_ERROR,
                    retryable=False,
                    detail="the message id cannot stand in Kannel's dlr-url unescaped",
                )
            joiner = "&" if "?" in message.status_url else "?"
            params["dlr-mask"] = str(cfg.dlr_mask)
            params["dlr-url"] = (
                f"{message.status_url}{joiner}id={message.message_id}&type=%d&reply=%A&ts=%T"
            )
        return params

    def send(self, message: OutgoingMessage) -> SendResult:
        self.last_exchange = None
        params = self.params(message)
        netpolicy.check_url_before_send(self.cfg.send_url)
        client = self._http_client()
        request = client.build_request(
            "GET",
            self.cfg.send_url,
            params=params,
            headers={"Accept": "text/plain"},
            timeout=self.cfg.timeout_s,
        )
        response = netpolicy.send_logged(
            client, request, secrets=self.secret_values(), record=self._record
        )
        return self._interpret(response)

    def _interpret(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        text = response.content.decode("utf-8", errors="replace").strip()
        said = text[:200] or f"HTTP {status} with an empty body"
        if 200 <= status <= 299:
            if ACCEPTED.match(text):
                return SendResult(provider_id=None, status="sent", detail=said)
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                provider_code=str(status),
                detail=f"Kannel answered {said!r}; it may have taken the message, so it is "
                "not retried",
            )
        retry = netpolicy.retryable_http_error(response, provider_code=str(status))
        if retry is not None:
            retry.detail = f"Kannel answered {said!r}"
            raise retry
        lowered = text.lower()
        code = GATEWAY_ERROR
        if "receiver" in lowered:  # "Missing receiver number", "Empty receiver number …"
            code = INVALID_DESTINATION_NUMBER
        raise GatewayError(
            code, retryable=False, provider_code=str(status), detail=f"Kannel answered {said!r}"
        )

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        """A delivery report: the query of our dlr-url (``id``, ``type``, ``reply``)."""
        fields = callback_fields(form, body, content_type, what="delivery report")
        message_id = (fields.get("id") or "").strip()
        if not URL_SAFE_ID.fullmatch(message_id):
            raise ValueError("delivery report has no message id ('id')")
        raw_type = (fields.get("type") or "").strip()
        if not raw_type.isdigit():
            raise ValueError("delivery report has no numeric 'type' (Kannel's %d)")
        kind = int(raw_type)
        if kind & DLR_DELIVERED:
            return [StatusUpdate(provider_id=message_id, status="delivered", is_our_id=True)]
        if kind & (DLR_UNDELIVERED | DLR_SMSC_REJECT):
            err = SMSC_ERR.search(fields.get("reply") or "")
            provider_code = f"err:{err.group(1)}" if err else f"dlr:{kind}"
            return [
                StatusUpdate(
                    provider_id=message_id,
                    status="failed",
                    error_code=GATEWAY_ERROR,
                    provider_code=provider_code[:64],
                    is_our_id=True,
                )
            ]
        if kind & (DLR_QUEUED_ON_SMSC | DLR_SMSC_ACK):
            return [StatusUpdate(provider_id=message_id, status="sent", is_our_id=True)]
        raise ValueError(f"unknown delivery report type {kind}")

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        """An SMS from a phone: the query of the sms-service get-url."""
        # Kannel calls with GET: the fields are the query, and there is no body to read.
        fields = inbound_fields(form, body, content_type) if body else dict(form)
        charset = str(fields.get("charset") or "").strip().lower()
        coding = str(fields.get("coding") or "").strip()
        if charset not in UTF8_NAMES or (coding == "2" and not charset):
            raise ValueError(
                f"the text arrived as {charset or 'UCS-2'!r}, not UTF-8: set 'mo-recode = true' "
                "in Kannel's smsbox group"
            )
        if coding == "1":
            raise ValueError("an 8-bit binary SMS is not text")
        return [
            checked_inbound(
                sender=_required(fields, "from"),
                to=_required(fields, "to"),
                text=_required(fields, "text"),
                provider_id=_required(fields, "id"),
            )
        ]

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]:
        """An empty body: Kannel sends no SMS back (replies go out through sendsms)."""
        return 200, "text/plain", b""


GATEWAY = KannelGateway
