"""Kannel gateway: an sms-service ``get-url`` (``GET /gateways/kannel/{inbound_key}/inbound``
with ``from=%p&to=%P&text=%b&id=%I&coding=%c&charset=%C``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from casereach.gateways.base import InboundMessage
from casereach.gateways.types.kannel.gateway import KannelGateway
from casereach.testing.inbound_tables import (
    FORM,
    InboundCase,
    assert_fuzz_reaches_both_outcomes,
    fuzz_inputs,
    parse_or_refuse,
    run_inbound_case,
)

CONFIG = {"send_url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u", "password": "p"}
KANNEL_ID = "9320a30b-1889-4a52-8731-f25850bc6e76"
VALID = {
    "from": "254700000001",
    "to": "12345",
    "text": "yes please",
    "id": KANNEL_ID,
    "coding": "0",
    "charset": "UTF-8",
}
MESSAGE = InboundMessage(
    sender="254700000001", to="12345", text="yes please", provider_id=KANNEL_ID
)
KEY_FIELDS = ("from", "to", "text", "id")


def gateway() -> KannelGateway:
    return KannelGateway(CONFIG)


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in VALID.items() if k != name}


CASES = [
    InboundCase(label="GSM text (Kannel hands it over as UTF-8)", form=VALID, expect=[MESSAGE]),
    InboundCase(
        label="UCS-2 text recoded by Kannel (mo-recode): UTF-8, coding 0",
        form={**VALID, "text": "Jambo 😀 ñé"},
        expect=[InboundMessage("254700000001", "12345", "Jambo 😀 ñé", KANNEL_ID)],
    ),
    InboundCase(
        label="coding 2 that says UTF-8 is read as UTF-8",
        form={**VALID, "coding": "2", "text": "Habari 😀"},
        expect=[InboundMessage("254700000001", "12345", "Habari 😀", KANNEL_ID)],
    ),
    InboundCase(
        label="no coding nor charset (an older get-url) is UTF-8",
        form={k: v for k, v in VALID.items() if k not in ("coding", "charset")},
        expect=[MESSAGE],
    ),
    InboundCase(
        label="a '+' sender",
        form={**VALID, "from": "+254700000001"},
        expect=[MESSAGE],
    ),
    InboundCase(
        label="a raw form body",
        body=b"from=254700000001&to=12345&text=yes+please&id=" + KANNEL_ID.encode(),
        expect=[MESSAGE],
    ),
    InboundCase(
        label="UTF-16 left undecoded: refused, naming mo-recode",
        form={**VALID, "coding": "2", "charset": "UTF-16BE", "text": "\x00J\x00a"},
        expect_error="mo-recode = true",
    ),
    InboundCase(
        label="coding 2 without a charset: refused, naming mo-recode",
        form={**VALID, "coding": "2", "charset": ""},
        expect_error="mo-recode = true",
    ),
    InboundCase(
        label="8-bit binary", form={**VALID, "coding": "1"}, expect_error="8-bit binary SMS"
    ),
    InboundCase(label="no sender", form=without("from"), expect_error="missing field 'from'"),
    InboundCase(label="no receiver", form=without("to"), expect_error="missing field 'to'"),
    InboundCase(label="no text", form=without("text"), expect_error="missing field 'text'"),
    InboundCase(label="no Kannel id", form=without("id"), expect_error="missing field 'id'"),
    InboundCase(
        label="escape code left unfilled",
        form={**VALID, "from": "%p"},
        expect_error="'from' is not a phone number",
    ),
    InboundCase(
        label="NUL in text", form={**VALID, "text": "a\x00b"}, expect_error="NUL character"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_inbound_reply_is_empty_so_kannel_sends_nothing_back() -> None:
    assert (200, "text/plain", b"") == gateway().inbound_reply("ignored")
    assert (200, "text/plain", b"") == gateway().inbound_reply(None)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(fuzz_inputs(VALID, KEY_FIELDS, (FORM,)))
def test_inbound_fuzz(request: tuple[dict[str, str], bytes, str]) -> None:
    parse_or_refuse(gateway(), *request)


def test_fuzz_reaches_both_outcomes() -> None:
    assert_fuzz_reaches_both_outcomes(gateway(), VALID, KEY_FIELDS, (FORM,))
