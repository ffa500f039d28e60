"""Twilio gateway: incoming-message webhooks (form posts) and their X-Twilio-Signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.gateways.base import InboundMessage
from casereach.gateways.types.twilio.gateway import (
    EMPTY_TWIML,
    TwilioGateway,
    twilio_signature,
    valid_signature,
)
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

ACCOUNT = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f00dfeedcafe42deadbeefc0ffee77aa"  # noqa: S105 (a made-up test token)
SID = "SM" + "1f" * 16

# What Twilio posts for an incoming SMS (fields as documented for the messaging webhook).
VALID = {
    "ToCountry": "US",
    "ToState": "CA",
    "SmsMessageSid": SID,
    "NumMedia": "0",
    "ToCity": "",
    "FromZip": "",
    "SmsSid": SID,
    "FromState": "",
    "SmsStatus": "received",
    "FromCity": "",
    "Body": "STOP",
    "FromCountry": "KE",
    "To": "+15005550006",
    "ToZip": "",
    "NumSegments": "1",
    "MessageSid": SID,
    "AccountSid": ACCOUNT,
    "From": "+254700000001",
    "ApiVersion": "2010-04-01",
}
MESSAGE = InboundMessage(sender="254700000001", to="15005550006", text="STOP", provider_id=SID)

KEY_FIELDS = ("From", "To", "Body", "MessageSid", "SmsMessageSid", "SmsSid", "AccountSid")
CONTENT_TYPES = (FORM, FORM + "; charset=utf-8", "multipart/form-data; boundary=b")


def gateway() -> TwilioGateway:
    return TwilioGateway({"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN, "from_number": "1500"})


def without(*names: str) -> dict[str, str]:
    return {k: v for k, v in VALID.items() if k not in names}


CASES = [
    InboundCase(label="valid form", form=VALID, expect=[MESSAGE]),
    InboundCase(label="valid form body", body=urlencode(VALID).encode(), expect=[MESSAGE]),
    InboundCase(
        label="form body with charset",
        body=urlencode(VALID).encode(),
        content_type=FORM + "; charset=utf-8",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="multipart (the web layer parsed it)",
        form=VALID,
        content_type="multipart/form-data; boundary=b",
        expect=[MESSAGE],
    ),
    InboundCase(
        label="minimal fields",
        form={"From": "+254700000001", "To": "+15005550006", "Body": "STOP", "MessageSid": SID},
        expect=[MESSAGE],
    ),
    InboundCase(label="only SmsMessageSid", form=without("MessageSid", "SmsSid"), expect=[MESSAGE]),
    InboundCase(label="only SmsSid", form=without("MessageSid", "SmsMessageSid"), expect=[MESSAGE]),
    InboundCase(
        label="an MMS without text",
        form={**VALID, "Body": "", "NumMedia": "1"},
        expect=[InboundMessage("254700000001", "15005550006", "", SID)],
    ),
    InboundCase(
        label="unicode text",
        form={**VALID, "Body": "Asante sana 😊"},
        expect=[InboundMessage("254700000001", "15005550006", "Asante sana 😊", SID)],
    ),
    InboundCase(
        label="short code destination",
        form={**VALID, "To": "12345"},
        expect=[InboundMessage("254700000001", "12345", "STOP", SID)],
    ),
    InboundCase(label="missing From", form=without("From"), expect_error="missing field 'From'"),
    InboundCase(label="missing To", form=without("To"), expect_error="missing field 'To'"),
    InboundCase(label="missing Body", form=without("Body"), expect_error="missing field 'Body'"),
    InboundCase(
        label="missing MessageSid",
        form=without("MessageSid", "SmsMessageSid", "SmsSid"),
        expect_error="missing field 'MessageSid'",
    ),
    InboundCase(
        label="blank MessageSid",
        form={**without("SmsMessageSid", "SmsSid"), "MessageSid": "  "},
        expect_error="missing field 'MessageSid'",
    ),
    InboundCase(
        label="WhatsApp sender is not a phone number",
        form={**VALID, "From": "whatsapp:+254700000001"},
        expect_error="'From' is not a phone number",
    ),
    InboundCase(
        label="alphanumeric sender",
        form={**VALID, "From": "CLINIC"},
        expect_error="'From' is not a phone number",
    ),
    InboundCase(
        label="text too long",
        form={**VALID, "Body": "é" * 10_001},
        expect_error="'Body' is longer than 10000 characters",
    ),
    InboundCase(label="NUL in text", form={**VALID, "Body": "\x00"}, expect_error="NUL"),
    InboundCase(
        label="another account",
        form={**VALID, "AccountSid": "AC" + "f" * 32},
        expect_error="another Twilio account",
    ),
    InboundCase(
        label="invalid UTF-8 (raw byte)",
        body=urlencode(without("Body")).encode() + b"&Body=\xff",
        expect_error="not valid UTF-8",
    ),
    InboundCase(
        label="invalid UTF-8 (percent-encoded)",
        body=urlencode(without("Body")).encode() + b"&Body=%C3%28",
        expect_error="not valid UTF-8",
    ),
    InboundCase(label="garbage form body", body=b"garbage", expect_error="not a form"),
    InboundCase(label="empty request", expect_error="missing field 'MessageSid'"),
    InboundCase(
        label="JSON is not what Twilio sends",
        body=b'{"From": "+254700000001"}',
        content_type=JSON,
        expect_error="Twilio inbound messages are form posts",
    ),
    InboundCase(
        label="no content type", form=VALID, content_type="", expect_error="are form posts"
    ),
    InboundCase(
        label="non-ASCII digits",
        form={**VALID, "From": "٢٥٤٧٠٠٠٠٠٠٠١"},
        expect_error="'From' is not a phone number",
    ),
    InboundCase(
        label="superscript digits",
        form={**VALID, "To": "²³⁴⁵"},
        expect_error="'To' is not a phone number",
    ),
    InboundCase(
        label="lone surrogate in text", form={**VALID, "Body": "\ud800"}, expect_error="Unicode"
    ),
    InboundCase(
        label="MessageSid too long",
        form={**without("SmsMessageSid", "SmsSid"), "MessageSid": "SM" + "0" * 127},
        expect_error="'MessageSid' must be at most 128",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_inbound_reply_is_empty_twiml() -> None:
    status, content_type, body = gateway().inbound_reply("ignored: replies go through the API")
    assert (200, "text/xml") == (status, content_type)
    assert b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>' == body == EMPTY_TWIML
    assert body == gateway().inbound_reply(None)[2]


@settings(max_examples=500, derandomize=True, deadline=None)
@given(fuzz_inputs(VALID, KEY_FIELDS, CONTENT_TYPES))
def test_inbound_fuzz(request: tuple[dict[str, str], bytes, str]) -> None:
    parse_or_refuse(gateway(), *request)


def test_fuzz_reaches_both_outcomes() -> None:
    assert_fuzz_reaches_both_outcomes(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES)


# --- signatures --------------------------------------------------------------------------------

# Twilio's published example ("Validating requests are coming from Twilio", twilio.com/docs/
# usage/security): its own numbers, checked by hand below with the documented algorithm too.
KAT_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
KAT_TOKEN = "12345"  # noqa: S105 (Twilio's published example token)
KAT_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
KAT_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_known_answer_vector() -> None:
    assert KAT_SIGNATURE == twilio_signature(KAT_URL, KAT_PARAMS, KAT_TOKEN)
    assert valid_signature(KAT_URL, KAT_PARAMS, KAT_TOKEN, KAT_SIGNATURE)
    # The same, spelled out: URL, then name+value in name order, HMAC-SHA1, base64.
    signed = KAT_URL + "".join(k + KAT_PARAMS[k] for k in sorted(KAT_PARAMS))
    assert signed == (
        "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030"
        "Digits1234From+12349013030To+18005551212"
    )
    digest = hmac.new(KAT_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    assert KAT_SIGNATURE == base64.b64encode(digest).decode()


def _bumped(text: str, at: int) -> str:
    """``text`` with the character at ``at`` changed (one byte for ASCII)."""
    replacement = "a" if text[at] != "a" else "b"
    return text[:at] + replacement + text[at + 1 :]


def _param_value_changes() -> list[dict[str, str]]:
    out = []
    for name, value in KAT_PARAMS.items():
        out += [{**KAT_PARAMS, name: _bumped(value, i)} for i in range(len(value))]
    return out


def _param_name_changes() -> list[dict[str, str]]:
    out = []
    for name in KAT_PARAMS:
        for i in range(len(name)):
            params = {k: v for k, v in KAT_PARAMS.items() if k != name}
            params[_bumped(name, i)] = KAT_PARAMS[name]
            out.append(params)
    return out


TAMPERED = {
    "url": [(_bumped(KAT_URL, i), KAT_PARAMS, KAT_TOKEN) for i in range(len(KAT_URL))],
    "parameter value": [(KAT_URL, p, KAT_TOKEN) for p in _param_value_changes()],
    "parameter name": [(KAT_URL, p, KAT_TOKEN) for p in _param_name_changes()],
    "token": [(KAT_URL, KAT_PARAMS, _bumped(KAT_TOKEN, i)) for i in range(len(KAT_TOKEN))],
    "parameter dropped": [
        (KAT_URL, {k: v for k, v in KAT_PARAMS.items() if k != name}, KAT_TOKEN)
        for name in KAT_PARAMS
    ],
    "parameter added": [(KAT_URL, {**KAT_PARAMS, "Extra": ""}, KAT_TOKEN)],
}


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_any_single_change_fails(what: str) -> None:
    for url, params, token in TAMPERED[what]:
        assert not valid_signature(url, params, token, KAT_SIGNATURE), (what, url, params, token)


@pytest.mark.parametrize(
    ("label", "signature"),
    [
        ("empty", ""),
        ("one character changed", "1" + KAT_SIGNATURE[1:]),
        ("truncated", KAT_SIGNATURE[:-1]),
        ("padding dropped", KAT_SIGNATURE.rstrip("=")),
        ("trailing space", KAT_SIGNATURE + " "),
        ("SHA-256 instead of SHA-1", "x" * 44),
        ("not ASCII", "é" * 28),
    ],
)
def test_bad_signatures_fail(label: str, signature: str) -> None:
    assert not valid_signature(KAT_URL, KAT_PARAMS, KAT_TOKEN, signature), label


INBOUND_URL = "https://cr.example.org/gateways/twilio/k-7f3a/inbound"


def test_signed_inbound_webhook() -> None:
    """The webhook's params as they arrive, signed with the gateway's token: the route checks
    the signature with ``valid_callback_signature``, then parses."""
    gw = gateway()
    signature = twilio_signature(INBOUND_URL, VALID, AUTH_TOKEN)
    assert gw.valid_callback_signature(INBOUND_URL, VALID, signature)
    # Behind a proxy the route must rebuild the public URL; the internal one does not match.
    assert not gw.valid_callback_signature(
        "http://10.0.0.5:8000/gateways/twilio/k-7f3a/inbound", VALID, signature
    )
    # Twilio may sign with or without the default port.
    assert gw.valid_callback_signature(
        INBOUND_URL.replace("cr.example.org", "cr.example.org:443"), VALID, signature
    )
    assert not gw.valid_callback_signature(INBOUND_URL, {**VALID, "Body": "STOP!"}, signature)
    assert not gw.valid_callback_signature(INBOUND_URL + "/", VALID, signature)
    assert [MESSAGE] == gw.parse_inbound(VALID, urlencode(VALID).encode(), FORM)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    url=st.text(min_size=1, max_size=60),
    params=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=6),
    token=st.text(min_size=1, max_size=40),
)
def test_signature_round_trips(url: str, params: dict[str, str], token: str) -> None:
    signature = twilio_signature(url, params, token)
    assert valid_signature(url, params, token, signature)
    assert not valid_signature(url, params, token + "x", signature)
    assert not valid_signature(url + "x", params, token, signature)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(invalid_utf8_inputs(VALID, KEY_FIELDS, json_too=False))
def test_invalid_utf8_is_always_refused(request: tuple[dict[str, str], bytes, str]) -> None:
    refuses(gateway(), *request)


def test_hostile_requests_are_refused_or_valid() -> None:
    assert assert_hostile_requests_handled(gateway(), VALID, KEY_FIELDS, CONTENT_TYPES) > 300
