"""Turn.io gateway: sends against a real local server playing Turn (scripted replies for every
error code in both error shapes, and the checking fake), templates, statuses, signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from casereach.gateways.base import (
    GATEWAY_ERROR,
    INVALID_DESTINATION_NUMBER,
    MESSAGE_FORMAT_INVALID,
    WHATSAPP_NOT_A_USER,
    WHATSAPP_OUTSIDE_WINDOW,
    GatewayError,
    Interactive,
    ProviderTemplate,
    SendResult,
    StatusUpdate,
    TemplateRef,
)
from casereach.gateways.registry import gateway_class
from casereach.gateways.types.turn.gateway import TurnGateway, turn_signature
from casereach.testing.fake_whatsapp import NOT_A_USER, OUTSIDE_WINDOW, FakeWhatsApp
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

TOKEN = "turn-api-token-0123456789"  # noqa: S105 (made-up test credentials)
HOOK_SECRET = "turn-hook-secret-abcdef"  # noqa: S105
WABA = "102290129340398"
PATH = "/v1/messages"
TEMPLATES = f"/graph/v21.0/{WABA}/message_templates"
MESSAGE = replace(DEFAULT_MESSAGE, channel="whatsapp")
OK = Reply(200, {"messages": [{"id": "gBEGkYiEB1VXAglK1ZEqA1YKPrU"}]})


def turn_error(code: int, title: str = "error", status: int = 400) -> Reply:
    """The on-premises API's error list, as Turn answers for its own numbers."""
    return Reply(status, {"errors": [{"code": code, "title": title, "details": "d"}]})


def meta_error(code: int, message: str = "error", status: int = 400) -> Reply:
    """Meta's error object, as Turn forwards it for Cloud API numbers."""
    return Reply(status, {"error": {"message": message, "code": code, "type": "OAuthException"}})


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {
        "number": "+1 555 000 1111",
        "access_token": TOKEN,
        "hook_secret": HOOK_SECRET,
        "waba_id": WABA,
        "base_url": server.url,
    }


def error_row(reply: Reply, code: int, ours: str, *, retryable: bool = False) -> OutgoingCase:
    shape = "errors[]" if "errors" in reply.body else "error{}"
    return OutgoingCase(
        label=f"{shape} {code} → {ours}",
        replies={PATH: [reply]},
        expect_error=ours,
        expect_retryable=retryable,
        expect_provider_code=str(code),
    )


SEND_CASES = [
    OutgoingCase(
        label="free text",
        replies={PATH: [OK]},
        expect_method="POST",
        expect_path=PATH,
        expect_json={
            "recipient_type": "individual",
            "to": "254700123456",
            "type": "text",
            "text": {"preview_url": False, "body": DEFAULT_MESSAGE.text},
            "messaging_product": None,
        },
        expect_headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        expect_result=SendResult(provider_id="gBEGkYiEB1VXAglK1ZEqA1YKPrU"),
        expect_in_log=["Authorization: ***", "2547*****456"],
    ),
    OutgoingCase(
        label="template",
        replies={PATH: [OK]},
        message={"template": TemplateRef("visit_reminder", "en", ("Amina",))},
        expect_json={
            "type": "template",
            "template": {
                "name": "visit_reminder",
                "language": {"code": "en"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "Amina"}]}
                ],
            },
        },
        expect_result=SendResult(provider_id="gBEGkYiEB1VXAglK1ZEqA1YKPrU"),
    ),
    OutgoingCase(
        label="buttons",
        replies={PATH: [OK]},
        message={"interactive": Interactive("buttons", "Q?", (("y", "Yes"), ("n", "N" * 21)))},
        expect_json={
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Q?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "y", "title": "Yes"}},
                        {"type": "reply", "reply": {"id": "n", "title": "N" * 19 + "…"}},
                    ]
                },
            },
        },
        expect_result=SendResult(provider_id="gBEGkYiEB1VXAglK1ZEqA1YKPrU"),
    ),
    error_row(turn_error(1013, "User is not valid"), 1013, WHATSAPP_NOT_A_USER),
    error_row(turn_error(1026, "Receiver incapable"), 1026, WHATSAPP_NOT_A_USER),
    error_row(meta_error(131026), 131026, WHATSAPP_NOT_A_USER),
    error_row(turn_error(470, "Message failed to send because more than 24 hours"), 470,
              WHATSAPP_OUTSIDE_WINDOW),
    error_row(meta_error(131047), 131047, WHATSAPP_OUTSIDE_WINDOW),
    error_row(turn_error(2000), 2000, MESSAGE_FORMAT_INVALID),
    error_row(turn_error(2001), 2001, MESSAGE_FORMAT_INVALID),
    error_row(turn_error(2003), 2003, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(132000), 132000, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(132001), 132001, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(132005), 132005, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(132012), 132012, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(100), 100, MESSAGE_FORMAT_INVALID),
    error_row(meta_error(131021), 131021, INVALID_DESTINATION_NUMBER),
    error_row(meta_error(131009), 131009, INVALID_DESTINATION_NUMBER),
    error_row(meta_error(190, status=401), 190, GATEWAY_ERROR),
    error_row(meta_error(10, status=403), 10, GATEWAY_ERROR),
    error_row(meta_error(200, status=403), 200, GATEWAY_ERROR),
    error_row(meta_error(130429), 130429, GATEWAY_ERROR, retryable=True),
    error_row(meta_error(131048), 131048, GATEWAY_ERROR, retryable=True),
    error_row(meta_error(131056), 131056, GATEWAY_ERROR, retryable=True),
    error_row(meta_error(80007), 80007, GATEWAY_ERROR, retryable=True),
    OutgoingCase(
        label="429 from Turn's own rate limit keeps Retry-After",
        replies={PATH: [Reply(429, "slow down", headers={"Retry-After": "12"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=12,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="502",
        replies={PATH: [Reply(502, "<html>bad gateway</html>")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="502",
    ),
    OutgoingCase(
        label="slow reply past the timeout: outcome unknown",
        config={"timeout_s": 0.2},
        replies={PATH: [replace(OK, delay_s=1.0)]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_outcome_unknown=True,
        expect_provider_code="ReadTimeout",
    ),
    OutgoingCase(
        label="2xx without a message id is not retried",
        replies={PATH: [Reply(201, {"messages": []})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="201",
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": "abc"},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: OutgoingCase, config: dict[str, Any], server: ProviderServer) -> None:
    run_outgoing_case(TurnGateway, config, case, server)


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send_through_the_lean_client(
    case: OutgoingCase, config: dict[str, Any], server: ProviderServer
) -> None:
    """The dispatcher's path (``send_async``) sends the same request and classifies every row
    of the table as ``send`` does."""
    run_outgoing_case(TurnGateway, config, case, server, wire=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp("turn") as provider:
        for i in range(5):
            provider.add_template(f"t{i}", "en", "Hi {{1}}" if i % 2 else "Hello")
        yield provider


def test_send_to_the_checking_fake(fake: FakeWhatsApp) -> None:
    fake.reset()
    fake.behave("254700000002", NOT_A_USER)
    fake.behave("254700000003", OUTSIDE_WINDOW)
    gateway = TurnGateway(fake.gateway_config())
    outcomes: list[str] = []
    for to, template in [
        ("254700000001", None),
        ("254700000002", None),
        ("254700000003", None),
        ("254700000003", TemplateRef("t1", "en", ("Amina",))),
        ("254700000001", TemplateRef("t1", "en", ())),
    ]:
        try:
            result = gateway.send(replace(MESSAGE, to=to, template=template))
            outcomes.append(f"sent {result.provider_id}")
        except GatewayError as exc:
            outcomes.append(f"{exc.code} {exc.provider_code}")
    gateway.close()
    assert [
        "sent wamid.FAKE00000001",
        "WHATSAPP_NOT_A_USER 131026",
        "WHATSAPP_OUTSIDE_WINDOW 131047",
        "sent wamid.FAKE00000002",
        "MESSAGE_FORMAT_INVALID 132000",
    ] == outcomes
    assert {"/v1/messages"} == {r.path for r in fake.requests}


def test_list_templates_follows_paging(fake: FakeWhatsApp) -> None:
    fake.reset()
    gateway = TurnGateway(fake.gateway_config())
    try:
        templates = gateway.list_templates()
    finally:
        gateway.close()
    assert [
        ProviderTemplate(
            f"t{i}", "en", "APPROVED", "Hi {{1}}" if i % 2 else "Hello", "UTILITY", i % 2
        )
        for i in range(5)
    ] == templates
    assert [TEMPLATES] * 3 == [r.path for r in fake.requests]
    assert all(r.headers["authorization"] == f"Bearer {fake.token}" for r in fake.requests)


CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(label="no waba_id (no templates)", drop=["waba_id"]),
    ConfigCase(label="missing number", drop=["number"], expect_error="number\n  Field required"),
    ConfigCase(label="bad number", config={"number": "Clinic"}, expect_error="not a phone number"),
    ConfigCase(
        label="missing hook_secret",
        drop=["hook_secret"],
        expect_error="hook_secret\n  Field required",
    ),
    ConfigCase(label="short access_token", config={"access_token": "x"}, expect_error="at least 8"),
    ConfigCase(label="bad api_version", config={"api_version": "v"}, expect_error="v21.0"),
    ConfigCase(label="unknown field", config={"namespace": "x"}, expect_error="Extra inputs"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(TurnGateway, config, case)


def bare(**value: Any) -> bytes:
    return json.dumps(value).encode()


STATUS_CASES = [
    StatusCase(
        label="delivered (Turn's bare body)",
        body=bare(statuses=[{"id": "gB1", "status": "delivered", "recipient_id": "2547"}]),
        expect=[StatusUpdate("gB1", "delivered")],
    ),
    StatusCase(
        label="read with pricing",
        body=bare(statuses=[{"id": "gB1", "status": "read", "pricing": {"category": "marketing"}}]),
        expect=[StatusUpdate("gB1", "read", pricing_category="marketing")],
    ),
    StatusCase(
        label="failed 1013 (on-premises code)",
        body=bare(statuses=[{"id": "gB1", "status": "failed", "errors": [{"code": 1013}]}]),
        expect=[StatusUpdate("gB1", "failed", WHATSAPP_NOT_A_USER, "1013")],
    ),
    StatusCase(
        label="failed 470",
        body=bare(statuses=[{"id": "gB1", "status": "failed", "errors": [{"code": 470}]}]),
        expect=[StatusUpdate("gB1", "failed", WHATSAPP_OUTSIDE_WINDOW, "470")],
    ),
    StatusCase(
        label="Meta's envelope is accepted too",
        body=bare(entry=[{"changes": [{"value": {"statuses": [{"id": "w", "status": "sent"}]}}]}]),
        expect=[StatusUpdate("w", "sent")],
    ),
    StatusCase(label="statuses not a list", body=bare(statuses={}), expect_error="must be a list"),
    StatusCase(label="not JSON", body=b"statuses", expect_error="not valid JSON"),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_webhook(case: StatusCase, config: dict[str, Any]) -> None:
    run_status_case(TurnGateway, config, case)


def test_signature_matches_the_documented_algorithm(config: dict[str, Any]) -> None:
    body = bare(statuses=[{"id": "gB1", "status": "delivered"}])
    digest = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    assert expected == turn_signature(HOOK_SECRET, body)
    gateway = TurnGateway(config)
    assert gateway.valid_webhook_signature({"X-Turn-Hook-Signature": expected}, body)
    assert gateway.valid_webhook_signature({"x-turn-hook-signature": expected}, body)


def test_any_tampered_byte_fails(config: dict[str, Any]) -> None:
    gateway = TurnGateway(config)
    body = bare(
        messages=[{"from": "254700000001", "id": "x", "type": "text", "text": {"body": "hi"}}]
    )
    headers = {"X-Turn-Hook-Signature": turn_signature(HOOK_SECRET, body)}
    assert gateway.valid_webhook_signature(headers, body)
    for at in range(len(body)):
        tampered = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
        assert not gateway.valid_webhook_signature(headers, tampered), at


@pytest.mark.parametrize(
    ("label", "headers"),
    [
        ("missing", {}),
        ("empty", {"X-Turn-Hook-Signature": ""}),
        ("hex instead of base64", {"X-Turn-Hook-Signature": "0" * 64}),
        ("another secret", {"X-Turn-Hook-Signature": turn_signature("another", b"{}")}),
        ("Meta's header", {"X-Hub-Signature-256": "sha256=" + "0" * 64}),
    ],
)
def test_bad_signatures_fail(label: str, headers: dict[str, str], config: dict[str, Any]) -> None:
    assert not TurnGateway(config).valid_webhook_signature(headers, b"{}"), label


def test_no_get_verification(config: dict[str, Any]) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": HOOK_SECRET, "hub.challenge": "1"}
    assert None is TurnGateway(config).verify_subscription(query)


def test_registered() -> None:
    cls = gateway_class("turn")
    assert cls is TurnGateway
    assert ("whatsapp", False) == (cls.channel, cls.supports_idempotency)
    assert ("access_token", "hook_secret") == cls.secret_fields
