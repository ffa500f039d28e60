"""Turn.io gateway: inbound messages in Turn's webhooks (bare WhatsApp Business API bodies,
addressed to the gateway's number), the fake's signed webhooks, a fuzz of the parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.gateways.base import InboundMessage
from casereach.gateways.types.turn.gateway import TurnGateway
from casereach.testing.fake_whatsapp import FakeWhatsApp
from casereach.testing.gateway_tables import ProviderServer, Reply
from casereach.testing.inbound_tables import JSON, InboundCase, parse_or_refuse, run_inbound_case

CONFIG = {
    "number": "27860000001",
    "access_token": "turn-api-token-0123456789",
    "hook_secret": "turn-hook-secret-abcdef",
}


def gateway() -> TurnGateway:
    return TurnGateway(CONFIG)


def body(*messages: dict[str, Any]) -> bytes:
    contacts = [{"profile": {"name": "Amina"}, "wa_id": "254700000001"}]
    return json.dumps({"contacts": contacts, "messages": list(messages)}).encode()


def msg(kind: str, part: Any) -> dict[str, Any]:
    return {"from": "254700000001", "id": "gBIN1", "timestamp": "1", "type": kind, kind: part}


def inbound(text: str, reply_id: str = "") -> InboundMessage:
    return InboundMessage("254700000001", "27860000001", text, "gBIN1", reply_id)


CASES = [
    InboundCase(
        label="text",
        body=body(msg("text", {"body": "START"})),
        content_type=JSON,
        expect=[inbound("START")],
    ),
    InboundCase(
        label="reply button",
        body=body(msg("interactive", {"type": "button_reply", "button_reply": {"id": "a", "title": "A"}})),
        content_type=JSON,
        expect=[inbound("A", "a")],
    ),
    InboundCase(
        label="list row",
        body=body(msg("interactive", {"type": "list_reply", "list_reply": {"id": "r", "title": "R"}})),
        content_type=JSON,
        expect=[inbound("R", "r")],
    ),
    InboundCase(
        label="template quick reply",
        body=body(msg("button", {"text": "Stop promotions", "payload": "stop"})),
        content_type=JSON,
        expect=[inbound("Stop promotions", "stop")],
    ),
    InboundCase(
        label="caption",
        body=body(msg("document", {"caption": "lab results", "id": "m"})),
        content_type=JSON,
        expect=[inbound("lab results")],
    ),
    InboundCase(
        label="location skipped",
        body=body(msg("location", {"latitude": 0, "longitude": 0})),
        content_type=JSON,
        expect=[],
    ),
    InboundCase(
        label="Meta's envelope: its own business number wins",
        body=json.dumps(
            {
                "entry": [
                    {
                        "changes": [
                            {
                                "value": {
                                    "metadata": {"display_phone_number": "15550001111"},
                                    "messages": [msg("text", {"body": "hi"})],
                                }
                            }
                        ]
                    }
                ]
            }
        ).encode(),
        content_type=JSON,
        expect=[InboundMessage("254700000001", "15550001111", "hi", "gBIN1")],
    ),
    InboundCase(
        label="from not a number",
        body=body({**msg("text", {"body": "x"}), "from": "x"}),
        content_type=JSON,
        expect_error="not a phone number",
    ),
    InboundCase(label="empty", content_type=JSON, expect_error="empty webhook"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_webhooks_the_fake_posts_parse_and_verify() -> None:
    with FakeWhatsApp("turn") as fake, ProviderServer() as ours:
        ours.script("/hook", *[Reply(200)] * 3)
        url = ours.url + "/hook"
        gw = TurnGateway(fake.gateway_config())
        fake.post_text(url, "254700000001", "hello")
        fake.post_list_reply(url, "254700000001", "r2", "Clinic B")
        fake.post_statuses(url, "gB1", "delivered", category="service")
        found = []
        for request in ours.requests:
            assert gw.valid_webhook_signature(request.headers, request.body)
            statuses, messages = gw.parse_webhook({}, request.body, JSON)
            found += [(m.text, m.reply_id, m.to) for m in messages]
            found += [(s.status, s.pricing_category, s.provider_id) for s in statuses]
    assert [
        ("hello", "", fake.business_number),
        ("Clinic B", "r2", fake.business_number),
        ("delivered", "service", "gB1"),
    ] == found


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.sampled_from(["text", "interactive", "button", "image", "video"]),
    st.recursive(
        st.one_of(st.none(), st.integers(), st.text(st.characters(exclude_categories=()), max_size=8)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["type", "body", "title", "id", "caption", "text", "payload",
                                 "button_reply", "list_reply"]),
                inner,
                max_size=4,
            ),
        ),
        max_leaves=12,
    ),
)  # fmt: skip
def test_a_message_with_any_part_parses_or_is_refused(kind: str, part: Any) -> None:
    parse_or_refuse(gateway(), {}, body(msg(kind, part)), JSON)
