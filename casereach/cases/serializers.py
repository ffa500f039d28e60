"""Case serialization in CommCare's exact shapes (reference/commcare-api.md 2.2 and 3.4), and
the response schemas that document them (OpenAPI only: the views answer JsonResponse, which
ninja passes through untouched, so these never filter a field out)."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import Field

from casereach.core.openapi import DATE_TIME, OpenSchema
from casereach.core.timeutil import json_naive, json_z


class CaseLike(Protocol):
    case_id: str
    case_type: str
    case_name: str
    owner_id: str | None
    external_id: str | None
    properties: dict[str, str]
    indices: dict[str, dict[str, str]]
    closed: bool
    date_closed: Any
    date_opened: Any
    last_modified: Any
    server_last_modified: Any
    indexed_on: Any
    opened_by: str
    user_id: str


def serialize_v2(case: CaseLike, project: str) -> dict[str, Any]:
    """The 14 keys of Case API v2, always all present."""
    return {
        "domain": project,
        "case_id": case.case_id,
        "case_type": case.case_type,
        "case_name": case.case_name,
        "external_id": case.external_id,
        "owner_id": case.owner_id,
        "date_opened": json_z(case.date_opened),
        "last_modified": json_z(case.last_modified),
        "server_last_modified": json_z(case.server_last_modified),
        "indexed_on": json_z(case.indexed_on),
        "closed": bool(case.closed),
        "date_closed": json_z(case.date_closed),
        "properties": dict(case.properties),
        "indices": {
            name: {
                "case_id": idx["case_id"],
                "case_type": idx["case_type"],
                "relationship": idx["relationship"],
            }
            for name, idx in case.indices.items()
        },
    }


def serialize_v05(case: CaseLike, project: str) -> dict[str, Any]:
    """The v0.5 case object: built-ins inside ``properties``, naive dates but ``indexed_on``."""
    properties: dict[str, Any] = dict(case.properties)
    properties.update(
        {
            "case_name": case.case_name,
            "case_type": case.case_type,
            "date_opened": json_naive(case.date_opened),
            "external_id": case.external_id,
            "owner_id": case.owner_id,
        }
    )
    return {
        "id": case.case_id,
        "case_id": case.case_id,
        "domain": project,
        "user_id": case.user_id or None,
        "closed": bool(case.closed),
        "date_closed": json_naive(case.date_closed),
        "date_modified": json_naive(case.last_modified),
        "server_date_modified": json_naive(case.server_last_modified),
        "server_date_opened": json_naive(case.date_opened),
        "indexed_on": json_z(case.indexed_on),
        "opened_by": case.opened_by or None,
        "closed_by": (case.user_id or None) if case.closed else None,
        "xform_ids": [],
        "properties": properties,
        "indices": {
            name: {
                "case_id": idx["case_id"],
                "case_type": idx["case_type"],
                "relationship": idx["relationship"],
            }
            for name, idx in case.indices.items()
        },
        "resource_uri": f"/a/{project}/api/v0.5/case/{case.case_id}/",
    }


def filter_fields(
    data: dict[str, Any], fields: list[str] | None, exclude: list[str] | None
) -> dict[str, Any]:
    """CommCare's ``fields=a,b.c`` / ``exclude=…`` on one serialized case."""
    if fields:
        out: dict[str, Any] = {}
        for path in fields:
            head, _, rest = path.partition(".")
            if head not in data:
                continue
            if rest and isinstance(data[head], dict):
                sub = out.setdefault(head, {})
                if isinstance(sub, dict) and rest in data[head]:
                    sub[rest] = data[head][rest]
            else:
                out[head] = data[head]
        return out
    if exclude:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        for path in exclude:
            head, _, rest = path.partition(".")
            if rest and isinstance(out.get(head), dict):
                out[head].pop(rest, None)
            else:
                out.pop(head, None)
        return out
    return data


# -- response schemas ---------------------------------------------------------------------------


class CaseV2(OpenSchema):
    """A case in Case API v2's shape; ``fields`` / ``exclude`` may leave keys out."""

    domain: str | None = None
    case_id: str | None = None
    case_type: str | None = None
    case_name: str | None = None
    external_id: str | None = None
    owner_id: str | None = None
    date_opened: str | None = Field(None, json_schema_extra=DATE_TIME)
    last_modified: str | None = Field(None, json_schema_extra=DATE_TIME)
    server_last_modified: str | None = Field(None, json_schema_extra=DATE_TIME)
    indexed_on: str | None = Field(None, json_schema_extra=DATE_TIME)
    closed: bool | None = None
    date_closed: str | None = Field(None, json_schema_extra=DATE_TIME)
    properties: dict[str, Any] | None = None
    indices: dict[str, Any] | None = None


class CaseListOut(OpenSchema):
    matching_records: int
    cases: list[CaseV2]
    next: str | None = Field(None, description="the next page's URL; absent on the last page")


class CaseWriteOut(OpenSchema):
    """One case written (``case``) or, for a bulk request, every case in order (``cases``)."""

    form_id: str
    xform_id: str
    case: CaseV2 | None = None
    cases: list[CaseV2] | None = None


class CaseBulkOut(OpenSchema):
    matching_records: int
    missing_records: int
    cases: list[CaseV2] = Field(description="in request order; a missing id has an error entry")


class CaseDeleted(OpenSchema):
    case_id: str
    deleted: bool
