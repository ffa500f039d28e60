"""The ``http`` gateway's requests as bytes for the lean client (the dispatcher's path): what
does not depend on the message is worked out once per gateway object (``WirePlan``), per
message only the parameters are rendered."""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus, urlencode, urlsplit

from casereach.gateways import netpolicy
from casereach.gateways.base import OutgoingMessage
from casereach.gateways.masking import mask_text
from casereach.gateways.types.http import template
from casereach.gateways.types.http.config import HttpConfig
from casereach.gateways.wire import Origin

# As httpx encodes a ``json=`` body; one encoder object, not one per request.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

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


def build_plan(cfg: HttpConfig, secrets: list[str]) -> WirePlan:
    """The message-independent part of every request."""
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
    return WirePlan(
        origin=(scheme, host, port),
        method=cfg.method,
        path=path + (f"?{url_query}" if url_query and cfg.method == "POST" else ""),
        base_query=url_query if cfg.method == "GET" else "",
        log_target=f"{scheme}://{netloc}{path}",
        head=b"".join(f"{k}: {v}\r\n".encode() for k, v in headers),
        log_headers=[
            mask_text(line, netpolicy.secret_variants(secrets))
            for line in netpolicy.header_lines(headers, redacted)
        ],
        idempotency_header=cfg.idempotency_header,
        variants=netpolicy.secret_variants(secrets),
        is_form=is_form,
    )


def wire_request(
    plan: WirePlan, params: dict[str, str], message: OutgoingMessage
) -> tuple[bytes, str]:
    """The request bytes for ``message`` (its ``params`` rendered) and its masked text for
    the exchange log."""
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
        body = urlencode(params).encode("ascii") if plan.is_form else _JSON.encode(params).encode()
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
