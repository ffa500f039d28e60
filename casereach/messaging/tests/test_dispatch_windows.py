"""Calls in flight per gateway (``max_in_flight``), not per process: a provider that holds
each request and counts how many it holds at once, per path."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message
from casereach.testing.provider import ProviderServer, RecordedRequest, Reply
from casereach.testing.world import Api
from casereach.web.gateway_form import type_fields

M = "/a/{project}/api/messaging/v1/"
HOLD_S = 0.5
ACCOUNT = "AC" + "0123456789abcdef" * 2
TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


class HoldingProvider(ProviderServer):
    """Each reply waits ``HOLD_S``; ``peak[path]`` is the most requests held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.peak: dict[str, int] = defaultdict(int)

    def _take(self, request: RecordedRequest) -> Reply:
        at = time.monotonic()
        with self._lock:
            seen = self.arrivals[request.path]
            seen.append(at)
            held = sum(1 for t in seen if at - t < HOLD_S * 0.9)
            self.peak[request.path] = max(self.peak[request.path], held)
        return super()._take(request)

    def hold(self, path: str, count: int) -> None:
        self.script(path, *[Reply(200, {"id": f"p{i}"}, delay_s=HOLD_S) for i in range(count)])


def http_gateway(api: Api, name: str, url: str, **extra: Any) -> dict[str, Any]:
    config = {"url": url, "params": {"to": "{to}", "text": "{text}"}, "provider_id_path": "id"}
    config.update(extra.pop("config", {}))
    r = api.post(M + "gateways", {"name": name, "type": "http", "config": config, **extra})
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def send(api: Api, number: str) -> str:
    r = api.post(M + "send", {"phone_number": number, "text": "Clinic visit"})
    assert 202 == r.status, r.body
    mid: str = r.body["messages"][0]["id"]
    return mid


def stream(threads: int = 2) -> int:
    d = Dispatcher(concurrency=threads)
    try:
        return d.stream(until_idle=True, max_seconds=60)
    finally:
        d.close()


def test_a_gateway_keeps_its_max_in_flight_calls_in_flight_whatever_the_threads(
    api: Api,
) -> None:
    with HoldingProvider() as provider:
        http_gateway(api, "HTTP", provider.url + "/send", config={"max_in_flight": 8})
        api.put(M + "routes", {"default_gateway": "HTTP", "prefixes": []})
        provider.hold("/send", 20)
        ids = [send(api, f"2547120000{i:02d}") for i in range(20)]
        stream(threads=2)
        assert 20 == len(provider.requests)
        assert 8 == provider.peak["/send"]
    assert ["sent"] * 20 == [Message.objects.get(id=i).status for i in ids]


def test_two_gateways_each_get_their_own_window(api: Api) -> None:
    with HoldingProvider() as provider:
        http_gateway(api, "A", provider.url + "/a", config={"max_in_flight": 3})
        http_gateway(api, "B", provider.url + "/b", config={"max_in_flight": 5})
        api.put(
            M + "routes",
            {"default_gateway": "A", "prefixes": [{"prefix": "255", "gateway": "B"}]},
        )
        provider.hold("/a", 12)
        provider.hold("/b", 10)
        # A's backlog is claimed first; B's messages still go out next to it, not behind it.
        ids = [send(api, f"2547120000{i:02d}") for i in range(12)]
        ids += [send(api, f"2557120000{i:02d}") for i in range(10)]
        stream(threads=1)
        assert {"/a": 3, "/b": 5} == dict(provider.peak)
    assert ["sent"] * 22 == [Message.objects.get(id=i).status for i in ids]


def test_one_batch_of_run_once_keeps_each_gateways_window(api: Api) -> None:
    """The scale-out task's path (``run_once``): the same per-gateway windows, and the
    thread-pool types (Twilio) at most the dispatcher's threads."""
    with HoldingProvider() as provider:
        http_gateway(api, "HTTP", provider.url + "/send", config={"max_in_flight": 4})
        twilio = {"account_sid": ACCOUNT, "auth_token": "0f" * 16, "max_in_flight": 16}
        twilio.update(from_number="+15005550006", base_url=provider.url)
        r = api.post(M + "gateways", {"name": "TW", "type": "twilio", "config": twilio})
        assert 201 == r.status, r.body
        api.put(
            M + "routes",
            {"default_gateway": "HTTP", "prefixes": [{"prefix": "255", "gateway": "TW"}]},
        )
        provider.hold("/send", 6)
        provider.script(
            TWILIO_PATH,
            *[Reply(201, {"sid": f"SM{i}", "status": "queued"}, delay_s=HOLD_S) for i in range(6)],
        )
        ids = [send(api, f"2547120000{i:02d}") for i in range(6)]
        ids += [send(api, f"2557120000{i:02d}") for i in range(6)]
        d = Dispatcher(concurrency=2)
        try:
            assert 12 == d.run_once()
        finally:
            d.close()
        assert {"/send": 4, TWILIO_PATH: 2} == dict(provider.peak)
    assert ["sent"] * 12 == [Message.objects.get(id=i).status for i in ids]


def test_the_rate_limit_bounds_a_wide_window(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 50 calls allowed in flight and 5 a second allowed, one instant sends 5 (the
    bucket holds a second's worth) and puts the rest after them, a fifth of a second apart."""
    with HoldingProvider() as provider:
        http_gateway(
            api,
            "HTTP",
            provider.url + "/send",
            config={"max_in_flight": 50},
            rate_limit_per_s=5,
        )
        api.put(M + "routes", {"default_gateway": "HTTP", "prefixes": []})
        provider.hold("/send", 20)
        ids = [send(api, f"2547120000{i:02d}") for i in range(20)]
        frozen = now()
        monkeypatch.setattr(Dispatcher, "clock", lambda self: frozen)
        stream()
        assert 5 == len(provider.requests)
    rows = Message.objects.filter(id__in=ids)
    assert 5 == rows.filter(status="sent").count()
    later = sorted(m.next_attempt_at for m in rows.filter(status="queued"))
    assert 15 == len(later)
    assert all(t is not None and t > frozen for t in later)
    assert 3.0 == round((later[-1] - frozen).total_seconds(), 1)  # 15 more at 5/s


def test_max_in_flight_has_a_default_per_type_and_is_validated(api: Api) -> None:
    gw = http_gateway(api, "HTTP", "https://sms.example.org/send")
    assert 500 == gw["config"]["max_in_flight"]
    r = api.post(M + "gateways", {"name": "T", "type": "test", "config": {}})
    assert 16 == r.body["config"]["max_in_flight"]
    for bad in (0, 1001, "many", 2.5):
        r = api.put(M + f"gateways/{gw['id']}", {"config": {**gw["config"], "max_in_flight": bad}})
        assert 400 == r.status, bad
        assert "max_in_flight" in r.body["error"]
    r = api.put(M + f"gateways/{gw['id']}", {"config": {**gw["config"], "max_in_flight": 300}})
    assert 200 == r.status, r.body
    assert 300 == r.body["config"]["max_in_flight"]


@pytest.mark.parametrize(
    ("slug", "default"),
    [
        ("http", "500"),
        ("twilio", "16"),
        ("africastalking", "16"),
        ("smpp", "10"),
        ("email", "4"),
        ("whatsapp_cloud", "100"),
        ("turn", "100"),
    ],
)
def test_the_gateway_form_shows_max_in_flight(slug: str, default: str) -> None:
    [field] = [f for f in type_fields(slug, {}, None) if f["name"] == "max_in_flight"]
    assert ("number", default) == (field["kind"], field["value"])
