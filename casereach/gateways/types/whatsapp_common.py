"""What the two WhatsApp gateway types (``whatsapp_cloud``, ``turn``) share.

Both speak the WhatsApp Business API shapes: the same message JSON, the same error codes
(Turn forwards Meta's), the same status and inbound-message objects in their webhooks and the
same template list (Turn proxies Meta's Graph endpoint). What differs — the URLs, the webhook
envelope and its signature — stays in each type's folder.

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

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from casereach.core import text as core_text
from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_FORMAT_INVALID,
    WHATSAPP_NOT_A_USER,
    WHATSAPP_OUTSIDE_WINDOW,
    Exchange,
    GatewayError,
    InboundMessage,
    Interactive,
    OutgoingMessage,
    ProviderTemplate,
    SendResult,
    Status,
    StatusUpdate,
)
from casereach.gateways.inbound import checked_inbound, phone_digits
from casereach.gateways.masking import mask_text

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
MAX_TEMPLATE_PAGES = 100
MAX_CHALLENGE = 1000

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


# --- templates ---------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
TEMPLATE_FIELDS = "name,language,status,category,components"


def template_params(body: str) -> int:
    """How many distinct {{n}} variables ``body`` has."""
    return len(set(PLACEHOLDER.findall(body)))


def parse_template(item: object) -> ProviderTemplate | None:
    if not isinstance(item, dict):
        return None
    name, language, status = item.get("name"), item.get("language"), item.get("status")
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(status, str)):
        return None
    body = ""
    components = item.get("components")
    for component in components if isinstance(components, list) else []:
        if (
            isinstance(component, dict)
            and str(component.get("type", "")).upper() == "BODY"
            and isinstance(component.get("text"), str)
        ):
            body = component["text"]
    category = item.get("category")
    return ProviderTemplate(
        name=name,
        language=language,
        status=status.upper(),
        body=body,
        category=category.upper() if isinstance(category, str) else "",
        params=template_params(body),
    )


def list_templates(
    client: httpx.Client,
    url: str,
    *,
    token: str,
    timeout_s: float,
    secrets: list[str],
    record: Callable[[Exchange], None],
) -> list[ProviderTemplate]:
    """Every template, following ``paging.next`` while it stays on the same host.

    Raises:
        GatewayError: a transport failure or an error reply (classified as a send's).
    """
    origin = urlsplit(url)[:2]
    templates: list[ProviderTemplate] = []
    params: dict[str, str] | None = {"fields": TEMPLATE_FIELDS, "limit": "100"}
    next_url: str | None = url
    pages = 0
    while next_url and pages < MAX_TEMPLATE_PAGES:
        pages += 1
        netpolicy.check_url_before_send(next_url)
        request = client.build_request(
            "GET",
            next_url,
            params=params,
            headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
        response = netpolicy.send_logged(client, request, secrets=secrets, record=record)
        data = json_object(response.content)
        if not 200 <= response.status_code <= 299:
            raise error_for(
                response.status_code, data, response.headers.get("retry-after"), secrets
            )
        if data is None or not isinstance(data.get("data"), list):
            raise GatewayError(
                GATEWAY_ERROR,
                retryable=True,
                provider_code=str(response.status_code),
                detail="the template list reply has no 'data' list",
            )
        templates += [t for t in map(parse_template, data["data"]) if t is not None]
        paging = data.get("paging")
        candidate = paging.get("next") if isinstance(paging, dict) else None
        next_url = None
        if isinstance(candidate, str) and urlsplit(candidate)[:2] == origin:
            next_url, params = candidate, None  # the next URL carries its own query
    return templates


# --- webhooks ----------------------------------------------------------------------------------


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value whatever the case of its name ("" when absent)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def webhook_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise ValueError("empty webhook")
    try:
        data = core_text.parse_json(body)
    except core_text.InvalidText:
        raise
    except ValueError:
        raise ValueError("the webhook body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the webhook JSON must be an object")
    return data


def webhook_values(data: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    """The ``value`` objects of a webhook with the business number each was sent to.

    Meta wraps them as ``entry[].changes[].value`` (the number in
    ``value.metadata.display_phone_number``); Turn posts one bare value (number "").
    """
    if "entry" not in data:
        return [(data, "")]
    entries = data["entry"]
    if not isinstance(entries, list):
        raise ValueError("'entry' must be a list")
    values: list[tuple[Mapping[str, Any], str]] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise ValueError("each entry needs a 'changes' list")
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue  # a change without a value concerns nothing we store
            metadata = value.get("metadata")
            number = metadata.get("display_phone_number") if isinstance(metadata, dict) else ""
            values.append((value, number if isinstance(number, str) else ""))
    return values


def _list_of(value: Mapping[str, Any], key: str) -> list[Any]:
    items = value.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"'{key}' must be a list")
    return items


def parse_statuses(value: Mapping[str, Any]) -> list[StatusUpdate]:
    updates = []
    for item in _list_of(value, "statuses"):
        if not isinstance(item, dict):
            raise ValueError("each status must be an object")
        wamid, word = item.get("id"), item.get("status")
        if not isinstance(wamid, str) or not wamid.strip():
            raise ValueError("a status has no message 'id'")
        status = STATUS_WORDS.get(word.lower()) if isinstance(word, str) else None
        if status is None:
            continue  # deleted, warning, played …: nothing a message's status records
        pricing = item.get("pricing")
        category = pricing.get("category") if isinstance(pricing, dict) else None
        update = StatusUpdate(
            provider_id=wamid.strip(),
            status=status,
            pricing_category=category.lower() if isinstance(category, str) else "",
        )
        if status == "failed":
            errors = item.get("errors")
            code, message = provider_error({"errors": errors} if isinstance(errors, list) else None)
            update = replace(
                update,
                error_code=code_of(code, message) or GATEWAY_ERROR,
                provider_code=code or "failed",
            )
        updates.append(update)
    return updates


def _inbound_text(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(text, reply id) of one inbound message, or None for a kind we do not take."""
    kind = item.get("type")
    part = item.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict):
        return None
    if kind == "text":
        return _str(part, "body"), ""
    if kind == "interactive":
        reply = part.get(part.get("type", "")) if isinstance(part.get("type"), str) else None
        if part.get("type") in ("button_reply", "list_reply") and isinstance(reply, dict):
            return _str(reply, "title"), _str(reply, "id")
        return None
    if kind == "button":  # a template's quick-reply button
        return _str(part, "text"), _str(part, "payload")
    if kind in ("image", "video", "document", "audio", "sticker"):
        caption = _str(part, "caption")
        return (caption, "") if caption else None
    return None  # reaction, location, contacts, unsupported …


def _str(part: Mapping[str, Any], key: str) -> str:
    value = part.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string")
    return value


def parse_messages(value: Mapping[str, Any], business_number: str) -> list[InboundMessage]:
    messages = []
    for item in _list_of(value, "messages"):
        if not isinstance(item, dict):
            raise ValueError("each message must be an object")
        found = _inbound_text(item)
        if found is None:
            continue
        text, reply_id = found
        sender = item.get("from")
        if not isinstance(sender, str):
            raise ValueError("a message has no 'from'")
        provider_id = item.get("id", "")
        if not isinstance(provider_id, str):
            raise ValueError("'id' must be a string")
        if len(reply_id) > MAX_OPTION_ID * 2:
            raise ValueError("the reply id is too long")
        to = phone_digits(business_number, "display_phone_number")
        message = checked_inbound(sender, to, text, provider_id)
        messages.append(replace(message, reply_id=reply_id))
    return messages


def parse_webhook(
    body: bytes, business_number: str
) -> tuple[list[StatusUpdate], list[InboundMessage]]:
    """Statuses and inbound messages of one webhook POST, or ValueError.

    ``business_number``: the number inbound messages were sent to when the webhook does not
    say it (Turn).
    """
    data = webhook_json(body)
    statuses: list[StatusUpdate] = []
    messages: list[InboundMessage] = []
    for value, number in webhook_values(data):
        statuses += parse_statuses(value)
        messages += parse_messages(value, number or business_number)
    return statuses, messages


def challenge_text(challenge: str) -> str | None:
    """A hub.challenge fit to echo back (digits as Meta sends, bounded, printable)."""
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        return None
    return challenge
