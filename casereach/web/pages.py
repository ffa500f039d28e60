"""What every page of the web UI shares: the signed-in user, paging, a message row."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest

from casereach.core.requests import bounded_int
from casereach.messaging.models import Message
from casereach.messaging.serializers import serialize_message

PAGE = 50


def message_row(m: Message, zone: str) -> dict[str, Any]:
    data = serialize_message(m)
    data["local"] = m.created_on.astimezone(ZoneInfo(zone)).strftime("%d %b %Y %H:%M")
    data["stopped"] = m.status == "failed" and m.attempts == 0
    return data


def user_id(request: HttpRequest) -> int:
    """The signed-in user's id (every project page requires a signed-in user)."""
    pk = request.user.pk
    assert isinstance(pk, int)
    return pk


def offset_of(request: HttpRequest) -> int:
    return bounded_int(request.GET.get("offset"), 0) or 0


def pager(request: HttpRequest, offset: int, total: int) -> dict[str, str | None]:
    def link(to: int) -> str:
        query = request.GET.copy()
        query["offset"] = str(to)
        return "?" + query.urlencode()

    return {
        "prev_url": link(max(0, offset - PAGE)) if offset > 0 else None,
        "next_url": link(offset + PAGE) if offset + PAGE < total else None,
        "first_row": str(offset + 1 if total else 0),
        "last_row": str(min(total, offset + PAGE)),
    }
