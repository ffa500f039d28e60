"""Reading a request's JSON body and paging arguments, the same way for every API.

Bad input is a ``BadRequest`` (a 400 with a JSON error body), never a 500: that covers bytes
that are not UTF-8, text that is not JSON, and JSON nested deeper than the parser's recursion
limit.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from django.http import HttpRequest

from casereach.core.errors import BadRequest

# A ``\uD800``-``\uDFFF`` escape: JSON allows it, but alone (not as half of a pair) it decodes
# to a string no database or encoder accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON; BadRequest for bytes that are not UTF-8, text that is not JSON, JSON
    nested too deep, and strings holding an unpaired surrogate."""
    try:
        data = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("Payload must be valid JSON") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then pay for the check
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                "Payload must be valid JSON",
                "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text",
            ) from None
        except RecursionError:
            raise BadRequest("Payload must be valid JSON") from None
    return data


def json_body(request: HttpRequest) -> Any:
    """The body as JSON of any shape (an empty body reads as invalid JSON)."""
    return parse_json(request.body)


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The body as one JSON object."""
    data = json_body(request)
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    return data


def page_args(request: HttpRequest, *, default: int = 100, most: int = 1000) -> tuple[int, int]:
    """``limit`` (clamped to 1..most) and ``offset`` (≥ 0) from the query string."""
    try:
        limit = min(most, max(1, int(request.GET.get("limit", str(default)))))
        offset = max(0, int(request.GET.get("offset", "0")))
    except ValueError:
        raise BadRequest("limit and offset must be integers") from None
    return limit, offset


def public_base_url() -> str:
    """CASEREACH_PUBLIC_URL without its trailing slash: the address providers and people reach
    this server at (behind a proxy), or "" when unset."""
    return os.environ.get("CASEREACH_PUBLIC_URL", "").strip().rstrip("/")


def absolute_url(request: HttpRequest, path: str) -> str:
    """``path`` on this server as the outside world reaches it: CASEREACH_PUBLIC_URL when set,
    else the host the request came to."""
    base = public_base_url()
    return base + path if base else request.build_absolute_uri(path)
