"""Table-driven tests for gateway types, against the local provider (``casereach.testing.provider``).

Tests are tables of labelled cases, one dataclass per kind:

* ``OutgoingCase`` + ``run_outgoing_case``: one ``send()``; checks the request the provider
  received, the result or the error, that every scripted reply was used, that no other host was
  called, and that no secret nor full phone number reached ``last_exchange``;
* ``StatusCase`` + ``run_status_case``: one status callback through ``parse_status()``;
* ``ConfigCase`` + ``run_config_case``: one configuration, accepted or refused with a message.

Tests only (it raises ``AssertionError``); the wheel does not ship ``casereach.testing``.
``ProviderServer``, ``Reply`` and ``RecordedRequest`` are re-exported for the tables' users.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from pydantic import ValidationError

from casereach.gateways.base import (
    Exchange,
    Gateway,
    GatewayError,
    OutgoingMessage,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.netpolicy import secret_variants
from casereach.gateways.wire import WirePool
from casereach.testing.provider import ProviderServer, RecordedRequest, Reply

__all__ = [
    "DEFAULT_MESSAGE",
    "ConfigCase",
    "OutgoingCase",
    "ProviderServer",
    "RecordedRequest",
    "Reply",
    "StatusCase",
    "run_config_case",
    "run_outgoing_case",
    "run_status_case",
    "secret_values",
]

DEFAULT_MESSAGE = OutgoingMessage(
    message_id="0f6c2a9e-msg-1",
    channel="sms",
    text="Clinic visit tomorrow at 9",
    to="254700123456",
    sender="",
)


# --- shared checks -----------------------------------------------------------------------------


def secret_values(gateway: Gateway) -> list[str]:
    """The secret values of a configured gateway (its ``secret_values()`` if it has one)."""
    method = getattr(gateway, "secret_values", None)
    if callable(method):
        return [str(v) for v in method() if v]
    values = []
    for name in gateway.secret_fields:
        value = getattr(gateway.config, name, None)
        if value:
            values.append(str(value))
    return values


def _exchange_text(exchange: Exchange) -> str:
    return "\n".join([exchange.request, exchange.response, json.dumps(exchange.extra, default=str)])


def _check_exchange_masked(gateway: Gateway, message: OutgoingMessage, label: str) -> None:
    exchange = getattr(gateway, "last_exchange", None)
    if exchange is None:
        return
    assert isinstance(exchange, Exchange), f"{label}: last_exchange is not an Exchange"
    text = _exchange_text(exchange)
    for secret in secret_variants(secret_values(gateway)):
        assert secret not in text, f"{label}: a secret leaked into the exchange log:\n{text}"
    if message.to:
        assert message.to not in text, f"{label}: the full number leaked into the log:\n{text}"


@contextmanager
def _environment(overrides: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _check_subset(
    label: str, what: str, expected: Mapping[str, Any], actual: Mapping[str, Any]
) -> None:
    for key, value in expected.items():
        if value is None:
            assert key not in actual, (
                f"{label}: {what} {key!r} should be absent, got {actual[key]!r}"
            )
        else:
            assert key in actual, f"{label}: {what} {key!r} missing; got {dict(actual)!r}"
            assert value == actual[key], (
                f"{label}: {what} {key!r}: expected {value!r}, got {actual[key]!r}"
            )


# --- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingCase:
    """One row of a send table.

    ``replies`` maps a path on the local server to the replies it plays, in order. Expectations
    on the request are checked against the first request received; mapping values of ``None``
    mean "must be absent". State ``expect_result`` or ``expect_error``, not both.
    """

    label: str
    replies: Mapping[str, Sequence[Reply]] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    message: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    expect_requests: int | None = None  # default: the number of scripted replies
    expect_method: str | None = None
    expect_path: str | None = None
    expect_query: Mapping[str, str | None] | None = None
    expect_form: Mapping[str, str | None] | None = None
    expect_json: Mapping[str, Any] | None = None
    expect_headers: Mapping[str, str | None] | None = None

    expect_result: SendResult | None = None
    expect_error: str | None = None
    expect_retryable: bool | None = None
    expect_outcome_unknown: bool = False
    expect_retry_after: float | None = None
    expect_provider_code: str | None = None
    expect_in_log: Sequence[str] = ()


def _guarded_client(server: ProviderServer) -> httpx.Client:
    """A client that refuses any host but the local provider server."""

    def guard(request: httpx.Request) -> None:
        if request.url.host != "127.0.0.1" or request.url.port != server.port:
            raise AssertionError(f"real network call attempted: {request.url}")

    return httpx.Client(event_hooks={"request": [guard]}, trust_env=False, timeout=30)


def _send_through_wire(gateway: Gateway, message: OutgoingMessage) -> SendResult:
    """``gateway.send_async`` through a fresh lean-client pool, the exchange kept as
    ``last_exchange`` (as ``send`` keeps it)."""
    assert gateway.sends_async, f"{gateway.slug} has no lean-client path"

    def record(exchange: Exchange) -> None:
        gateway.last_exchange = exchange

    async def go() -> SendResult:
        pool = WirePool()
        try:
            result: SendResult = await gateway.send_async(message, pool, record)
            return result
        finally:
            pool.close()

    gateway.last_exchange = None
    return asyncio.run(go())


def run_outgoing_case(
    gateway_cls: type[Gateway],
    base_config: Mapping[str, Any],
    case: OutgoingCase,
    server: ProviderServer,
    *,
    wire: bool = False,
) -> Gateway:
    """Run one send case against ``server``; raise AssertionError on any mismatch.

    ``wire``: send through the type's lean-client path (``send_async``, what the dispatcher
    uses) instead of ``send``. Returns the gateway (closed) so a test can look further at
    ``last_exchange``.
    """
    label = case.label
    assert (case.expect_result is None) != (case.expect_error is None), (
        f"{label}: state exactly one of expect_result / expect_error"
    )
    server.reset()
    for path, replies in case.replies.items():
        server.script(path, *replies)
    message = replace(DEFAULT_MESSAGE, **dict(case.message))
    client = _guarded_client(server)
    gateway = gateway_cls({**base_config, **case.config}, http=client)
    result: SendResult | None = None
    error: GatewayError | None = None
    try:
        with _environment(case.env):
            result = _send_through_wire(gateway, message) if wire else gateway.send(message)
    except GatewayError as exc:
        error = exc
    finally:
        gateway.close()
        client.close()
    _check_outcome(case, result, error)
    _check_requests(case, server, gateway)
    _check_exchange_masked(gateway, message, label)
    if case.expect_in_log:
        exchange = getattr(gateway, "last_exchange", None)
        assert isinstance(exchange, Exchange), f"{label}: no last_exchange"
        text = _exchange_text(exchange)
        for needle in case.expect_in_log:
            assert needle in text, f"{label}: {needle!r} not in the exchange log:\n{text}"
    return gateway


def _check_outcome(
    case: OutgoingCase, result: SendResult | None, error: GatewayError | None
) -> None:
    label = case.label
    if case.expect_result is not None:
        assert error is None, f"{label}: expected {case.expect_result!r}, got error {error!r}"
        assert case.expect_result == result, (
            f"{label}: expected {case.expect_result!r}, got {result!r}"
        )
    else:
        assert error is not None, f"{label}: expected error {case.expect_error}, got {result!r}"
        assert case.expect_error == error.code, (
            f"{label}: expected {case.expect_error}, got {error!r}"
        )
        if case.expect_retryable is not None:
            assert case.expect_retryable == error.retryable, f"{label}: retryable={error.retryable}"
        assert case.expect_outcome_unknown == error.outcome_unknown, (
            f"{label}: outcome_unknown={error.outcome_unknown}"
        )
        if case.expect_retry_after is None:
            assert error.retry_after is None, f"{label}: unexpected retry_after {error.retry_after}"
        else:
            assert error.retry_after is not None, f"{label}: retry_after missing"
            assert abs(case.expect_retry_after - error.retry_after) <= 3, (
                f"{label}: retry_after {error.retry_after}, expected ~{case.expect_retry_after}"
            )
        if case.expect_provider_code is not None:
            assert case.expect_provider_code == error.provider_code, (
                f"{label}: provider_code {error.provider_code!r}"
            )


def _check_requests(case: OutgoingCase, server: ProviderServer, gateway: Gateway) -> None:
    label = case.label
    assert not server.unexpected, f"{label}: unscripted requests: {server.unexpected!r}"
    assert not server.unused(), f"{label}: scripted replies never requested: {server.unused()!r}"
    expected_count = case.expect_requests
    if expected_count is None:
        expected_count = sum(len(r) for r in case.replies.values())
    assert expected_count == len(server.requests), (
        f"{label}: expected {expected_count} requests, got {len(server.requests)}"
    )
    if server.requests:
        first = server.requests[0]
        if case.expect_method is not None:
            assert case.expect_method == first.method, f"{label}: method {first.method}"
        if case.expect_path is not None:
            assert case.expect_path == first.path, f"{label}: path {first.path}"
        if case.expect_query is not None:
            _check_subset(label, "query", case.expect_query, first.query_one())
        if case.expect_form is not None:
            _check_subset(label, "form field", case.expect_form, first.form())
        if case.expect_json is not None:
            _check_subset(label, "JSON field", case.expect_json, first.json())
        if case.expect_headers is not None:
            expected_headers = {k.lower(): v for k, v in case.expect_headers.items()}
            _check_subset(label, "header", expected_headers, first.headers)
        exchange = getattr(gateway, "last_exchange", None)
        assert isinstance(exchange, Exchange), f"{label}: no last_exchange after a request"


# --- status callbacks --------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCase:
    """One row of a status-callback table: a callback in, updates or a ValueError out."""

    label: str
    form: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/x-www-form-urlencoded"
    config: Mapping[str, Any] = field(default_factory=dict)
    expect: Sequence[StatusUpdate] | None = None
    expect_error: str | None = None  # a substring of the ValueError's message


def run_status_case(
    gateway_cls: type[Gateway], base_config: Mapping[str, Any], case: StatusCase
) -> None:
    label = case.label
    assert (case.expect is None) != (case.expect_error is None), (
        f"{label}: state exactly one of expect / expect_error"
    )
    gateway = gateway_cls({**base_config, **case.config})
    try:
        updates = gateway.parse_status(case.form, case.body, case.content_type)
    except ValueError as exc:
        assert case.expect_error is not None, f"{label}: unexpected ValueError {exc}"
        assert case.expect_error in str(exc), f"{label}: message {str(exc)!r}"
        return
    finally:
        gateway.close()
    assert case.expect is not None, f"{label}: expected ValueError, got {updates!r}"
    assert list(case.expect) == updates, f"{label}: got {updates!r}"


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigCase:
    """One row of a config table: overrides/drops on the base config, accepted or refused."""

    label: str
    config: Mapping[str, Any] = field(default_factory=dict)
    drop: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    expect_error: str | None = None  # a substring of the validation message; None = accepted


def run_config_case(
    gateway_cls: type[Gateway], base_config: Mapping[str, Any], case: ConfigCase
) -> None:
    config = {k: v for k, v in {**base_config, **case.config}.items() if k not in case.drop}
    try:
        with _environment(case.env):
            gateway_cls.config_model.model_validate(config)
    except ValidationError as exc:
        assert case.expect_error is not None, f"{case.label}: refused: {exc}"
        assert case.expect_error in str(exc), f"{case.label}: message was {exc}"
        return
    assert case.expect_error is None, f"{case.label}: accepted, expected {case.expect_error!r}"
