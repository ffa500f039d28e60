"""What the two WhatsApp gateway types (``whatsapp_cloud``, ``turn``) share when sending.

Both speak the WhatsApp Business API shapes: the same message JSON and the same error codes
(Turn forwards Meta's). Their webhooks are parsed by ``whatsapp_hooks`` and their templates
listed by ``whatsapp_templates`` (Turn proxies Meta's Graph endpoint). What differs — the URLs,
the config, the webhook signature — stays in each type's folder.

Limits WhatsApp sets on interactive messages are applied by cutting, never by refusing: a
reply button title keeps 19 characters and "…" when longer than 20, a list row title 24, its
description 72, the list's menu button 20, the body 1,024. Option ids are kept whole.

Error classification (``classify``)::

    Meta code                                    ours                        retried
    131026, 1013, 1026 (not on WhatsApp)         WHATSAPP_NOT_A_USER         no
    131047, 470 (outside the 24-hour window)     WHATSAPP_OUTSIDE_WINDOW     no
    132000 132001 132005 132012 100,
    2000 2001 2003 (template / parameters)       MESSAGE_FORMAT_INVALID      no
    131021 131009 (sender = recipient, number)   INVALID_DESTINATION_NUMBER  no
    130429 131048 131056 80007 4 (rate limits)   GATEWAY_ERROR               yes, Retry-After
    190 10 200 (token, permission)               GATEWAY_ERROR               no
    anything else: HTTP 408/429/5xx retried, other statuses a permanent GATEWAY_ERROR
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_FORMAT_INVALID,
    WHATSAPP_NOT_A_USER,
    WHATSAPP_OUTSIDE_WINDOW,
    Exchange,
    GatewayError,
    Interactive,
    OutgoingMessage,
    SendResult,
    Status,
)
from casereach.gateways.masking import mask_text
from casereach.gateways.wire import Origin, WireError, WirePool

# --- limits ------------------------------------------------------------------------------------

MAX_BUTTONS = 3
MAX_ROWS = 10
BUTTON_TITLE = 20
ROW_TITLE = 24
ROW_DESCRIPTION = 72
LIST_BUTTON = 20
INTERACTIVE_BODY = 1024
TEXT_BODY = 4096
MAX_OPTION_ID = 200  # a list row id (a reply button's may be 256)
DEFAULT_LIST_BUTTON = "Choose"

# --- error codes -------------------------------------------------------------------------------

PERMANENT_CODES: dict[str, str] = {
    "131026": WHATSAPP_NOT_A_USER,  # message undeliverable: not on WhatsApp, old client
    "1013": WHATSAPP_NOT_A_USER,  # (on-premises API) user is not valid
    "1026": WHATSAPP_NOT_A_USER,  # (on-premises API) receiver incapable
    "131047": WHATSAPP_OUTSIDE_WINDOW,  # re-engagement message: more than 24 h since a reply
    "470": WHATSAPP_OUTSIDE_WINDOW,  # (on-premises API) re-engagement message
    "132000": MESSAGE_FORMAT_INVALID,  # template parameter count mismatch
    "132001": MESSAGE_FORMAT_INVALID,  # template does not exist (in that language)
    "132005": MESSAGE_FORMAT_INVALID,  # template hydrated text too long
    "132012": MESSAGE_FORMAT_INVALID,  # template parameter format mismatch
    "100": MESSAGE_FORMAT_INVALID,  # invalid parameter
    "2000": MESSAGE_FORMAT_INVALID,  # (on-premises API) template parameter count mismatch
    "2001": MESSAGE_FORMAT_INVALID,  # (on-premises API) template missing
    "2003": MESSAGE_FORMAT_INVALID,  # (on-premises API) template parameter format mismatch
    "131021": INVALID_DESTINATION_NUMBER,  # sender and recipient are the same number
    "131009": INVALID_DESTINATION_NUMBER,  # parameter value not valid (the number)
    "190": GATEWAY_ERROR,  # access token expired or invalid
    "10": GATEWAY_ERROR,  # permission denied
    "200": GATEWAY_ERROR,  # permission not granted
}
RATE_LIMIT_CODES = frozenset({"130429", "131048", "131056", "80007", "4"})
NOT_A_USER_WORDS = ("not a whatsapp user", "not a valid whatsapp user", "not on whatsapp")

STATUS_WORDS: dict[str, Status] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


# --- sending -----------------------------------------------------------------------------------


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: unchanged, or cut with "…" as its last one."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_payload(message: OutgoingMessage, *, cloud: bool) -> dict[str, Any]:
    """The JSON of one message: a template, an interactive message or free text.

    ``cloud``: Meta's Cloud API, which wants ``messaging_product`` on every message.

    Raises:
        GatewayError: MESSAGE_FORMAT_INVALID (permanent) for what cannot be sent at all:
            no options, more than 10, an option id longer than 200 characters.
    """
    payload: dict[str, Any] = {"recipient_type": "individual", "to": message.to}
    if cloud:
        payload = {"messaging_product": "whatsapp", **payload}
    if message.template is not None:
        template: dict[str, Any] = {
            "name": message.template.name,
            "language": {"code": message.template.language},
        }
        if message.template.params:
            parameters = [{"type": "text", "text": p} for p in message.template.params]
            template["components"] = [{"type": "body", "parameters": parameters}]
        return {**payload, "type": "template", "template": template}
    if message.interactive is not None:
        return {**payload, "type": "interactive", "interactive": interactive_json(message)}
    text = {"preview_url": False, "body": message.text}
    return {**payload, "type": "text", "text": text}


def interactive_json(message: OutgoingMessage) -> dict[str, Any]:
    interactive = message.interactive
    assert interactive is not None
    options = interactive.options
    if not options:
        raise _format_error("an interactive message needs at least one option")
    if len(options) > MAX_ROWS:
        raise _format_error(f"{len(options)} options: WhatsApp lists hold at most {MAX_ROWS}")
    for option_id, _title in options:
        if not option_id or len(option_id) > MAX_OPTION_ID:
            raise _format_error(f"option ids must be 1 to {MAX_OPTION_ID} characters")
    body = {"text": cut(interactive.body or message.text, INTERACTIVE_BODY)}
    if interactive.kind == "buttons" and len(options) <= MAX_BUTTONS:
        buttons = [
            {"type": "reply", "reply": {"id": oid, "title": cut(title, BUTTON_TITLE)}}
            for oid, title in options
        ]
        return {"type": "button", "body": body, "action": {"buttons": buttons}}
    return {"type": "list", "body": body, "action": _list_action(interactive)}


def _list_action(interactive: Interactive) -> dict[str, Any]:
    rows = []
    for option_id, title in interactive.options:
        row = {"id": option_id, "title": cut(title, ROW_TITLE)}
        if len(title) > ROW_TITLE:  # the whole title, as far as it fits, under the cut one
            row["description"] = cut(title, ROW_DESCRIPTION)
        rows.append(row)
    label = cut(interactive.button.strip() or DEFAULT_LIST_BUTTON, LIST_BUTTON)
    return {"button": label, "sections": [{"rows": rows}]}


def _format_error(detail: str) -> GatewayError:
    return GatewayError(MESSAGE_FORMAT_INVALID, retryable=False, detail=detail)


def check_destination(message: OutgoingMessage) -> None:
    if not message.to.isdigit():
        raise GatewayError(
            INVALID_DESTINATION_NUMBER, retryable=False, detail="destination is not E.164 digits"
        )
    if message.template is None and message.interactive is None and not message.text.strip():
        raise _format_error("empty text")


def json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def provider_error(data: Mapping[str, Any] | None) -> tuple[str, str]:
    """(code, message) of an error reply: Meta's ``{"error": {...}}`` or the on-premises
    API's ``{"errors": [{...}]}`` (Turn); ("", "") when there is neither."""
    if data is None:
        return "", ""
    error = data.get("error")
    if not isinstance(error, dict):
        errors = data.get("errors")
        error = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(error, dict):
        return "", ""
    raw = error.get("code")
    code = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    parts = [
        str(error[key])
        for key in ("message", "title", "details")
        if isinstance(error.get(key), str) and error[key]
    ]
    error_data = error.get("error_data")
    if isinstance(error_data, dict) and isinstance(error_data.get("details"), str):
        parts.append(error_data["details"])
    return code, ": ".join(dict.fromkeys(parts))


def code_of(code: str, message: str) -> str | None:
    """Our code for a Meta code (None: not one we map)."""
    if code in PERMANENT_CODES:
        return PERMANENT_CODES[code]
    if any(words in message.lower() for words in NOT_A_USER_WORDS):
        return WHATSAPP_NOT_A_USER
    return None


def classify(
    status: int, content: bytes, retry_after: str | None, secrets: list[str]
) -> SendResult | GatewayError:
    """A reply to a send: the result (2xx with a message id) or the error to raise."""
    data = json_object(content)
    if 200 <= status <= 299:
        messages = data.get("messages") if data else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if isinstance(wamid, str) and wamid:
            return SendResult(provider_id=wamid, status="sent")
        return GatewayError(
            GATEWAY_ERROR,
            retryable=False,
            provider_code=str(status),
            detail=f"HTTP {status} but the reply has no message id; WhatsApp may have "
            "accepted the message, so it is not retried",
        )
    return error_for(status, data, retry_after, secrets)


def error_for(
    status: int, data: Mapping[str, Any] | None, retry_after: str | None, secrets: list[str]
) -> GatewayError:
    """The error of a non-2xx reply (see the module docstring)."""
    code, message = provider_error(data)
    detail = mask_text(message, secrets) if message else f"WhatsApp replied HTTP {status}"
    if code in RATE_LIMIT_CODES:
        return GatewayError(
            GATEWAY_ERROR,
            retryable=True,
            provider_code=code,
            detail=detail,
            retry_after=netpolicy.parse_retry_after(retry_after),
        )
    ours = code_of(code, message)
    if ours is not None:
        return GatewayError(ours, retryable=False, provider_code=code or str(status), detail=detail)
    retry = netpolicy.retryable_status(status, retry_after, code)
    if retry is not None:
        return retry
    return GatewayError(
        GATEWAY_ERROR, retryable=False, provider_code=code or str(status), detail=detail
    )


def send_json(
    client: httpx.Client,
    url: str,
    payload: Mapping[str, Any],
    *,
    token: str,
    timeout_s: float,
    secrets: list[str],
    record: Callable[[Exchange], None],
) -> SendResult:
    """POST ``payload`` with the bearer ``token``; the result, or GatewayError."""
    netpolicy.check_url_before_send(url)
    request = client.build_request(
        "POST",
        url,
        content=json.dumps(payload, ensure_ascii=False).encode(),
        headers={
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
        timeout=timeout_s,
    )
    response = netpolicy.send_logged(client, request, secrets=secrets, record=record)
    outcome = classify(
        response.status_code, response.content, response.headers.get("retry-after"), secrets
    )
    if isinstance(outcome, GatewayError):
        raise outcome
    return outcome


# --- the lean client (the dispatcher's path) ---------------------------------------------------

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_PHRASES = {status.value: status.phrase for status in HTTPStatus}  # as httpx logs them


@dataclass(frozen=True)
class WirePlan:
    """What every send of one gateway shares, worked out once: the origin, the request line's
    target and the fixed header lines (and how they are logged)."""

    url: str
    origin: Origin
    target: str
    head: bytes
    log_head: list[str]
    variants: list[str]


def wire_plan(url: str, token: str, secrets: list[str]) -> WirePlan:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    netloc = f"[{host}]" if ":" in host else host
    if port != default:
        netloc += f":{port}"
    headers = [
        ("Host", netloc),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("Authorization", f"Bearer {token}"),
    ]
    variants = netpolicy.secret_variants(secrets)
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    return WirePlan(
        url=url,
        origin=(scheme, host, port),
        target=path,
        head=b"".join(f"{k}: {v}\r\n".encode() for k, v in headers),
        log_head=[
            mask_text(line, variants)
            for line in netpolicy.header_lines(headers, ("authorization",))
        ],
        variants=variants,
    )


def wire_request(plan: WirePlan, payload: Mapping[str, Any]) -> tuple[bytes, str]:
    """The request bytes and their masked text for the exchange log."""
    body = _JSON.encode(payload).encode()
    data = b"".join(
        (
            f"POST {plan.target} HTTP/1.1\r\n".encode(),
            plan.head,
            f"Content-Length: {len(body)}\r\n\r\n".encode(),
            body,
        )
    )
    logged = "\n".join(
        [
            mask_text(f"POST {plan.url}", plan.variants),
            *plan.log_head,
            f"Content-Length: {len(body)}",
            "",
            mask_text(netpolicy.body_text(body), plan.variants),
        ]
    )
    return data, logged


async def send_json_async(
    pool: WirePool,
    plan: WirePlan,
    payload: Mapping[str, Any],
    *,
    timeout_s: float,
    secrets: list[str],
    record: Callable[[Exchange], None],
) -> SendResult:
    """``send_json`` through the lean client: the same request, classification and masked
    exchange."""
    if not netpolicy.private_addresses_allowed():
        netpolicy.check_url_before_send(plan.url)
    data, logged_request = wire_request(plan, payload)
    started = time.monotonic()
    try:
        response = await pool.request(plan.origin, data, timeout_s)
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
    outcome = classify(response.status, response.body, response.header("retry-after"), secrets)
    if isinstance(outcome, GatewayError):
        raise outcome
    return outcome
