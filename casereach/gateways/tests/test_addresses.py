"""CASEREACH_GATEWAY_ALLOW_PRIVATE=0 for every gateway type: save time and connect time.

DNS is replaced by a table (``addresses.lookup``), so no test asks a real resolver, and the
connect-time tests see exactly which address a socket or an httpx request went to.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from casereach.gateways import addresses, netpolicy
from casereach.gateways.base import (
    EMAIL_GATEWAY_ERROR,
    GATEWAY_ERROR,
    GatewayError,
    OutgoingMessage,
)
from casereach.gateways.types.africastalking.gateway import AfricasTalkingGateway
from casereach.gateways.types.email.gateway import EmailGateway
from casereach.gateways.types.http.gateway import HttpGateway
from casereach.gateways.types.smpp.gateway import SmppGateway
from casereach.gateways.types.twilio.gateway import TwilioGateway
from casereach.gateways.wire import WireError, WirePool

PUBLIC = "93.184.216.34"
DNS = {
    "sms.example.org": [PUBLIC],
    "dual.example.org": [PUBLIC, "10.0.0.7"],
    "metadata.example.org": ["169.254.169.254"],
    "internal.example.org": ["10.1.2.3"],
    "cgnat.example.org": ["100.64.0.1"],
    "mapped.example.org": ["::ffff:127.0.0.1"],
    "v6.example.org": ["2606:4700::1111"],
    "two.example.org": [PUBLIC, "2606:4700::1111"],
}


@pytest.fixture
def forbidden(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Private addresses forbidden; DNS answers from ``DNS``; yields the names looked up."""
    asked: list[str] = []

    def lookup(host: str) -> list[str]:
        asked.append(host)
        if host not in DNS:
            raise socket.gaierror(f"unknown host {host}")
        return DNS[host]

    monkeypatch.setenv(addresses.ALLOW_PRIVATE_ENV, "0")
    monkeypatch.setattr(addresses, "lookup", lookup)
    yield asked


# Hosts refused whatever the gateway type, each as it would be typed in a host field.
REFUSED_HOSTS = [
    "127.0.0.1",
    "127.0.0.1.",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "017700000001",
    "0177.0.0.1",
    "0.0.0.0",
    "0",
    "localhost",
    "localhost.",
    "LOCALHOST",
    "printer.localhost",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.10",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "0:0:0:0:0:ffff:7f00:1",
    "::ffff:8.8.8.8",
    "::127.0.0.1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "ff02::1",
    "2002:7f00:1::1",
    "64:ff9b::a01:203",
    "１２７.０.０.１",
    "metadata.example.org",
    "internal.example.org",
    "cgnat.example.org",
    "mapped.example.org",
    "dual.example.org",
    "sms.example.org.",
]
ACCEPTED_HOSTS = [PUBLIC, "sms.example.org", "v6.example.org", "2606:4700::1111", "not.resolving"]


def _url(host: str) -> str:
    return f"https://[{host}]:8443/send" if ":" in host else f"https://{host}:8443/send"


def _configs(host: str) -> list[tuple[str, type[Any], dict[str, Any]]]:
    url = _url(host)
    return [
        ("http", HttpGateway, {"url": url, "params": {"to": "{to}", "text": "{text}"}}),
        ("twilio", TwilioGateway, _twilio(url)),
        ("africastalking", AfricasTalkingGateway, _at(url)),
        ("smpp", SmppGateway, {"host": host, "system_id": "casereach"}),
        ("email", EmailGateway, {"host": host, "from_address": "clinic@example.org"}),
    ]


def _twilio(url: str) -> dict[str, Any]:
    return {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "t" * 32,
        "from_number": "+254700000001",
        "base_url": url,
    }


def _at(url: str) -> dict[str, Any]:
    return {"username": "clinic", "api_key": "k" * 20, "base_url": url}


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_every_type_refuses_private_hosts_at_save_time(host: str, forbidden: list[str]) -> None:
    for slug, gateway, config in _configs(host):
        with pytest.raises(ValidationError) as caught:
            gateway.config_model.model_validate(config)
        field = "host" if slug in ("smpp", "email") else "url" if slug == "http" else "base_url"
        error = caught.value.errors()[0]
        assert (slug, (field,)) == (slug, error["loc"])
        assert "private or local address" in error["msg"], (slug, error["msg"])


@pytest.mark.parametrize("host", ACCEPTED_HOSTS)
def test_every_type_accepts_public_hosts(host: str, forbidden: list[str]) -> None:
    for _slug, gateway, config in _configs(host):
        gateway.config_model.model_validate(config)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "0x7f.1"])
def test_private_hosts_allowed_by_default(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(addresses.ALLOW_PRIVATE_ENV, raising=False)
    for _slug, gateway, config in _configs(host):
        gateway.config_model.model_validate(config)


# --- connect time: httpx --------------------------------------------------------------------


def _pinned_client(seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    transport = addresses.PinnedTransport(httpx.MockTransport(handler))
    return httpx.Client(transport=transport, follow_redirects=False)


def test_httpx_connects_to_the_checked_address_with_the_host_name_kept(
    forbidden: list[str],
) -> None:
    seen: list[httpx.Request] = []
    with _pinned_client(seen) as client:
        response = client.post("https://sms.example.org/send?x=1", json={"to": "254700000001"})
    assert 200 == response.status_code
    assert [f"https://{PUBLIC}/send?x=1"] == [str(r.url) for r in seen]
    assert "sms.example.org" == seen[0].headers["host"]
    assert "sms.example.org" == seen[0].extensions["sni_hostname"]
    assert b'{"to":"254700000001"}' == seen[0].read()
    assert ["sms.example.org"] == forbidden  # resolved once


def test_dns_rebinding_cannot_swap_the_address(
    forbidden: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])  # the attacker's DNS changes its answer
    monkeypatch.setattr(addresses, "lookup", lambda host: next(answers))
    HttpGateway.config_model.model_validate(
        {"url": "https://rebind.example.org/send", "params": {"to": "{to}", "text": "{text}"}}
    )  # saved: it resolved to a public address
    seen: list[httpx.Request] = []
    with _pinned_client(seen) as client, pytest.raises(addresses.RefusedConnect):
        client.get("https://rebind.example.org/send")
    assert [] == seen  # checked at connect time, and nothing was sent


@pytest.mark.parametrize(
    ("host", "retryable"),
    [("metadata.example.org", False), ("dual.example.org", False), ("gone.example.org", True)],
)
def test_http_gateway_send_refused_at_connect_time(
    host: str, retryable: bool, forbidden: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(addresses.ALLOW_PRIVATE_ENV)  # saved before the operator forbade it
    gateway = HttpGateway(
        {"url": f"https://{host}/send", "params": {"to": "{to}", "text": "{text}"}}
    )
    monkeypatch.setenv(addresses.ALLOW_PRIVATE_ENV, "0")
    gateway.http = netpolicy.make_client()
    with pytest.raises(GatewayError) as caught:
        gateway.send(OutgoingMessage(message_id="m1", channel="sms", to="254700000001", text="hi"))
    assert (GATEWAY_ERROR, retryable) == (caught.value.code, caught.value.retryable)
    assert [host] == forbidden


def test_lean_client_connects_only_to_checked_addresses(forbidden: list[str]) -> None:
    async def go() -> WireError:
        pool = WirePool()
        try:
            await pool.request(("http", "metadata.example.org", 80), b"GET / HTTP/1.1\r\n\r\n", 5)
        except WireError as exc:
            return exc
        finally:
            pool.close()
        raise AssertionError("connected")

    error = asyncio.run(go())
    assert ("RefusedConnect", False) == (error.name, error.sent)
    assert (GATEWAY_ERROR, False) == (
        netpolicy.wire_error(error).code,
        netpolicy.wire_error(error).retryable,
    )


# --- connect time: SMPP and SMTP sockets ----------------------------------------------------


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a socket is opened to; each connection is refused (nothing listens)."""
    opened: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        raise ConnectionRefusedError("refused by the test")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return opened


def _saved(gateway: type[Any], config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A gateway saved before the operator forbade private addresses."""
    monkeypatch.delenv(addresses.ALLOW_PRIVATE_ENV)
    made = gateway(config)
    monkeypatch.setenv(addresses.ALLOW_PRIVATE_ENV, "0")
    return made


SMPP = {"system_id": "casereach", "reconnect_delay_s": 0}
EMAIL = {"from_address": "clinic@example.org", "timeout_s": 1}


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "internal.example.org"]
)
def test_smpp_never_connects_to_private_hosts(
    host: str,
    forbidden: list[str],
    sockets: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = _saved(SmppGateway, {**SMPP, "host": host}, monkeypatch)
    try:
        with pytest.raises(GatewayError) as caught:
            gateway.send(
                OutgoingMessage(message_id="m1", channel="sms", to="254700000001", text="hi")
            )
    finally:
        gateway.close()
    assert (GATEWAY_ERROR, False) == (caught.value.code, caught.value.retryable)
    assert [] == sockets


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "internal.example.org"]
)
def test_email_never_connects_to_private_hosts(
    host: str,
    forbidden: list[str],
    sockets: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for extra in ({}, {"use_ssl": True, "port": 465}, {"use_tls": True, "port": 587}):
        gateway = _saved(EmailGateway, {**EMAIL, **extra, "host": host}, monkeypatch)
        with pytest.raises(GatewayError) as caught:
            gateway.send(_email())
        assert (EMAIL_GATEWAY_ERROR, False) == (caught.value.code, caught.value.retryable)
    assert [] == sockets


def _email() -> OutgoingMessage:
    return OutgoingMessage(
        message_id="m1", channel="email", text="hi", email_to="a@example.org", subject="Reminder"
    )


def test_smpp_and_email_connect_to_the_checked_address(
    forbidden: list[str], sockets: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    smpp = SmppGateway({**SMPP, "host": "sms.example.org"})
    email = EmailGateway({**EMAIL, "host": "sms.example.org", "port": 587})
    forbidden.clear()  # the lookups made when the configs were validated
    try:
        with pytest.raises(GatewayError) as caught:
            smpp.send(OutgoingMessage(message_id="m1", channel="sms", to="254700000001", text="hi"))
    finally:
        smpp.close()
    assert caught.value.retryable  # nothing listens: a plain connection failure
    with pytest.raises(GatewayError) as caught:
        email.send(_email())
    assert caught.value.retryable
    assert [(PUBLIC, 2775), (PUBLIC, 587)] == sockets
    assert ["sms.example.org", "sms.example.org"] == forbidden


def test_open_tcp_resolves_once_and_tries_each_checked_address(
    forbidden: list[str], sockets: list[tuple[str, int]]
) -> None:
    with pytest.raises(ConnectionRefusedError):
        addresses.open_tcp("two.example.org", 25, 1.0)
    assert [(PUBLIC, 25), ("2606:4700::1111", 25)] == sockets
    assert ["two.example.org"] == forbidden
    with pytest.raises(socket.gaierror):
        addresses.open_tcp("gone.example.org", 25, 1.0)
