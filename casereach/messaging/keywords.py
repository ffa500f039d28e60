"""Reading an inbound SMS: the reserved words (STOP / START / HELP) and structured SMS.

Pure functions, no database: ``inbound`` decides what to do with a text and writes the result.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from casereach.projects.settings_schema import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    SILENT_OPT_IN_WORDS,
)

# SPEC 6.3: the whole trimmed message, case-insensitive (the words: projects.settings_schema).
__all__ = ["HELP_WORDS", "OPT_IN_WORDS", "OPT_OUT_WORDS", "SILENT_OPT_IN_WORDS"]

Reserved = Literal["opt_out", "opt_in", "opt_in_silent", "help"]

DEFAULT_OPT_OUT_REPLY = (
    "You are unsubscribed and will receive no more messages. Reply START to subscribe again."
)
DEFAULT_OPT_IN_REPLY = "You are subscribed again. Reply STOP to unsubscribe."
DEFAULT_HELP_REPLY = "Reply STOP to unsubscribe, START to subscribe again."
DEFAULT_VERIFY_REQUEST = "Reply 123 to confirm this number for two-way SMS."
DEFAULT_VERIFY_DONE = "Thank you: this number is confirmed for two-way SMS."
DEFAULT_JOIN_REPLY = "Welcome: you are registered. Reply STOP at any time to unsubscribe."

_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Trimmed, inner whitespace collapsed, upper case (casefold-safe for the reserved words)."""
    return _SPACES.sub(" ", text.strip()).upper()


def reserved_word(
    text: str,
    *,
    opt_out: Iterable[str] = (),
    opt_in: Iterable[str] = (),
    help_words: Iterable[str] = (),
) -> Reserved | None:
    """What a whole message means, or None. Project words come in already upper-cased."""
    word = normalise(text)
    if not word or " " in word:
        return None
    if word in OPT_OUT_WORDS or word in set(opt_out):
        return "opt_out"
    if word in SILENT_OPT_IN_WORDS:
        return "opt_in_silent"
    if word in OPT_IN_WORDS or word in set(opt_in):
        return "opt_in"
    if word in HELP_WORDS or word in set(help_words):
        return "help"
    return None


def all_words(per_language: Mapping[str, Sequence[str]]) -> set[str]:
    return {w.upper() for words in per_language.values() for w in words}


def first_word(text: str) -> tuple[str, str]:
    """(KEYWORD upper-cased, the rest trimmed)."""
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""


# -- structured SMS ----------------------------------------------------------------------------

FieldType = Literal["text", "integer", "decimal", "date", "choice"]
FIELD_TYPES: tuple[str, ...] = ("text", "integer", "decimal", "date", "choice")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_INT = re.compile(r"^[+-]?\d{1,18}$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y")


@dataclass(frozen=True)
class StructuredField:
    """One case property a keyword sets: by position (order in the list) or ``name=value``."""

    prop: str
    type: FieldType = "text"
    choices: tuple[str, ...] = ()
    required: bool = False
    label: str = ""  # the word a sender uses in name=value; defaults to the property

    @property
    def key(self) -> str:
        return (self.label or self.prop).lower()


class StructuredError(ValueError):
    """The message does not fit the keyword's fields; the text names the problem."""


def parse_field_specs(raw: Any) -> list[StructuredField]:
    """Validate the ``fields`` of a keyword (API input); ValueError names the problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("fields must be a list")
    if len(raw) > 50:
        raise ValueError("a keyword sets at most 50 fields")
    out: list[StructuredField] = []
    seen: set[str] = set()
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"fields[{i}] must be an object")
        unknown = set(item) - {"property", "type", "choices", "required", "label"}
        if unknown:
            raise ValueError(f"fields[{i}] has unknown keys: {', '.join(sorted(unknown))}")
        prop = item.get("property")
        if not isinstance(prop, str) or not _NAME.match(prop):
            raise ValueError(f"fields[{i}].property must be a case property name")
        ftype = item.get("type", "text")
        if ftype not in FIELD_TYPES:
            raise ValueError(f"fields[{i}].type must be one of {', '.join(FIELD_TYPES)}")
        choices = item.get("choices", [])
        if not isinstance(choices, list) or not all(
            isinstance(c, str) and c.strip() for c in choices
        ):
            raise ValueError(f"fields[{i}].choices must be a list of non-empty strings")
        if ftype == "choice" and not choices:
            raise ValueError(f"fields[{i}] is a choice and needs choices")
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise ValueError(f"fields[{i}].required must be true or false")
        label = item.get("label", "")
        if not isinstance(label, str) or (label and not _NAME.match(label)):
            raise ValueError(f"fields[{i}].label must be a word")
        spec = StructuredField(
            prop=prop,
            type=ftype,
            choices=tuple(c.strip() for c in choices),
            required=required,
            label=label,
        )
        if spec.key in seen:
            raise ValueError(f"fields[{i}] repeats {spec.key!r}")
        seen.add(spec.key)
        out.append(spec)
    return out


def _convert(spec: StructuredField, value: str) -> str:
    name = spec.label or spec.prop
    if spec.type == "integer":
        if not _INT.match(value):
            raise StructuredError(f"{name} must be a whole number, not '{value}'")
        return str(int(value))
    if spec.type == "decimal":
        try:
            number = Decimal(value.replace(",", "."))
        except InvalidOperation:
            raise StructuredError(f"{name} must be a number, not '{value}'") from None
        if not number.is_finite():
            raise StructuredError(f"{name} must be a number, not '{value}'")
        return format(number, "f")
    if spec.type == "date":
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(value, fmt).date().isoformat()  # noqa: DTZ007
            except ValueError:
                continue
        raise StructuredError(f"{name} must be a date like 2026-03-31, not '{value}'")
    if spec.type == "choice":
        for choice in spec.choices:
            if choice.lower() == value.lower():
                return choice
        raise StructuredError(f"{name} must be one of {', '.join(spec.choices)}, not '{value}'")
    return value


def parse_structured(rest: str, fields: Sequence[StructuredField]) -> dict[str, str]:
    """The words after the keyword → case properties.

    ``name=value`` words set the named field; other words fill the fields in order,
    skipping those already named. The last text field takes the rest of the message.
    """
    if not fields:
        return {}
    by_key = {f.key: f for f in fields}
    named: dict[str, str] = {}
    positional: list[str] = []
    words = rest.split()
    for word in words:
        if "=" in word and not word.startswith("="):
            key, _, value = word.partition("=")
            spec = by_key.get(key.lower())
            if spec is None:
                raise StructuredError(f"unknown field '{key}'")
            if spec.key in named:
                raise StructuredError(f"{key} is given twice")
            named[spec.key] = value
        else:
            positional.append(word)
    values: dict[str, str] = dict(named)
    open_fields = [f for f in fields if f.key not in named]
    for i, spec in enumerate(open_fields):
        if not positional:
            break
        if spec.type == "text" and i == len(open_fields) - 1:
            values[spec.key] = " ".join(positional)
            positional = []
        else:
            values[spec.key] = positional.pop(0)
    if positional:
        raise StructuredError(f"too many values: '{' '.join(positional)}' was not expected")
    out: dict[str, str] = {}
    for spec in fields:
        value = values.get(spec.key, "")
        if value == "":
            if spec.required:
                raise StructuredError(f"{spec.label or spec.prop} is missing")
            continue
        out[spec.prop] = _convert(spec, value)
    return out
