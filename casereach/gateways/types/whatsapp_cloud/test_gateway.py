"""WhatsApp Cloud API gateway: sends against a real local server playing Meta (scripted replies
for every error code, and the checking fake), templates, statuses, signatures, verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
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
from casereach.gateways.types.whatsapp_cloud.gateway import WhatsAppCloudGateway, hub_signature
from casereach.testing.fake_whatsapp import (
    NOT_A_USER,
    OUTSIDE_WINDOW,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeWhatsApp,
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

TOKEN = "EAAG0123456789abcdefTOKEN"  # noqa: S105 (made-up test credentials)
APP_SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105
VERIFY = "verify-me-please"
PHONE_ID = "106540352242922"
WABA = "102290129340398"
PATH = f"/v21.0/{PHONE_ID}/messages"
TEMPLATES = f"/v21.0/{WABA}/message_templates"
MESSAGE = replace(DEFAULT_MESSAGE, channel="whatsapp")
OK = Reply(
    200,
    {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "254700123456", "wa_id": "254700123456"}],
        "messages": [{"id": "wamid.HBgM1"}],
    },
)


def meta_error(code: int, message: str = "error", status: int = 400) -> Reply:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Az"}
    return Reply(status, {"error": error})


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {
        "phone_number_id": PHONE_ID,
        "waba_id": WABA,
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "base_url": server.url,
    }


def error_row(
    code: int, ours: str, *, retryable: bool = False, status: int = 400, message: str = "error"
) -> OutgoingCase:
    return OutgoingCase(
        label=f"{code} → {ours}",
        replies={PATH: [meta_error(code, message, status)]},
        expect_error=ours,
        expect_retryable=retryable,
        expect_provider_code=str(code),
    )


SEND_CASES = [
    OutgoingCase(
        label="free text",
        replies={PATH: [OK]},
        message={"to": "254700123456"},
        expect_method="POST",
        expect_path=PATH,
        expect_json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "254700123456",
            "type": "text",
            "text": {"preview_url": False, "body": DEFAULT_MESSAGE.text},
            "template": None,
        },
        expect_headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": None,
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
        expect_in_log=["Authorization: ***", "2547*****456"],
    ),
    OutgoingCase(
        label="template with body parameters",
        replies={PATH: [OK]},
        message={"template": TemplateRef("visit_reminder", "en_GB", ("Amina", "Tuesday 9:00"))},
        expect_json={
            "type": "template",
            "template": {
                "name": "visit_reminder",
                "language": {"code": "en_GB"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Amina"},
                            {"type": "text", "text": "Tuesday 9:00"},
                        ],
                    }
                ],
            },
            "text": None,
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
    ),
    OutgoingCase(
        label="template without parameters has no components",
        replies={PATH: [OK]},
        message={"template": TemplateRef("hello_world", "en_US")},
        expect_json={
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
    ),
    OutgoingCase(
        label="reply buttons, titles cut to 20, ids kept",
        replies={PATH: [OK]},
        message={
            "interactive": Interactive(
                "buttons",
                "Did you take your medicine today?",
                (("yes-1", "Yes"), ("no-2", "No, I forgot to take it today")),
            )
        },
        expect_json={
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Did you take your medicine today?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "yes-1", "title": "Yes"}},
                        {"type": "reply", "reply": {"id": "no-2", "title": "No, I forgot to tak…"}},
                    ]
                },
            },
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
    ),
    OutgoingCase(
        label="list: row titles cut to 24 (the whole in the description, cut to 72), "
        "button label cut to 20, body to 1024",
        replies={PATH: [OK]},
        message={
            "interactive": Interactive(
                "list",
                "b" * 1100,
                (("r1", "Short"), ("r2", "A very long option title " + "x" * 80)),
                button="Choose one of these options",
            )
        },
        expect_json={
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "b" * 1023 + "…"},
                "action": {
                    "button": "Choose one of these…",
                    "sections": [
                        {
                            "rows": [
                                {"id": "r1", "title": "Short"},
                                {
                                    "id": "r2",
                                    "title": "A very long option titl…",
                                    "description": ("A very long option title " + "x" * 80)[:71]
                                    + "…",
                                },
                            ]
                        }
                    ],
                },
            },
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
    ),
    OutgoingCase(
        label="more than 3 buttons go as a list with the default label",
        replies={PATH: [OK]},
        message={
            "interactive": Interactive(
                "buttons", "Pick", tuple((f"o{i}", f"Option {i}") for i in range(5))
            )
        },
        expect_json={
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {
                    "button": "Choose",
                    "sections": [
                        {"rows": [{"id": f"o{i}", "title": f"Option {i}"} for i in range(5)]}
                    ],
                },
            }
        },
        expect_result=SendResult(provider_id="wamid.HBgM1"),
    ),
    OutgoingCase(
        label="more than 10 options: refused before any request",
        message={
            "interactive": Interactive("list", "Pick", tuple((f"o{i}", "x") for i in range(11)))
        },
        expect_error=MESSAGE_FORMAT_INVALID,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="an option id over 200 characters: refused before any request",
        message={"interactive": Interactive("buttons", "Pick", (("i" * 201, "Yes"),))},
        expect_error=MESSAGE_FORMAT_INVALID,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": "+2547"},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
    error_row(131026, WHATSAPP_NOT_A_USER, message="Message undeliverable"),
    OutgoingCase(
        label="'not a WhatsApp user' in the message, whatever the code",
        replies={PATH: [meta_error(131000, "Recipient is not a valid WhatsApp user")]},
        expect_error=WHATSAPP_NOT_A_USER,
        expect_retryable=False,
        expect_provider_code="131000",
    ),
    error_row(131047, WHATSAPP_OUTSIDE_WINDOW, message="Re-engagement message"),
    error_row(132000, MESSAGE_FORMAT_INVALID),
    error_row(132001, MESSAGE_FORMAT_INVALID, status=404),
    error_row(132005, MESSAGE_FORMAT_INVALID),
    error_row(132012, MESSAGE_FORMAT_INVALID),
    error_row(100, MESSAGE_FORMAT_INVALID),
    error_row(131021, INVALID_DESTINATION_NUMBER),
    error_row(131009, INVALID_DESTINATION_NUMBER),
    error_row(190, GATEWAY_ERROR, status=401),
    error_row(10, GATEWAY_ERROR, status=403),
    error_row(200, GATEWAY_ERROR, status=403),
    error_row(131048, GATEWAY_ERROR, retryable=True),
    error_row(131056, GATEWAY_ERROR, retryable=True),
    error_row(80007, GATEWAY_ERROR, retryable=True),
    OutgoingCase(
        label="130429 throughput limit keeps Retry-After",
        replies={
            PATH: [
                Reply(
                    400,
                    {"error": {"message": "Rate limit hit", "code": 130429}},
                    headers={"Retry-After": "30"},
                )
            ]
        },
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=30,
        expect_provider_code="130429",
    ),
    error_row(131000, GATEWAY_ERROR, retryable=True, status=500, message="Something went wrong"),
    OutgoingCase(
        label="503 HTML with Retry-After",
        replies={PATH: [Reply(503, "<html>down</html>", headers={"Retry-After": "5"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=5,
        expect_provider_code="503",
    ),
    OutgoingCase(
        label="unmapped code is a permanent gateway error",
        replies={PATH: [meta_error(131051, "Unsupported message type")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="131051",
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
        replies={PATH: [Reply(200, {"messaging_product": "whatsapp"})]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="200",
    ),
    OutgoingCase(
        label="garbage body on 400",
        replies={PATH: [Reply(400, b"\x00\xffnot json")]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="400",
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
    gateway = run_outgoing_case(WhatsAppCloudGateway, config, case, server)
    if gateway.last_exchange is not None:
        assert TOKEN not in gateway.last_exchange.request


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send_through_the_lean_client(
    case: OutgoingCase, config: dict[str, Any], server: ProviderServer
) -> None:
    """The dispatcher's path (``send_async``) sends the same request and classifies every row
    of the table as ``send`` does."""
    run_outgoing_case(WhatsAppCloudGateway, config, case, server, wire=True)


def test_connection_refused_is_retryable_and_known(config: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = WhatsAppCloudGateway({**config, "base_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(GatewayError) as caught:
        gateway.send(MESSAGE)
    gateway.close()
    assert (GATEWAY_ERROR, True, False) == (
        caught.value.code,
        caught.value.retryable,
        caught.value.outcome_unknown,
    )


# --- against the checking fake -----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp("cloud") as provider:
        provider.add_template("visit_reminder", "en", "Hi {{1}}, your visit is on {{2}}.")
        provider.add_template("visit_reminder", "sw", "Habari {{1}}, ziara yako ni {{2}}.")
        provider.add_template("pending_one", "en", "Soon", status="PENDING")
        provider.add_template("welcome", "en", "Welcome!", category="MARKETING")
        provider.add_template("named", "fr", "Bonjour {{name}}, {{ name }} — {{2}}")
        yield provider


def send_to_fake(fake: FakeWhatsApp, **message: Any) -> SendResult | GatewayError:
    gateway = WhatsAppCloudGateway(fake.gateway_config())
    try:
        return gateway.send(replace(MESSAGE, **message))
    except GatewayError as exc:
        return exc
    finally:
        gateway.close()


FAKE_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    # (label, message fields, behaviour of the recipient, our error code or None = accepted)
    ("text", {}, "", None),
    ("template", {"template": TemplateRef("visit_reminder", "sw", ("Amina", "Jumanne"))}, "", None),
    ("template, too few params", {"template": TemplateRef("visit_reminder", "en", ("A",))}, "",
     MESSAGE_FORMAT_INVALID),
    ("template not approved", {"template": TemplateRef("pending_one", "en")}, "",
     MESSAGE_FORMAT_INVALID),
    ("template in another language", {"template": TemplateRef("welcome", "sw")}, "",
     MESSAGE_FORMAT_INVALID),
    ("buttons cut to the limits",
     {"interactive": Interactive("buttons", "Q?", (("a", "A" * 40), ("b", "B" * 40)))}, "", None),
    ("a list of 10 long rows",
     {"interactive": Interactive("list", "Q?", tuple((f"r{i}", f"{i}" * 90) for i in range(10)),
                                 button="B" * 30)}, "", None),
    ("not a WhatsApp user", {}, NOT_A_USER, WHATSAPP_NOT_A_USER),
    ("outside the window, free text", {}, OUTSIDE_WINDOW, WHATSAPP_OUTSIDE_WINDOW),
    ("outside the window, a template",
     {"template": TemplateRef("welcome", "en")}, OUTSIDE_WINDOW, None),
    ("provider error", {}, SERVER_ERROR, GATEWAY_ERROR),
    ("rate limited", {}, RATE_LIMITED, GATEWAY_ERROR),
    ("sender is recipient", {"to": "15550001111"}, "", INVALID_DESTINATION_NUMBER),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "fields", "behaviour", "expected"), FAKE_CASES, ids=[c[0] for c in FAKE_CASES]
)
def test_send_to_the_checking_fake(
    fake: FakeWhatsApp, label: str, fields: dict[str, Any], behaviour: str, expected: str | None
) -> None:
    fake.reset()
    to = fields.get("to", "254700123456")
    if behaviour:
        fake.behave(to, behaviour)
    outcome = send_to_fake(fake, **fields)
    if expected is None:
        assert isinstance(outcome, SendResult), (label, outcome)
        assert [outcome.provider_id] == [m.wamid for m in fake.sent]
        assert [] == fake.refused
    else:
        assert isinstance(outcome, GatewayError), (label, outcome)
        assert expected == outcome.code, (label, outcome)
        assert [] == fake.sent
    assert 1 == len(fake.requests)


def test_retryable_rows_of_the_fake(fake: FakeWhatsApp) -> None:
    fake.reset()
    fake.behave("254700000009", RATE_LIMITED)
    outcome = send_to_fake(fake, to="254700000009")
    assert isinstance(outcome, GatewayError)
    assert (True, 7.0, "130429") == (outcome.retryable, outcome.retry_after, outcome.provider_code)
    fake.behave("254700000008", SERVER_ERROR)
    outcome = send_to_fake(fake, to="254700000008")
    assert isinstance(outcome, GatewayError)
    assert (True, "131000") == (outcome.retryable, outcome.provider_code)


def test_wrong_token_is_permanent(fake: FakeWhatsApp) -> None:
    fake.reset()
    gateway = WhatsAppCloudGateway(fake.gateway_config(access_token="EAAwrongtoken123"))  # noqa: S106
    with pytest.raises(GatewayError) as caught:
        gateway.send(MESSAGE)
    gateway.close()
    assert (GATEWAY_ERROR, False, "190") == (
        caught.value.code,
        caught.value.retryable,
        caught.value.provider_code,
    )


def test_list_templates_follows_paging(fake: FakeWhatsApp) -> None:
    fake.reset()
    gateway = WhatsAppCloudGateway(fake.gateway_config())
    try:
        templates = gateway.list_templates()
    finally:
        gateway.close()
    assert [
        ProviderTemplate("visit_reminder", "en", "APPROVED", fake.templates[0].body, "UTILITY", 2),
        ProviderTemplate("visit_reminder", "sw", "APPROVED", fake.templates[1].body, "UTILITY", 2),
        ProviderTemplate("pending_one", "en", "PENDING", "Soon", "UTILITY", 0),
        ProviderTemplate("welcome", "en", "APPROVED", "Welcome!", "MARKETING", 0),
        ProviderTemplate("named", "fr", "APPROVED", fake.templates[4].body, "UTILITY", 2),
    ] == templates
    assert 3 == len(fake.requests)  # pages of 2
    first = fake.requests[0]
    assert (f"/v21.0/{WABA}/message_templates", "100") == (first.path, first.query_one()["limit"])
    assert "name,language,status,category,components" == first.query_one()["fields"]
    assert "2" == fake.requests[1].query_one()["after"]


def test_list_templates_errors(config: dict[str, Any], server: ProviderServer) -> None:
    server.reset()
    server.script(TEMPLATES, meta_error(190, "Invalid OAuth access token", 401))
    gateway = WhatsAppCloudGateway(config)
    with pytest.raises(GatewayError) as caught:
        gateway.list_templates()
    assert (GATEWAY_ERROR, False, "190") == (
        caught.value.code,
        caught.value.retryable,
        caught.value.provider_code,
    )
    # A next page on another host is not followed (the token would go with it).
    server.reset()
    page = {
        "data": [{"name": "a", "language": "en", "status": "APPROVED", "components": []}],
        "paging": {"next": "https://elsewhere.example.org/v21.0/1/message_templates?after=1"},
    }
    server.script(TEMPLATES, Reply(200, page))
    assert [ProviderTemplate("a", "en", "APPROVED", "")] == gateway.list_templates()
    assert 1 == len(server.requests)
    gateway.close()
    no_waba = WhatsAppCloudGateway({**config, "waba_id": ""})
    with pytest.raises(GatewayError, match="waba_id"):
        no_waba.list_templates()


# --- configuration -----------------------------------------------------------------------------

CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(label="no waba_id (no templates)", drop=["waba_id"]),
    ConfigCase(
        label="missing access_token",
        drop=["access_token"],
        expect_error="access_token\n  Field required",
    ),
    ConfigCase(
        label="missing app_secret", drop=["app_secret"], expect_error="app_secret\n  Field required"
    ),
    ConfigCase(
        label="short verify_token",
        config={"verify_token": "abc"},
        expect_error="at least 8 characters",
    ),
    ConfigCase(
        label="phone number instead of its id",
        config={"phone_number_id": "+1 555 000 1111"},
        expect_error="phone_number_id must be the number's id",
    ),
    ConfigCase(label="bad waba_id", config={"waba_id": "abc"}, expect_error="waba_id must be"),
    ConfigCase(
        label="bad api_version", config={"api_version": "21"}, expect_error="look like v21.0"
    ),
    ConfigCase(
        label="ftp base_url", config={"base_url": "ftp://graph.facebook.com"}, expect_error="http"
    ),
    ConfigCase(label="unknown field", config={"x": 1}, expect_error="Extra inputs"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(WhatsAppCloudGateway, config, case)


# --- status webhooks (through parse_status: the statuses of a webhook) --------------------------


def envelope(**value: Any) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID},
        **value,
    }
    changes = [{"value": value, "field": "messages"}]
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"changes": changes}]}
    ).encode()


def status(word: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "wamid.S1",
        "status": word,
        "timestamp": "1700000000",
        "recipient_id": "2547",
        **extra,
    }


def failed(code: int) -> bytes:
    return envelope(statuses=[status("failed", errors=[{"code": code, "title": "t"}])])


PRICING = {"billable": True, "pricing_model": "PMP", "category": "utility"}
STATUS_CASES = [
    StatusCase(
        label="sent with pricing",
        body=envelope(statuses=[status("sent", pricing=PRICING)]),
        content_type="application/json",
        expect=[StatusUpdate("wamid.S1", "sent", pricing_category="utility")],
    ),
    StatusCase(
        label="delivered then read in one post",
        body=envelope(statuses=[status("delivered"), status("read")]),
        expect=[StatusUpdate("wamid.S1", "delivered"), StatusUpdate("wamid.S1", "read")],
    ),
    StatusCase(
        label="failed 131026 not a WhatsApp user",
        body=failed(131026),
        expect=[StatusUpdate("wamid.S1", "failed", WHATSAPP_NOT_A_USER, "131026")],
    ),
    StatusCase(
        label="failed 131047 outside the window",
        body=failed(131047),
        expect=[StatusUpdate("wamid.S1", "failed", WHATSAPP_OUTSIDE_WINDOW, "131047")],
    ),
    StatusCase(
        label="failed 132001 template",
        body=failed(132001),
        expect=[StatusUpdate("wamid.S1", "failed", MESSAGE_FORMAT_INVALID, "132001")],
    ),
    StatusCase(
        label="failed 131049 (not mapped)",
        body=failed(131049),
        expect=[StatusUpdate("wamid.S1", "failed", GATEWAY_ERROR, "131049")],
    ),
    StatusCase(
        label="failed without errors",
        body=envelope(statuses=[status("failed")]),
        expect=[StatusUpdate("wamid.S1", "failed", GATEWAY_ERROR, "failed")],
    ),
    StatusCase(
        label="unknown status word is skipped",
        body=envelope(statuses=[status("deleted"), status("delivered")]),
        expect=[StatusUpdate("wamid.S1", "delivered")],
    ),
    StatusCase(label="messages only: no statuses", body=envelope(messages=[]), expect=[]),
    StatusCase(
        label="status without id",
        body=envelope(statuses=[{"status": "sent"}]),
        expect_error="no message 'id'",
    ),
    StatusCase(label="empty", expect_error="empty webhook"),
    StatusCase(label="not JSON", body=b"{nope", expect_error="not valid JSON"),
    StatusCase(label="a JSON list", body=b"[]", expect_error="must be an object"),
    StatusCase(label="bad entry", body=b'{"entry": 3}', expect_error="'entry' must be a list"),
    StatusCase(label="invalid UTF-8", body=b'{"entry": "\xff"}', expect_error="not valid UTF-8"),
    StatusCase(label="deeply nested JSON", body=b"[" * 60_000, expect_error="not valid JSON"),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_webhook(case: StatusCase, config: dict[str, Any]) -> None:
    run_status_case(WhatsAppCloudGateway, config, case)


# --- signatures and verification ---------------------------------------------------------------


def test_signature_matches_the_documented_algorithm(config: dict[str, Any]) -> None:
    body = envelope(statuses=[status("delivered")])
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert expected == hub_signature(APP_SECRET, body)
    gateway = WhatsAppCloudGateway(config)
    assert gateway.valid_webhook_signature({"X-Hub-Signature-256": expected}, body)
    assert gateway.valid_webhook_signature({"x-hub-signature-256": expected}, body)


def test_any_tampered_byte_fails(config: dict[str, Any]) -> None:
    gateway = WhatsAppCloudGateway(config)
    body = envelope(statuses=[status("delivered")])
    headers = {"X-Hub-Signature-256": hub_signature(APP_SECRET, body)}
    for at in range(len(body)):
        tampered = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
        assert not gateway.valid_webhook_signature(headers, tampered), at


@pytest.mark.parametrize(
    ("label", "headers"),
    [
        ("missing", {}),
        ("empty", {"X-Hub-Signature-256": ""}),
        ("no sha256= prefix", {"X-Hub-Signature-256": "0" * 64}),
        ("another secret", {"X-Hub-Signature-256": hub_signature("another-secret", b"{}")}),
        ("SHA-1 header only", {"X-Hub-Signature": "sha1=" + "0" * 40}),
        ("not ASCII", {"X-Hub-Signature-256": "sha256=" + "é" * 64}),
    ],
)
def test_bad_signatures_fail(label: str, headers: dict[str, str], config: dict[str, Any]) -> None:
    assert not WhatsAppCloudGateway(config).valid_webhook_signature(headers, b"{}"), label


@pytest.mark.parametrize(
    ("label", "query", "expected"),
    [
        ("right token", {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}, "1158201444"),
        ("wrong token", {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}, None),
        ("no token", {"hub.mode": "subscribe", "hub.challenge": "1"}, None),
        ("not subscribe", {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"}, None),
        ("no challenge", {"hub.mode": "subscribe", "hub.verify_token": VERIFY}, None),
        ("challenge not printable", {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "a\nb"}, None),
        ("nothing", {}, None),
    ],
)  # fmt: skip
def test_verify_subscription(
    label: str, query: dict[str, str], expected: str | None, config: dict[str, Any]
) -> None:
    assert expected == WhatsAppCloudGateway(config).verify_subscription(query), label


def test_registered() -> None:
    cls = gateway_class("whatsapp_cloud")
    assert cls is WhatsAppCloudGateway
    assert ("whatsapp", False) == (cls.channel, cls.supports_idempotency)
    assert ("access_token", "app_secret", "verify_token") == cls.secret_fields
