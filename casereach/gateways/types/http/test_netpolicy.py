"""The shared network policy (``gateways/netpolicy.py``) the HTTP gateway types rely on.

Kept next to the ``http`` type, its main user, until ``gateways/tests/`` takes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from casereach.gateways import addresses, netpolicy
from casereach.gateways.base import GATEWAY_ERROR, Exchange, GatewayError

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        ("Sat, 01 Mar 2025 12:02:00 GMT", 120.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past: retry now
        ("Sat, 01 Mar 2025 12:00:30 -0000", 30.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert seconds == netpolicy.parse_retry_after(header, now=NOW)


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (None, True),
        ("1", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("No", False),
        (" OFF ", False),
    ],
)
def test_private_addresses_allowed(
    value: str | None, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(netpolicy.ALLOW_PRIVATE_ENV, raising=False)
    else:
        monkeypatch.setenv(netpolicy.ALLOW_PRIVATE_ENV, value)
    assert allowed == netpolicy.private_addresses_allowed()


def test_unresolvable_host_accepted_at_config_time_refused_before_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lookup(host: str) -> list[str]:
        raise OSError(f"{host} does not resolve")

    monkeypatch.setenv(netpolicy.ALLOW_PRIVATE_ENV, "0")
    monkeypatch.setattr(addresses, "lookup", lookup)
    url = "https://no-such-host.invalid/send"
    assert url == netpolicy.check_url(url)
    netpolicy.check_url_before_send(url)  # no lookup here: the transport makes the only one
    records: list[Exchange] = []
    with netpolicy.make_client() as client, pytest.raises(GatewayError) as caught:
        netpolicy.send_logged(
            client, client.build_request("GET", url), secrets=[], record=records.append
        )
    assert (GATEWAY_ERROR, True) == (caught.value.code, caught.value.retryable)
    assert ["(no reply: ConnectError)"] == [r.response for r in records]


def test_private_address_refused_before_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netpolicy.ALLOW_PRIVATE_ENV, "0")
    with pytest.raises(GatewayError) as caught:
        netpolicy.check_url_before_send("http://127.0.0.1:9/send")
    assert (GATEWAY_ERROR, False) == (caught.value.code, caught.value.retryable)
    assert "private or local address" in caught.value.detail


@pytest.mark.parametrize(
    ("exc", "retryable", "unknown"),
    [
        (httpx.ConnectError("refused"), True, False),
        (httpx.ConnectTimeout("slow connect"), True, False),
        (httpx.PoolTimeout("pool"), True, False),
        (httpx.ReadTimeout("slow reply"), True, True),
        (httpx.WriteTimeout("slow write"), True, True),
        (httpx.RemoteProtocolError("hung up"), True, True),
        (httpx.UnsupportedProtocol("gopher"), False, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_transport_error(exc: httpx.TransportError, retryable: bool, unknown: bool) -> None:
    error = netpolicy.transport_error(exc)
    assert (GATEWAY_ERROR, retryable, unknown, type(exc).__name__) == (
        error.code,
        error.retryable,
        error.outcome_unknown,
        error.provider_code,
    )


def test_exchange_is_masked_however_secrets_are_encoded() -> None:
    secret = "s3cr3t/key+x&y"  # noqa: S105 (made-up test secret)
    request = httpx.Request(
        "POST",
        "https://sms.example.org/send",
        params={"key": secret, "to": "254700123456"},
        data={"key": secret, "to": "+254700123456"},
        headers={"Authorization": "Bearer abc", "X-Custom": secret, "X-Other": "fine"},
    )
    text = netpolicy.describe_request(request, [secret], redacted_headers=["x-custom"])
    for variant in netpolicy.secret_variants([secret]):
        assert variant not in text
    assert "254700123456" not in text
    assert "Authorization: ***" in text
    assert "X-Custom: ***" in text
    assert "X-Other: fine" in text
    json_request = httpx.Request(
        "POST", "https://sms.example.org/send", json={"key": secret + 'é"'}
    )
    json_text = netpolicy.describe_request(json_request, [secret + 'é"'])
    assert secret not in json_text


def test_send_logged_records_every_attempt() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    records: list[Exchange] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        request = client.build_request(
            "POST", "https://sms.example.org/send", data={"to": "254700123456"}
        )
        with pytest.raises(GatewayError) as caught:
            netpolicy.send_logged(client, request, secrets=[], record=records.append)
    assert caught.value.outcome_unknown
    assert 1 == len(records)
    assert "(no reply: ReadTimeout)" == records[0].response
    assert "254700123456" not in records[0].request
