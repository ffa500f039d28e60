"""Twilio gateway: sends against a real local server playing Twilio, callbacks, signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_TOO_LONG,
    PHONE_NUMBER_OPTED_OUT,
    GatewayError,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.registry import gateway_class
from casereach.gateways.types.twilio.gateway import (
    TwilioGateway,
    twilio_signature,
    valid_signature,
)
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

ACCOUNT = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f00dfeedcafe42deadbeefc0ffee77aa"  # noqa: S105 (a made-up test token)
SERVICE = "MG" + "fedcba9876543210" * 2
PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT}:{AUTH_TOKEN}".encode()).decode()


def in_two_minutes() -> str:
    """An HTTP-date Retry-After, computed when the reply is served."""
    return formatdate(time.time() + 120, usegmt=True)


def error_body(code: int, message: str, status: int = 400) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": "https://www.twilio.com/docs",
        "status": status,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": server.url,
    }


SEND_CASES = [
    OutgoingCase(
        label="plain send",
        replies={PATH: [Reply(201, {"sid": "SM0001", "status": "queued"})]},
        expect_method="POST",
        expect_path=PATH,
        expect_form={
            "To": "+254700123456",
            "From": "+15005550006",
            "Body": DEFAULT_MESSAGE.text,
            "StatusCallback": None,
            "MessagingServiceSid": None,
        },
        expect_headers={
            "Authorization": BASIC,
            "Accept": "application/json",
            "Idempotency-Key": None,
        },
        expect_result=SendResult(provider_id="SM0001"),
        expect_in_log=["Authorization: ***", "+2547*****456"],
    ),
    OutgoingCase(
        label="message sender and status callback",
        replies={PATH: [Reply(201, {"sid": "SM0002"})]},
        message={
            "sender": "15005550099",
            "status_url": "https://cr.example.org/gateways/twilio/k/status",
        },
        expect_form={
            "From": "+15005550099",
            "StatusCallback": "https://cr.example.org/gateways/twilio/k/status",
        },
        expect_result=SendResult(provider_id="SM0002"),
    ),
    OutgoingCase(
        label="alphanumeric sender id",
        replies={PATH: [Reply(201, {"sid": "SM0003"})]},
        message={"sender": "CLINIC"},
        expect_form={"From": "CLINIC"},
        expect_result=SendResult(provider_id="SM0003"),
    ),
    OutgoingCase(
        label="messaging service only",
        config={"from_number": "", "messaging_service_sid": SERVICE},
        replies={PATH: [Reply(201, {"sid": "SM0004"})]},
        expect_form={"MessagingServiceSid": SERVICE, "From": None},
        expect_result=SendResult(provider_id="SM0004"),
    ),
    OutgoingCase(
        label="21211 invalid To number",
        replies={
            PATH: [
                Reply(
                    400,
                    error_body(21211, "The 'To' number +254700123456 is not a valid phone number."),
                )
            ]
        },
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
        expect_provider_code="21211",
    ),
    OutgoingCase(
        label="21614 not a mobile number",
        replies={PATH: [Reply(400, error_body(21614, "'To' number is not a valid mobile number"))]},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
        expect_provider_code="21614",
    ),
    OutgoingCase(
        label="21610 opted out",
        replies={
            PATH: [Reply(400, error_body(21610, "Attempt to send to unsubscribed recipient"))]
        },
        expect_error=PHONE_NUMBER_OPTED_OUT,
        expect_retryable=False,
        expect_provider_code="21610",
    ),
    OutgoingCase(
        label="21617 body too long",
        replies={
            PATH: [
                Reply(
                    400,
                    error_body(
                        21617, "The concatenated message body exceeds the 1600 character limit"
                    ),
                )
            ]
        },
        expect_error=MESSAGE_TOO_LONG,
        expect_retryable=False,
        expect_provider_code="21617",
    ),
    OutgoingCase(
        label="unmapped Twilio code is a permanent gateway error",
        replies={
            PATH: [
                Reply(
                    400,
                    error_body(21606, "The From phone number is not a valid, SMS-capable number"),
                )
            ]
        },
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="21606",
    ),
    OutgoingCase(
        label="401 bad credentials",
        replies={PATH: [Reply(401, error_body(20003, "Authenticate", 401))]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="20003",
    ),
    OutgoingCase(
        label="429 with Retry-After seconds",
        replies={
            PATH: [
                Reply(
                    429, error_body(20429, "Too Many Requests", 429), headers={"Retry-After": "30"}
                )
            ]
        },
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=30,
        expect_provider_code="20429",
    ),
    OutgoingCase(
        label="429 with Retry-After date",
        replies={PATH: [Reply(429, "slow down", headers={"Retry-After": in_two_minutes})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=120,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="500",
        replies={PATH: [Reply(500, error_body(20500, "Internal Server Error", 500))]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="20500",
    ),
    OutgoingCase(
        label="503 HTML with Retry-After",
        replies={PATH: [Reply(503, "<html>maintenance</html>", headers={"Retry-After": "5"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=5,
        expect_provider_code="503",
    ),
    OutgoingCase(
        label="slow reply past the timeout",
        config={"timeout_s": 0.2},
        replies={PATH: [Reply(201, {"sid": "SMlate"}, delay_s=1.0)]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_outcome_unknown=True,
        expect_provider_code="ReadTimeout",
    ),
    OutgoingCase(
        label="garbage body on 201",
        replies={PATH: [Reply(201, "<html>ok?</html>")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="201",
    ),
    OutgoingCase(
        label="garbage body on 400",
        replies={PATH: [Reply(400, b"\x00\xffnot json")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="400",
    ),
    OutgoingCase(
        label="no sender at all: refused before any request",
        config={"from_number": ""},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": ""},
        expect_error=INVALID_DESTINATION_NUMBER,
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
    run_outgoing_case(TwilioGateway, config, case, server)


def test_send_with_own_client(config: dict[str, Any], server: ProviderServer) -> None:
    server.reset()
    server.script(PATH, Reply(201, {"sid": "SMown"}))
    gateway = TwilioGateway(config)
    try:
        assert SendResult(provider_id="SMown") == gateway.send(DEFAULT_MESSAGE)
    finally:
        gateway.close()
    assert gateway.http is None


def test_connection_refused_is_retryable_and_known(config: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = TwilioGateway({**config, "base_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(GatewayError) as caught:
        gateway.send(DEFAULT_MESSAGE)
    gateway.close()
    assert (GATEWAY_ERROR, True, False) == (
        caught.value.code,
        caught.value.retryable,
        caught.value.outcome_unknown,
    )
    assert gateway.last_exchange is not None
    assert AUTH_TOKEN not in gateway.last_exchange.request


CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(
        label="messaging service instead of a number",
        config={"from_number": "", "messaging_service_sid": SERVICE},
    ),
    ConfigCase(
        label="missing account_sid",
        drop=["account_sid"],
        expect_error="account_sid\n  Field required",
    ),
    ConfigCase(
        label="missing auth_token", drop=["auth_token"], expect_error="auth_token\n  Field required"
    ),
    ConfigCase(
        label="malformed account_sid",
        config={"account_sid": "AC123"},
        expect_error="'AC' followed by 32",
    ),
    ConfigCase(
        label="short auth_token",
        config={"auth_token": "abc"},
        expect_error="auth_token is missing or too short",
    ),
    ConfigCase(
        label="malformed service sid",
        config={"messaging_service_sid": "MG1"},
        expect_error="'MG' followed by 32",
    ),
    ConfigCase(
        label="bad sender",
        config={"from_number": "not a number!"},
        expect_error="from_number must be",
    ),
    ConfigCase(
        label="ftp base_url",
        config={"base_url": "ftp://api.twilio.com"},
        expect_error="http:// or https://",
    ),
    ConfigCase(
        label="unknown field",
        config={"region": "ie1"},
        expect_error="Extra inputs are not permitted",
    ),
    ConfigCase(label="zero timeout", config={"timeout_s": 0}, expect_error="greater than 0"),
    ConfigCase(
        label="loopback refused when private addresses are forbidden",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "0"},
        expect_error="private or local address",
    ),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(TwilioGateway, config, case)


def form(**fields: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", **fields}


STATUS_CASES = [
    StatusCase(
        label="delivered",
        form=form(MessageSid="SM1", MessageStatus="delivered"),
        expect=[StatusUpdate(provider_id="SM1", status="delivered")],
    ),
    StatusCase(
        label="sent",
        form=form(MessageSid="SM1", MessageStatus="sent"),
        expect=[StatusUpdate(provider_id="SM1", status="sent")],
    ),
    StatusCase(
        label="queued means Twilio has it",
        form=form(MessageSid="SM1", MessageStatus="queued"),
        expect=[StatusUpdate(provider_id="SM1", status="sent")],
    ),
    StatusCase(
        label="sending",
        form=form(SmsSid="SM1", SmsStatus="sending"),
        expect=[StatusUpdate(provider_id="SM1", status="sent")],
    ),
    StatusCase(
        label="undelivered 30003 unreachable",
        form=form(MessageSid="SM1", MessageStatus="undelivered", ErrorCode="30003"),
        expect=[
            StatusUpdate(
                provider_id="SM1", status="failed", error_code=GATEWAY_ERROR, provider_code="30003"
            )
        ],
    ),
    StatusCase(
        label="undelivered 30005 unknown handset",
        form=form(MessageSid="SM1", MessageStatus="undelivered", ErrorCode="30005"),
        expect=[
            StatusUpdate(
                provider_id="SM1",
                status="failed",
                error_code=INVALID_DESTINATION_NUMBER,
                provider_code="30005",
            )
        ],
    ),
    StatusCase(
        label="failed 30006 landline",
        form=form(MessageSid="SM1", MessageStatus="failed", ErrorCode="30006"),
        expect=[
            StatusUpdate(
                provider_id="SM1",
                status="failed",
                error_code=INVALID_DESTINATION_NUMBER,
                provider_code="30006",
            )
        ],
    ),
    StatusCase(
        label="failed 30007 filtered",
        form=form(MessageSid="SM1", MessageStatus="failed", ErrorCode="30007"),
        expect=[
            StatusUpdate(
                provider_id="SM1", status="failed", error_code=GATEWAY_ERROR, provider_code="30007"
            )
        ],
    ),
    StatusCase(
        label="failed 21610 opted out",
        form=form(MessageSid="SM1", MessageStatus="failed", ErrorCode="21610"),
        expect=[
            StatusUpdate(
                provider_id="SM1",
                status="failed",
                error_code=PHONE_NUMBER_OPTED_OUT,
                provider_code="21610",
            )
        ],
    ),
    StatusCase(
        label="failed without an ErrorCode",
        form=form(MessageSid="SM1", MessageStatus="failed"),
        expect=[
            StatusUpdate(
                provider_id="SM1", status="failed", error_code=GATEWAY_ERROR, provider_code="failed"
            )
        ],
    ),
    StatusCase(
        label="raw form body",
        body=f"AccountSid={ACCOUNT}&MessageSid=SM9&MessageStatus=delivered".encode(),
        expect=[StatusUpdate(provider_id="SM9", status="delivered")],
    ),
    StatusCase(
        label="JSON body",
        body=b'{"MessageSid": "SM9", "MessageStatus": "delivered"}',
        content_type="application/json",
        expect=[StatusUpdate(provider_id="SM9", status="delivered")],
    ),
    StatusCase(
        label="no MessageSid", form=form(MessageStatus="delivered"), expect_error="no MessageSid"
    ),
    StatusCase(label="no status", form=form(MessageSid="SM1"), expect_error="no MessageStatus"),
    StatusCase(
        label="unknown status",
        form=form(MessageSid="SM1", MessageStatus="teleported"),
        expect_error="unknown MessageStatus 'teleported'",
    ),
    StatusCase(
        label="another account",
        form={"AccountSid": "AC" + "f" * 32, "MessageSid": "SM1", "MessageStatus": "delivered"},
        expect_error="another Twilio account",
    ),
    StatusCase(label="empty", expect_error="empty status callback"),
    StatusCase(
        label="garbage JSON",
        body=b"{nope",
        content_type="application/json",
        expect_error="not valid JSON",
    ),
    StatusCase(label="garbage form", body=b"\xff\xfe", expect_error="not valid UTF-8"),
    StatusCase(
        label="deeply nested JSON (RecursionError is not a 500)",
        body=b"[" * 60_000,
        content_type="application/json",
        expect_error="not valid JSON",
    ),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_callback(case: StatusCase, config: dict[str, Any]) -> None:
    run_status_case(TwilioGateway, config, case)


# Twilio's own published example (twilio-python/-php/-csharp RequestValidator tests).
PUBLISHED_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PUBLISHED_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
PUBLISHED_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_matches_twilio_published_example() -> None:
    assert PUBLISHED_SIGNATURE == twilio_signature(PUBLISHED_URL, PUBLISHED_PARAMS, "12345")
    assert valid_signature(PUBLISHED_URL, PUBLISHED_PARAMS, "12345", PUBLISHED_SIGNATURE)


def test_signature_matches_a_vector_derived_from_the_documented_algorithm() -> None:
    url = "https://cr.example.org/gateways/twilio/k1/status"
    params = {"MessageStatus": "delivered", "MessageSid": "SM1", "AccountSid": ACCOUNT}
    # Documented algorithm, spelled out by hand: URL, then each name+value in name order.
    signed = url + "AccountSid" + ACCOUNT + "MessageSid" + "SM1" + "MessageStatus" + "delivered"
    digest = hmac.new(AUTH_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    expected = base64.b64encode(digest).decode()
    assert expected == twilio_signature(url, params, AUTH_TOKEN)
    gateway = TwilioGateway(
        {"account_sid": ACCOUNT, "auth_token": AUTH_TOKEN, "from_number": "1500"}
    )
    assert gateway.valid_callback_signature(url, params, expected)


@pytest.mark.parametrize(
    ("label", "url", "params", "token", "signature", "valid"),
    [
        (
            "tampered value",
            PUBLISHED_URL,
            {**PUBLISHED_PARAMS, "Digits": "9999"},
            "12345",
            PUBLISHED_SIGNATURE,
            False,
        ),
        (
            "extra query",
            PUBLISHED_URL + "&x=1",
            PUBLISHED_PARAMS,
            "12345",
            PUBLISHED_SIGNATURE,
            False,
        ),
        ("other token", PUBLISHED_URL, PUBLISHED_PARAMS, "54321", PUBLISHED_SIGNATURE, False),
        ("empty signature", PUBLISHED_URL, PUBLISHED_PARAMS, "12345", "", False),
        ("garbage signature", PUBLISHED_URL, PUBLISHED_PARAMS, "12345", "not base64 at all", False),
        (
            "explicit default port",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            PUBLISHED_PARAMS,
            "12345",
            PUBLISHED_SIGNATURE,
            True,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_signature_checks(
    label: str, url: str, params: dict[str, str], token: str, signature: str, valid: bool
) -> None:
    assert valid == valid_signature(url, params, token, signature), label


def test_registered() -> None:
    assert gateway_class("twilio") is TwilioGateway
    assert ("auth_token",) == TwilioGateway.secret_fields
    assert TwilioGateway.supports_idempotency is False
