"""Actual costs: Twilio's price fetched after the final status from a real local HTTP server
standing in for Twilio (retried until it appears, for a bounded time), and a WhatsApp
pricing category priced from the fee table."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from casereach.core.timeutil import now
from casereach.gateways.base import StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.costs import PRICE_WAIT, fetch_due_prices
from casereach.messaging.models import Message
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.sending import drain
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "f00dfeedcafe42deadbeefc0ffee77aa"
SMS_SID = "SM" + "fedcba9876543210" * 2
SEND_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
PRICE_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{SMS_SID}.json"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()


@pytest.fixture
def twilio() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def _twilio_gateway(api: Api, server: ProviderServer) -> dict[str, Any]:
    config = {
        "account_sid": ACCOUNT,
        "auth_token": TOKEN,
        "from_number": "+15005550006",
        "base_url": server.url,
    }
    r = api.post(M + "gateways", {"name": "TW", "type": "twilio", "config": config})
    assert 201 == r.status, r.body
    assert 200 == api.put(M + "routes", {"default_gateway": "TW", "prefixes": []}).status
    body: dict[str, Any] = r.body
    return body


def _deliver(gw: dict[str, Any]) -> None:
    path = gw["status_url"].replace("http://testserver", "")
    form = {"MessageSid": SMS_SID, "MessageStatus": "delivered", "AccountSid": ACCOUNT}
    sig = twilio_signature("http://testserver" + path, form, TOKEN)
    r = Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=sig)
    assert 200 == r.status_code, r.content


def test_twilios_price_is_fetched_after_delivery_until_it_appears(
    api: Api, twilio: ProviderServer
) -> None:
    gw = _twilio_gateway(api, twilio)
    fee = {"amount": "0.01", "currency": "USD", "valid_from": now().date().isoformat()}
    assert 201 == api.post(M + f"gateways/{gw['id']}/fees", fee).status
    twilio.script(SEND_PATH, Reply(201, {"sid": SMS_SID, "status": "queued"}))
    r = api.post(M + "send", {"phone_number": "254712345678", "text": "hello"})
    message_id = r.body["messages"][0]["id"]
    drain()
    assert 0 == fetch_due_prices()  # sent, not final: nothing to ask yet

    twilio.script(
        PRICE_PATH,
        Reply(200, {"sid": SMS_SID, "status": "delivered", "price": None, "price_unit": "USD"}),
        Reply(
            200, {"sid": SMS_SID, "status": "delivered", "price": "-0.00750", "price_unit": "usd"}
        ),
    )
    _deliver(gw)
    assert 1 == fetch_due_prices()  # Twilio has no price yet: asked again later
    got = api.get(M + f"messages/{message_id}").body
    assert ("0.010000", None, None) == (
        got["estimated_cost"],
        got["actual_cost"],
        got["cost_source"],
    )
    assert 0 == fetch_due_prices()  # not due again yet
    assert 1 == fetch_due_prices(at=now() + dt.timedelta(minutes=2))

    got = api.get(M + f"messages/{message_id}").body
    assert ("0.010000", "0.007500", "USD", "provider") == (
        got["estimated_cost"],
        got["actual_cost"],
        got["cost_currency"],
        got["cost_source"],
    )
    asks = [q for q in twilio.requests if q.path == PRICE_PATH]
    assert [("GET", BASIC)] * 2 == [(q.method, q.headers["authorization"]) for q in asks]
    assert 0 == fetch_due_prices(at=now() + dt.timedelta(days=2))  # nothing left to ask
    assert {} == twilio.unused()

    path = M.replace("{project}", api.project.name) + "messages?format=csv"
    streamed = api.client.get(path, HTTP_AUTHORIZATION=api.auth).streaming_content
    csv = b"".join(streamed).decode().splitlines()
    assert csv[0].endswith("estimated_cost,actual_cost,cost_currency,cost_source")
    assert csv[1].endswith("0.010000,0.007500,USD,provider")
    total = api.get(M + "costs").body["total"]
    assert ("0.010000", "0.007500", "0.007500", 1) == (
        total["estimated"],
        total["actual"],
        total["cost"],
        total["messages_with_actual_cost"],
    )


def test_the_price_is_given_up_after_the_wait(api: Api, twilio: ProviderServer) -> None:
    gw = _twilio_gateway(api, twilio)
    twilio.script(SEND_PATH, Reply(201, {"sid": SMS_SID, "status": "queued"}))
    api.post(M + "send", {"phone_number": "254712345678", "text": "hello"})
    drain()
    _deliver(gw)
    twilio.script(PRICE_PATH, Reply(200, {"sid": SMS_SID, "price": None}))
    assert 1 == fetch_due_prices(at=now() + PRICE_WAIT + dt.timedelta(minutes=1))
    assert 0 == fetch_due_prices(at=now() + 2 * PRICE_WAIT)
    assert [None] == list(Message.objects.values_list("actual_cost_micros", flat=True))


def test_a_whatsapp_pricing_category_is_priced_from_the_fee_table(api: Api) -> None:
    r = api.post(M + "gateways", {"name": "TEST", "type": "test"})
    gw = r.body
    assert 200 == api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    today = now().date().isoformat()
    for unit, amount in (("marketing", "0.0250"), ("utility", "0.0040")):
        body = {"unit": unit, "amount": amount, "currency": "USD", "valid_from": today}
        assert 201 == api.post(M + f"gateways/{gw['id']}/fees", body).status
    sent = api.post(M + "send", {"phone_number": "254712345678", "text": "hello"})
    drain()
    message = Message.objects.get(id=sent.body["messages"][0]["id"])
    cfg = GatewayConfig.objects.get(pk=gw["id"])
    update = StatusUpdate(message.id, "delivered", is_our_id=True, pricing_category="marketing")
    assert do_apply_status_update(cfg, update)
    got = api.get(M + f"messages/{message.id}").body
    assert ("0.025000", "USD", "fee_table") == (
        got["actual_cost"],
        got["cost_currency"],
        got["cost_source"],
    )
