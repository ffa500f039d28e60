"""CommCare's v0.5 case list and detail (``/a/{project}/api/v0.5/case/``, twin ``/api/case/v1/``).

This is the tastypie resource commcare-export reads (reference/commcare-api.md sections 3 and 9):
offset paging inside a ``{"meta": …, "objects": […]}`` envelope, ``order_by=indexed_on`` with an
inclusive ``indexed_on_start``, and HQ's exact error texts. Every ordering ends with ``case_id``,
so pages are stable even if two cases ever shared a timestamp.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.cases.models import Case
from casereach.cases.queries import MAX_LIST, live_cases
from casereach.cases.serializers import serialize_v05
from casereach.core.errors import BadRequest
from casereach.core.openapi import AUTH_RESPONSES, HQ_ERROR_SCHEMA, json_error, json_ok, query_param
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Project, Role

router = Router(tags=["cases (CommCare v0.5 case list)"])

V05 = "/a/{project}/api/v0.5/case"
V1 = "/a/{project}/api/case/v1"

DEFAULT_LIMIT = 20
MAX_LIMIT = MAX_LIST  # tastypie ``max_limit``: larger values (and 0) are silently capped

# order_by name (the API's) → model field
ORDER_FIELDS = {
    "indexed_on": "indexed_on",
    "server_date_modified": "server_last_modified",
    "date_modified": "last_modified",
}
DEFAULT_ORDER = ("server_last_modified",)

# <prefix>_start / <prefix>_end → model field; both ends are inclusive (gte / lte)
DATE_RANGES = {
    "indexed_on": "indexed_on",
    "server_date_modified": "server_last_modified",
    "date_modified": "last_modified",
    "server_modified_on": "server_last_modified",
}
DATE_PARAMS = {
    f"{prefix}_{end}": (field, "gte" if end == "start" else "lte")
    for prefix, field in DATE_RANGES.items()
    for end in ("start", "end")
}

# HQ's SUPPORTED_DATE_FORMATS, matched whole so offsets and a "Z" after seconds are refused.
_DATE_FORMATS = (
    (re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"), "%Y-%m-%dT%H:%M:%S"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,6}"), "%Y-%m-%dT%H:%M:%S.%f"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z"), "%Y-%m-%dT%H:%MZ"),
)

RESERVED = frozenset({"limit", "offset", "order_by", "q", "api_key", "username", "format"})

# Built-in filters: parameter → (model field, how: True case-insensitive, False exact,
# "lowered" the value as given or lower-cased)
FIELD_FILTERS: dict[str, tuple[str, bool | str]] = {
    "type": ("case_type", True),
    "case_type": ("case_type", True),
    "type.exact": ("case_type", False),
    "case_type.exact": ("case_type", False),
    "name": ("case_name", True),
    "case_name": ("case_name", True),
    "name.exact": ("case_name", False),
    "case_name.exact": ("case_name", False),
    "external_id": ("external_id", True),
    "external_id.exact": ("external_id", False),
    # HQ lower-cases these values before an exact term match on a keyword field, so
    # ``owner_id=O2`` finds owner "o2". Here the value matches as given or lower-cased: HQ's
    # matches and an exact one, both served by the (project, owner_id) index.
    "owner_id": ("owner_id", "lowered"),
    "user_id": ("user_id", "lowered"),
}
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "f"})


def parse_v05_date(value: str) -> dt.datetime:
    """A ``*_start`` / ``*_end`` value → aware UTC datetime (the value itself is naive UTC).

    A date-only value means midnight at the start of that day, for ``_end`` too: HQ hands the
    parsed value straight to an inclusive ``lte`` range, so ``indexed_on_end=2024-05-01`` stops
    at 2024-05-01T00:00:00 and does not include the rest of that day. We keep HQ's meaning so
    exports agree with HQ row for row.
    """
    for pattern, fmt in _DATE_FORMATS:
        if pattern.fullmatch(value):
            try:
                return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                break
    raise BadRequest(f"Bad query parameter: Unknown date format: {value}")


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        if name == "limit":
            raise BadRequest(f"Invalid limit '{raw}' provided. Please provide a positive integer.")
        raise BadRequest(
            f"Invalid offset '{raw}' provided. Please provide a positive integer >= 0."
        )
    return value


def _ordering(request: HttpRequest) -> list[str]:
    fields: list[str] = []
    for raw in request.GET.getlist("order_by"):
        descending = raw.startswith("-")
        name = raw[1:] if descending else raw
        field = ORDER_FIELDS.get(name)
        if field is None:
            raise BadRequest(f"No matching '{name}' field for ordering on.")
        fields.append(f"-{field}" if descending else field)
    if not fields:
        fields = list(DEFAULT_ORDER)
    return [*fields, "case_id"]


def _bool(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadRequest(f"Invalid value '{value}' for '{name}'. Please provide true or false.")


def v05_filter(qs: QuerySet[Case], request: HttpRequest) -> QuerySet[Case]:
    """Apply every non-reserved query parameter; repeated values of one name are OR-ed
    (commcare-export sends repeated "Filter Name" rows that way), names are AND-ed."""
    custom = 0
    matchable = True
    for name in request.GET:
        if name in RESERVED or name.endswith("__full"):
            continue
        values = request.GET.getlist(name)
        if name in DATE_PARAMS:
            field, lookup = DATE_PARAMS[name]
            for value in values:
                qs = qs.filter(**{f"{field}__{lookup}": parse_v05_date(value)})
            continue
        if name == "closed":
            flags = {_bool(name, v) for v in values}
            qs = qs.filter(closed__in=flags)
            continue
        # No stored text can hold NUL (PostgreSQL refuses it even as a query parameter), so
        # such a value matches nothing; the other parameters are still validated.
        values = [v for v in values if "\x00" not in v]
        if not values or "\x00" in name:
            matchable = False
            continue
        if name in FIELD_FILTERS:
            field, insensitive = FIELD_FILTERS[name]
            cond = Q()
            for value in values:
                if insensitive == "lowered":
                    cond |= Q(**{f"{field}__in": sorted({value, value.lower()})})
                else:
                    cond |= Q(**{f"{field}__iexact" if insensitive else field: value})
            qs = qs.filter(cond)
        else:
            # ``contact_phone_number`` and any other name: an exact match on the custom
            # property of that name (HQ's catch-all term filter). We compare exactly rather
            # than lower-casing: property values are stored as sent, so an exact compare is
            # what a client filtering on a value it read from us expects. KeyTextTransform
            # takes the name literally, so "__" or "." in it can never become an ORM lookup.
            custom += 1
            alias = f"_v05_prop_{custom}"
            # The Cast makes the compare a plain text one: without it Django applies its JSON
            # key lookups, which on SQLite JSON-decode the value ("+2547…" → malformed JSON).
            text = Cast(KeyTextTransform(name, "properties"), output_field=TextField())
            qs = qs.alias(**{alias: text}).filter(**{f"{alias}__in": values})
    return qs if matchable else qs.none()


def _page_uri(request: HttpRequest, limit: int, offset: int) -> str:
    """tastypie's ``_generate_uri``: the request's parameters with ``limit``/``offset`` set."""
    params = [
        (k, v) for k in request.GET if k not in ("limit", "offset") for v in request.GET.getlist(k)
    ]
    params += [("limit", str(limit)), ("offset", str(offset))]
    return f"{request.path}?{urlencode(params)}"


def _list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    try:
        return _list_page(request, proj)
    except BadRequest as exc:
        # HQ's tastypie body is exactly {"error": …}; no "detail" as the global handler adds.
        return JsonResponse({"error": exc.message}, status=400)


def _list_page(request: HttpRequest, proj: Project) -> JsonResponse:
    limit = _int_param(request, "limit", DEFAULT_LIMIT)
    if limit == 0 or limit > MAX_LIMIT:
        limit = MAX_LIMIT
    offset = _int_param(request, "offset", 0)
    ordering = _ordering(request)
    qs = v05_filter(live_cases(proj), request)
    total = qs.count()
    # past the end there is nothing to fetch (and a huge offset would overflow SQL's OFFSET)
    page = list(qs.order_by(*ordering)[offset : offset + limit]) if offset < total else []
    body: dict[str, Any] = {
        "meta": {
            "limit": limit,
            "next": None if offset + limit >= total else _page_uri(request, limit, offset + limit),
            "offset": offset,
            # tastypie: no previous link once offset - limit would be negative
            "previous": None if offset - limit < 0 else _page_uri(request, limit, offset - limit),
            "total_count": total,
        },
        "objects": [serialize_v05(case, proj.name) for case in page],
    }
    return JsonResponse(body)


def _detail(request: HttpRequest, project: str, case_id: str) -> HttpResponse:
    proj = project_for(request, project)
    case = None if "\x00" in case_id else live_cases(proj).filter(case_id=case_id).first()
    if case is None:
        return HttpResponse(status=404)  # HQ: empty body
    return JsonResponse(serialize_v05(case, proj.name))


# Response documents (OpenAPI only; the views answer JsonResponse / HttpResponse themselves).
# Keys are ints, like the 200 ninja writes, so each merges into one entry.


_V05_CASE: dict[str, Any] = {
    "type": "object",
    "description": "A case in CommCare's v0.5 shape (built-in fields inside properties).",
    "properties": {
        "id": {"type": "string"},
        "case_id": {"type": "string"},
        "domain": {"type": "string"},
        "properties": {"type": "object"},
        "indices": {"type": "object"},
        "closed": {"type": "boolean"},
        "resource_uri": {"type": "string"},
    },
}
_V05_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["meta", "objects"],
    "properties": {
        "meta": {
            "type": "object",
            "properties": {
                "limit": {"type": "integer"},
                "next": {"type": ["string", "null"]},
                "offset": {"type": "integer"},
                "previous": {"type": ["string", "null"]},
                "total_count": {"type": "integer"},
            },
        },
        "objects": {"type": "array", "items": _V05_CASE},
    },
}
_DATE_DOC = "Inclusive bound; YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.ffffff] or YYYY-MM-DDTHH:MMZ (UTC)."
LIST_DOC: dict[str, Any] = {
    "parameters": [
        query_param("limit", "Page size, default 20; 0 or more than 5000 means 5000."),
        query_param("offset", "Number of cases to skip, default 0."),
        query_param(
            "order_by",
            "indexed_on, server_date_modified or date_modified, '-' for descending; "
            "repeatable. Default server_date_modified.",
        ),
        *(query_param(name, _DATE_DOC) for name in DATE_PARAMS),
        query_param("type", "Case type (case-insensitive); also case_type, type.exact."),
        query_param("name", "Case name (case-insensitive); also case_name, name.exact."),
        query_param("external_id", "External id (case-insensitive); also external_id.exact."),
        query_param("owner_id", "Owner id."),
        query_param("user_id", "Id of the last user to modify the case."),
        query_param("closed", "true or false."),
        query_param("contact_phone_number", "Exact phone number property."),
    ],
    "responses": {
        200: json_ok(_V05_LIST),
        400: json_error('Bad query parameter, e.g. {"error": "Invalid limit …"}', HQ_ERROR_SCHEMA),
        **AUTH_RESPONSES,
    },
}
DETAIL_DOC: dict[str, Any] = {
    "responses": {
        200: json_ok(_V05_CASE),
        404: {"description": "No such case (empty body)."},
        **AUTH_RESPONSES,
    },
}


@router.api_operation(
    ["GET"],
    V05 + "/",
    operation_id="case_v05_list",
    summary="List cases (CommCare v0.5, used by commcare-export)",
    openapi_extra=LIST_DOC,
)
@requires(Role.VIEWER)
def case_v05_list(request: HttpRequest, project: str) -> JsonResponse:
    """Any parameter not listed filters on the custom property of that name."""
    return _list(request, project)


@router.api_operation(
    ["GET"],
    V05 + "/{case_id}/",
    operation_id="case_v05_get",
    summary="Get one case (CommCare v0.5 shape)",
    openapi_extra=DETAIL_DOC,
)
@requires(Role.VIEWER)
def case_v05_get(request: HttpRequest, project: str, case_id: str) -> HttpResponse:
    return _detail(request, project, case_id)


@router.api_operation(["GET"], V1 + "/", include_in_schema=False)
@requires(Role.VIEWER)
def case_v1_list(request: HttpRequest, project: str) -> JsonResponse:
    return _list(request, project)


@router.api_operation(["GET"], V1 + "/{case_id}/", include_in_schema=False)
@requires(Role.VIEWER)
def case_v1_get(request: HttpRequest, project: str, case_id: str) -> HttpResponse:
    return _detail(request, project, case_id)
