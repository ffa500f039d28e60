"""How HTTP gateway types talk to providers: which URLs, how long, which failures retry.

Shared by the ``http``, ``twilio`` and ``africastalking`` types so that they agree on:

* **where** a gateway may send: ``http``/``https`` URLs only; private, loopback and link-local
  addresses are allowed unless the operator sets ``CASEREACH_GATEWAY_ALLOW_PRIVATE`` to
  ``0``/``false``/``no``/``off`` (see ``addresses``: checked when the config is validated, and
  at connect time on the one address the name resolved to, which is the address connected to);
* **how long** to wait: ``timeout_s`` from the gateway config, applied per request so that an
  injected client cannot silently wait longer;
* **which failures retry**::

      transport failure
      ├── UnsupportedProtocol, RefusedConnect            permanent (a config problem)
      ├── ConnectError / ConnectTimeout / PoolTimeout    retryable, outcome known (never sent)
      └── ReadTimeout / WriteTimeout / RemoteProtocolError / ReadError
                                                          retryable, outcome_unknown=True
      HTTP reply
      ├── 408, 429, 5xx    retryable GATEWAY_ERROR (429/503 keep ``Retry-After`` as retry_after)
      └── anything else    the gateway type decides (success or a mapped permanent code)

* **what is logged**: every attempt becomes a masked ``Exchange`` (secrets replaced by ``***``,
  phone numbers shortened by ``masking.mask_text``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

import httpx

from casereach.gateways import addresses
from casereach.gateways.addresses import ALLOW_PRIVATE_ENV as ALLOW_PRIVATE_ENV
from casereach.gateways.base import GATEWAY_ERROR, Exchange, GatewayError
from casereach.gateways.masking import mask_text
from casereach.gateways.wire import WireError

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0
MAX_LOGGED_BODY = 4000

# Header names whose values are always hidden in the exchange log, whatever the config says.
ALWAYS_REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "apikey", "x-api-key"})

log = logging.getLogger("casereach.gateways")


# --- where -------------------------------------------------------------------------------------


def private_addresses_allowed() -> bool:
    """Whether gateway URLs may point at private/loopback/link-local addresses (default yes)."""
    return addresses.private_addresses_allowed()


def _url_host(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        got = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValueError(f"URL must start with http:// or https:// (got {got})")
    host = parts.hostname
    if not host:
        raise ValueError("URL has no host")
    try:
        _ = parts.port  # a malformed port raises ValueError here
    except ValueError as exc:
        raise ValueError(f"URL has an invalid port: {exc}") from None
    return host


def check_url(url: str) -> str:
    """Refuse a gateway URL that is not http(s), or whose host ``addresses.check_host``
    refuses (private addresses forbidden by the operator).

    Returns:
        ``url`` unchanged, so the function can be used as a pydantic validator body.

    Raises:
        ValueError: with a message fit to show the person editing the gateway.
    """
    addresses.check_host(_url_host(url))
    return url


def check_url_before_send(url: str) -> None:
    """``check_url`` without a DNS lookup, before a send: a refused spelling or literal
    address is a permanent ``GATEWAY_ERROR``. The name is resolved and checked once, by the
    transport that connects (``make_client``'s ``PinnedTransport``, ``WirePool``)."""
    try:
        addresses.check_host_without_lookup(_url_host(url))
    except ValueError as exc:
        raise GatewayError(GATEWAY_ERROR, retryable=False, detail=str(exc)) from None


# --- how long ----------------------------------------------------------------------------------


def make_client(
    timeout_s: float | httpx.Timeout = DEFAULT_TIMEOUT_S, limits: httpx.Limits | None = None
) -> httpx.Client:
    """A client for gateways: no redirects followed, no proxies from the environment, and
    connections only to addresses ``addresses.resolve_checked`` approved."""
    inner = httpx.HTTPTransport(limits=limits or httpx.Limits(), trust_env=False)
    return httpx.Client(
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
        transport=addresses.PinnedTransport(inner),
    )


# --- which failures retry ----------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retryable_http_error(response: httpx.Response, provider_code: str = "") -> GatewayError | None:
    """The retryable error for 408, 429 and 5xx replies, or None for any other status."""
    return retryable_status(
        response.status_code, response.headers.get("retry-after"), provider_code
    )


def retryable_status(
    status: int, retry_after: str | None, provider_code: str = ""
) -> GatewayError | None:
    """``retryable_http_error`` from a status and a ``Retry-After`` value (any client)."""
    if status in (408, 429) or 500 <= status <= 599:
        return GatewayError(
            GATEWAY_ERROR,
            retryable=True,
            provider_code=provider_code or str(status),
            detail=f"provider replied HTTP {status}",
            retry_after=parse_retry_after(retry_after),
        )
    return None


def transport_error(exc: httpx.TransportError) -> GatewayError:
    """Classify an httpx transport failure (see the module docstring)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | addresses.RefusedConnect):
        return GatewayError(GATEWAY_ERROR, retryable=False, provider_code=name, detail=str(exc))
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return GatewayError(GATEWAY_ERROR, retryable=True, provider_code=name, detail=str(exc))
    return GatewayError(
        GATEWAY_ERROR,
        retryable=True,
        outcome_unknown=True,
        provider_code=name,
        detail=f"no reply after the request was sent ({name})",
    )


def wire_error(exc: WireError) -> GatewayError:
    """Classify a lean-client transport failure exactly as ``transport_error`` does."""
    if exc.name == "RefusedConnect":
        return GatewayError(
            GATEWAY_ERROR, retryable=False, provider_code=exc.name, detail=exc.detail
        )
    if not exc.sent:
        return GatewayError(
            GATEWAY_ERROR, retryable=True, provider_code=exc.name, detail=exc.detail or exc.name
        )
    return GatewayError(
        GATEWAY_ERROR,
        retryable=True,
        outcome_unknown=True,
        provider_code=exc.name,
        detail=f"no reply after the request was sent ({exc.name})",
    )


# --- what is logged ----------------------------------------------------------------------------


def secret_variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear on the wire: raw, URL-encoded, JSON-escaped."""
    out: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        variants = (
            secret,
            quote_plus(secret),
            quote(secret, safe=""),
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
        )
        for variant in variants:
            if variant not in out:
                out.append(variant)
    # Longest first, so a secret that contains another is replaced whole.
    return sorted(out, key=len, reverse=True)


def _body_text(content: bytes) -> str:
    text = content.decode("utf-8", errors="replace")
    if len(text) > MAX_LOGGED_BODY:
        text = text[:MAX_LOGGED_BODY] + f"... [{len(text) - MAX_LOGGED_BODY} more characters]"
    return text


def _headers_text(headers: httpx.Headers, redacted: Collection[str]) -> list[str]:
    return header_lines(
        [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers.raw], redacted
    )


def header_lines(headers: Iterable[tuple[str, str]], redacted: Collection[str]) -> list[str]:
    """``Name: value`` lines with secret header values replaced by ``***``
    (``redacted``: lower-case names, on top of ``ALWAYS_REDACTED_HEADERS``)."""
    lines = []
    for name, value in headers:
        if name.lower() in ALWAYS_REDACTED_HEADERS or name.lower() in redacted:
            value = "***"
        lines.append(f"{name}: {value}")
    return lines


def body_text(content: bytes) -> str:
    """A body as logged: UTF-8 (replacing what is not), cut at ``MAX_LOGGED_BODY``."""
    return _body_text(content)


def describe_request(
    request: httpx.Request, secrets: Iterable[str], redacted_headers: Collection[str] = ()
) -> str:
    """The request as masked text: method, URL, headers, body.

    The query string and a form body are shown decoded, so a secret is masked however the
    client chose to percent-encode it.
    """
    redacted = {h.lower() for h in redacted_headers}
    url = request.url
    target = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
    if url.query:
        target += "?" + unquote_plus(url.query.decode("ascii"))
    lines = [f"{request.method} {target}", *_headers_text(request.headers, redacted)]
    body = _body_text(request.content)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = unquote_plus(body)
    text = "\n".join(lines) + "\n\n" + body
    return mask_text(text, secret_variants(secrets))


def describe_response(response: httpx.Response, secrets: Iterable[str]) -> str:
    """The response as masked text: status, headers, body."""
    lines = [f"HTTP {response.status_code} {response.reason_phrase}"]
    lines += _headers_text(response.headers, frozenset())
    text = "\n".join(lines) + "\n\n" + _body_text(response.content)
    return mask_text(text, secret_variants(secrets))


def send_logged(
    client: httpx.Client,
    request: httpx.Request,
    *,
    secrets: Iterable[str],
    record: Callable[[Exchange], None],
    redacted_headers: Collection[str] = (),
) -> httpx.Response:
    """Send ``request``, always ``record`` the masked exchange, map transport failures.

    Raises:
        GatewayError: retryable, for any transport failure (see the module docstring).
    """
    secrets = list(secrets)
    logged_request = describe_request(request, secrets, redacted_headers)
    started = time.monotonic()
    try:
        response = client.send(request)
        response.read()
    except httpx.TransportError as exc:
        error = transport_error(exc)
        _record(
            record,
            Exchange(
                request=logged_request,
                response=f"(no reply: {type(exc).__name__})",
                duration_ms=int((time.monotonic() - started) * 1000),
                extra={"error": type(exc).__name__, "outcome_unknown": error.outcome_unknown},
            ),
        )
        raise error from None
    _record(
        record,
        Exchange(
            request=logged_request,
            response=describe_response(response, secrets),
            duration_ms=int((time.monotonic() - started) * 1000),
            extra={"status_code": response.status_code},
        ),
    )
    return response


def _record(record: Callable[[Exchange], None], exchange: Exchange) -> None:
    record_exchange(record, exchange)


def record_exchange(record: Callable[[Exchange], None], exchange: Exchange) -> None:
    """Hand a masked exchange to ``record`` and to the debug log."""
    record(exchange)
    log.debug(
        "gateway exchange (%d ms)\n%s\n--\n%s",
        exchange.duration_ms,
        exchange.request,
        exchange.response,
    )
