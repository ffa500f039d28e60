"""Test support for inbound-SMS webhooks: a table row type and hypothesis strategies.

``InboundCase`` + ``run_inbound_case`` mirror ``StatusCase`` / ``run_status_case`` in
``casereach.testing.gateway_tables``: one callback in, messages or a ValueError out.
``parse_or_refuse`` is the fuzz property every type shares: ``parse_inbound`` returns valid
``InboundMessage`` values or raises ValueError, never anything else (anything else is a 500).

Only tests import this module (it imports hypothesis, a dev dependency).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote_plus, urlencode

from hypothesis import find, settings
from hypothesis import strategies as st

from casereach.gateways.base import InboundMessage

__all__ = [
    "FORM",
    "JSON",
    "InboundCase",
    "ParsesInbound",
    "assert_fuzz_reaches_both_outcomes",
    "assert_hostile_requests_handled",
    "assert_valid_inbound",
    "fuzz_inputs",
    "hostile_requests",
    "invalid_utf8_inputs",
    "parse_or_refuse",
    "refuses",
    "run_inbound_case",
]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_TEXT = 10_000
_DIGITS = re.compile(r"[0-9]{3,20}")


class ParsesInbound(Protocol):
    def parse_inbound(
        self, form: Mapping[str, str], body: bytes, content_type: str
    ) -> list[InboundMessage]: ...

    def inbound_reply(self, text: str | None) -> tuple[int, str, bytes]: ...


@dataclass(frozen=True)
class InboundCase:
    """One row of an inbound table: a webhook request in, messages or a ValueError out."""

    label: str
    form: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = FORM
    expect: Sequence[InboundMessage] | None = None
    expect_error: str | None = None  # a substring of the ValueError's message


def run_inbound_case(gateway: ParsesInbound, case: InboundCase) -> None:
    label = case.label
    assert (case.expect is None) != (case.expect_error is None), (
        f"{label}: state exactly one of expect / expect_error"
    )
    try:
        messages = gateway.parse_inbound(case.form, case.body, case.content_type)
    except ValueError as exc:
        assert case.expect_error is not None, f"{label}: unexpected ValueError {exc}"
        assert case.expect_error in str(exc), f"{label}: message {str(exc)!r}"
        return
    assert case.expect is not None, f"{label}: expected ValueError, got {messages!r}"
    assert list(case.expect) == messages, f"{label}: got {messages!r}"
    assert_valid_inbound(messages)


def assert_valid_inbound(messages: object) -> None:
    """What the storage layer may rely on: storable, normalised, bounded."""
    assert isinstance(messages, list), f"not a list: {messages!r}"
    for message in messages:
        assert isinstance(message, InboundMessage), f"not an InboundMessage: {message!r}"
        assert _DIGITS.fullmatch(message.sender), f"sender {message.sender!r}"
        assert _DIGITS.fullmatch(message.to), f"to {message.to!r}"
        assert isinstance(message.text, str)
        assert len(message.text) <= MAX_TEXT
        assert "\x00" not in message.text
        message.text.encode("utf-8")  # no lone surrogates
        assert isinstance(message.provider_id, str)
        assert len(message.provider_id) <= 128
        assert message.provider_id == message.provider_id.strip()
        assert message.provider_id.isprintable()


def parse_or_refuse(
    gateway: ParsesInbound, form: Mapping[str, str], body: bytes, content_type: str
) -> None:
    """The fuzz property: valid messages or ValueError; any other exception fails the test."""
    try:
        messages = gateway.parse_inbound(form, body, content_type)
    except ValueError:
        return
    assert_valid_inbound(messages)


# --- strategies --------------------------------------------------------------------------------

# Every code point, lone surrogates included (st.text() leaves them out by default).
_any_char = st.characters(exclude_categories=())
_any_text = st.text(_any_char, max_size=40)

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            FORM,
            FORM + "; charset=utf-8",
            JSON,
            JSON + "; charset=UTF-8",
            "application/vnd.api+json",
            "multipart/form-data; boundary=x",
            "text/plain",
            "text/xml",
            "",
            "APPLICATION/JSON",
        ]
    ),
    st.text(max_size=30),
)


# Values that must be refused or normalised wherever they land.
HOSTILE_VALUES = [
    "",
    " ",
    "+",
    "12",
    "1" * 20,
    "1" * 21,
    " +254 700-000 001 ",
    "++254700000001",
    "٢٥٤٧٠٠٠٠٠٠٠١",  # Arabic-Indic digits: str.isdigit() says yes
    "²⁵⁴⁷⁰⁰⁰⁰",  # superscript digits: str.isdigit() says yes
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "x" * MAX_TEXT,
    "x" * (MAX_TEXT + 1),
    "é" * (MAX_TEXT + 1),
    "i" * 129,
    "id\nwith a line break",
    "whatsapp:+254700000001",
]


def _values(valid: Mapping[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(sorted(set(valid.values()))),
        st.sampled_from(HOSTILE_VALUES),
        st.from_regex(r"\+?[0-9 \-]{0,25}", fullmatch=True),
        _any_text,
    )


def _json_value(names: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        _any_text,
        st.sampled_from(HOSTILE_VALUES),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)
        ),
        max_leaves=12,
    )


def _form_body(fields: Mapping[str, str]) -> bytes:
    # surrogatepass: a lone surrogate becomes percent-encoded bytes that are not UTF-8.
    return urlencode(fields, errors="surrogatepass").encode("ascii")


@st.composite
def fuzz_inputs(
    draw: st.DrawFn,
    valid: Mapping[str, str],
    key_fields: Sequence[str],
    content_types: Sequence[str],
) -> tuple[dict[str, str], bytes, str]:
    """(form, body, content_type) for a type whose valid request is ``valid``, whose fields
    that matter are ``key_fields`` and which accepts ``content_types``. Half are near-valid
    (an accepted content type, one or two key fields replaced by hostile or random values, or
    dropped); the rest anything: random fields, raw bytes, arbitrary JSON, deep nesting."""
    names = st.one_of(st.sampled_from(sorted(valid)), st.text(max_size=8))
    fields = dict(valid)
    if draw(st.booleans()):
        content_type = draw(st.sampled_from(list(content_types)))
        for name in draw(st.lists(st.sampled_from(list(key_fields)), min_size=1, max_size=2)):
            if draw(st.integers(0, 5)) == 0:
                fields.pop(name, None)
            else:
                fields[name] = draw(_values(valid))
        if content_type.startswith("application/json"):
            return dict(draw(st.sampled_from([{}, {"x": "query"}]))), _json(fields), content_type
        if draw(st.booleans()) or content_type.startswith("multipart/"):
            return fields, b"", content_type
        return {}, _form_body(fields), content_type

    for name in draw(st.lists(st.sampled_from(sorted(valid)), max_size=3)):
        fields.pop(name, None)
    fields.update(draw(st.dictionaries(names, _values(valid), max_size=4)))
    content_type = draw(st.one_of(st.sampled_from(list(content_types)), CONTENT_TYPES))
    shape = draw(st.sampled_from(["form", "body", "json", "json-any", "bytes", "mangled", "deep"]))
    if shape == "form":
        return fields, b"", content_type
    if shape == "body":
        return {}, _form_body(fields), content_type
    if shape == "json":
        extra = draw(st.dictionaries(names, _json_value(names), max_size=3))
        return {}, _json({**fields, **extra}), content_type
    if shape == "json-any":
        return {}, _json(draw(_json_value(names))), content_type
    if shape == "mangled":
        body = bytearray(_form_body(fields))
        at = draw(st.integers(0, len(body)))
        body[at:at] = draw(st.binary(min_size=1, max_size=4))
        return {}, bytes(body), content_type
    if shape == "deep":
        depth = draw(st.integers(1, 50_000))
        return {}, b"[" * depth + b"{" * draw(st.integers(0, 3)), content_type
    return draw(st.dictionaries(names, _any_text, max_size=4)), draw(st.binary()), content_type


def _json(value: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as \ud800 escapes, as a hostile sender would send them
    return json.dumps(value).encode()


# Byte sequences that are not UTF-8, raw or percent-encoded: a lone continuation byte, a
# truncated sequence, an overlong "/", an encoded surrogate, bytes never valid in UTF-8.
INVALID_UTF8 = [b"\x80", b"\xc3\x28", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff", b"\xfe"]


@st.composite
def invalid_utf8_inputs(
    draw: st.DrawFn, valid: Mapping[str, str], key_fields: Sequence[str], json_too: bool
) -> tuple[dict[str, str], bytes, str]:
    """A valid request whose body carries invalid UTF-8 in one key field's value."""
    name = draw(st.sampled_from(list(key_fields)))
    bad = draw(st.sampled_from(INVALID_UTF8))
    prefix = draw(st.sampled_from(["", "ab", "254"]))
    others = {k: v for k, v in valid.items() if k != name}
    kinds = ["raw form", "percent form"] + (["json"] if json_too else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "json":
        head = json.dumps(others)[:-1].encode()
        body = head + b", " + json.dumps(name).encode() + b': "' + prefix.encode() + bad + b'"}'
        return {}, body, "application/json"
    encoded = bad if kind == "raw form" else "".join(f"%{b:02X}" for b in bad).encode()
    value = quote_plus(prefix).encode() + encoded
    body = _form_body(others) + b"&" + quote_plus(name).encode() + b"=" + value
    return {}, body, FORM


def refuses(
    gateway: ParsesInbound, form: Mapping[str, str], body: bytes, content_type: str
) -> None:
    """The request must be refused with a ValueError."""
    try:
        messages = gateway.parse_inbound(form, body, content_type)
    except ValueError:
        return
    raise AssertionError(f"accepted {body!r} as {messages!r}")


def assert_fuzz_reaches_both_outcomes(
    gateway: ParsesInbound,
    valid: Mapping[str, str],
    key_fields: Sequence[str],
    content_types: Sequence[str],
) -> None:
    """The fuzz strategy finds inputs that parse and inputs that are refused (a strategy that
    only ever produced garbage would test the refusals alone)."""

    def accepted(request: tuple[dict[str, str], bytes, str]) -> bool:
        try:
            return bool(gateway.parse_inbound(*request))
        except ValueError:
            return False

    quick = settings(database=None, derandomize=True, max_examples=2_000, deadline=None)
    inputs = fuzz_inputs(valid, key_fields, content_types)
    find(inputs, accepted, settings=quick)
    find(inputs, lambda request: not accepted(request), settings=quick)


# JSON values of the wrong kind for any field.
HOSTILE_JSON_VALUES: list[Any] = [None, True, False, -1, 0, 1.5, 10**30, [], {}, ["254700000001"]]

# Whole bodies no parser should choke on.
GARBAGE_BODIES = [
    b"",
    b" ",
    b"\x00",
    b"\xff\xfe",
    b"null",
    b"[]",
    b'"a string"',
    b"1e999",
    b"NaN",
    b"1" * 5_000,  # beyond int("…") digit limits
    b"[" * 60_000,  # RecursionError in json, unless caught
    b"{" * 60_000,
    b'{"a":' * 30_000,
    b"\xef\xbb\xbf{}",  # UTF-8 BOM
    b"&&&",
    b"=",
    b"a=%",
    b"%zz=1",
    b"a=1;b=2",
    b"\r\n\r\n--b--",
]


def hostile_requests(
    valid: Mapping[str, str], key_fields: Sequence[str], content_types: Sequence[str]
) -> list[tuple[str, dict[str, str], bytes, str, bool]]:
    """(label, form, body, content_type, must_refuse) for every key field with every hostile
    value under every accepted content type and shape, each key field dropped, garbage bodies
    under every content type, and the valid request in UTF-16/32. Deterministic: the known bad
    classes, every time. ``must_refuse``: garbage alone and non-UTF-8 encodings."""
    out: list[tuple[str, dict[str, str], bytes, str, bool]] = []
    for ct in content_types:
        is_json = ct.startswith("application/json")
        for name in key_fields:
            variants: list[tuple[str, dict[str, Any]]] = [
                (f"{name}={value[:12]!r}", {**valid, name: value}) for value in HOSTILE_VALUES
            ]
            variants.append((f"{name} dropped", {k: v for k, v in valid.items() if k != name}))
            if is_json:
                variants += [
                    (f"{name}={value!r}", {**valid, name: value}) for value in HOSTILE_JSON_VALUES
                ]
            for label, fields in variants:
                if is_json:
                    out.append((f"{ct} {label}", {}, _json(fields), ct, False))
                    continue
                text_fields = {k: str(v) for k, v in fields.items()}
                out.append((f"{ct} form {label}", text_fields, b"", ct, False))
                if not ct.startswith("multipart/"):
                    out.append((f"{ct} body {label}", {}, _form_body(text_fields), ct, False))
        for body in GARBAGE_BODIES:
            out.append((f"{ct} garbage {body[:12]!r}", {}, body, ct, True))
            out.append(
                (f"{ct} garbage {body[:12]!r} with a valid form", dict(valid), body, ct, False)
            )
    for ct in ("application/json", FORM):
        for codec in ("utf-16", "utf-16-le", "utf-32"):
            body = (_json(valid).decode() if "json" in ct else _form_body(valid).decode()).encode(
                codec
            )
            out.append((f"{ct} in {codec}", {}, body, ct, True))
    return out


def assert_hostile_requests_handled(
    gateway: ParsesInbound,
    valid: Mapping[str, str],
    key_fields: Sequence[str],
    content_types: Sequence[str],
) -> int:
    """Every hostile request parses to valid messages or is refused; returns how many ran."""
    failures = []
    requests = hostile_requests(valid, key_fields, content_types)
    for label, form, body, content_type, must_refuse in requests:
        try:
            if must_refuse:
                refuses(gateway, form, body, content_type)
            else:
                parse_or_refuse(gateway, form, body, content_type)
        except Exception as exc:
            failures.append(f"{label}: {type(exc).__name__}: {exc}"[:300])
    assert not failures, f"{len(failures)} of {len(requests)} failed:\n" + "\n".join(failures)
    return len(requests)
