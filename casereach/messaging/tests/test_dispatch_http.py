"""The dispatcher against a real local provider: masked attempt logs, Retry-After, the
circuit breaker, unknown outcomes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.gateways.models import GatewayState
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message, SendAttempt
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def http_gateway(api: Api, provider: ProviderServer, **config: Any) -> None:
    cfg = {
        "url": provider.url + "/send",
        "params": {"to": "{to}", "text": "{text}", "key": "{message_id}"},
        "headers": {"X-Api-Key": "very-secret-key"},
        "secret_headers": ["X-Api-Key"],
        "provider_id_path": "id",
        "timeout_s": 0.5,
        **config,
    }
    r = api.post(M + "gateways", {"name": "HTTP", "type": "http", "config": cfg})
    assert 201 == r.status, r.body
    api.put(M + "routes", {"default_gateway": "HTTP", "prefixes": []})


def run_once() -> None:
    d = Dispatcher(concurrency=2)
    try:
        d.run_once()
    finally:
        d.close()


def send(api: Api, number: str = NUMBER) -> str:
    r = api.post(M + "send", {"phone_number": number, "text": "Clinic visit"})
    mid: str = r.body["messages"][0]["id"]
    return mid


def test_attempt_log_is_masked(api: Api, provider: ProviderServer) -> None:
    http_gateway(api, provider)
    provider.script("/send", Reply(200, {"id": "prov-1"}))
    mid = send(api)
    run_once()
    m = Message.objects.get(id=mid)
    assert ("sent", "prov-1") == (m.status, m.provider_id)
    attempt = SendAttempt.objects.get(message_id=mid)
    logged = attempt.request + attempt.response
    assert attempt.request
    assert "very-secret-key" not in logged
    assert NUMBER not in logged
    detail = api.get(M + f"messages/{mid}").body
    assert "very-secret-key" not in str(detail)
    assert [mid] == [r.headers.get("idempotency-key") for r in provider.requests]


def test_retry_after_is_honoured(api: Api, provider: ProviderServer) -> None:
    http_gateway(api, provider)
    provider.script("/send", Reply(429, "slow down", headers={"Retry-After": "3600"}))
    mid = send(api)
    run_once()
    m = Message.objects.get(id=mid)
    assert ("queued", "GATEWAY_ERROR", "429") == (m.status, m.error_code, m.provider_code)
    assert m.next_attempt_at is not None
    assert m.next_attempt_at - now() > dt.timedelta(minutes=59)


def test_timeout_after_sending_is_an_unknown_outcome_retried_with_the_same_key(
    api: Api, provider: ProviderServer
) -> None:
    http_gateway(api, provider)
    provider.script("/send", Reply(200, {"id": "late"}, delay_s=1.5), Reply(200, {"id": "p2"}))
    mid = send(api)
    run_once()
    m = Message.objects.get(id=mid)
    assert ("queued", 1) == (m.status, m.unknown_outcomes)
    Message.objects.filter(id=mid).update(next_attempt_at=now())
    run_once()
    assert "sent" == Message.objects.get(id=mid).status
    keys = [r.headers.get("idempotency-key") for r in provider.requests]
    assert [mid, mid] == keys
    assert ["unknown", "sent"] == list(
        SendAttempt.objects.filter(message_id=mid).order_by("id").values_list("outcome", flat=True)
    )


def test_circuit_opens_after_repeated_failures(api: Api, provider: ProviderServer) -> None:
    http_gateway(api, provider)
    provider.script("/send", *[Reply(503, "down")] * 5)
    ids = [send(api, f"25471200000{i}") for i in range(5)]
    run_once()
    state = GatewayState.objects.get()
    assert 5 == state.consecutive_failures
    assert state.open_until is not None and state.open_until > now()
    later = send(api, "254712000099")
    run_once()
    m = Message.objects.get(id=later)
    assert ("queued", 0) == (m.status, m.attempts)  # waiting for the circuit, not an attempt
    assert m.next_attempt_at == state.open_until
    assert 5 == len(provider.requests)
    assert all(Message.objects.get(id=i).status == "queued" for i in ids)


def _sent_stamps(ids: list[str]) -> list[dt.datetime]:
    stamps = [m.sent_on for m in Message.objects.filter(id__in=ids)]
    assert all(s is not None for s in stamps)
    return sorted(s for s in stamps if s is not None)


@pytest.mark.parametrize("mode", ["stream", "run_once"])
def test_one_slow_call_holds_one_slot_when_streaming(
    api: Api, provider: ProviderServer, mode: str
) -> None:
    """``stream`` (what serve runs) completes the fast messages while a slow call is still in
    flight; ``run_once`` (one batch per Celery task) completes its batch together."""
    http_gateway(api, provider, timeout_s=5, max_in_flight=4)
    provider.script("/send", Reply(200, {"id": "slow"}, delay_s=2.0))
    provider.script("/send", *[Reply(200, {"id": f"p-{i}"}) for i in range(9)])
    ids = [send(api, f"2547000000{i:02d}") for i in range(10)]
    d = Dispatcher(concurrency=4)
    try:
        handled = d.stream(until_idle=True) if mode == "stream" else d.run_once()
    finally:
        d.close()

    assert 10 == handled
    stamps = _sent_stamps(ids)
    assert 10 == len(stamps)
    slow_lead = stamps[-1] - stamps[-2]  # how long the last fast one finished before the slow
    if mode == "stream":
        assert slow_lead > dt.timedelta(seconds=1.5)
    else:
        assert dt.timedelta(0) == slow_lead


def test_stopping_a_stream_puts_unsent_claims_back_without_an_attempt(
    api: Api, provider: ProviderServer
) -> None:
    http_gateway(api, provider, timeout_s=5, max_in_flight=1)
    provider.script("/send", *[Reply(200, {"id": f"p-{i}"}, delay_s=0.3) for i in range(5)])
    ids = [send(api, f"2547000000{i:02d}") for i in range(5)]
    d = Dispatcher(concurrency=1)
    try:
        claimed = d.stream(max_seconds=0.1)
    finally:
        d.close()

    assert 5 == claimed
    rows = list(Message.objects.filter(id__in=ids).values("status", "attempts", "lease_token"))
    assert [("sent", 1, None)] + [("queued", 0, None)] * 4 == sorted(
        ((r["status"], r["attempts"], r["lease_token"]) for r in rows), reverse=True
    )
    assert 1 == len(provider.requests)


def test_a_stream_keeps_the_daily_limit_with_sends_in_flight(
    api: Api, provider: ProviderServer
) -> None:
    """The next batch is claimed while the previous one's calls are in flight, so the daily
    count must include what this dispatcher is still sending."""
    http_gateway(api, provider, timeout_s=5)
    assert 200 == api.put(M + "settings", {"daily_limit": 3}).status
    provider.script("/send", *[Reply(200, {"id": f"p-{i}"}, delay_s=0.3) for i in range(6)])
    ids = [send(api, f"2547000000{i:02d}") for i in range(6)]
    d = Dispatcher(batch_size=2, concurrency=4)
    try:
        d.stream(until_idle=True)
    finally:
        d.close()

    outcomes = sorted(
        Message.objects.filter(id__in=ids).values_list("status", "error_code"),
        key=lambda r: (r[0], r[1] or ""),
    )
    assert [("queued", "DAILY_LIMIT_REACHED")] * 3 + [("sent", None)] * 3 == outcomes
    assert 3 == len(provider.requests)
