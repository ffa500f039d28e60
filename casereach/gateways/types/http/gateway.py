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
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import httpx

from casereach.gateways import netpolicy
from casereach.gateways.base import (
    INVALID_DESTINATION_NUMBER,
    SECRET_MARK,
    Exchange,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    SendResult,
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
from casereach.gateways.types.http.config import HttpConfig
from casereach.gateways.types.http.national import national
from casereach.gateways.types.http.replies import STATUS_WORDS, judge, status_updates
from casereach.gateways.types.http.wire_plan import Params, WirePlan, build_plan, wire_request
from casereach.gateways.wire import WireError, WirePool

__all__ = ["GATEWAY", "STATUS_WORDS", "HttpConfig", "HttpGateway", "WirePlan"]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}  # as httpx logs them


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
        client = self._http_client()
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
        if self._plan is None:
            self._plan = build_plan(self.cfg, self.secret_values())
        return self._plan

    def wire_request(self, message: OutgoingMessage) -> tuple[bytes, str]:
        """The request bytes for ``message`` and its masked text for the exchange log."""
        return wire_request(self.wire_plan(), self._render_params(message), message)

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
        return judge(self.cfg, status, retry_after, content, text)

    def parse_status(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[StatusUpdate]:
        return status_updates(self.cfg, form, body, content_type)

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


GATEWAY = HttpGateway
