"""Paging numbers, API-key headers and body sizes outside what the server takes are 4xx JSON
answers, never a 500 or an HTML page (issue 15, items 11 and 12)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from casereach.api.main import api as ninja_api
from casereach.core.requests import MAX_OFFSET
from casereach.testing.world import Api

HUGE = "9223372036854775808"
M = "/a/{project}/api/messaging/v1/"


# Paged lists whose query parameters the document does not spell out.
UNDOCUMENTED = [
    "/a/{project}/api/messaging/v1/messages",
    "/a/{project}/api/messaging/v1/opt-outs",
    "/a/{project}/api/v0.5/user/",
    "/a/{project}/api/user/v1/",
    "/a/{project}/api/case/v1/",
]


def paged_operations() -> list[str]:
    """Every GET of the OpenAPI document that takes ``offset``, and the undocumented ones."""
    schema: dict[str, Any] = ninja_api.get_openapi_schema()
    out = [p for p in UNDOCUMENTED if p in schema["paths"]]
    for path, item in schema["paths"].items():
        params = item.get("get", {}).get("parameters", [])
        if any(p.get("name") == "offset" and p.get("in") == "query" for p in params):
            out.append(path)
    return sorted(set(out))


def test_the_document_has_paged_operations() -> None:
    paths = paged_operations()
    for name in ("phone-numbers", "messages", "opt-outs", "v0.5/case/", "v0.5/user/"):
        assert any(p.endswith("/" + name) for p in paths), (name, paths)


@pytest.mark.parametrize("offset", [HUGE, "-" + HUGE, str(MAX_OFFSET + 1), "9" * 5000])
def test_an_offset_out_of_bounds_is_never_a_server_error(api: Api, offset: str) -> None:
    """400, or for the CommCare (tastypie) lists an empty page as HQ answers."""
    failures = []
    for path in paged_operations():
        concrete = re.sub(r"\{(?!project\})[^}]+\}", "1", path)
        r = api.get(concrete, offset=offset)
        if r.status not in (200, 400) or not isinstance(r.body, dict):
            failures.append(f"GET {path}: {r.status} {r.raw[:80]!r}")
    assert [] == failures


@pytest.mark.parametrize("name", ["phone-numbers", "messages", "opt-outs"])
@pytest.mark.parametrize("offset", [HUGE, "-1", str(MAX_OFFSET + 1), "x"])
def test_an_offset_out_of_bounds_is_a_400(api: Api, name: str, offset: str) -> None:
    r = api.get(M + name, offset=offset)
    assert 400 == r.status, r.raw[:200]
    assert "offset" in r.body["error"]


@pytest.mark.parametrize("name", ["phone-numbers", "messages", "opt-outs"])
def test_the_largest_offset_is_an_empty_page(api: Api, name: str) -> None:
    r = api.get(M + name, offset=str(MAX_OFFSET))
    assert 200 == r.status, r.body


@pytest.mark.parametrize("username", ["uä", "u\u00e4\u20ac", "\U0001f600"])
def test_a_non_ascii_username_with_a_valid_key_is_401(api: Api, username: str) -> None:
    header = f"ApiKey {username}:{api.key}"
    # Test-client headers travel as WSGI (latin-1) strings, as a real server hands them over.
    raw = header.encode("utf-8").decode("latin-1")
    r = api.get(M + "settings", auth=raw)
    assert 401 == r.status, r.raw[:200]
    assert "error" in r.body


def oversize(path: str, content_type: str, size: int) -> Any:
    return Client().generic("POST", path, b"x" * size, content_type=content_type)


@pytest.mark.parametrize(
    "path",
    [
        "/a/demo/api/messaging/v1/send",
        "/a/demo/api/case/v2/",
        "/a/demo/api/messaging/v1/settings",
        "/gateways/test/any-key/inbound",
        "/gateways/twilio/any-key/status",
    ],
)
def test_a_body_over_the_limit_is_a_json_413(api: Api, path: str, settings: Any) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    resp = oversize(path, "application/json", limit + 1)
    assert 413 == resp.status_code, resp.content[:200]
    assert "application/json" == resp["Content-Type"]
    assert {"max_bytes": limit} == resp.json()["detail"]


def test_a_10_mb_json_body_is_a_json_413(api: Api) -> None:
    body = b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = api.post(M + "send", raw=body)
    assert 413 == r.status, r.raw[:200]
    assert r.body["error"].startswith("request body too large")


def test_a_body_at_the_limit_is_read(api: Api, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = api.post(M + "send", raw=b" " * 990 + b"[1]")
    assert 400 == r.status  # read and refused for its content, not its size
    r = api.post(M + "send", raw=b" " * 1000 + b"[1]")
    assert 413 == r.status
