"""The contacts API's request schemas and the data-quality report as CSV (the profile and the
phone entries are made by ``contacts.queries``, which the web pages share)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from ninja import Field, Schema

from casereach.contacts.queries import DATA_QUALITY_COLUMNS, MAX_LIMIT
from casereach.core.requests import Offset


class PhoneNumberFilters(Schema):
    number: str | None = Field(
        None, description="A number in any common format (+, spaces, dashes)"
    )
    status: str | None = Field(None, description="two_way, one_way, pending or conflict")
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    offset: Offset = 0


class TransferIn(Schema):
    contact_id: str = Field(..., min_length=1, max_length=64)


def data_quality_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The data-quality report (``contacts.queries.data_quality``) as one CSV document."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DATA_QUALITY_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r["contact_id"],
                r["contact_type"],
                _csv_safe(r["name"]),
                _csv_safe(r["phone"] or ""),
                ";".join(r["warnings"]),
                " | ".join(r["messages"]),
            ]
        )
    return out.getvalue()


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in user-supplied text (CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value
