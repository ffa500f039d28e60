"""The one decoder for text entering casereach: every entry point reads bytes and strings
through it, so only valid UTF-8 text is ever stored (SPEC 10).

"Valid" means: the bytes decode as strict UTF-8 (which also refuses the encoded surrogates
``ED A0 80``… that Python's JSON reader would let through), and no string holds a lone UTF-16
surrogate (``\\ud800``-``\\udfff``) — from a JSON escape, a command-line argument Python decoded
with ``surrogateescape``, or a value planted some other way. Such a string cannot be encoded,
so it would fail later in the database, a gateway or a log line instead of at the door.

Failures are ``InvalidText`` (a ``ValueError``) with one clear line; callers turn it into their
400, CLI line or import-row error. This module imports nothing but the standard library, so
gateway types may use it too.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

NOT_UTF8 = "not valid UTF-8"
LONE_SURROGATE = "is not valid Unicode: it holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"

# A ``\uD800``-``\uDFFF`` escape in JSON text: only when one appears can a parsed string hold a
# lone surrogate, so only then is the parsed value walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidText(ValueError):
    """Bytes or a string that is not valid UTF-8 text."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def is_text(value: str) -> bool:
    """Whether ``value`` can be stored and sent: no lone surrogate."""
    return _SURROGATE.search(value) is None


def check_text(value: str, what: str = "text") -> str:
    """``value`` unchanged, or InvalidText when it holds a lone surrogate."""
    if not is_text(value):
        raise InvalidText(f"{what} {LONE_SURROGATE}", what)
    return value


def decode(raw: bytes, what: str = "text") -> str:
    """``raw`` as strict UTF-8 (a leading byte-order mark is dropped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidText(f"{what} is {NOT_UTF8} (bad byte at offset {exc.start})", what) from None
    return text.removeprefix("\ufeff")


def first_bad_path(value: Any, path: str = "") -> str | None:
    """Where in JSON-like ``value`` (dicts, lists, strings) a key or string holds a lone
    surrogate (``"opt_out_reply.en"``), or None when it is all text."""
    if isinstance(value, str):
        return None if is_text(value) else (path or "(value)")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_text(key):
                return (path + "." if path else "") + "(a key)"
            found = first_bad_path(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_bad_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_value(value: Any, what: str = "a string") -> Any:
    """JSON-like ``value`` unchanged, or InvalidText naming where a lone surrogate is."""
    where = first_bad_path(value)
    if where is not None:
        raise InvalidText(f"{what} at {where} {LONE_SURROGATE}", where)
    return value


def parse_json(raw: bytes | str, what: str = "the JSON body") -> Any:
    """JSON from strict UTF-8 with no lone surrogate anywhere. ValueError (InvalidText for
    bad text) when it is not; RecursionError is turned into a ValueError too."""
    text = decode(raw, what) if isinstance(raw, bytes) else check_text(raw, what)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deep") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then pay for the walk
        try:
            check_value(data, f"{what}: a string")
        except RecursionError:
            raise ValueError(f"{what} is nested too deep") from None
    return data


def check_json_bytes(raw: bytes, what: str = "the JSON body") -> None:
    """InvalidText when ``raw`` is not UTF-8 or a string in it would decode to a lone
    surrogate; text that is not JSON at all is left for the parser to refuse."""
    text = decode(raw, what)
    if _SURROGATE_ESCAPE.search(text):
        try:
            check_value(json.loads(text), f"{what}: a string")
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, InvalidText):
                raise
            # Not JSON: the parser will say so.


def percent_decoded(value: str | bytes, what: str) -> str:
    """A percent-encoded string (a query string, a form body) decoded to text: both the raw
    bytes and every ``%XX`` sequence must be UTF-8."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return decode(unquote_to_bytes(raw.replace(b"+", b" ")), what)


def parse_form(raw: bytes, what: str = "the form body") -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` body as (name, value) pairs, strictly: UTF-8
    bytes, UTF-8 percent escapes, and name=value pairs joined by ``&``."""
    text = decode(raw, what)
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except UnicodeDecodeError:
        raise InvalidText(f"{what} is {NOT_UTF8} (a percent-escape)", what) from None
    except ValueError:
        raise ValueError(f"{what} is not a form (name=value pairs joined by '&')") from None


def check_query_string(query: str | bytes) -> None:
    """InvalidText when a query string's bytes or percent escapes are not UTF-8."""
    if query:
        percent_decoded(query, "the query string")


def check_argument(value: str, what: str = "an argument") -> str:
    """A command-line argument: Python decodes bytes that are not UTF-8 to lone surrogates
    (``surrogateescape``), so refusing those refuses the bytes."""
    if not is_text(value):
        raise InvalidText(f"{what} is {NOT_UTF8}", what)
    return value
