"""Reading a request's JSON body and paging arguments, the same way for every API.

Bad input is a ``BadRequest`` (a 400 with a JSON error body), never a 500: that covers bytes
that are not UTF-8, text that is not JSON, and JSON nested deeper than the parser's recursion
limit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any

from django.http import HttpRequest
from pydantic import Field

from casereach.core import text
from casereach.core.errors import BadRequest


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON; BadRequest for bytes that are not UTF-8 (raw encoded surrogates
    included), text that is not JSON, JSON nested too deep, and strings holding an unpaired
    surrogate (core.text is the one decoder)."""
    try:
        return text.parse_json(raw or b"")
    except text.InvalidText as exc:
        raise BadRequest("Payload must be valid JSON", exc.message) from None
    except ValueError:
        raise BadRequest("Payload must be valid JSON") from None


def json_body(request: HttpRequest) -> Any:
    """The body as JSON of any shape (an empty body reads as invalid JSON)."""
    return parse_json(request.body)


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The body as one JSON object."""
    data = json_body(request)
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    return data


# The one bound on paging numbers: far past any list we page through, far below what a
# database integer holds (``offset=9223372036854775808`` once reached SQLite as a 500).
MAX_OFFSET = 1_000_000_000

# ``offset`` in a ninja query schema: the same bound, refused with a 400 when outside it.
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description=f"0 to {MAX_OFFSET}")]


def bounded_int(
    raw: str | None, default: int, *, low: int = 0, high: int = MAX_OFFSET
) -> int | None:
    """``raw`` as an integer in ``low..high``; ``default`` when absent (None); None when it
    is not an integer or outside the bounds (each caller words its own 400)."""
    if raw is None:
        return default
    if len(raw) > 20:  # int() of a long digit string is slow, and out of bounds anyway
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


def page_args(request: HttpRequest, *, default: int = 100, most: int = 1000) -> tuple[int, int]:
    """``limit`` (clamped to 1..most) and ``offset`` (0..MAX_OFFSET) from the query string."""
    limit = bounded_int(request.GET.get("limit"), default, low=-(2**63), high=2**63)
    offset = bounded_int(request.GET.get("offset"), 0)
    if limit is None or offset is None:
        raise BadRequest(
            f"limit and offset must be integers (offset 0 to {MAX_OFFSET})",
            {"limit": request.GET.get("limit"), "offset": request.GET.get("offset")},
        )
    return min(most, max(1, limit)), offset


def paged(
    request: HttpRequest, qs: Any, serialize: Callable[[Any], Any], *, default: int = 50
) -> dict[str, Any]:
    """One page of ``qs`` (already ordered) as ``{"objects", "meta"}``: ``limit``/``offset``
    from the query string, the total, and ``next``, this URL with the next offset (None on
    the last page)."""
    limit, offset = page_args(request, default=default)
    total = qs.count()
    page = list(qs[offset : offset + limit])
    nxt = None
    if offset + limit < total:
        params = request.GET.copy()
        params["limit"], params["offset"] = str(limit), str(offset + limit)
        nxt = f"{request.path}?{params.urlencode()}"
    return {
        "objects": [serialize(item) for item in page],
        "meta": {"limit": limit, "offset": offset, "total_count": total, "next": nxt},
    }


def public_base_url() -> str:
    """CASEREACH_PUBLIC_URL without its trailing slash: the address providers and people reach
    this server at (behind a proxy), or "" when unset."""
    return os.environ.get("CASEREACH_PUBLIC_URL", "").strip().rstrip("/")


def absolute_url(request: HttpRequest, path: str) -> str:
    """``path`` on this server as the outside world reaches it: CASEREACH_PUBLIC_URL when set,
    else the host the request came to."""
    base = public_base_url()
    return base + path if base else request.build_absolute_uri(path)
