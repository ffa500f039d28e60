"""Kannel gateway: sends against a real local server playing smsbox's sendsms, delivery
reports through ``parse_status``, configuration. (A real Kannel: tests/test_kannel.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    GatewayError,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.registry import gateway_class
from casereach.gateways.types.kannel.gateway import KannelGateway
from casereach.testing.gateway_tables import (
    DEFAULT_MESSAGE,
    ConfigCase,
    OutgoingCase,
    ProviderServer,
    Reply,
    StatusCase,
    run_config_case,
    run_outgoing_case,
    run_status_case,
)

PATH = "/cgi-bin/sendsms"
PASSWORD = "k4nn3l-s3cret"  # noqa: S105 (a made-up test password)
STATUS_URL = "https://cr.example.org/gateways/kannel/k3y/status"
ACCEPTED = Reply(202, "0: Accepted for delivery")
MID = DEFAULT_MESSAGE.message_id


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {"send_url": server.url + PATH, "username": "casereach", "password": PASSWORD}


SEND_CASES = [
    OutgoingCase(
        label="plain GSM send, no status URL: no delivery report asked",
        replies={PATH: [ACCEPTED]},
        expect_method="GET",
        expect_path=PATH,
        expect_query={
            "username": "casereach",
            "password": PASSWORD,
            "to": "+254700123456",
            "text": DEFAULT_MESSAGE.text,
            "charset": "UTF-8",
            "coding": None,
            "from": None,
            "smsc": None,
            "dlr-mask": None,
            "dlr-url": None,
        },
        expect_result=SendResult(provider_id=None, detail="0: Accepted for delivery"),
        expect_in_log=["password=***", "+2547*****456"],
    ),
    OutgoingCase(
        label="UCS-2 text goes with coding=2 and its UTF-8 charset",
        replies={PATH: [ACCEPTED]},
        message={"text": "Habari 😀 ñ", "encoding": "UCS2", "segments": 1},
        expect_query={"text": "Habari 😀 ñ", "coding": "2", "charset": "UTF-8"},
        expect_result=SendResult(provider_id=None, detail="0: Accepted for delivery"),
    ),
    OutgoingCase(
        label="status URL: dlr-mask and a dlr-url with our id and Kannel's escape codes",
        replies={PATH: [ACCEPTED]},
        config={"dlr_mask": 19},
        message={"status_url": STATUS_URL},
        expect_query={
            "dlr-mask": "19",
            "dlr-url": f"{STATUS_URL}?id={MID}&type=%d&reply=%A&ts=%T",
        },
        expect_result=SendResult(provider_id=None, detail="0: Accepted for delivery"),
    ),
    OutgoingCase(
        label="message sender over the configured one, and the smsc",
        replies={PATH: [ACCEPTED]},
        config={"sender": "CLINIC", "smsc": "safaricom"},
        message={"sender": "22384"},
        expect_query={"from": "22384", "smsc": "safaricom"},
        expect_result=SendResult(provider_id=None, detail="0: Accepted for delivery"),
    ),
    OutgoingCase(
        label="configured sender when the message has none",
        replies={PATH: [ACCEPTED]},
        config={"sender": "CLINIC"},
        expect_query={"from": "CLINIC"},
        expect_result=SendResult(provider_id=None, detail="0: Accepted for delivery"),
    ),
    OutgoingCase(
        label="3: queued for later delivery is sent",
        replies={PATH: [Reply(202, "3: Queued for later delivery")]},
        expect_result=SendResult(provider_id=None, detail="3: Queued for later delivery"),
    ),
    OutgoingCase(
        label="200 with an unknown body: not retried, Kannel may have it",
        replies={PATH: [Reply(200, "<html>hello</html>")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="200",
    ),
    OutgoingCase(
        label="403 authorization failed is permanent",
        replies={PATH: [Reply(403, "Authorization failed for sendsms")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="403",
    ),
    OutgoingCase(
        label="400 missing receiver is an invalid number",
        replies={PATH: [Reply(400, "Missing receiver number, rejected")]},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
        expect_provider_code="400",
    ),
    OutgoingCase(
        label="400 sender missing is a permanent gateway error",
        replies={PATH: [Reply(400, "Sender missing and no global set, rejected")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="400",
    ),
    OutgoingCase(
        label="403 not routable is permanent",
        replies={PATH: [Reply(403, "Not routable. Do not try again.")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="403",
    ),
    OutgoingCase(
        label="503 sending failed is retried",
        replies={PATH: [Reply(503, "Sending failed.")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="503",
    ),
    OutgoingCase(
        label="429 with Retry-After is retried after it",
        replies={PATH: [Reply(429, "slow down", headers={"Retry-After": "20"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=20,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="slow reply past the timeout: outcome unknown",
        config={"timeout_s": 0.2},
        replies={PATH: [Reply(202, "0: Accepted for delivery", delay_s=1.0)]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_outcome_unknown=True,
        expect_provider_code="ReadTimeout",
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": ""},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="a message id Kannel would read as escape codes: refused before any request",
        message={"message_id": "50%off", "status_url": STATUS_URL},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="private address forbidden at send time",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "off"},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
    ),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: OutgoingCase, config: dict[str, Any], server: ProviderServer) -> None:
    run_outgoing_case(KannelGateway, config, case, server)


def test_connection_refused_is_retryable_and_known(config: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = KannelGateway({**config, "send_url": f"http://127.0.0.1:{port}{PATH}"})
    with pytest.raises(GatewayError) as caught:
        gateway.send(DEFAULT_MESSAGE)
    gateway.close()
    assert (GATEWAY_ERROR, True, False) == (
        caught.value.code,
        caught.value.retryable,
        caught.value.outcome_unknown,
    )
    assert gateway.last_exchange is not None
    assert PASSWORD not in gateway.last_exchange.request


CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(label="with sender, smsc and mask", config={"sender": "CLINIC", "dlr_mask": 3}),
    ConfigCase(label="missing send_url", drop=["send_url"], expect_error="Field required"),
    ConfigCase(label="missing password", drop=["password"], expect_error="Field required"),
    ConfigCase(label="blank username", config={"username": " "}, expect_error="must not be blank"),
    ConfigCase(label="mask 0", config={"dlr_mask": 0}, expect_error="greater than or equal"),
    ConfigCase(label="mask 32", config={"dlr_mask": 32}, expect_error="less than or equal"),
    ConfigCase(
        label="ftp send_url",
        config={"send_url": "ftp://kannel.example.org/cgi-bin/sendsms"},
        expect_error="http:// or https://",
    ),
    ConfigCase(
        label="unknown field", config={"coding": 2}, expect_error="Extra inputs are not permitted"
    ),
    ConfigCase(
        label="loopback refused when private addresses are forbidden",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "0"},
        expect_error="private or local address",
    ),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(KannelGateway, config, case)


def report(kind: str, reply: str = "") -> dict[str, str]:
    """The query our dlr-url becomes once Kannel fills in its escape codes."""
    return {"id": "m-1", "type": kind, "reply": reply, "ts": "1796599724"}


def failed(code: str) -> list[StatusUpdate]:
    return [
        StatusUpdate(
            provider_id="m-1",
            status="failed",
            error_code=GATEWAY_ERROR,
            provider_code=code,
            is_our_id=True,
        )
    ]


RECEIPT = "id:1 sub:001 dlvrd:000 submit date:2612062328 done date:2612062328 stat:UNDELIV"
STATUS_CASES = [
    StatusCase(
        label="1 delivered",
        form=report("1", "id:1 sub:001 dlvrd:001 stat:DELIVRD err:000"),
        expect=[StatusUpdate(provider_id="m-1", status="delivered", is_our_id=True)],
    ),
    StatusCase(
        label="2 not delivered, the SMSC's err code kept",
        form=report("2", RECEIPT + " err:034 text:Hello"),
        expect=failed("err:034"),
    ),
    StatusCase(
        label="16 refused by the SMSC",
        form=report("16", "NACK/0x0000000b/"),
        expect=failed("dlr:16"),
    ),
    StatusCase(
        label="4 queued on the SMSC is sent",
        form=report("4"),
        expect=[StatusUpdate(provider_id="m-1", status="sent", is_our_id=True)],
    ),
    StatusCase(
        label="8 accepted by the SMSC is sent",
        form=report("8", "ACK/"),
        expect=[StatusUpdate(provider_id="m-1", status="sent", is_our_id=True)],
    ),
    StatusCase(
        label="a raw query as the body",
        body=b"id=m-1&type=1&reply=ACK%2F",
        expect=[StatusUpdate(provider_id="m-1", status="delivered", is_our_id=True)],
    ),
    StatusCase(label="no id", form={"type": "1"}, expect_error="no message id"),
    StatusCase(
        label="an id with characters we never send",
        form={"id": "m 1", "type": "1"},
        expect_error="no message id",
    ),
    StatusCase(label="no type", form={"id": "m-1"}, expect_error="no numeric 'type'"),
    StatusCase(
        label="escape code left unfilled",
        form={"id": "m-1", "type": "%d"},
        expect_error="no numeric 'type'",
    ),
    StatusCase(label="type 0", form={"id": "m-1", "type": "0"}, expect_error="unknown delivery"),
    StatusCase(label="empty", expect_error="empty delivery report"),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_callback(case: StatusCase, config: dict[str, Any]) -> None:
    run_status_case(KannelGateway, config, case)


def test_registered() -> None:
    assert gateway_class("kannel") is KannelGateway
    assert ("password",) == KannelGateway.secret_fields
    assert KannelGateway.callbacks_by_get is True
    assert gateway_class("twilio").callbacks_by_get is False
