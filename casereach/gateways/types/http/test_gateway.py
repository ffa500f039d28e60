"""Generic HTTP gateway: sends against a real local server, templates, config, callbacks."""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.utils import formatdate
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
from casereach.gateways.types.http import template
from casereach.gateways.types.http.gateway import HttpGateway
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

HEADER_SECRET = "hdr-5ecret-value-77"  # noqa: S105 (made-up test secret)
PARAM_SECRET = "prm/5ecret+value&88"  # noqa: S105 (made up; URL-encoding changes it)
PASSWORD = "pw-5ecret-value-99"  # noqa: S105 (a made-up test password)


def in_two_minutes() -> str:
    """An HTTP-date Retry-After, computed when the reply is served."""
    return formatdate(time.time() + 120, usegmt=True)


MSG_ID = DEFAULT_MESSAGE.message_id


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as provider:
        yield provider


@pytest.fixture
def config(server: ProviderServer) -> dict[str, Any]:
    return {
        "url": f"{server.url}/send",
        "params": {"to": "{to}", "msg": "{text}", "sender": "{from}", "ref": "{message_id}"},
        "headers": {"X-Auth": HEADER_SECRET, "X-Client": "casereach"},
        "secret_headers": ["X-Auth"],
        "sender": "CLINIC",
    }


def ok(
    body: Any = "OK", status: int = 200, **headers: str | Callable[[], str]
) -> dict[str, list[Reply]]:
    return {"/send": [Reply(status, body, headers=headers)]}


SEND_CASES = [
    OutgoingCase(
        label="POST form",
        replies=ok(),
        expect_method="POST",
        expect_path="/send",
        expect_form={
            "to": "254700123456",
            "msg": DEFAULT_MESSAGE.text,
            "sender": "CLINIC",
            "ref": MSG_ID,
        },
        expect_headers={
            "Idempotency-Key": MSG_ID,
            "X-Auth": HEADER_SECRET,
            "X-Client": "casereach",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        expect_result=SendResult(),
        expect_in_log=["X-Auth: ***", "X-Client: casereach", "to=2547*****456"],
    ),
    OutgoingCase(
        label="POST JSON",
        config={"encoding": "json"},
        replies=ok(),
        expect_json={"to": "254700123456", "msg": DEFAULT_MESSAGE.text, "ref": MSG_ID},
        expect_headers={"Content-Type": "application/json"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="GET query",
        config={"method": "GET"},
        replies=ok(),
        expect_method="GET",
        expect_query={"to": "254700123456", "msg": DEFAULT_MESSAGE.text, "sender": "CLINIC"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="GET keeps the URL's own query",
        config={"method": "GET", "url": "{server}/send?route=7"},
        replies=ok(),
        expect_query={"route": "7", "to": "254700123456"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_plus and literal braces",
        config={"params": {"number": "{to_plus}", "body": "{{{text}}}", "from": "{from}"}},
        message={"sender": "22384"},
        replies=ok(),
        expect_form={
            "number": "+254700123456",
            "body": "{" + DEFAULT_MESSAGE.text + "}",
            "from": "22384",
        },
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="no idempotency header",
        config={"idempotency_header": None},
        replies=ok(),
        expect_headers={"Idempotency-Key": None},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="idempotency header renamed",
        config={"idempotency_header": "X-Request-Id"},
        replies=ok(),
        expect_headers={"X-Request-Id": MSG_ID, "Idempotency-Key": None},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="basic auth",
        config={"username": "clinic", "password": PASSWORD},
        replies=ok(),
        expect_headers={
            "Authorization": "Basic " + base64.b64encode(f"clinic:{PASSWORD}".encode()).decode()
        },
        expect_result=SendResult(),
        expect_in_log=["Authorization: ***"],
    ),
    OutgoingCase(
        label="secret param in a form",
        config={
            "params": {"key": PARAM_SECRET, "to": "{to}", "msg": "{text}"},
            "secret_params": ["key"],
        },
        replies=ok(),
        expect_form={"key": PARAM_SECRET},
        expect_result=SendResult(),
        expect_in_log=["key=***"],
    ),
    OutgoingCase(
        label="secret param in a GET query",
        config={
            "method": "GET",
            "params": {"key": PARAM_SECRET, "to": "{to}", "msg": "{text}"},
            "secret_params": ["key"],
        },
        replies=ok(),
        expect_query={"key": PARAM_SECRET},
        expect_result=SendResult(),
        expect_in_log=["key=***"],
    ),
    OutgoingCase(
        label="secret param in JSON",
        config={
            "encoding": "json",
            "params": {"key": PARAM_SECRET, "to": "{to}", "msg": "{text}"},
            "secret_params": ["key"],
        },
        replies=ok(),
        expect_json={"key": PARAM_SECRET},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="provider id at a path",
        config={"provider_id_path": "data.id"},
        replies=ok({"data": {"id": "p-77"}}),
        expect_result=SendResult(provider_id="p-77"),
    ),
    OutgoingCase(
        label="provider id in a list, numeric",
        config={"provider_id_path": "messages.0.id"},
        replies=ok({"messages": [{"id": 4242}]}),
        expect_result=SendResult(provider_id="4242"),
    ),
    OutgoingCase(
        label="provider id path missing in the reply",
        config={"provider_id_path": "data.id"},
        replies=ok({"data": {}}),
        expect_result=SendResult(provider_id=None, detail="no id at data.id"),
    ),
    OutgoingCase(
        label="garbage body with a provider id path still counts as sent",
        config={"provider_id_path": "data.id"},
        replies=ok("<html>queued</html>"),
        expect_result=SendResult(provider_id=None, detail="reply is not JSON"),
    ),
    OutgoingCase(
        label="garbage body without a provider id path",
        replies=ok(b"\x00\xff\xfe"),
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="success_status as one number",
        config={"success_status": 202},
        replies=ok(status=202),
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="2xx outside success_status",
        config={"success_status": [202]},
        replies=ok(status=200),
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="200",
    ),
    OutgoingCase(
        label="success_regex matches",
        config={"success_regex": r"^OK\b"},
        replies=ok("OK: 1 queued"),
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="success_regex does not match",
        config={"success_regex": r"^OK\b"},
        replies=ok("ERR: no credit"),
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="200",
    ),
    *[
        OutgoingCase(
            label=f"HTTP {status} is permanent",
            replies=ok("nope", status=status),
            expect_error=GATEWAY_ERROR,
            expect_retryable=False,
            expect_provider_code=str(status),
        )
        for status in (400, 401, 403, 404, 422)
    ],
    OutgoingCase(
        label="redirect is not followed",
        replies=ok("moved", status=302, Location="http://example.org/elsewhere"),
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
        expect_provider_code="302",
    ),
    OutgoingCase(
        label="HTTP 408 is retried",
        replies=ok("timeout", status=408),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="408",
    ),
    OutgoingCase(
        label="429 with Retry-After seconds",
        replies=ok("slow down", status=429, **{"Retry-After": "7"}),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=7,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="429 with Retry-After date",
        replies=ok("slow down", status=429, **{"Retry-After": in_two_minutes}),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=120,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="429 with an unreadable Retry-After",
        replies=ok("slow down", status=429, **{"Retry-After": "soon"}),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="429",
    ),
    OutgoingCase(
        label="500",
        replies=ok("boom", status=500),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_provider_code="500",
    ),
    OutgoingCase(
        label="503 with Retry-After",
        replies=ok("maintenance", status=503, **{"Retry-After": "60"}),
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_retry_after=60,
        expect_provider_code="503",
    ),
    OutgoingCase(
        label="slow reply past the timeout",
        config={"timeout_s": 0.2},
        replies={"/send": [Reply(200, "OK", delay_s=1.0)]},
        expect_error=GATEWAY_ERROR,
        expect_retryable=True,
        expect_outcome_unknown=True,
        expect_provider_code="ReadTimeout",
    ),
    OutgoingCase(
        label="destination not digits: refused before any request",
        message={"to": "0700 123 456"},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="to_national: Kenya",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "254700123456"},
        replies=ok(),
        expect_query={"msisdn": "0700123456"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national: United States",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "12025550123"},
        replies=ok(),
        expect_query={"msisdn": "2025550123"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national: United Kingdom",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "447911123456"},
        replies=ok(),
        expect_query={"msisdn": "07911123456"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national: Italy keeps its 0",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "390612345678"},
        replies=ok(),
        expect_query={"msisdn": "0612345678"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national: Italian mobile, no 0",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "393123456789"},
        replies=ok(),
        expect_query={"msisdn": "3123456789"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national: Tanzania",
        config={"method": "GET", "params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "255712345678"},
        replies=ok(),
        expect_query={"msisdn": "0712345678"},
        expect_result=SendResult(),
    ),
    OutgoingCase(
        label="to_national beside to in a POST form",
        config={"params": {"n": "{to_national}", "i": "{to}", "msg": "{text}"}},
        replies=ok(),
        expect_form={"n": "0700123456", "i": "254700123456"},
        expect_result=SendResult(),
        expect_in_log=["n=0700***456"],
    ),
    OutgoingCase(
        label="to_national of a number in no country: refused before any request",
        config={"params": {"msisdn": "{to_national}", "msg": "{text}"}},
        message={"to": "99912345678"},
        expect_error=INVALID_DESTINATION_NUMBER,
        expect_retryable=False,
    ),
    OutgoingCase(
        label="private address forbidden at send time",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "0"},
        expect_error=GATEWAY_ERROR,
        expect_retryable=False,
    ),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: OutgoingCase, config: dict[str, Any], server: ProviderServer) -> None:
    if "url" in case.config:  # a case's own URL names the local server as {server}
        url = case.config["url"].replace("{server}", server.url)
        case = replace(case, config={**case.config, "url": url})
    run_outgoing_case(HttpGateway, config, case, server)


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send_through_lean_client(
    case: OutgoingCase, config: dict[str, Any], server: ProviderServer
) -> None:
    """The dispatcher's path (``send_async`` over the lean client) behaves as ``send``."""
    if "url" in case.config:
        url = case.config["url"].replace("{server}", server.url)
        case = replace(case, config={**case.config, "url": url})
    run_outgoing_case(HttpGateway, config, case, server, wire=True)


def test_send_with_own_client(config: dict[str, Any], server: ProviderServer) -> None:
    server.reset()
    server.script("/send", Reply(200, {"id": "own-1"}))
    gateway = HttpGateway({**config, "provider_id_path": "id"})
    try:
        assert SendResult(provider_id="own-1") == gateway.send(DEFAULT_MESSAGE)
    finally:
        gateway.close()
    assert gateway.http is None
    assert gateway.last_exchange is not None
    assert HEADER_SECRET not in gateway.last_exchange.request


def test_connection_refused_is_retryable_and_known(config: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = HttpGateway({**config, "url": f"http://127.0.0.1:{port}/send"})
    with pytest.raises(GatewayError) as caught:
        gateway.send(DEFAULT_MESSAGE)
    gateway.close()
    assert (GATEWAY_ERROR, True, False) == (
        caught.value.code,
        caught.value.retryable,
        caught.value.outcome_unknown,
    )
    assert gateway.last_exchange is not None
    assert HEADER_SECRET not in gateway.last_exchange.request


def test_secret_values() -> None:
    gateway = HttpGateway(
        {
            "url": "https://sms.example.org/send",
            "params": {"to": "{to}", "msg": "{text}", "key": PARAM_SECRET},
            "headers": {"X-Auth": HEADER_SECRET, "X-Plain": "visible"},
            "secret_headers": ["x-auth"],
            "secret_params": ["key"],
            "username": "u",
            "password": PASSWORD,
        }
    )
    assert [PASSWORD, HEADER_SECRET, PARAM_SECRET] == gateway.secret_values()


CONFIG_CASES = [
    ConfigCase(label="complete"),
    ConfigCase(label="lower-case method", config={"method": "get"}),
    ConfigCase(
        label="national destination only", config={"params": {"n": "{to_national}", "t": "{text}"}}
    ),
    ConfigCase(
        label="literal braces", config={"params": {"t": "{text}", "n": "{to}", "x": "{{json}}"}}
    ),
    ConfigCase(label="missing url", drop=["url"], expect_error="url\n  Field required"),
    ConfigCase(label="missing params", drop=["params"], expect_error="params\n  Field required"),
    ConfigCase(
        label="ftp URL",
        config={"url": "ftp://sms.example.org/send"},
        expect_error="http:// or https://",
    ),
    ConfigCase(
        label="file URL", config={"url": "file:///etc/passwd"}, expect_error="http:// or https://"
    ),
    ConfigCase(
        label="no scheme",
        config={"url": "sms.example.org/send"},
        expect_error="http:// or https://",
    ),
    ConfigCase(label="no host", config={"url": "http:///send"}, expect_error="URL has no host"),
    ConfigCase(
        label="bad port",
        config={"url": "http://sms.example.org:99999/"},
        expect_error="invalid port",
    ),
    ConfigCase(label="PUT", config={"method": "PUT"}, expect_error="'GET' or 'POST'"),
    ConfigCase(label="xml encoding", config={"encoding": "xml"}, expect_error="'form' or 'json'"),
    ConfigCase(
        label="GET with JSON",
        config={"method": "GET", "encoding": "json"},
        expect_error="needs method POST",
    ),
    ConfigCase(
        label="unknown placeholder",
        config={"params": {"t": "{text}", "n": "{to}", "x": "{name}"}},
        expect_error="unknown placeholder {name}",
    ),
    ConfigCase(
        label="attribute access is not a placeholder",
        config={"params": {"t": "{text.upper}", "n": "{to}"}},
        expect_error="unknown placeholder {text.upper}",
    ),
    ConfigCase(
        label="positional placeholder",
        config={"params": {"t": "{text}", "n": "{0}"}},
        expect_error="unknown placeholder {0}",
    ),
    ConfigCase(
        label="unpaired open brace",
        config={"params": {"t": "{text", "n": "{to}"}},
        expect_error="unpaired '{'",
    ),
    ConfigCase(
        label="unpaired close brace",
        config={"params": {"t": "{text}}", "n": "{to}"}},
        expect_error="unpaired '}'",
    ),
    ConfigCase(label="no {text}", config={"params": {"n": "{to}"}}, expect_error="use {text}"),
    ConfigCase(
        label="no destination",
        config={"params": {"t": "{text}"}},
        expect_error="use {to}, {to_plus} or {to_national}",
    ),
    ConfigCase(
        label="empty param name",
        config={"params": {"": "x", "t": "{text}", "n": "{to}"}},
        expect_error="empty name",
    ),
    ConfigCase(
        label="bad header name",
        config={"headers": {"Bad Header": "x"}, "secret_headers": []},
        expect_error="not a valid HTTP header name",
    ),
    ConfigCase(
        label="header with a line break",
        config={"headers": {"X-A": "a\r\nX-B: b"}, "secret_headers": []},
        expect_error="line break",
    ),
    ConfigCase(
        label="secret header not in headers",
        config={"secret_headers": ["X-Token"]},
        expect_error="not in headers",
    ),
    ConfigCase(
        label="short secret header",
        config={"headers": {"X-Auth": "ab"}},
        expect_error="at least 4 characters",
    ),
    ConfigCase(
        label="secret param not in params",
        config={"secret_params": ["key"]},
        expect_error="not in params",
    ),
    ConfigCase(
        label="secret param is a template",
        config={
            "params": {"t": "{text}", "n": "{to}", "k": "{message_id}"},
            "secret_params": ["k"],
        },
        expect_error="must be a fixed value",
    ),
    ConfigCase(
        label="username without password",
        config={"username": "u"},
        expect_error="both username and password",
    ),
    ConfigCase(
        label="short password",
        config={"username": "u", "password": "pw"},
        expect_error="at least 4 characters",
    ),
    ConfigCase(
        label="empty success_status",
        config={"success_status": []},
        expect_error="at least one status",
    ),
    ConfigCase(
        label="success_status not HTTP",
        config={"success_status": [700]},
        expect_error="not an HTTP status",
    ),
    ConfigCase(
        label="bad success_regex",
        config={"success_regex": "(OK"},
        expect_error="not a valid regular expression",
    ),
    ConfigCase(
        label="bad provider_id_path",
        config={"provider_id_path": "data..id"},
        expect_error="dotted names",
    ),
    ConfigCase(
        label="bad idempotency header",
        config={"idempotency_header": "Idem Key"},
        expect_error="not a valid HTTP header name",
    ),
    ConfigCase(
        label="idempotency header also in headers",
        config={"headers": {"Idempotency-Key": "fixed"}, "secret_headers": []},
        expect_error="both in headers and as idempotency_header",
    ),
    ConfigCase(
        label="bad status_map",
        config={"status_map": {"3": "gone"}},
        expect_error="'sent', 'delivered' or 'failed'",
    ),
    ConfigCase(
        label="unknown field",
        config={"body_template": "x"},
        expect_error="Extra inputs are not permitted",
    ),
    ConfigCase(label="zero timeout", config={"timeout_s": 0}, expect_error="greater than 0"),
    ConfigCase(
        label="loopback refused when private addresses are forbidden",
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "off"},
        expect_error="private or local address (127.0.0.1)",
    ),
    *[
        ConfigCase(
            label=f"{url} refused when private addresses are forbidden",
            config={"url": url},
            env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "false"},
            expect_error="private or local address",
        )
        for url in (
            "http://10.1.2.3/send",
            "http://192.168.0.10/send",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/send",
            "http://[::ffff:127.0.0.1]/send",
            "http://0.0.0.0/send",
            "http://localhost/send",
        )
    ],
    ConfigCase(
        label="public address accepted when private addresses are forbidden",
        config={"url": "https://93.184.216.34/send"},
        env={"CASEREACH_GATEWAY_ALLOW_PRIVATE": "false"},
    ),
    ConfigCase(
        label="private address accepted by default",
        config={"url": "http://10.1.2.3/send"},
    ),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.label)
def test_config(case: ConfigCase, config: dict[str, Any]) -> None:
    run_config_case(HttpGateway, config, case)


WITH_PROVIDER_IDS = {"provider_id_path": "data.id"}

STATUS_CASES = [
    StatusCase(
        label="form, our id",
        form={"id": MSG_ID, "status": "delivered"},
        expect=[StatusUpdate(provider_id=MSG_ID, status="delivered", is_our_id=True)],
    ),
    StatusCase(
        label="provider id when provider_id_path is set",
        config=WITH_PROVIDER_IDS,
        form={"id": "p-77", "status": "DELIVRD"},
        expect=[StatusUpdate(provider_id="p-77", status="delivered")],
    ),
    *[
        StatusCase(
            label=f"{word} is sent",
            form={"id": "m1", "status": word},
            expect=[StatusUpdate(provider_id="m1", status="sent", is_our_id=True)],
        )
        for word in ("sent", "Accepted", "SUBMITTED", "ENROUTE")
    ],
    *[
        StatusCase(
            label=f"{word} is failed",
            form={"id": "m1", "status": word},
            expect=[
                StatusUpdate(
                    provider_id="m1",
                    status="failed",
                    error_code=GATEWAY_ERROR,
                    provider_code=word,
                    is_our_id=True,
                )
            ],
        )
        for word in ("failed", "undelivered", "REJECTD", "expired")
    ],
    StatusCase(
        label="failed with the provider's code",
        form={"id": "m1", "status": "failed", "code": "E42"},
        expect=[
            StatusUpdate(
                provider_id="m1",
                status="failed",
                error_code=GATEWAY_ERROR,
                provider_code="E42",
                is_our_id=True,
            )
        ],
    ),
    StatusCase(
        label="JSON object",
        body=b'{"id": "m2", "status": "delivered"}',
        content_type="application/json",
        expect=[StatusUpdate(provider_id="m2", status="delivered", is_our_id=True)],
    ),
    StatusCase(
        label="JSON list",
        config=WITH_PROVIDER_IDS,
        body=b'[{"id": 17, "status": "sent"}, {"id": "18", "status": "failed", "code": 5}]',
        content_type="application/json",
        expect=[
            StatusUpdate(provider_id="17", status="sent"),
            StatusUpdate(
                provider_id="18", status="failed", error_code=GATEWAY_ERROR, provider_code="5"
            ),
        ],
    ),
    StatusCase(
        label="raw form body",
        body=b"id=m3&status=delivered",
        expect=[StatusUpdate(provider_id="m3", status="delivered", is_our_id=True)],
    ),
    StatusCase(
        label="status_map adds words",
        config={"status_map": {"D": "delivered"}},
        form={"id": "m4", "status": "d"},
        expect=[StatusUpdate(provider_id="m4", status="delivered", is_our_id=True)],
    ),
    StatusCase(label="no id", form={"status": "delivered"}, expect_error="no 'id'"),
    StatusCase(label="blank id", form={"id": " ", "status": "delivered"}, expect_error="no 'id'"),
    StatusCase(label="no status", form={"id": "m1"}, expect_error="no 'status'"),
    StatusCase(
        label="unknown status",
        form={"id": "m1", "status": "lost"},
        expect_error="unknown status 'lost'",
    ),
    StatusCase(label="empty", expect_error="empty status callback"),
    StatusCase(
        label="garbage JSON",
        body=b"{nope",
        content_type="application/json",
        expect_error="not valid JSON",
    ),
    StatusCase(
        label="JSON scalar",
        body=b"42",
        content_type="application/json",
        expect_error="object or a list",
    ),
    StatusCase(
        label="JSON empty list",
        body=b"[]",
        content_type="application/json",
        expect_error="object or a list",
    ),
    StatusCase(
        label="garbage form",
        body=b"\xff\xfe",
        content_type="text/plain",
        expect_error="not valid UTF-8",
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
    run_status_case(HttpGateway, config, case)


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("{to}", "254700123456"),
        ("{to_plus}", "+254700123456"),
        ("{to_national}", "0700123456"),
        ("{from}", "CLINIC"),
        ("{message_id}", MSG_ID),
        ("Msg: {text}!", "Msg: hi {there}!"),
        ("{{to}}", "{to}"),
        ("{{{to}}}", "{254700123456}"),
        ("a}}b{{c", "a}b{c"),
        ("no placeholders", "no placeholders"),
        ("", ""),
    ],
)
def test_template_render(source: str, rendered: str) -> None:
    values = {
        "to": "254700123456",
        "to_plus": "+254700123456",
        "to_national": "0700123456",
        "from": "CLINIC",
        "text": "hi {there}",  # a value's braces are never re-read as a template
        "message_id": MSG_ID,
    }
    assert rendered == template.render(source, values)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{}", "unknown placeholder {}"),
        ("{to!r}", "unknown placeholder {to!r}"),
        ("{to:>10}", "unknown placeholder {to:>10}"),
        ("{text[0]}", "unknown placeholder {text[0]}"),
        ("{", "unpaired '{'"),
        ("}", "unpaired '}'"),
        ("{{to}", "unpaired '}'"),
    ],
)
def test_template_refuses(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        template.parse(source)


def test_registered() -> None:
    assert gateway_class("http") is HttpGateway
    assert ("password",) == HttpGateway.secret_fields
    assert HttpGateway.supports_idempotency is True
