"""A case as the writers work on it (``CaseState``), and its raw loaders: read only; the
writers are in ``cases.actions``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from casereach.cases.models import Case
from casereach.core import bulk, rows

CASE_TABLE = Case._meta.db_table
CASE_COLUMNS = (
    "case_id",
    "project_id",
    "case_type",
    "case_name",
    "owner_id",
    "external_id",
    "properties",
    "indices",
    "closed",
    "date_closed",
    "deleted",
    "deleted_on",
    "date_opened",
    "last_modified",
    "server_last_modified",
    "indexed_on",
    "opened_by",
    "user_id",
)
STATE_FIELDS = CASE_COLUMNS[2:]


@dataclass
class CaseState:
    """A working copy of one case (same attribute names as the model, so one serializer
    serves both)."""

    case_id: str
    project_id: int
    case_type: str = ""
    case_name: str = ""
    owner_id: str | None = None
    external_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    indices: dict[str, dict[str, str]] = field(default_factory=dict)
    closed: bool = False
    date_closed: dt.datetime | None = None
    deleted: bool = False
    deleted_on: dt.datetime | None = None
    date_opened: dt.datetime | None = None
    last_modified: dt.datetime | None = None
    server_last_modified: dt.datetime | None = None
    indexed_on: dt.datetime | None = None
    opened_by: str = ""
    user_id: str = ""
    is_new: bool = False
    id_generated: bool = False  # created here with a new_case_id(): no contact can exist yet
    dirty: bool = False
    indices_dirty: bool = False
    reopened: bool = False  # a closed case reopened by this write (write-back sends it)
    client_modified: dt.datetime | None = None

    def content(self) -> tuple[Any, ...]:
        return (
            self.case_type,
            self.case_name,
            self.owner_id,
            self.external_id,
            self.properties,
            self.indices,
            self.closed,
            self.deleted,
            self.date_opened,
        )


def load_states(query_filter: dict[str, Any], *conditions: Any) -> list[CaseState]:
    return [
        CaseState(**row)
        for row in Case.objects.filter(*conditions, **query_filter).values(
            "case_id", "project_id", *STATE_FIELDS
        )
    ]


_STATE_VIEW = rows.decoder(Case, "case_id", "project_id", *STATE_FIELDS)


def load_states_by(
    column: str, values: Sequence[str], project_id: int | None = None
) -> list[CaseState]:
    """``load_states`` by ``case_id`` (any project) or by ``external_id`` (the project's live
    cases), in raw SQL: every case write runs it, and the ORM's query building cost more
    than the query."""
    where, params = bulk.in_sql(column, values)
    if project_id is not None:
        where += " AND project_id = %s AND deleted = %s"
        params += [project_id, False]
    found = rows.fetch_all(
        f"SELECT {_STATE_VIEW.columns()} FROM {CASE_TABLE} WHERE {where}", params
    )
    names = _STATE_VIEW.attnames
    return [CaseState(**dict(zip(names, values, strict=True))) for values in _STATE_VIEW.all(found)]
