"""WhatsApp webhooks, shared by ``whatsapp_cloud`` and ``turn``: statuses and inbound messages
of one POST (Meta's ``entry[].changes[].value`` envelope, or Turn's bare value), and the
checks both types' signatures and verification share.

Statuses ``sent``, ``delivered``, ``read`` and ``failed`` (with Meta's error code mapped as a
send's, see ``whatsapp_common``; ``pricing.category`` kept); other status words are skipped.
Inbound: text; reply-button and list replies (text = the option's title, ``reply_id`` = its
id); a template's quick-reply button (its text and payload); the captions of images, videos,
documents and audio. Reactions, stickers without a caption, locations, contacts and
unsupported messages are skipped. Anything malformed is a ValueError (the route answers 4xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from casereach.core import text as core_text
from casereach.gateways.base import GATEWAY_ERROR, InboundMessage, StatusUpdate
from casereach.gateways.inbound import checked_inbound, phone_digits
from casereach.gateways.types.whatsapp_common import STATUS_WORDS, code_of, provider_error

MAX_REPLY_ID = 256  # a reply button's id (a list row's is at most 200)
MAX_CHALLENGE = 1000


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
        if len(reply_id) > MAX_REPLY_ID or "\x00" in reply_id:
            raise ValueError(f"the reply id must be at most {MAX_REPLY_ID} characters, no NUL")
        to = phone_digits(business_number, "display_phone_number")
        message = checked_inbound(sender, to, text, provider_id)
        messages.append(replace(message, reply_id=reply_id))
    return messages


def parse_webhook(
    body: bytes, business_number: str, phone_number_id: str = ""
) -> tuple[list[StatusUpdate], list[InboundMessage]]:
    """Statuses and inbound messages of one webhook POST, or ValueError.

    ``business_number``: the number inbound messages were sent to when the webhook does not
    say it (Turn). ``phone_number_id``: the gateway's own number id (Cloud API): one Meta app
    posts the events of every number it serves to the same URL, so a value for another number
    id (``metadata.phone_number_id``) belongs to another gateway and is left out.
    """
    data = webhook_json(body)
    statuses: list[StatusUpdate] = []
    messages: list[InboundMessage] = []
    for value, number in webhook_values(data):
        if phone_number_id and _number_id(value) not in ("", phone_number_id):
            continue
        statuses += parse_statuses(value)
        messages += parse_messages(value, number or business_number)
    return statuses, messages


def _number_id(value: Mapping[str, Any]) -> str:
    metadata = value.get("metadata")
    found = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return str(found) if isinstance(found, (str, int)) and not isinstance(found, bool) else ""


def challenge_text(challenge: str) -> str | None:
    """A hub.challenge fit to echo back (digits as Meta sends, bounded, printable)."""
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        return None
    return challenge
