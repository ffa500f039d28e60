"""Too many requests with one key → 429 with Retry-After (commcare-export sleeps and retries)."""

from __future__ import annotations

import pytest

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
