"""Africa's Talking gateway: incoming-message callbacks (form posts)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given, settings

from casereach.gateways.base import InboundMessage
from casereach.gateways.types.africastalking.gateway import AfricasTalkingGateway
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

API_KEY = "atsk_0b1e2d3c4f5a69788796a5f4c3d2e1b0"
MSG_ID = "ATXid_7f2c5a1e9b0d4c3e8a6f"

# What Africa's Talking posts to an incoming-messages callback URL.
VALID = {
    "from": "+254711082306",
    "to": "22384",
    "text": "JOIN clinic",
    "date": "2024-05-02 10:11:12",
    "id": MSG_ID,
    "linkId": "SampleLinkId123",
}
MESSAGE = InboundMessage(sender="254711082306", to="22384", text="JOIN clinic", provider_id=MSG_ID)

KEY_FIELDS = ("from", "to", "text", "id")
CONTENT_TYPES = (FORM, FORM + "; charset=utf-8", "multipart/form-data; boundary=b")


def gateway() -> AfricasTalkingGateway:
    return AfricasTalkingGateway({"username": "clinic", "api_key": API_KEY})


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in VALID.items() if k != name}


CASES = [
    InboundCase(label="valid form", form=VALID, expect=[MESSAGE]),
    InboundCase(label="valid form body", body=urlencode(VALID).encode(), expect=[MESSAGE]),
    InboundCase(
        label="unencoded + in the sender reads as a space",
        body=b"from=+254711082306&to=22384&text=JOIN+clinic&id=" + MSG_ID.encode(),
        expect=[MESSAGE],
    ),
    InboundCase(label="date is optional", form=without("date"), expect=[MESSAGE]),
    InboundCase(label="linkId is optional", form=without("linkId"), expect=[MESSAGE]),
    InboundCase(
        label="multipart (the web layer parsed it)",
        form=VALID,
        content_type="multipart/form-data; boundary=b",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="empty text",
        form={**VALID, "text": ""},
        expect=[InboundMessage("254711082306", "22384", "", MSG_ID)],
    ),
    InboundCase(label="missing from", form=without("from"), expect_error="missing field 'from'"),
    InboundCase(label="missing to", form=without("to"), expect_error="missing field 'to'"),
    InboundCase(label="missing text", form=without("text"), expect_error="missing field 'text'"),
    InboundCase(label="missing id", form=without("id"), expect_error="missing field 'id'"),
    InboundCase(label="blank id", form={**VALID, "id": " "}, expect_error="'id' is empty"),
    InboundCase(
        label="sender is a name",
        form={**VALID, "from": "Safaricom"},
        expect_error="'from' is not a phone number",
    ),
    InboundCase(
        label="sender with letters",
        form={**VALID, "from": "+2547110823O6"},
        expect_error="'from' is not a phone number",
    ),
    InboundCase(
        label="destination not a number",
        form={**VALID, "to": "short"},
        expect_error="'to' is not a phone number",
    ),
    InboundCase(
        label="text too long",
        form={**VALID, "text": "x" * 10_001},
        expect_error="'text' is longer than 10000 characters",
    ),
    InboundCase(label="NUL in text", form={**VALID, "text": "a\x00"}, expect_error="NUL"),
    InboundCase(
        label="control characters in id",
        form={**VALID, "id": "ATX\nid"},
        expect_error="printable",
    ),
    InboundCase(
        label="invalid UTF-8",
        body=urlencode(without("text")).encode() + b"&text=\xc3\x28",
        expect_error="not valid UTF-8",
    ),
    InboundCase(label="garbage form body", body=b"&&&", expect_error="not a form"),
    InboundCase(
        label="JSON is not what Africa's Talking sends",
        body=b'{"from": "+254711082306"}',
        content_type=JSON,
        expect_error="Africa's Talking inbound messages are form posts",
    ),
    InboundCase(
        label="text/plain",
        body=urlencode(VALID).encode(),
        content_type="text/plain",
        expect_error="form posts; got content type 'text/plain'",
    ),
    InboundCase(
        label="non-ASCII digits",
        form={**VALID, "from": "٢٥٤٧٠٠٠٠٠٠٠١"},
        expect_error="'from' is not a phone number",
    ),
    InboundCase(
        label="lone surrogate in text", form={**VALID, "text": "\udfff"}, expect_error="Unicode"
    ),
    InboundCase(
        label="id too long", form={**VALID, "id": "A" * 129}, expect_error="'id' must be at most"
    ),
    InboundCase(
        label="invalid UTF-8 (percent-encoded)",
        body=urlencode(without("text")).encode() + b"&text=%FF",
        expect_error="not valid UTF-8",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_inbound_reply() -> None:
    assert (200, "application/json", b'{"status": "received"}') == gateway().inbound_reply(None)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(fuzz_inputs(VALID, KEY_FIELDS, CONTENT_TYPES))
def test_inbound_fuzz(request: tuple[dict[str, str], bytes, str]) -> None:
    parse_or_refuse(gateway(), *request)


def test_fuzz_reaches_both_outcomes() -> None:
    assert_fuzz_reaches_both_outcomes(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(invalid_utf8_inputs(VALID, KEY_FIELDS, json_too=False))
def test_invalid_utf8_is_always_refused(request: tuple[dict[str, str], bytes, str]) -> None:
    refuses(gateway(), *request)


def test_hostile_requests_are_refused_or_valid() -> None:
    assert assert_hostile_requests_handled(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES) > 300
