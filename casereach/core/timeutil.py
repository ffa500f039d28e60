"""Time helpers: everything is stored in UTC and rendered in CommCare's exact formats."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC
ONE_MICROSECOND = dt.timedelta(microseconds=1)


def now() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Interpret a naive datetime as UTC; convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def json_z(value: dt.datetime | None) -> str | None:
    """`%Y-%m-%dT%H:%M:%S.%fZ`, always six fractional digits (Case API v2, indexed_on)."""
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_naive(value: dt.datetime | None) -> str | None:
    """Naive UTC `%Y-%m-%dT%H:%M:%S.%f` (v0.5 case dates)."""
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 with offset, for our own APIs."""
    if value is None:
        return None
    return as_utc(value).isoformat()
