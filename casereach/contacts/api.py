"""Messaging API v1 for contacts: the contact profile, phone entries (list, transfer of two-way
ownership) and the data-quality report (JSON or CSV)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router

from casereach.contacts.actions import do_transfer_ownership
from casereach.contacts.queries import (
    contact_profile,
    data_quality,
    entry_row,
    normalise_number_filter,
    phone_entries,
)
from casereach.contacts.serializers import PhoneNumberFilters, TransferIn, data_quality_csv
from casereach.core.errors import BadRequest
from casereach.core.openapi import AUTH_RESPONSES, json_error, json_ok
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Role

router = Router(tags=["contacts (messaging v1)"])
V1 = "/a/{project}/api/messaging/v1"


# Response documents. The views return dicts that ninja serialises as they are (no response
# schema, which would filter fields), so the answers are documented here.
_BAD = {400: json_error("Invalid input.")}
_PHONE_ENTRY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "number": {"type": "string"},
        "contact_id": {"type": "string"},
        "contact_type": {"type": "string"},
        "project": {"type": "string"},
        "two_way": {"type": "boolean"},
        "pending": {"type": "boolean"},
        "verified_requested": {"type": "boolean"},
        "registered_on": {"type": ["string", "null"], "format": "date-time"},
        "gateway": {"type": ["string", "null"]},
    },
}
PROFILE_DOC: dict[str, Any] = {
    "responses": {
        200: json_ok(
            {
                "type": "object",
                "properties": {
                    "contact_id": {"type": "string"},
                    "contact_type": {"type": "string"},
                    "phone": {"type": "object"},
                    "warnings": {"type": "array", "items": {"type": "object"}},
                },
            }
        ),
        404: json_error("No such contact in this project."),
        **AUTH_RESPONSES,
    }
}
PHONE_NUMBERS_DOC: dict[str, Any] = {
    "responses": {
        200: json_ok(
            {
                "type": "object",
                "required": ["objects", "meta"],
                "properties": {
                    "objects": {"type": "array", "items": _PHONE_ENTRY},
                    "meta": {
                        "type": "object",
                        "properties": {
                            "limit": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "total_count": {"type": "integer"},
                            "next": {"type": ["string", "null"]},
                        },
                    },
                },
            }
        ),
        **_BAD,
        **AUTH_RESPONSES,
    }
}
TRANSFER_DOC: dict[str, Any] = {
    "responses": {
        200: json_ok(_PHONE_ENTRY),
        **_BAD,
        404: json_error("The contact has no phone entry for this number."),
        409: json_error("Another project's contact holds the number, or a verification waits."),
        **AUTH_RESPONSES,
    }
}
DATA_QUALITY_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "content": {
                **json_ok(
                    {
                        "type": "object",
                        "required": ["objects", "meta"],
                        "properties": {
                            "objects": {"type": "array", "items": {"type": "object"}},
                            "meta": {
                                "type": "object",
                                "properties": {"total_count": {"type": "integer"}},
                            },
                        },
                    }
                )["content"],
                "text/csv": {"schema": {"type": "string"}},
            }
        },
        **_BAD,
        **AUTH_RESPONSES,
    }
}


@router.get(
    V1 + "/contacts/{contact_id}",
    operation_id="messaging_contact_profile",
    summary="The effective messaging profile of a case or mobile worker",
    openapi_extra=PROFILE_DOC,
)
@requires(Role.VIEWER)
def get_contact(request: HttpRequest, project: str, contact_id: str) -> dict[str, Any]:
    proj = project_for(request, project)
    return contact_profile(proj, contact_id)


@router.get(
    V1 + "/phone-numbers",
    operation_id="messaging_phone_numbers",
    summary="This project's phone entries, filtered by number and two-way status",
    openapi_extra=PHONE_NUMBERS_DOC,
)
@requires(Role.VIEWER)
def list_phone_numbers(
    request: HttpRequest, project: str, filters: Query[PhoneNumberFilters]
) -> dict[str, Any]:
    proj = project_for(request, project)
    rows, total = phone_entries(
        proj,
        number=filters.number,
        status=filters.status,
        limit=filters.limit,
        offset=filters.offset,
    )
    next_url = None
    if filters.offset + len(rows) < total:
        params = {
            k: v
            for k, v in (
                ("number", filters.number),
                ("status", filters.status),
                ("limit", filters.limit),
                ("offset", filters.offset + filters.limit),
            )
            if v not in (None, "")
        }
        next_url = request.build_absolute_uri(
            f"/a/{proj.name}/api/messaging/v1/phone-numbers?{urlencode(params)}"
        )
    return {
        "objects": rows,
        "meta": {
            "limit": filters.limit,
            "offset": filters.offset,
            "total_count": total,
            "next": next_url,
        },
    }


@router.post(
    V1 + "/phone-numbers/{number}/transfer",
    operation_id="messaging_phone_number_transfer",
    summary="Move two-way ownership of a number to one of this project's contacts",
    openapi_extra=TRANSFER_DOC,
)
@requires(Role.ADMIN)
def transfer_phone_number(
    request: HttpRequest, project: str, number: str, body: TransferIn
) -> dict[str, Any]:
    proj = project_for(request, project)
    digits = normalise_number_filter(number)
    if not digits:
        raise BadRequest("the number must contain digits")
    entry = do_transfer_ownership(proj, digits, body.contact_id)
    return entry_row(entry, proj)


def _wants_csv(request: HttpRequest) -> bool:
    fmt = request.GET.get("format", "").strip().lower()
    if fmt:
        if fmt not in ("csv", "json"):
            raise BadRequest(f"unknown format {fmt!r}; use csv or json")
        return fmt == "csv"
    return "text/csv" in request.headers.get("Accept", "").lower()


@router.get(
    V1 + "/data-quality",
    operation_id="messaging_data_quality",
    summary="Every contact with a warning (JSON, or CSV with ?format=csv / Accept: text/csv)",
    openapi_extra=DATA_QUALITY_DOC,
)
@requires(Role.VIEWER)
def get_data_quality(request: HttpRequest, project: str) -> Any:
    proj = project_for(request, project)
    rows = data_quality(proj)
    if not _wants_csv(request):
        return {"objects": rows, "meta": {"total_count": len(rows)}}
    response = HttpResponse(data_quality_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="data-quality-{proj.name}.csv"'
    return response
