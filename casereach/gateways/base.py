"""The gateway seam: what every gateway type takes and returns.

A gateway type is an adapter. It never touches the database: it receives an
``OutgoingMessage`` and its validated configuration, and returns a ``SendResult`` or raises
``GatewayError``. Parsing provider callbacks returns ``StatusUpdate`` / ``InboundMessage``
values; storing them is the messaging app's job.

Error classification::

    GatewayError
    ├── retryable=True   network error, timeout, 429, 5xx — tried again with backoff
    │   └── outcome_unknown=True  the request may have reached the provider (timeout after
    │                             sending): retried with the same idempotency key
    └── retryable=False  the provider refused the message for good; ``code`` says why
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from casereach.gateways.wire import WirePool

# What an API or form shows in place of a write-only value kept inside another field (a secret
# header or param); sent back unchanged (or blank, or left out), it keeps the stored value.
SECRET_MARK = "***"  # noqa: S105 (a placeholder shown instead of a secret, not one)

# Error codes a gateway may raise (a subset of SPEC 4.4; never invent new ones in a type).
INVALID_DESTINATION_NUMBER = "INVALID_DESTINATION_NUMBER"
MESSAGE_TOO_LONG = "MESSAGE_TOO_LONG"
MESSAGE_FORMAT_INVALID = "MESSAGE_FORMAT_INVALID"
PHONE_NUMBER_OPTED_OUT = "PHONE_NUMBER_OPTED_OUT"
GATEWAY_ERROR = "GATEWAY_ERROR"
EMAIL_GATEWAY_ERROR = "EMAIL_GATEWAY_ERROR"
ERROR_INVALID_EMAIL_ADDRESS = "ERROR_INVALID_EMAIL_ADDRESS"
EMAIL_BOUNCED = "EMAIL_BOUNCED"
# WhatsApp: the number is not on WhatsApp (Meta 131026 and the like); permanent.
WHATSAPP_NOT_A_USER = "WHATSAPP_NOT_A_USER"
# WhatsApp: outside the 24-hour customer-service window with no approved template that fits
# (Meta 131047, or decided before sending); never retried.
WHATSAPP_OUTSIDE_WINDOW = "WHATSAPP_OUTSIDE_WINDOW"

GATEWAY_CODES = frozenset(
    {
        INVALID_DESTINATION_NUMBER,
        MESSAGE_TOO_LONG,
        MESSAGE_FORMAT_INVALID,
        PHONE_NUMBER_OPTED_OUT,
        GATEWAY_ERROR,
        EMAIL_GATEWAY_ERROR,
        ERROR_INVALID_EMAIL_ADDRESS,
        EMAIL_BOUNCED,
        WHATSAPP_NOT_A_USER,
        WHATSAPP_OUTSIDE_WINDOW,
    }
)

# ``max_in_flight``: how many of a gateway's calls the dispatcher keeps in flight at once
# (each dispatcher process, for that gateway alone). Every type's config has it, with a
# default that suits the type (hundreds for the asyncio client, a handful for SMTP).
MAX_IN_FLIGHT_TOP = 1000


def max_in_flight_field(default: int) -> Any:
    """The ``max_in_flight`` field of a type's config model, with the type's default."""
    return Field(
        default,
        ge=1,
        le=MAX_IN_FLIGHT_TOP,
        description=(
            "gateway calls in flight at once per dispatcher (a slow provider needs more: "
            "calls of 300 ms each, 300 in flight, send 1,000 a second)"
        ),
    )


Channel = Literal["sms", "email", "whatsapp"]
# "read" comes after "delivered": a message's status only moves forward (queued < sent <
# delivered < read); a late or repeated report never moves it back.
Status = Literal["queued", "sent", "delivered", "read", "failed"]


@dataclass(frozen=True)
class TemplateRef:
    """A WhatsApp template to send, its body variables {{1}}, {{2}}, … already rendered."""

    name: str
    language: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Interactive:
    """WhatsApp reply buttons or a list: ``options`` are (id, title); ``button`` is the
    list's menu-button label."""

    kind: Literal["buttons", "list"]
    body: str
    options: tuple[tuple[str, str], ...]
    button: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send. ``message_id`` is stable across retries (the idempotency key)."""

    message_id: str
    channel: Channel
    text: str
    to: str = ""  # E.164 digits, no "+"
    sender: str = ""  # the sender number or id chosen for this destination
    segments: int = 1
    encoding: str = "GSM"
    subject: str = ""
    email_to: str = ""
    email_from: str = ""
    status_url: str = ""  # where the provider should post delivery reports
    # WhatsApp: a template or interactive message to send (``text`` is still the plain
    # rendering, for the log).
    template: TemplateRef | None = None
    interactive: Interactive | None = None

    @property
    def to_plus(self) -> str:
        return "+" + self.to if self.to else ""


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message."""

    provider_id: str | None = None
    status: Status = "sent"
    detail: str = ""


class GatewayError(Exception):
    """The send did not succeed; ``code`` is ours, ``provider_code`` the provider's verbatim."""

    def __init__(
        self,
        code: str,
        *,
        retryable: bool,
        provider_code: str = "",
        detail: str = "",
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        if code not in GATEWAY_CODES:
            raise ValueError(f"unknown gateway error code {code!r}")
        super().__init__(f"{code}: {detail or provider_code}")
        self.code = code
        self.retryable = retryable
        self.provider_code = provider_code
        self.detail = detail
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report: which message (by provider id, or ours) reached which state."""

    provider_id: str
    status: Status
    error_code: str | None = None
    provider_code: str = ""
    is_our_id: bool = False
    price: str | None = None  # a decimal string, e.g. "-0.0075" as Twilio gives it
    price_currency: str = ""  # ISO 4217
    # WhatsApp: marketing / utility / authentication / service / referral_conversion
    pricing_category: str = ""


@dataclass(frozen=True)
class InboundMessage:
    sender: str
    to: str
    text: str
    provider_id: str = ""
    reply_id: str = ""  # the id of a tapped button or list row


@dataclass(frozen=True)
class ProviderTemplate:
    """A message template as the provider lists it. ``status`` as the provider says it
    (APPROVED, PENDING, REJECTED, PAUSED, DISABLED); ``params``: how many {{n}} variables
    the body has."""

    name: str
    language: str
    status: str
    body: str
    category: str = ""
    params: int = 0


@dataclass
class Exchange:
    """One request/response with a provider, already masked, for the message log."""

    request: str
    response: str
    duration_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Gateway(ABC):
    """Base class of every gateway type."""

    slug: ClassVar[str]
    label: ClassVar[str]
    channel: ClassVar[Channel] = "sms"
    config_model: ClassVar[type[BaseModel]]
    secret_fields: ClassVar[tuple[str, ...]] = ()
    supports_idempotency: ClassVar[bool] = False
    # Capabilities: what the dispatcher asks of a type (types override the ones they have).
    # ``persistent``: one object per process holds a session (SMPP); the dispatcher builds it
    # once, binds it at start (``connect``) and polls what arrives on it (``drain_events``).
    persistent: ClassVar[bool] = False
    # ``sends_async``: ``send_async`` is a lean-client path the dispatcher runs on its event
    # loop (the ``http`` type); other types are sent from the dispatcher's thread pool.
    sends_async: ClassVar[bool] = False
    # ``callbacks_by_get``: the provider calls the status and inbound URLs with GET, its
    # fields in the query (Kannel's dlr-url and get-url); other types take POST only.
    callbacks_by_get: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        self.config = self.config_model.model_validate(dict(config))
        self.http = http
        self._owns_http = http is None  # a client made here (``_client``) is closed here
        # The masked request/response of the last send, for the message's attempt log.
        self.last_exchange: Exchange | None = None

    @classmethod
    def split_secrets(cls, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A validated config as (what may be shown and stored in clear, what is stored
        encrypted and never returned). Types whose secrets sit inside other fields extend it."""
        public = {k: v for k, v in config.items() if k not in cls.secret_fields}
        secret = {k: v for k, v in config.items() if k in cls.secret_fields and v not in (None, "")}
        return public, secret

    @classmethod
    def restore_secrets(
        cls, config: Mapping[str, Any], stored: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``config`` with the stored secrets put back where it leaves them out (or, for
        secrets inside other fields, gives them as ``SECRET_MARK`` or blank)."""
        return {**stored, **config}

    @classmethod
    def public_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """A stored config as it may be shown: secret values replaced by ``SECRET_MARK``."""
        return {k: v for k, v in config.items() if k not in cls.secret_fields}

    @classmethod
    def max_in_flight(cls, config: Mapping[str, Any]) -> int:
        """How many calls the dispatcher keeps in flight for a gateway with this stored
        config: its ``max_in_flight``, else the type's default (configs stored before the
        field existed). Read without validating the whole config (no secrets needed)."""
        field = cls.config_model.model_fields.get("max_in_flight")
        default = field.default if field is not None and isinstance(field.default, int) else 16
        value = config.get("max_in_flight", default)
        if isinstance(value, bool) or not isinstance(value, int):
            return default
        return max(1, min(MAX_IN_FLIGHT_TOP, value))

    def secret_values(self) -> list[str]:
        """Values that must never reach a log (types with config-dependent secrets extend)."""
        return [str(getattr(self.config, f, "") or "") for f in self.secret_fields]

    @abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message, or raise GatewayError."""

    async def send_async(
        self, message: OutgoingMessage, pool: WirePool, record: Callable[[Exchange], None]
    ) -> SendResult:
        """``send`` through the lean client (types with ``sends_async``): the same request,
        checks and classification, the masked exchange handed to ``record``."""
        raise NotImplementedError(f"the {self.slug} gateway type has no lean-client path")

    def connect(self) -> None:
        """Open the session now (``persistent`` types); nothing by default.

        Raises:
            GatewayError: retryable when the session cannot be opened.
        """
        return None

    def drain_events(self) -> list[StatusUpdate | InboundMessage]:
        """What arrived on the session since the last call (``persistent`` types): receipts
        and inbound SMS, oldest first; nothing by default."""
        return []

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        """Turn a status callback into updates (types without callbacks return [])."""
        return []

    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]:
        """Turn an inbound-SMS webhook into messages, or raise ValueError (the route answers
        4xx). Types that receive no webhooks (smpp receives on its session, email) refuse."""
        raise ValueError(f"the {self.slug} gateway type receives no inbound webhooks")

    def parse_webhook(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> tuple[list[StatusUpdate], list[InboundMessage]]:
        """One webhook POST that carries statuses and inbound messages together (WhatsApp);
        by default only statuses, through ``parse_status``."""
        return self.parse_status(form, body, content_type), []

    def valid_webhook_signature(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether a webhook POST carries the provider's signature of ``body`` (types that
        sign their webhooks check it; the route answers 403 when False)."""
        return True

    def verify_subscription(self, query: Mapping[str, str]) -> str | None:
        """A GET webhook verification (Meta's hub.challenge): the text to echo back, or
        None (the route answers 403)."""
        return None

    def list_templates(self) -> list[ProviderTemplate]:
        """The provider's message templates (WhatsApp types).

        Raises:
            GatewayError: when the provider cannot be asked, or the type has no templates.
        """
        raise GatewayError(
            GATEWAY_ERROR, retryable=False, detail=f"the {self.slug} gateway type has no templates"
        )

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]:
        """What the inbound webhook answers the provider: (status, content type, body)."""
        return 200, "application/json", b'{"status": "received"}'

    def fetch_price(self, provider_id: str) -> tuple[str, str] | None:
        """(price, currency) of a sent message once final, where the provider tells it
        (Twilio); None when it does not (yet)."""
        return None

    def _http_client(self) -> httpx.Client:
        """The HTTP client of the types that call their provider over HTTP: the one given,
        else one made on first use with the config's ``timeout_s`` (``netpolicy``'s rules)."""
        if self.http is None:
            from casereach.gateways import netpolicy

            self.http = netpolicy.make_client(
                getattr(self.config, "timeout_s", netpolicy.DEFAULT_TIMEOUT_S)
            )
        return self.http

    def _record(self, exchange: Exchange) -> None:
        self.last_exchange = exchange

    def close(self) -> None:
        """Release connections: the HTTP client this instance made (one it was given stays
        its owner's); the types with sessions of their own (SMPP, SMTP) add theirs."""
        if self._owns_http and self.http is not None:
            self.http.close()
            self.http = None
