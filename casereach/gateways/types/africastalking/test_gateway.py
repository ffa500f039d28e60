"""Africa's Talking gateway: sends against a real local server playing the API, and reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    PHONE_NUMBER_OPTED_OUT,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.registry import gateway_class
from casereach.gateways.types.africastalking.gateway import (
    SANDBOX_BASE_URL,
    AfricasTalkingConfig,
    AfricasTalkingGateway,
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

API_KEY = "atsk_0b1e2d3c4f5a69788796a5f4c3d2e1b0"
PATH = "/version1/messaging"


def in_two_minutes() -> str:
    """An HTTP-date Retry-After, computed when the reply is served."""
    return formatdate(time.time() + 120, usegmt=True)


def reply(
    status_code: int | str, status: str, message_id: str = "None", cost: str = "0"
) -> dict[str, Any]:
    """An Africa's Talking send reply with one recipient."""
    sent = 1 if int(status_code) in (100, 101, 102) else 0
    return {
        "SMSMessageData": {
            "Message": f"Sent to {sent}/1 Total Cost: KES {cost}",
            "Recipients": [
                {
                    "statusCode": status_code,
                    "number": "+254700123456",
                    "status": status,
                    "cost": f"KES {cost}",
                    "messageId": message_id,
                }
            ],
        }
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {"username": "clinicapp", "api_key": API_KEY, "base_url": server.url}


def refused(status_code: int, status: str, code: str) -> OutgoingCase:
    return OutgoingCase(
        label=f"recipient {status_code} {status}",
        replies={PATH: [Reply(201, reply(status_code, status))]},
        expect_error=code,
        expect_retryable=False,
        expect_provider_code=str(status_code),
    )


def retried(status_code: int, status: str) -> OutgoingCase:
    return OutgoingCase(
        label=f"recipient {status_code} {status}",
        replies={PATH: [Reply(201, reply(status_code, status))]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code=str(status_code),
    )


SEND_CASES = [
    OutgoingCase(
        label="plain send",
        replies={PATH: [Reply(201, reply(101, "Success", "ATXid_1", "0.8000"))]},
        expect_method="POST",
        expect_path=PATH,
        expect_form={
            "username": "clinicapp",
            "to": "+254700123456",
            "message": DEFAULT_MESSAGE.text,
            "from": None,
        },
        expect_headers={"apiKey": API_KEY, "Accept": "application/json", "Idempotency-Key": None},
        expect_result=SendResult(provider_id="ATXid_1", detail="Success"),
        expect_in_log=["apiKey: ***", "+2547*****456"],
    ),
    OutgoingCase(
        label="queued (102) with the configured sender id",
        config={"sender_id": "CLINIC"},
        replies={PATH: [Reply(201, reply(102, "Queued", "ATXid_2"))]},
        expect_form={"from": "CLINIC"},
        expect_result=SendResult(provider_id="ATXid_2", detail="Queued"),
    ),
    OutgoingCase(
        label="message sender wins over the config",
        config={"sender_id": "CLINIC"},
        message={"sender": "22384"},
        replies={PATH: [Reply(201, reply(100, "Processed", "ATXid_3"))]},
        expect_form={"from": "22384"},
        expect_result=SendResult(provider_id="ATXid_3", detail="Processed"),
    ),
    OutgoingCase(
        label="statusCode as a string",
        replies={PATH: [Reply(201, reply("101", "Success", "ATXid_4"))]},
        expect_result=SendResult(provider_id="ATXid_4", detail="Success"),
    ),
    refused(403, "InvalidPhoneNumber", INVALID_DESTINATION_NUMBER),
    refused(404, "UnsupportedNumberType", INVALID_DESTINATION_NUMBER),
    refused(406, "UserInBlacklist", PHONE_NUMBER_OPTED_OUT),
    refused(401, "RiskHold", GATEWAY_ERROR),
    refused(402, "InvalidSenderId", GATEWAY_ERROR),
    refused(405, "InsufficientBalance", GATEWAY_ERROR),
    refused(407, "CouldNotRoute", GATEWAY_ERROR),
    refused(409, "DoNotDisturbRejection", GATEWAY_ERROR),
    retried(500, "InternalServerError"),
    retried(501, "GatewayError"),
    retried(502, "RejectedByGateway"),
    OutgoingCase(
        label="no recipient, message names the reason",
        replies={
            PATH: [Reply(201, {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}})]
        },
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="402",
    ),
    OutgoingCase(
        label="no recipient, unknown reason",
        replies={
            PATH: [Reply(201, {"SMSMessageData": {"Message": "Something", "Recipients": []}})]
        },
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="Something",
    ),
    OutgoingCase(
        label="HTTP 401 bad api key",
        replies={PATH: [Reply(401, "The supplied authentication is invalid")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="401",
    ),
    OutgoingCase(
        label="HTTP 400 missing field",
        replies={PATH: [Reply(400, "Request is missing required form field 'to'")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="400",
    ),
    OutgoingCase(
        label="HTTP 429 with Retry-After seconds",
        replies={PATH: [Reply(429, "Too Many Requests", headers={"Retry-After": "12"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=12,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="HTTP 429 with Retry-After date",
        replies={PATH: [Reply(429, "Too Many Requests", headers={"Retry-After": in_two_minutes})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=120,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="HTTP 500",
        replies={PATH: [Reply(500, "Internal Server Error")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="500",
    ),
    OutgoingCase(
        label="slow reply past the timeout",
        config={"timeout_s": 0.2},
        replies={PATH: [Reply(201, reply(101, "Success", "ATXid_late"), delay_s=1.0)]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_outcome_unknown=True,
        expect_provider_code="ReadTimeout",
    ),
    OutgoingCase(
        label="garbage body on 201",
        replies={PATH: [Reply(201, "<html>hello</html>")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="201",
    ),
    OutgoingCase(
        label="JSON without SMSMessageData",
        replies={PATH: [Reply(201, {"data": []})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="201",
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": "+2547"},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="private address forbidden at send time",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "false"},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
    ),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: OutgoingCase, config: dict[str, Any], server: ProviderServer) -> None:
    run_outgoing_case(AfricasTalkingGateway, config, case, server)


CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(
        label="missing username", drop=["username"], expect_error="username\n  Field required"
    ),
    ConfigCase(label="missing api_key", drop=["api_key"], expect_error="api_key\n  Field required"),
    ConfigCase(
        label="blank username", config={"username": "  "}, expect_error="username is required"
    ),
    ConfigCase(
        label="short api_key",
        config={"api_key": "abc"},
        expect_error="api_key is missing or too short",
    ),
    ConfigCase(
        label="bad sender id",
        config={"sender_id": "Far too long sender"},
        expect_error="sender_id must be",
    ),
    ConfigCase(
        label="ftp base_url",
        config={"base_url": "ftp://api.africastalking.com"},
        expect_error="http:// or https://",
    ),
    ConfigCase(
        label="unknown field",
        config={"product": "x"},
        expect_error="Extra inputs are not permitted",
    ),
    ConfigCase(
        label="timeout too long",
        config={"timeout_s": 600},
        expect_error="less than or equal to 120",
    ),
    ConfigCase(
        label="loopback refused when private addresses are forbidden",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "no"},
        expect_error="private or local address",
    ),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(AfricasTalkingGateway, config, case)


def test_sandbox_username_picks_the_sandbox_host() -> None:
    assert SANDBOX_BASE_URL == AfricasTalkingConfig(username="sandbox", api_key=API_KEY).base_url
    explicit = AfricasTalkingConfig(
        username="sandbox", api_key=API_KEY, base_url="https://x.example"
    )
    assert "https://x.example" == explicit.base_url


def report(**fields: str) -> dict[str, str]:
    return {"phoneNumber": "+254700123456", "networkCode": "63902", "retryCount": "0", **fields}


STATUS_CASES = [
    StatusCase(
        label="Success is delivered",
        form=report(id="ATXid_1", status="Success"),
        expect=[StatusUpdate(provider_id="ATXid_1", status="delivered")],
    ),
    *[
        StatusCase(
            label=f"{word} is sent",
            form=report(id="ATXid_1", status=word),
            expect=[StatusUpdate(provider_id="ATXid_1", status="sent")],
        )
        for word in ("Sent", "Submitted", "Buffered")
    ],
    StatusCase(
        label="Failed UserInBlackList",
        form=report(id="ATXid_1", status="Failed", failureReason="UserInBlackList"),
        expect=[
            StatusUpdate(
                provider_id="ATXid_1",
                status="failed",
                error_code=PHONE_NUMBER_OPTED_OUT,
                provider_code="UserInBlackList",
            )
        ],
    ),
    StatusCase(
        label="Rejected UserDoesNotExist",
        form=report(id="ATXid_1", status="Rejected", failureReason="UserDoesNotExist"),
        expect=[
            StatusUpdate(
                provider_id="ATXid_1",
                status="failed",
                error_code=INVALID_DESTINATION_NUMBER,
                provider_code="UserDoesNotExist",
            )
        ],
    ),
    StatusCase(
        label="Failed DeliveryFailure",
        form=report(id="ATXid_1", status="Failed", failureReason="DeliveryFailure"),
        expect=[
            StatusUpdate(
                provider_id="ATXid_1",
                status="failed",
                error_code=GATEWAY_ERROR,
                provider_code="DeliveryFailure",
            )
        ],
    ),
    StatusCase(
        label="Failed without a reason",
        form=report(id="ATXid_1", status="Failed"),
        expect=[
            StatusUpdate(
                provider_id="ATXid_1",
                status="failed",
                error_code=GATEWAY_ERROR,
                provider_code="Failed",
            )
        ],
    ),
    StatusCase(
        label="raw form body",
        body=b"id=ATXid_7&status=Success&phoneNumber=%2B254700123456",
        expect=[StatusUpdate(provider_id="ATXid_7", status="delivered")],
    ),
    StatusCase(
        label="JSON body",
        body=b'{"id": "ATXid_8", "status": "Sent"}',
        content_type="application/json; charset=utf-8",
        expect=[StatusUpdate(provider_id="ATXid_8", status="sent")],
    ),
    StatusCase(label="no id", form=report(status="Success"), expect_error="no id"),
    StatusCase(label="no status", form=report(id="ATXid_1"), expect_error="no status"),
    StatusCase(
        label="unknown status",
        form=report(id="ATXid_1", status="Lost"),
        expect_error="unknown delivery status 'Lost'",
    ),
    StatusCase(label="empty", expect_error="empty delivery report"),
    StatusCase(
        label="garbage JSON",
        body=b"[1,",
        content_type="application/json",
        expect_error="not valid JSON",
    ),
    StatusCase(
        label="JSON list",
        body=b"[1]",
        content_type="application/json",
        expect_error="must be an object",
    ),
    StatusCase(
        label="deeply nested JSON (RecursionError is not a 500)",
        body=b"[" * 60_000,
        content_type="application/json",
        expect_error="not valid JSON",
    ),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_callback(case: StatusCase, config: dict[str, Any]) -> None:
    run_status_case(AfricasTalkingGateway, config, case)


def test_registered() -> None:
    assert gateway_class("africastalking") is AfricasTalkingGateway
    assert ("api_key",) == AfricasTalkingGateway.secret_fields
    assert AfricasTalkingGateway.supports_idempotency is False
