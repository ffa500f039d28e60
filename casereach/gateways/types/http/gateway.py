"""The ``http`` gateway: any provider reachable with one HTTP request per message.

The request is built from the config: ``url``, ``method`` (GET → query string; POST → a form
or JSON body, per ``encoding``), ``params`` whose values are templates over ``{to}``
(E.164 digits), ``{to_plus}``, ``{to_national}`` (the national number of the destination's
country, for providers that refuse the country code), ``{from}``, ``{text}`` and ``{message_id}`` (see
``template.py``), static ``headers``, optional basic auth, and an ``Idempotency-Key:
{message_id}`` header unless ``idempotency_header`` is null (or names another header).

Reading the reply::

    status in success_status (default: any 2xx)
    ├── success_regex set and not found in the body   GATEWAY_ERROR, not retried
    └── otherwise                                     SendResult; provider_id read at
                                                      provider_id_path in a JSON body, or None
                                                      when there is no such path or no JSON
    408 / 429 / 5xx                                   GATEWAY_ERROR, retried (Retry-After kept)
    anything else                                     GATEWAY_ERROR, not retried,
                                                      provider_code = the HTTP status

A reply that matched the success check is never turned into an error because the body could
not be read: the provider said yes, and retrying could send the message twice.

Status callbacks (``POST /gateways/http/{inbound_key}/status``) carry ``id`` and ``status``
(form or JSON; JSON may also be a list of such objects) and optionally ``code``. ``id`` is the
provider's id when ``provider_id_path`` is configured, otherwise our message id.

Inbound SMS (``POST /gateways/http/{inbound_key}/inbound``) carry ``from``, ``to``, ``text``
and optionally ``id`` (the provider's message id, used to store re-deliveries once),
form-encoded or as a JSON object; the content type decides, anything else is refused. The
webhook answers ``{"status": "received"}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from casereach.core import text as core_text
from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    SECRET_MARK,
    Exchange,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    SendResult,
    Status,
    StatusUpdate,
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
from casereach.gateways.masking import mask_text
from casereach.gateways.types.http import template
from casereach.gateways.types.http.national import national
from casereach.gateways.wire import Origin, WireError, WirePool

# Status words providers use in callbacks (compared case-insensitively) → ours; SMPP-style
# receipt words included. ``status_map`` in the config adds to or overrides these.
STATUS_WORDS: dict[str, Status] = {
    "delivered": "delivered",
    "delivrd": "delivered",
    "sent": "sent",
    "accepted": "sent",
    "acceptd": "sent",
    "submitted": "sent",
    "queued": "sent",
    "enroute": "sent",
    "buffered": "sent",
    "failed": "failed",
    "undelivered": "failed",
    "undeliv": "failed",
    "rejected": "failed",
    "rejectd": "failed",
    "expired": "failed",
}


# As httpx encodes a ``json=`` body; one encoder object, not one per request.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_PHRASES = {status.value: status.phrase for status in HTTPStatus}  # as httpx logs them

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MIN_SECRET = 4


def _check_header_name(name: str) -> None:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL of the provider's send endpoint")
    method: Literal["GET", "POST"] = "POST"
    encoding: Literal["form", "json"] = Field(default="form", description="POST body encoding")
    params: dict[str, str] = Field(
        description="Request parameters; values may use {to}, {to_plus}, {to_national}, {from}, "
        "{text}, {message_id}"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: list[str] = Field(
        default_factory=list, description="Names of headers whose values are secrets"
    )
    secret_params: list[str] = Field(
        default_factory=list, description="Names of params whose (fixed) values are secrets"
    )
    username: str | None = Field(default=None, description="Basic auth user")
    password: str | None = Field(default=None, description="Basic auth password (secret)")
    sender: str = Field(default="", description="Default {from} when the message has none")
    success_status: list[int] | None = Field(
        default=None, description="Statuses that mean accepted (default: any 2xx)"
    )
    success_regex: str | None = Field(
        default=None, description="If set, the reply body must contain a match"
    )
    provider_id_path: str | None = Field(
        default=None, description="Dotted path to the provider's message id in a JSON reply"
    )
    idempotency_header: str | None = Field(
        default="Idempotency-Key", description="Header carrying our message id; null for none"
    )
    status_map: dict[str, Literal["sent", "delivered", "failed"]] = Field(
        default_factory=dict, description="Extra callback status words"
    )
    timeout_s: float = Field(default=netpolicy.DEFAULT_TIMEOUT_S, gt=0, le=netpolicy.MAX_TIMEOUT_S)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return netpolicy.check_url(value.strip())

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        used: set[str] = set()
        for name, text in value.items():
            if not name:
                raise ValueError("params has an empty name")
            try:
                used |= template.placeholders(text)
            except ValueError as exc:
                raise ValueError(f"params[{name!r}]: {exc}") from None
        if "text" not in used:
            raise ValueError("params must put the message somewhere: use {text} in a value")
        if not used & {"to", "to_plus", "to_national"}:
            raise ValueError(
                "params must put the destination somewhere: use {to}, {to_plus} or {to_national}"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            _check_header_name(name)
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r} contains a line break")
        return value

    @field_validator("idempotency_header")
    @classmethod
    def _idempotency_header(cls, value: str | None) -> str | None:
        if value is not None:
            _check_header_name(value)
        return value

    @field_validator("success_status", mode="before")
    @classmethod
    def _success_status_one(cls, value: object) -> object:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("success_status")
    @classmethod
    def _success_status(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("success_status must list at least one status (or be omitted)")
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"success_status {status} is not an HTTP status")
        return value

    @field_validator("success_regex")
    @classmethod
    def _success_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"success_regex is not a valid regular expression: {exc}"
                ) from None
        return value

    @field_validator("provider_id_path")
    @classmethod
    def _provider_id_path(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(not seg for seg in value.split("."))):
            raise ValueError("provider_id_path must be dotted names like 'data.message_id'")
        return value

    @field_validator("status_map")
    @classmethod
    def _status_map(cls, value: dict[str, str]) -> dict[str, str]:
        return {word.strip().lower(): status for word, status in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.method == "GET" and self.encoding == "json":
            raise ValueError("encoding 'json' needs method POST (GET sends params in the URL)")
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password")
        if self.password is not None and len(self.password) < _MIN_SECRET:
            raise ValueError(f"password must be at least {_MIN_SECRET} characters")
        header_names = {h.lower() for h in self.headers}
        for name in self.secret_headers:
            if name.lower() not in header_names:
                raise ValueError(f"secret_headers names {name!r}, which is not in headers")
            value = next(v for k, v in self.headers.items() if k.lower() == name.lower())
            if len(value) < _MIN_SECRET:
                raise ValueError(
                    f"secret header {name!r} must be at least {_MIN_SECRET} characters"
                )
        for name in self.secret_params:
            if name not in self.params:
                raise ValueError(f"secret_params names {name!r}, which is not in params")
            value = self.params[name]
            if template.placeholders(value):
                raise ValueError(f"secret param {name!r} must be a fixed value, not a template")
            if len(template.render(value, {})) < _MIN_SECRET:
                raise ValueError(f"secret param {name!r} must be at least {_MIN_SECRET} characters")
        if self.idempotency_header is not None:
            if self.idempotency_header.lower() in header_names:
                raise ValueError(
                    f"{self.idempotency_header} is set both in headers and as idempotency_header"
                )
            if self.username is not None and self.idempotency_header.lower() == "authorization":
                raise ValueError("idempotency_header cannot be Authorization")
        return self


def _dig(data: Any, path: str) -> str | None:
    """The scalar at a dotted ``path`` in parsed JSON (list items by index), or None."""
    for segment in path.split("."):
        if isinstance(data, dict) and segment in data:
            data = data[segment]
        elif isinstance(data, list) and segment.isdigit() and int(segment) < len(data):
            data = data[int(segment)]
        else:
            return None
    if isinstance(data, bool) or not isinstance(data, str | int):
        return None
    text = str(data).strip()
    return text or None


def _callback_items(
    form: Mapping[str, str], body: bytes, content_type: str
) -> list[Mapping[str, Any]]:
    if form:
        return [form]
    if not body:
        raise ValueError("empty status callback: send 'id' and 'status'")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        try:
            data = core_text.parse_json(body)
        except core_text.InvalidText:
            raise
        except ValueError:
            raise ValueError("status callback body is not valid JSON") from None
        items = data if isinstance(data, list) else [data]
        if not items or not all(isinstance(item, dict) for item in items):
            raise ValueError("status callback JSON must be an object or a list of objects")
        return items
    try:
        pairs = core_text.parse_form(body)
    except core_text.InvalidText:
        raise
    except ValueError:
        raise ValueError("status callback body is neither a form nor JSON") from None
    return [dict(pairs)]


Params = tuple[tuple[str, tuple[template.Part, ...]], ...]


@dataclass(frozen=True)
class WirePlan:
    """Everything about a request that does not depend on the message, worked out once per
    gateway object for the lean client: per message only the parameters are rendered."""

    origin: Origin
    method: str
    path: str  # the URL's path, with the URL's own query for POST
    base_query: str  # the URL's own query (GET merges the params into it)
    log_target: str  # scheme://host[:port]/path, as the exchange log shows it
    head: bytes  # the header lines that never change (after the request line)
    log_headers: list[str]  # the same, as logged (secret values masked)
    idempotency_header: str | None
    variants: list[str]  # secrets as they may appear on the wire, longest first
    is_form: bool


class HttpGateway(Gateway):
    slug = "http"
    label = "Generic HTTP"
    config_model = HttpConfig
    secret_fields = ("password",)
    # Per config: with idempotency_header null this instance does not honour the key.
    supports_idempotency = True
    sends_async = True  # ``send_async``: the dispatcher's lean-client path

    # Secret header and param values are write-only like ``password``: stored encrypted under
    # these keys, shown as SECRET_MARK (see ``split_secrets`` / ``restore_secrets``).
    _NESTED_SECRETS = (("headers", "secret_headers"), ("params", "secret_params"))

    @staticmethod
    def _is_listed(kind: str, name: str, listed: Any) -> bool:
        names = [str(n) for n in listed] if isinstance(listed, list) else []
        if kind == "headers":  # header names are case-insensitive
            return name.lower() in {n.lower() for n in names}
        return name in names

    @classmethod
    def split_secrets(cls, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        public, secret = super().split_secrets(config)
        for kind, list_key in cls._NESTED_SECRETS:
            values = config.get(kind) or {}
            hidden = {
                k: v for k, v in values.items() if cls._is_listed(kind, k, config.get(list_key))
            }
            if hidden:
                secret[kind] = hidden
                public[kind] = {k: SECRET_MARK if k in hidden else v for k, v in values.items()}
        return public, secret

    @classmethod
    def restore_secrets(
        cls, config: Mapping[str, Any], stored: Mapping[str, Any]
    ) -> dict[str, Any]:
        full = super().restore_secrets(
            config, {k: v for k, v in stored.items() if k in cls.secret_fields}
        )
        for kind, list_key in cls._NESTED_SECRETS:
            kept = stored.get(kind)
            if not isinstance(kept, dict) or not isinstance(full.get(kind, {}), dict):
                continue
            values = dict(full.get(kind) or {})
            for name, value in kept.items():
                if not cls._is_listed(kind, name, full.get(list_key)):
                    continue  # no longer secret: the stored value is dropped
                current = next((k for k in values if cls._is_listed(kind, k, [name])), name)
                if values.get(current) in (None, "", SECRET_MARK):
                    values[current] = value
            if values or kind in full:
                full[kind] = values
        return full

    @classmethod
    def public_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        public = super().public_config(config)
        for kind, list_key in cls._NESTED_SECRETS:
            values = config.get(kind)
            if isinstance(values, dict):
                public[kind] = {
                    k: SECRET_MARK if cls._is_listed(kind, k, config.get(list_key)) else v
                    for k, v in values.items()
                }
        return public

    def __init__(self, config: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, http)
        self._owns_http = http is None
        self.last_exchange: Exchange | None = None
        self._params: Params = tuple(
            (name, tuple(template.parse(text))) for name, text in self.cfg.params.items()
        )
        self._uses_national = any(
            isinstance(part, template.Placeholder) and part.name == "to_national"
            for _, parts in self._params
            for part in parts
        )
        self._plan: WirePlan | None = None

    @property
    def cfg(self) -> HttpConfig:
        assert isinstance(self.config, HttpConfig)
        return self.config

    def secret_values(self) -> list[str]:
        """Every secret in the config: password, secret header values, secret param values."""
        cfg = self.cfg
        values = [cfg.password] if cfg.password else []
        secret_names = {name.lower() for name in cfg.secret_headers}
        values += [v for k, v in cfg.headers.items() if k.lower() in secret_names]
        values += [template.render(cfg.params[name], {}) for name in cfg.secret_params]
        return values

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

    def _render_params(self, message: OutgoingMessage) -> dict[str, str]:
        values = {
            "to": message.to,
            "to_plus": "+" + message.to if message.to else "",
            "to_national": self._national(message.to) if self._uses_national else "",
            "from": message.sender or self.cfg.sender,
            "text": message.text,
            "message_id": message.message_id,
        }
        return {
            name: "".join(part if isinstance(part, str) else values[part.name] for part in parts)
            for name, parts in self._params
        }

    @staticmethod
    def _national(to: str) -> str:
        found = national(to)
        if found is None:
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="the destination has no national form: its country code is unknown",
            )
        return found

    def build_request(self, client: httpx.Client, message: OutgoingMessage) -> httpx.Request:
        """The provider request for ``message`` (no network)."""
        cfg = self.cfg
        params = self._render_params(message)
        headers = dict(cfg.headers)
        if cfg.idempotency_header:
            headers[cfg.idempotency_header] = message.message_id
        if cfg.username is not None and cfg.password is not None:
            pair = f"{cfg.username}:{cfg.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        if cfg.method == "GET":
            # Merge by hand: httpx's ``params=`` replaces a query already in the URL.
            url = httpx.URL(cfg.url).copy_merge_params(params)
            return client.build_request("GET", url, headers=headers, timeout=cfg.timeout_s)
        if cfg.encoding == "json":
            return client.build_request(
                "POST", cfg.url, json=params, headers=headers, timeout=cfg.timeout_s
            )
        return client.build_request(
            "POST", cfg.url, data=params, headers=headers, timeout=cfg.timeout_s
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        cfg = self.cfg
        self.last_exchange = None
        if not message.to.isdigit():
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="destination is not E.164 digits",
            )
        netpolicy.check_url_before_send(cfg.url)
        client = self._client()
        request = self.build_request(client, message)
        response = netpolicy.send_logged(
            client,
            request,
            secrets=self.secret_values(),
            record=self._record,
            redacted_headers=cfg.secret_headers,
        )
        return self._interpret(response)

    # -- the lean client (the dispatcher's path) -----------------------------------------------

    def wire_plan(self) -> WirePlan:
        """The message-independent part of every request, built on first use."""
        if self._plan is not None:
            return self._plan
        cfg = self.cfg
        parts = urlsplit(cfg.url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        # An internationalised name goes on the wire as its ASCII (IDNA) form; one that
        # cannot be encoded is left as typed, and connecting fails and says why.
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
        port = parts.port or (443 if scheme == "https" else 80)
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None and port != (443 if scheme == "https" else 80):
            netloc += f":{port}"
        # As httpx does: characters that may not appear in a request line are %-escaped,
        # existing escapes are kept.
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        url_query = quote(parts.query, safe=_QUERY_SAFE)
        headers: list[tuple[str, str]] = [
            ("Host", netloc),
            ("Accept", "*/*"),
            ("User-Agent", "casereach"),
        ]
        headers += list(cfg.headers.items())
        username, password = cfg.username, cfg.password
        if username is None and parts.username is not None:  # user:pass@ in the URL
            username, password = unquote(parts.username), unquote(parts.password or "")
        if username is not None and password is not None:
            pair = f"{username}:{password}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
        is_form = cfg.method == "POST" and cfg.encoding == "form"
        if cfg.method == "POST":
            content_type = "application/x-www-form-urlencoded" if is_form else "application/json"
            headers.append(("Content-Type", content_type))
        redacted = {h.lower() for h in cfg.secret_headers}
        self._plan = WirePlan(
            origin=(scheme, host, port),
            method=cfg.method,
            path=path + (f"?{url_query}" if url_query and cfg.method == "POST" else ""),
            base_query=url_query if cfg.method == "GET" else "",
            log_target=f"{scheme}://{netloc}{path}",
            head=b"".join(f"{k}: {v}\r\n".encode() for k, v in headers),
            log_headers=[
                mask_text(line, netpolicy.secret_variants(self.secret_values()))
                for line in netpolicy.header_lines(headers, redacted)
            ],
            idempotency_header=cfg.idempotency_header,
            variants=netpolicy.secret_variants(self.secret_values()),
            is_form=is_form,
        )
        return self._plan

    def wire_request(self, message: OutgoingMessage) -> tuple[bytes, str]:
        """The request bytes for ``message`` and its masked text for the exchange log."""
        plan = self.wire_plan()
        params = self._render_params(message)
        if plan.method == "GET":
            query = urlencode(params)
            if plan.base_query:
                query = f"{plan.base_query}&{query}" if query else plan.base_query
            target = f"{plan.path}?{query}" if query else plan.path
            logged_target = plan.log_target + (f"?{unquote_plus(query)}" if query else "")
            body = b""
        else:
            target = plan.path
            logged_target = plan.log_target
            if "?" in plan.path:
                logged_target += "?" + unquote_plus(plan.path.split("?", 1)[1])
            if plan.is_form:
                body = urlencode(params).encode("ascii")
            else:
                body = _JSON.encode(params).encode()
        extra: list[str] = []
        if plan.idempotency_header:
            extra.append(f"{plan.idempotency_header}: {message.message_id}")
        if plan.method == "POST":
            extra.append(f"Content-Length: {len(body)}")
        data = b"".join(
            (
                f"{plan.method} {target} HTTP/1.1\r\n".encode(),
                plan.head,
                "".join(line + "\r\n" for line in extra).encode(),
                b"\r\n",
                body,
            )
        )
        logged_body = netpolicy.body_text(body)
        if plan.is_form:
            logged_body = unquote_plus(logged_body)
        # The fixed header lines were masked once in the plan (secrets can only be in
        # redacted headers or in the params); mask what varies per message.
        first = mask_text(f"{plan.method} {logged_target}", plan.variants)
        rest = mask_text("\n".join([*extra, "", logged_body]), plan.variants)
        return data, "\n".join([first, *plan.log_headers, rest])

    async def send_async(
        self, message: OutgoingMessage, pool: WirePool, record: Callable[[Exchange], None]
    ) -> SendResult:
        """``send`` through the lean client: the same request, checks, classification and
        masked exchange (handed to ``record``, since one object serves many sends at once).
        """
        cfg = self.cfg
        if not message.to.isdigit():
            raise GatewayError(
                INVALID_DESTINATION_NUMBER,
                retryable=False,
                detail="destination is not E.164 digits",
            )
        if not netpolicy.private_addresses_allowed():
            netpolicy.check_url_before_send(cfg.url)
        plan = self.wire_plan()
        data, logged_request = self.wire_request(message)
        started = time.monotonic()
        try:
            response = await pool.request(plan.origin, data, cfg.timeout_s)
        except WireError as exc:
            error = netpolicy.wire_error(exc)
            netpolicy.record_exchange(
                record,
                Exchange(
                    request=logged_request,
                    response=f"(no reply: {exc.name})",
                    duration_ms=int((time.monotonic() - started) * 1000),
                    extra={"error": exc.name, "outcome_unknown": error.outcome_unknown},
                ),
            )
            raise error from None
        reason = _PHRASES.get(response.status, response.reason)
        logged_response = "\n".join(
            [f"HTTP {response.status} {reason}", *netpolicy.header_lines(response.headers, ())]
        )
        logged_response += "\n\n" + netpolicy.body_text(response.body)
        netpolicy.record_exchange(
            record,
            Exchange(
                request=logged_request,
                response=mask_text(logged_response, plan.variants),
                duration_ms=int((time.monotonic() - started) * 1000),
                extra={"status_code": response.status},
            ),
        )
        return self._judge(
            response.status, response.header("retry-after"), response.body, response.text
        )

    def _interpret(self, response: httpx.Response) -> SendResult:
        return self._judge(
            response.status_code,
            response.headers.get("retry-after"),
            response.content,
            lambda: response.text,
        )

    def _judge(
        self, status: int, retry_after: str | None, content: bytes, text: Callable[[], str]
    ) -> SendResult:
        """Read a reply (status, ``Retry-After``, body) per the module docstring."""
        cfg = self.cfg
        accepted = status in cfg.success_status if cfg.success_status else 200 <= status <= 299
        if not accepted:
            retry = netpolicy.retryable_status(status, retry_after)
            if retry is not None:
                raise retry
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                provider_code=str(status),
                detail=f"provider replied HTTP {status}",
            )
        if cfg.success_regex is not None and not re.search(cfg.success_regex, text()):
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=False,
                provider_code=str(status),
                detail="the reply does not match success_regex",
            )
        if cfg.provider_id_path is None:
            return SendResult(provider_id=None, status="sent")
        try:
            data = json.loads(content)
        except ValueError:
            return SendResult(provider_id=None, status="sent", detail="reply is not JSON")
        provider_id = _dig(data, cfg.provider_id_path)
        if provider_id is None:
            return SendResult(
                provider_id=None, status="sent", detail=f"no id at {cfg.provider_id_path}"
            )
        return SendResult(provider_id=provider_id, status="sent")

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        cfg = self.cfg
        words: dict[str, Status] = {**STATUS_WORDS, **cfg.status_map}
        updates = []
        for item in _callback_items(form, body, content_type):
            raw_id, raw_status = item.get("id"), item.get("status")
            if raw_id is None or isinstance(raw_id, bool) or not str(raw_id).strip():
                raise ValueError("status callback has no 'id'")
            if not isinstance(raw_status, str) or not raw_status.strip():
                raise ValueError("status callback has no 'status'")
            word = raw_status.strip()
            status = words.get(word.lower())
            if status is None:
                raise ValueError(f"unknown status {word!r}; add it to the gateway's status_map")
            code = item.get("code")
            provider_code = str(code).strip() if code not in (None, "") else word
            updates.append(
                StatusUpdate(
                    provider_id=str(raw_id).strip(),
                    status=status,
                    error_code=GATEWAY_ERROR if status == "failed" else None,
                    provider_code=provider_code if status == "failed" else "",
                    is_our_id=cfg.provider_id_path is None,
                )
            )
        return updates

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


GATEWAY = HttpGateway
