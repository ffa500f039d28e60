"""Every JSON-taking operation of the OpenAPI document answers bad JSON with a 4xx JSON
error: bytes that are not UTF-8, text that is not JSON, and JSON nested past the parser's
recursion limit (which once escaped as a 500)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from casereach.api.main import api as ninja_api
from casereach.testing.world import Api

BAD_BODIES = {
    "not utf-8": b"\xff\xfe{",
    "not json": b"{'a': 1",
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "encoded surrogate": b'{"a": "\xed\xa0\x80"}',
    "lone surrogate escape": b'{"a": ["\\udc00"]}',
}


def _takes_json(op: dict[str, Any]) -> bool:
    """The operation documents a JSON body (or none: then it reads whatever comes); the form
    receiver takes only XML and answers in OpenRosa XML."""
    content = op.get("requestBody", {}).get("content")
    return content is None or "application/json" in content


def json_operations() -> list[tuple[str, str]]:
    schema: dict[str, Any] = ninja_api.get_openapi_schema()
    out = []
    for path, item in schema["paths"].items():
        for method in ("post", "put", "patch"):
            if method in item and path.startswith("/a/{project}/") and _takes_json(item[method]):
                out.append((method.upper(), path))
    return sorted(out)


def test_the_document_has_json_operations_to_check() -> None:
    assert len(json_operations()) >= 15


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(BAD_BODIES))
def test_bad_json_is_a_4xx_json_error_on_every_operation(api: Api, label: str) -> None:
    failures = []
    for method, path in json_operations():
        concrete = re.sub(r"\{(?!project\})[^}]+\}", "1", path)
        r = api.call(method, concrete, raw=BAD_BODIES[label])
        if not (400 <= r.status < 500) or not isinstance(r.body, dict):
            failures.append(f"{method} {path}: {r.status} {r.content[:80]!r}")
    assert [] == failures
