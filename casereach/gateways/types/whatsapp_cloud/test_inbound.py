"""WhatsApp Cloud API gateway: inbound messages in Meta's webhooks (every message shape), the
statuses and messages of one POST together, and a fuzz of the parser."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.gateways.base import (
    WHATSAPP_NOT_A_USER,
    WHATSAPP_OUTSIDE_WINDOW,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    StatusUpdate,
    TemplateRef,
)
from casereach.gateways.types.whatsapp_cloud.gateway import WhatsAppCloudGateway
from casereach.testing.fake_whatsapp import NOT_A_USER_LATER, SLOW, FakeWhatsApp
from casereach.testing.gateway_tables import ProviderServer, Reply
from casereach.testing.inbound_tables import JSON, InboundCase, parse_or_refuse, run_inbound_case

BUSINESS = "15550001111"
CONFIG = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "access_token": "EAAG0123456789abcdefTOKEN",
    "app_secret": "0123456789abcdef0123456789abcdef",
    "verify_token": "verify-me-please",
}


def gateway() -> WhatsAppCloudGateway:
    return WhatsAppCloudGateway(CONFIG)


def webhook(*messages: dict[str, Any], number: str = "+1 555-000-1111", **extra: Any) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": number, "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Amina"}, "wa_id": "254700000001"}],
        "messages": list(messages),
        **extra,
    }
    entry = {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def msg(kind: str, part: Any, **extra: Any) -> dict[str, Any]:
    return {
        "from": "254700000001",
        "id": "wamid.IN1",
        "timestamp": "1700000000",
        "type": kind,
        kind: part,
        **extra,
    }


def inbound(text: str, reply_id: str = "") -> InboundMessage:
    return InboundMessage("254700000001", BUSINESS, text, "wamid.IN1", reply_id)


CASES = [
    InboundCase(
        label="text",
        body=webhook(msg("text", {"body": "STOP"})),
        content_type=JSON,
        expect=[inbound("STOP")],
    ),
    InboundCase(
        label="reply button",
        body=webhook(
            msg(
                "interactive",
                {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes"}},
            )
        ),
        content_type=JSON,
        expect=[inbound("Yes", "yes-1")],
    ),
    InboundCase(
        label="list row",
        body=webhook(
            msg(
                "interactive",
                {
                    "type": "list_reply",
                    "list_reply": {"id": "r2", "title": "Clinic B", "description": "d"},
                },
            )
        ),
        content_type=JSON,
        expect=[inbound("Clinic B", "r2")],
    ),
    InboundCase(
        label="template quick-reply button",
        body=webhook(msg("button", {"text": "Confirm", "payload": "confirm-visit"})),
        content_type=JSON,
        expect=[inbound("Confirm", "confirm-visit")],
    ),
    InboundCase(
        label="image caption",
        body=webhook(msg("image", {"caption": "my card", "id": "m1", "mime_type": "image/jpeg"})),
        content_type=JSON,
        expect=[inbound("my card")],
    ),
    InboundCase(
        label="video caption",
        body=webhook(msg("video", {"caption": "see", "id": "m1"})),
        content_type=JSON,
        expect=[inbound("see")],
    ),
    InboundCase(
        label="document caption",
        body=webhook(msg("document", {"caption": "results", "filename": "r.pdf", "id": "m1"})),
        content_type=JSON,
        expect=[inbound("results")],
    ),
    InboundCase(
        label="audio with a caption",
        body=webhook(msg("audio", {"caption": "voice note", "id": "m1"})),
        content_type=JSON,
        expect=[inbound("voice note")],
    ),
    InboundCase(
        label="image without caption is skipped",
        body=webhook(msg("image", {"id": "m1"})),
        content_type=JSON,
        expect=[],
    ),
    InboundCase(
        label="reaction, sticker, location, unsupported are skipped; text kept",
        body=webhook(
            msg("reaction", {"message_id": "wamid.X", "emoji": "👍"}),
            msg("sticker", {"id": "s1", "animated": False}),
            msg("location", {"latitude": 1.0, "longitude": 2.0}),
            msg("unsupported", {}, errors=[{"code": 131051}]),
            msg("text", {"body": "hello"}),
        ),
        content_type=JSON,
        expect=[inbound("hello")],
    ),
    InboundCase(
        label="unknown interactive kind is skipped",
        body=webhook(msg("interactive", {"type": "nfm_reply", "nfm_reply": {}})),
        content_type=JSON,
        expect=[],
    ),
    InboundCase(
        label="statuses only: no messages",
        body=webhook(statuses=[{"id": "wamid.S", "status": "read"}]),
        content_type=JSON,
        expect=[],
    ),
    InboundCase(
        label="unicode text",
        body=webhook(msg("text", {"body": "Asante sana 😊"})),
        content_type=JSON,
        expect=[inbound("Asante sana 😊")],
    ),
    InboundCase(
        label="no from",
        body=webhook({"id": "wamid.IN1", "type": "text", "text": {"body": "x"}}),
        content_type=JSON,
        expect_error="no 'from'",
    ),
    InboundCase(
        label="from is not a number",
        body=webhook(msg("text", {"body": "x"}, **{"from": "whatsapp:abc"})),
        content_type=JSON,
        expect_error="not a phone number",
    ),
    InboundCase(
        label="no business number",
        body=webhook(msg("text", {"body": "x"}), number=""),
        content_type=JSON,
        expect_error="'display_phone_number' is not a phone number",
    ),
    InboundCase(
        label="text body not a string",
        body=webhook(msg("text", {"body": 5})),
        content_type=JSON,
        expect_error="'body' must be a string",
    ),
    InboundCase(
        label="text too long",
        body=webhook(msg("text", {"body": "é" * 10_001})),
        content_type=JSON,
        expect_error="longer than 10000",
    ),
    InboundCase(
        label="NUL in text",
        body=webhook(msg("text", {"body": "a\x00"})),
        content_type=JSON,
        expect_error="NUL",
    ),
    InboundCase(
        label="lone surrogate (JSON escape)",
        body=webhook(msg("text", {"body": "x"})).replace(b'"x"', b'"\\ud800"'),
        content_type=JSON,
        expect_error="not valid",
    ),
    InboundCase(
        label="messages not a list",
        body=b'{"entry": [{"changes": [{"value": {"messages": {}}}]}]}',
        content_type=JSON,
        expect_error="'messages' must be a list",
    ),
    InboundCase(label="empty", content_type=JSON, expect_error="empty webhook"),
    InboundCase(label="form post", body=b"a=b", expect_error="not valid JSON"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: InboundCase) -> None:
    run_inbound_case(gateway(), case)


def test_statuses_and_messages_of_one_post() -> None:
    body = webhook(
        msg("text", {"body": "1"}),
        statuses=[
            {
                "id": "wamid.S",
                "status": "delivered",
                "pricing": {"category": "SERVICE", "billable": False},
            }
        ],
    )
    statuses, messages = gateway().parse_webhook({}, body, JSON)
    assert [StatusUpdate("wamid.S", "delivered", pricing_category="service")] == statuses
    assert [inbound("1")] == messages


def test_events_of_another_number_of_the_same_app_are_left_out() -> None:
    """One Meta app posts every number's events to each URL it has: only this gateway's
    phone_number_id is read, so another gateway's inbound never lands in this project."""
    ours = json.loads(webhook(msg("text", {"body": "ours"})))
    theirs = json.loads(webhook(msg("text", {"body": "theirs"})))
    theirs_value = theirs["entry"][0]["changes"][0]["value"]
    theirs_value["metadata"]["phone_number_id"] = "999000111222333"
    theirs_value["statuses"] = [{"id": "wamid.T", "status": "delivered"}]
    ours["entry"].append(theirs["entry"][0])

    statuses, messages = gateway().parse_webhook({}, json.dumps(ours).encode(), JSON)

    assert ([], ["ours"]) == (statuses, [m.text for m in messages])


def test_webhooks_the_fake_posts_parse_and_verify() -> None:
    """The fake's signed webhooks, received by a real local HTTP server, check and parse."""
    with FakeWhatsApp("cloud") as fake, ProviderServer() as ours:
        ours.script("/webhook", *[Reply(200)] * 6)
        url = ours.url + "/webhook"
        gw = WhatsAppCloudGateway(fake.gateway_config())
        fake.post_text(url, "254700000001", "hello")
        fake.post_button_reply(url, "254700000001", "yes-1", "Yes")
        fake.post_list_reply(url, "254700000001", "r2", "Clinic B")
        fake.post_template_button(url, "254700000001", "Confirm", "c")
        fake.post_caption(url, "254700000001", "my card")
        fake.post_statuses(url, "wamid.X", "sent", "read", category="utility")
        received = [(r.headers, r.body) for r in ours.requests]
    assert 6 == len(received)
    texts = []
    for headers, body in received:
        assert gw.valid_webhook_signature(headers, body)
        statuses, messages = gw.parse_webhook({}, body, JSON)
        texts += [(m.text, m.reply_id, m.to) for m in messages]
        texts += [(s.status, s.pricing_category, s.provider_id) for s in statuses]
    assert [
        ("hello", "", BUSINESS),
        ("Yes", "yes-1", BUSINESS),
        ("Clinic B", "r2", BUSINESS),
        ("Confirm", "c", BUSINESS),
        ("my card", "", BUSINESS),
        ("sent", "utility", "wamid.X"),
        ("read", "utility", "wamid.X"),
    ] == texts


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(st.characters(exclude_categories=()), max_size=12),
)
_json_any = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(list(_json_keys := ["entry", "changes", "value", "messages", "statuses", "metadata", "display_phone_number", "from", "id", "type", "text", "body", "interactive", "button_reply", "list_reply", "title", "button", "payload", "image", "caption", "status", "errors", "code", "pricing", "category"])), inner, max_size=4)
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=400, derandomize=True, deadline=None)
@given(_json_any)
def test_any_json_parses_or_is_refused(data: Any) -> None:
    """Valid messages, or ValueError: never another exception (a 500)."""
    body = json.dumps(data).encode()
    parse_or_refuse(gateway(), {}, body, JSON)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sampled_from(["text", "interactive", "button", "image"]), _json_any)
def test_a_message_with_any_part_parses_or_is_refused(kind: str, part: Any) -> None:
    parse_or_refuse(gateway(), {}, webhook(msg(kind, part)), JSON)


def test_the_fake_delivers_what_it_accepted_and_fails_later_non_users() -> None:
    """``deliver`` reports each accepted message once: sent and delivered with pricing, or a
    ``failed`` 131026 for a recipient scripted as not on WhatsApp after acceptance."""
    with FakeWhatsApp("cloud") as fake, ProviderServer() as ours:
        fake.behave("254700000002", NOT_A_USER_LATER)
        gw = WhatsAppCloudGateway(fake.gateway_config())
        sent = [gw.send(outgoing(to)).provider_id for to in ("254700000001", "254700000002")]
        gw.close()
        ours.script("/hook", *[Reply(200)] * 2)
        assert [200, 200] == [r.status_code for r in fake.deliver(ours.url + "/hook")]
        assert [] == fake.deliver(ours.url + "/hook")  # nothing left to report
        updates = [gw.parse_webhook({}, r.body, JSON)[0] for r in ours.requests]
    assert [
        [
            StatusUpdate(sent[0] or "", "sent", pricing_category="utility"),
            StatusUpdate(sent[0] or "", "delivered", pricing_category="utility"),
        ],
        [StatusUpdate(sent[1] or "", "failed", WHATSAPP_NOT_A_USER, "131026")],
    ] == updates


def outgoing(to: str) -> OutgoingMessage:
    return OutgoingMessage(message_id="m-" + to, channel="whatsapp", text="Hello", to=to)


def test_the_fake_enforces_the_window_until_the_person_writes() -> None:
    with FakeWhatsApp("cloud", enforce_window=True) as fake, ProviderServer() as ours:
        fake.add_template("hello", "en", "Hello")
        gw = WhatsAppCloudGateway(fake.gateway_config())
        outcomes: list[str] = []
        for message in (
            outgoing("254700000001"),
            replace(outgoing("254700000001"), template=TemplateRef("hello", "en")),
        ):
            try:
                outcomes.append(gw.send(message).status)
            except GatewayError as exc:
                outcomes.append(exc.code)
        ours.script("/hook", Reply(200))
        fake.post_text(ours.url + "/hook", "254700000001", "hi")
        outcomes.append(gw.send(outgoing("254700000001")).status)
        gw.close()
    assert [WHATSAPP_OUTSIDE_WINDOW, "sent", "sent"] == outcomes


def test_a_slow_fake_is_an_unknown_outcome() -> None:
    with FakeWhatsApp("cloud", slow_s=1.0) as fake:
        fake.behave("254700000001", SLOW)
        gw = WhatsAppCloudGateway(fake.gateway_config(timeout_s=0.2))
        with pytest.raises(GatewayError) as caught:
            gw.send(outgoing("254700000001"))
        gw.close()
    assert (True, True) == (caught.value.retryable, caught.value.outcome_unknown)
