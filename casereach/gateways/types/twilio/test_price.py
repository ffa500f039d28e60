"""``fetch_price``: Twilio's price of a sent message, read from a real local server playing
Twilio's Messages API (its status callbacks carry no price)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from casereach.gateways.types.twilio.gateway import TwilioGateway
from casereach.testing.provider import ProviderServer, Reply

ACCOUNT = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f00dfeedcafe42deadbeefc0ffee77aa"  # noqa: S105 (a made-up test token)
SID = "SM" + "fedcba9876543210" * 2
PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{SID}.json"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT}:{AUTH_TOKEN}".encode()).decode()


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def gateway(server: ProviderServer) -> Iterator[TwilioGateway]:
    server.reset()
    gw = TwilioGateway(
        {
            "account_sid": ACCOUNT,
            "auth_token": AUTH_TOKEN,
            "from_number": "+15005550006",
            "base_url": server.url,
        }
    )
    yield gw
    gw.close()


CASES: list[tuple[str, Reply, tuple[str, str] | None]] = [
    (
        "price given",
        Reply(200, {"sid": SID, "price": "-0.00750", "price_unit": "USD"}),
        ("-0.00750", "USD"),
    ),
    (
        "lower-case unit",
        Reply(200, {"sid": SID, "price": "-0.04", "price_unit": "eur"}),
        ("-0.04", "EUR"),
    ),
    ("not yet", Reply(200, {"sid": SID, "price": None, "price_unit": "USD"}), None),
    ("empty", Reply(200, {"sid": SID, "price": ""}), None),
    ("no such message", Reply(404, {"code": 20404, "message": "not found"}), None),
    ("server error", Reply(500, b"oops"), None),
    ("not JSON", Reply(200, b"<html>"), None),
]


@pytest.mark.parametrize(("label", "reply", "expected"), CASES, ids=[c[0] for c in CASES])
def test_fetch_price(
    server: ProviderServer,
    gateway: TwilioGateway,
    label: str,
    reply: Reply,
    expected: tuple[str, str] | None,
) -> None:
    server.script(PATH, reply)
    assert expected == gateway.fetch_price(SID), label
    [request] = server.requests
    assert ("GET", PATH, BASIC) == (request.method, request.path, request.headers["authorization"])


def test_an_id_that_is_no_message_sid_asks_nothing(
    server: ProviderServer, gateway: TwilioGateway
) -> None:
    bad: list[Any] = ["", "SM123", "../Calls/CA" + "0" * 32, "SM" + "g" * 32]
    assert [None] * len(bad) == [gateway.fetch_price(b) for b in bad]
    assert [] == server.requests
