"""Checks shared by every gateway type's inbound-SMS parser (never touches the database)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from casereach.core import text as core_text
from casereach.gateways.base import InboundMessage

MAX_INBOUND_TEXT = 10_000  # characters
MAX_PROVIDER_ID = 128  # the message log's provider_id column
PHONE_DIGITS = re.compile(r"[0-9]{3,20}")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def inbound_fields(form: Mapping[str, str], body: bytes, content_type: str) -> dict[str, object]:
    media = content_type.split(";", 1)[0].strip().lower()
    fields: dict[str, object] = dict(form)
    if media == FORM:
        if body:
            fields.update(core_text.parse_form(body))
        return fields
    if media == MULTIPART:
        return fields  # the web layer parsed it into ``form``
    if media == "application/json" or media.endswith("+json"):
        try:
            data = core_text.parse_json(body)
        except core_text.InvalidText:
            raise
        except ValueError:
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        fields.update(data)
        return fields
    raise ValueError(
        f"unsupported content type {media or '(none)'!r}: send {FORM} or application/json"
    )


def optional_field(fields: Mapping[str, object], name: str, *, numeric: bool = False) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if numeric and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise ValueError(f"{name!r} must be a string" + (" or a number" if numeric else ""))


def required_field(fields: Mapping[str, object], name: str, *, numeric: bool = False) -> str:
    if fields.get(name) is None:
        raise ValueError(f"missing field {name!r}")
    return optional_field(fields, name, numeric=numeric)


def phone_digits(value: str, name: str) -> str:
    """Digits only: ``+``, spaces and dashes dropped; 3 to 20 digits (short codes allowed)."""
    digits = value.strip().removeprefix("+").replace(" ", "").replace("-", "")
    if not PHONE_DIGITS.fullmatch(digits):
        raise ValueError(f"{name!r} is not a phone number (3 to 20 digits, optional '+')")
    return digits


def checked_inbound(sender: str, to: str, text: str, provider_id: str) -> InboundMessage:
    """Checked and normalised; every failure is a ValueError naming the field."""
    if len(text) > MAX_INBOUND_TEXT:
        raise ValueError(f"'text' is longer than {MAX_INBOUND_TEXT} characters")
    if "\x00" in text:
        raise ValueError("'text' contains a NUL character")
    if not core_text.is_text(text):
        raise ValueError("'text' is not valid Unicode (lone surrogate)")
    provider_id = provider_id.strip()
    if len(provider_id) > MAX_PROVIDER_ID or not provider_id.isprintable():
        raise ValueError(f"'id' must be at most {MAX_PROVIDER_ID} printable characters")
    return InboundMessage(
        sender=phone_digits(sender, "from"),
        to=phone_digits(to, "to"),
        text=text,
        provider_id=provider_id,
    )


def callback_fields(
    form: Mapping[str, str], body: bytes, content_type: str, *, what: str = "status callback"
) -> Mapping[str, str]:
    """A provider callback's fields: the parsed form, a JSON object, or a raw form body."""
    if form:
        return form
    if not body:
        raise ValueError(f"empty {what}")
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = core_text.parse_json(body)
        except core_text.InvalidText:
            raise
        except ValueError:
            raise ValueError(f"{what} body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError(f"{what} JSON must be an object")
        return {str(k): str(v) for k, v in data.items() if v is not None}
    try:
        return dict(core_text.parse_form(body))
    except core_text.InvalidText:
        raise
    except ValueError:
        raise ValueError(f"{what} body is not a form") from None
