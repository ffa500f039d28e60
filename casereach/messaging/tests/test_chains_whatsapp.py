"""Fallback chains with a WhatsApp step: WhatsApp over the local fake of Meta's Cloud API,
then SMS over a real local HTTP provider, then email over a real SMTP server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.messaging.chains import move_on_waiting
from casereach.messaging.models import Message
from casereach.messaging.tests.test_chains import (
    EMAIL,
    NUMBER,
    Mailbox,
    chain,
    contact,
    drain,
    gateways,
    mailbox,
    provider,
    send,
    steps,
)
from casereach.testing.fake_whatsapp import NOT_A_USER, NOT_A_USER_LATER, FakeWhatsApp
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.world import Api

__all__ = ["mailbox", "provider"]  # fixtures
M = "/a/{project}/api/messaging/v1/"
ORDER = ["whatsapp", "sms", "email"]


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(enforce_window=True) as server:
        yield server


def setup(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox, **settings: Any
) -> dict[str, Any]:
    gateways(api, provider, mailbox)
    body = {"name": "WA", "type": "whatsapp_cloud", "config": fake.gateway_config()}
    r = api.post(M + "gateways", body)
    assert 201 == r.status, r.body
    assert 200 == api.put(M + "settings", {"channel_order": ORDER, **settings}).status
    return r.body  # type: ignore[no-any-return]


def webhook(fake: FakeWhatsApp, gw: dict[str, Any], body: bytes) -> Any:
    key = GatewayConfig.objects.get(pk=gw["id"]).inbound_key
    headers = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in fake.sign(body).items()}
    return Client().post(
        f"/gateways/whatsapp_cloud/{key}/webhook", body, content_type="application/json", **headers
    )


def inbound(fake: FakeWhatsApp, gw: dict[str, Any], text: str, wamid: str) -> Any:
    """A text from NUMBER over WhatsApp (it opens the 24-hour window)."""
    fake.open_window(NUMBER)
    message = {"from": NUMBER, "id": wamid, "timestamp": "1700000000", "type": "text"}
    message["text"] = {"body": text}
    r = webhook(fake, gw, fake.webhook_body(messages=[message]))
    assert 200 == r.status_code, r.content
    return r


def status(fake: FakeWhatsApp, gw: dict[str, Any], wamid: str, name: str, **kw: Any) -> None:
    item = fake.status(wamid, name, recipient=NUMBER, **kw)
    r = webhook(fake, gw, fake.webhook_body(statuses=[item]))
    assert 200 == r.status_code, r.content


def test_not_a_whatsapp_user_moves_the_message_to_sms(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = setup(api, fake, provider, mailbox)
    inbound(fake, gw, "hi", "wamid.IN1")
    fake.behave(NUMBER, NOT_A_USER)
    provider.script("/send", Reply(200, {"id": "sms-1"}))
    mid = send(api, contact(api))

    drain()

    assert [
        (1, "whatsapp", "failed", "not_a_whatsapp_user", True),
        (2, "sms", "sent", None, False),
    ] == steps(api, mid)
    assert "WHATSAPP_NOT_A_USER" == chain(api, mid)[0]["error_code"]
    assert [NUMBER] == [r.form()["to"] for r in provider.requests]
    assert [] == mailbox.messages


def test_outside_the_window_with_no_template_moves_to_sms(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox
) -> None:
    setup(api, fake, provider, mailbox)
    provider.script("/send", Reply(200, {"id": "sms-2"}))
    mid = send(api, contact(api))

    drain()

    assert [
        (1, "whatsapp", "failed", "outside_window", True),
        (2, "sms", "sent", None, False),
    ] == steps(api, mid)
    assert [] == fake.sent


def test_a_later_failure_report_moves_on_and_a_permanent_sms_failure_to_email(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox
) -> None:
    """WhatsApp accepts, then reports 131026; the SMS provider refuses for good; email goes."""
    gw = setup(api, fake, provider, mailbox)
    inbound(fake, gw, "hi", "wamid.IN2")
    fake.behave(NUMBER, NOT_A_USER_LATER)
    provider.script("/send", Reply(400, "unknown subscriber"))
    mid = send(api, contact(api))
    drain()
    assert [(1, "whatsapp", "sent", None, False)] == steps(api, mid)

    status(fake, gw, fake.sent[0].wamid, "failed", error_code=131026)
    drain()

    assert [
        (1, "whatsapp", "failed", "not_a_whatsapp_user", True),
        (2, "sms", "failed", "failed", True),
        (3, "email", "sent", None, False),
    ] == steps(api, mid)
    assert [[EMAIL]] == [m.rcpt_tos for m in mailbox.messages]


def test_whatsapp_not_delivered_in_time_moves_to_sms_and_its_late_receipt_is_recorded(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = setup(api, fake, provider, mailbox, fallback_after_minutes={"whatsapp": 30})
    inbound(fake, gw, "hi", "wamid.IN3")
    provider.script("/send", Reply(200, {"id": "sms-3"}))
    mid = send(api, contact(api))
    drain()
    later = now() + dt.timedelta(minutes=31)

    assert 1 == move_on_waiting(at=later)
    drain(later)
    status(fake, gw, fake.sent[0].wamid, "delivered")
    status(fake, gw, fake.sent[0].wamid, "read")
    drain(later)

    assert [
        (1, "whatsapp", "read", "not_delivered_in_time", True),
        (2, "sms", "sent", None, False),
    ] == steps(api, mid)
    assert 1 == len(provider.requests)
    assert 0 == move_on_waiting(at=later + dt.timedelta(days=1))
    assert 2 == Message.objects.filter(direction="out", chain_id=mid).count()


def test_stop_over_whatsapp_skips_whatsapp_only(
    api: Api, fake: FakeWhatsApp, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = setup(api, fake, provider, mailbox)
    cid = contact(api)
    r = inbound(fake, gw, "STOP", "wamid.STOP")
    assert "opt_out" == r.json()["messages"][0]["action"]
    profile = api.get(M + f"contacts/{cid}").body
    assert ["whatsapp"] == [o["channel"] for o in profile["opt_outs"] if o["opted_out"]]
    listed = api.get(M + "opt-outs").body["objects"]
    assert [(NUMBER, "whatsapp")] == [(o["phone_number"], o["channel"]) for o in listed]
    provider.script("/send", Reply(200, {"id": "sms-4"}))
    mid = send(api, cid)

    drain()

    assert [(1, "sms", "sent", None, False)] == steps(api, mid)
    assert ["text"] == [s.type for s in fake.sent]  # only the STOP confirmation
