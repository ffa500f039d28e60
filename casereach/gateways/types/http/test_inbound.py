"""Generic HTTP gateway: ``POST /gateways/http/{inbound_key}/inbound`` (``from``, ``to``, ``text``,
optional ``id``; form-encoded or a JSON object, the content type decides)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from casereach.gateways.base import InboundMessage
from casereach.gateways.types.http.gateway import HttpGateway
from casereach.testing.inbound_tables import (
    FORM,
    JSON,
    InboundCase,
    assert_fuzz_reaches_both_outcomes,
    assert_hostile_requests_handled,
    fuzz_inputs,
    invalid_utf8_inputs,
    parse_or_refuse,
    refuses,
    run_inbound_case,
)

CONFIG = {"url": "http://127.0.0.1:9/send", "params": {"to": "{to}", "text": "{text}"}}
VALID = {"from": "+254700000001", "to": "12345", "text": "Yes please", "id": "t-1"}
MESSAGE = InboundMessage(sender="254700000001", to="12345", text="Yes please", provider_id="t-1")

KEY_FIELDS = ("from", "to", "text", "id")
CONTENT_TYPES = (FORM, FORM + "; charset=utf-8", JSON, "multipart/form-data; boundary=b")


def gateway() -> HttpGateway:
    return HttpGateway(CONFIG)


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in VALID.items() if k != name}


CASES = [
    InboundCase(label="valid form", form=VALID, expect=[MESSAGE]),
    InboundCase(
        label="valid form body",
        body=b"from=%2B254700000001&to=12345&text=Yes+please&id=t-1",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="valid JSON",
        body=json.dumps(VALID).encode(),
        content_type=JSON + "; charset=utf-8",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="JSON numbers for from, to and id",
        body=b'{"from": 254700000001, "to": 12345, "text": "Yes please", "id": 7}',
        content_type=JSON,
        expect=[InboundMessage("254700000001", "12345", "Yes please", "7")],
    ),
    InboundCase(
        label="id is optional",
        form=without("id"),
        expect=[InboundMessage("254700000001", "12345", "Yes please")],
    ),
    InboundCase(
        label="spaces and dashes in the sender",
        form={**VALID, "from": " +254 700-000 001 "},
        expect=[MESSAGE],
    ),
    InboundCase(
        label="empty text is a message",
        form={**VALID, "text": ""},
        expect=[InboundMessage("254700000001", "12345", "", "t-1")],
    ),
    InboundCase(label="missing from", form=without("from"), expect_error="missing field 'from'"),
    InboundCase(label="missing to", form=without("to"), expect_error="missing field 'to'"),
    InboundCase(label="missing text", form=without("text"), expect_error="missing field 'text'"),
    InboundCase(
        label="JSON null is missing",
        body=b'{"from": "254700000001", "to": "12345", "text": null}',
        content_type=JSON,
        expect_error="missing field 'text'",
    ),
    InboundCase(
        label="sender is a name",
        form={**VALID, "from": "Alice"},
        expect_error="'from' is not a phone number",
    ),
    InboundCase(
        label="sender too short", form={**VALID, "from": "12"}, expect_error="'from' is not a"
    ),
    InboundCase(
        label="sender too long", form={**VALID, "from": "1" * 21}, expect_error="'from' is not a"
    ),
    InboundCase(
        label="non-ASCII digits", form={**VALID, "from": "٢٥٤٧٠٠٠٠٠"}, expect_error="'from' is not"
    ),
    InboundCase(
        label="text too long",
        form={**VALID, "text": "x" * 10_001},
        expect_error="longer than 10000 characters",
    ),
    InboundCase(
        label="text of exactly 10000 characters",
        form={**VALID, "text": "x" * 10_000},
        expect=[InboundMessage("254700000001", "12345", "x" * 10_000, "t-1")],
    ),
    InboundCase(
        label="NUL in text", form={**VALID, "text": "a\x00b"}, expect_error="NUL character"
    ),
    InboundCase(
        label="lone surrogate in JSON text",
        body=b'{"from": "254700000001", "to": "12345", "text": "\\ud800"}',
        content_type=JSON,
        expect_error="not valid Unicode",
    ),
    InboundCase(
        label="invalid UTF-8 in JSON",
        body=b'{"from": "254700000001", "to": "12345", "text": "\xff"}',
        content_type=JSON,
        expect_error="not valid UTF-8",
    ),
    InboundCase(
        label="invalid UTF-8 in a form body",
        body=b"from=254700000001&to=12345&text=%FF",
        expect_error="not valid UTF-8",
    ),
    InboundCase(label="garbage form body", body=b"\x00\x01garbage", expect_error="not a form"),
    InboundCase(
        label="JSON array", body=b"[1, 2]", content_type=JSON, expect_error="must be an object"
    ),
    InboundCase(
        label="broken JSON", body=b"{nope", content_type=JSON, expect_error="not valid JSON"
    ),
    InboundCase(
        label="deeply nested JSON",
        body=b"[" * 60_000,
        content_type=JSON,
        expect_error="not valid JSON",
    ),
    InboundCase(
        label="text is a JSON object",
        body=b'{"from": "254700000001", "to": "12345", "text": {"a": 1}}',
        content_type=JSON,
        expect_error="'text' must be a string",
    ),
    InboundCase(
        label="wrong content type",
        body=json.dumps(VALID).encode(),
        content_type="text/plain",
        expect_error="unsupported content type 'text/plain'",
    ),
    InboundCase(label="no content type", form=VALID, content_type="", expect_error="unsupported"),
    InboundCase(
        label="id too long", form={**VALID, "id": "i" * 129}, expect_error="'id' must be at most"
    ),
    InboundCase(
        label="multipart: the web layer parsed it into form",
        form=VALID,
        content_type="multipart/form-data; boundary=xyz",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="vendor JSON media type",
        body=json.dumps(VALID).encode(),
        content_type="application/vnd.provider+json",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="query-string fields fill in, the body wins",
        form={"to": "999", "id": "from-query"},
        body=json.dumps({**VALID, "id": "from-body"}).encode(),
        content_type=JSON,
        expect=[InboundMessage("254700000001", "12345", "Yes please", "from-body")],
    ),
    InboundCase(
        label="form body with JSON content type",
        body=b"from=254700000001&to=12345&text=hi",
        content_type=JSON,
        expect_error="not valid JSON",
    ),
    InboundCase(
        label="JSON body with form content type",
        body=json.dumps(VALID).encode(),
        content_type=FORM,
        expect_error="not a form",
    ),
    InboundCase(
        label="XML content type",
        body=b"<sms/>",
        content_type="text/xml",
        expect_error="unsupported content type 'text/xml'",
    ),
    InboundCase(
        label="JSON boolean id",
        body=b'{"from": "254700000001", "to": "12345", "text": "x", "id": true}',
        content_type=JSON,
        expect_error="'id' must be a string or a number",
    ),
    InboundCase(
        label="JSON negative number sender",
        body=b'{"from": -254700000001, "to": "12345", "text": "x"}',
        content_type=JSON,
        expect_error="'from' must be a string or a number",
    ),
    InboundCase(
        label="empty JSON body",
        content_type=JSON,
        expect_error="not valid JSON",
    ),
    InboundCase(
        label="JSON in UTF-16",
        body=json.dumps(VALID).encode("utf-16"),
        content_type=JSON,
        expect_error="not valid UTF-8",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_inbound_reply() -> None:
    assert (200, "application/json", b'{"status": "received"}') == gateway().inbound_reply(
        "ignored"
    )
    assert {"status": "received"} == json.loads(gateway().inbound_reply(None)[2])


@settings(max_examples=500, derandomize=True, deadline=None)
@given(fuzz_inputs(VALID, KEY_FIELDS, CONTENT_TYPES))
def test_inbound_fuzz(request: tuple[dict[str, str], bytes, str]) -> None:
    parse_or_refuse(gateway(), *request)


def test_fuzz_reaches_both_outcomes() -> None:
    assert_fuzz_reaches_both_outcomes(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(invalid_utf8_inputs(VALID, KEY_FIELDS, json_too=True))
def test_invalid_utf8_is_always_refused(request: tuple[dict[str, str], bytes, str]) -> None:
    refuses(gateway(), *request)


def test_hostile_requests_are_refused_or_valid() -> None:
    assert assert_hostile_requests_handled(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES) > 300
