"""Too many requests with one key → 429 with Retry-After (commcare-export sleeps and retries)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from casereach.projects import auth
from casereach.testing.world import Api


def test_429_with_retry_after(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "BUCKET", auth._Bucket(rate=0.5, burst=2))
    statuses = [api.get("/a/{project}/api/v0.5/case/").status for _ in range(3)]
    assert [200, 200, 429] == statuses
    r = api.get("/a/{project}/api/case/v2/")
    assert 429 == r.status
    assert int(r.headers["Retry-After"]) >= 1
    assert "error" in r.body


def test_bad_api_keys_from_one_address_are_throttled(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=5, window=300))
    client = Client()
    url = "/a/demo/api/case/v2/"

    def status(authorization: str, address: str) -> int:
        r = client.get(url, HTTP_AUTHORIZATION=authorization, REMOTE_ADDR=address)
        return r.status_code

    guesses = [status(f"ApiKey {api.username}:guess{i}", "10.0.0.1") for i in range(8)]
    assert [401] * 5 + [429] * 3 == guesses
    r = client.get(url, HTTP_AUTHORIZATION="ApiKey x:another-guess", REMOTE_ADDR="10.0.0.1")
    assert 429 == r.status_code
    assert 1 <= int(r["Retry-After"]) <= 300
    assert "Too many requests; retry later" == r.json()["error"]
    # A valid key is never refused for others' guesses: 192 random bits cannot be guessed,
    # and a client sharing the address (a NAT, a proxy) keeps working.
    assert 200 == status(api.auth, "10.0.0.1")
    assert 401 == status("ApiKey x:guess", "10.0.0.2")  # other addresses are not affected


def test_bad_api_keys_behind_a_proxy_count_per_forwarded_address(
    api: Api, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CASEREACH_CLIENT_IP_HEADER = "X-Forwarded-For"
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=2, window=300))
    client = Client()
    for _ in range(2):
        client.get(
            "/a/demo/api/case/v2/",
            HTTP_AUTHORIZATION="ApiKey x:y",
            HTTP_X_FORWARDED_FOR="1.2.3.4, 10.0.0.7",
            REMOTE_ADDR="127.0.0.1",
        )
    blocked = client.get(
        "/a/demo/api/case/v2/",
        HTTP_AUTHORIZATION="ApiKey x:y",
        HTTP_X_FORWARDED_FOR="10.0.0.7",
        REMOTE_ADDR="127.0.0.1",
    )
    allowed = client.get(
        "/a/demo/api/case/v2/",
        HTTP_AUTHORIZATION="ApiKey x:y",
        HTTP_X_FORWARDED_FOR="10.0.0.8",
        REMOTE_ADDR="127.0.0.1",
    )
    assert (429, 401) == (blocked.status_code, allowed.status_code)
