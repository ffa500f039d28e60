"""CommCare-compatible Case API v2 (``/a/{project}/api/case/v2/``) and the v0.5 case list.

Bodies are parsed by hand (not by ninja schemas) so every error carries CommCare's own text.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import register_converter
from ninja import Router

from casereach.cases.actions import do_apply_case_changes, do_delete_case
from casereach.cases.changes import ChangeError, parse_bulk, parse_change
from casereach.cases.models import Case
from casereach.cases.queries import (
    MAX_LIST,
    bulk_fetch,
    decode_cursor,
    encode_cursor,
    get_case,
    get_case_by_external_id,
    parse_date_bound,
    v2_filter,
)
from casereach.cases.serializers import (
    CaseBulkOut,
    CaseDeleted,
    CaseListOut,
    CaseV2,
    CaseWriteOut,
    filter_fields,
    serialize_v2,
)
from casereach.core.errors import BadRequest, NotFound
from casereach.core.openapi import ApiError
from casereach.core.requests import json_body
from casereach.core.timeutil import json_z
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role

router = Router(tags=["cases (CommCare Case API v2)"])
V2 = "/a/{project}/api/case/v2"


class AnyText:
    """Django's ``path`` converter with line breaks too (its ``.+`` stops at one), so that
    every external id a case can have is addressable."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyText, "anytext")

CASE_WRITE_SCHEMA = {
    "type": "object",
    "properties": {
        "case_id": {"type": "string"},
        "case_type": {"type": "string"},
        "case_name": {"type": "string"},
        "owner_id": {"type": "string"},
        "external_id": {"type": "string"},
        "temporary_id": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
        "indices": {"type": "object"},
        "close": {"type": "boolean"},
        "reopen": {"type": "boolean"},
        "create": {"type": ["boolean", "null"]},
        "last_modified": {"type": "string", "format": "date-time"},
    },
}

OBJECT_OR_ARRAY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        CASE_WRITE_SCHEMA,
                        {
                            "type": "array",
                            "maxItems": 100,
                            "items": CASE_WRITE_SCHEMA,
                        },
                    ]
                }
            }
        },
    }
}
OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CASE_WRITE_SCHEMA}},
    }
}


# Response documents: the schemas are in casereach.cases.serializers.


AUTH_ERRORS: dict[int, Any] = {401: ApiError, 403: ApiError, 429: ApiError}
ERRORS: dict[int, Any] = {400: ApiError, **AUTH_ERRORS}
NOT_FOUND: dict[int, Any] = {404: ApiError}


def _field_args(request: HttpRequest) -> tuple[list[str] | None, list[str] | None]:
    fields: list[str] = []
    exclude: list[str] = []
    for name in request.GET:
        for v in request.GET.getlist(name):
            parts = [p.strip() for p in v.split(",") if p.strip()]
            if name == "fields":
                fields += parts
            elif name == "exclude":
                exclude += parts
            elif name.startswith("fields."):
                fields += [f"{name[7:]}.{p}" for p in parts]
            elif name.startswith("exclude."):
                exclude += [f"{name[8:]}.{p}" for p in parts]
    if fields and exclude:
        raise BadRequest("You cannot use both 'fields' and 'exclude'")
    return fields or None, exclude or None


def _out(request: HttpRequest, case: Any, project: str) -> dict[str, Any]:
    fields, exclude = _field_args(request)
    return filter_fields(serialize_v2(case, project), fields, exclude)


def _write(
    request: HttpRequest,
    project_name: str,
    body: Any,
    *,
    path_case_id: str | None = None,
    ext_upsert: str | None = None,
) -> JsonResponse:
    project = project_for(request, project_name)
    user = principal_of(request).username
    form_id = str(uuid.uuid4())
    try:
        if isinstance(body, list):
            if path_case_id is not None or ext_upsert is not None:
                raise ChangeError("Payload must be a single JSON object")
            changes = parse_bulk(body, user=user)
            result = do_apply_case_changes(project, changes)
            cases = [_out(request, c, project.name) for c in result.cases]
            return JsonResponse({"form_id": form_id, "xform_id": form_id, "cases": cases})
        if not isinstance(body, dict):
            raise ChangeError("Payload must be a single JSON object")
        if "create" in body:
            raise ChangeError("'create' is not a valid field.")
        if ext_upsert is not None:
            data = dict(body)
            data.setdefault("external_id", ext_upsert)
            if not isinstance(data["external_id"], str):
                raise ChangeError("Property external_id must be a string.")
            try:
                existing: Case | None = get_case_by_external_id(project, data["external_id"])
            except NotFound:
                existing = None
            if existing is not None:
                if data.get("case_id") not in (None, existing.case_id):
                    raise ChangeError("case_id is read-only and cannot be changed")
                data["case_id"] = existing.case_id
                change = parse_change(data, op="update", user=user)
            else:
                if data.get("case_id") is not None:
                    raise ChangeError("You cannot specify case_id when creating a new case")
                change = parse_change(data, op="upsert", user=user)
        elif request.method == "POST":
            change = parse_change(body, op="create", user=user)
        else:
            data = dict(body)
            if path_case_id is not None and not data.get("case_id"):
                data["case_id"] = path_case_id
            change = parse_change(data, op="update", user=user)
    except ChangeError as exc:
        raise BadRequest(str(exc)) from None
    result = do_apply_case_changes(project, [change], single=True)
    case = result.cases[0]
    return JsonResponse(
        {"form_id": form_id, "xform_id": form_id, "case": _out(request, case, project.name)}
    )


@router.api_operation(
    ["GET"],
    V2 + "/",
    operation_id="case_v2_list",
    summary="List cases",
    response={200: CaseListOut, **ERRORS},
)
@requires(Role.VIEWER)
def case_list(request: HttpRequest, project: str) -> JsonResponse:
    """Cursor-paged list, ordered by ``indexed_on`` then ``case_id``."""
    proj = project_for(request, project)
    if "cursor" in request.GET:
        params = decode_cursor(request.GET["cursor"])
    else:
        params = [(k, v) for k in request.GET for v in request.GET.getlist(k)]
    limit_raw = next((v for k, v in reversed(params) if k == "limit"), "20")
    try:
        limit = int(limit_raw)
    except ValueError:
        raise BadRequest(f"'{limit_raw}' is not a valid value for 'limit'") from None
    if limit > MAX_LIST:
        raise BadRequest("You cannot request more than 5000 cases per request.")
    if limit < 1:
        raise BadRequest(f"'{limit_raw}' is not a valid value for 'limit'")
    qs = v2_filter(proj, params)
    last_case_id = next((v for k, v in reversed(params) if k == "last_case_id"), None)
    if last_case_id is not None:
        bound = next(v for k, v in reversed(params) if k == "indexed_on.gte")
        _, when = parse_date_bound(bound, "gte")
        qs = qs.filter(Q(indexed_on__gt=when) | Q(indexed_on=when, case_id__gt=last_case_id))
    total = qs.count()
    page = list(qs.order_by("indexed_on", "case_id")[:limit])
    fields, exclude = _field_args(request) if "cursor" not in request.GET else (None, None)
    if "cursor" in request.GET:
        fields = [p for k, v in params if k == "fields" for p in v.split(",") if p] or None
        exclude = [p for k, v in params if k == "exclude" for p in v.split(",") if p] or None
    body: dict[str, Any] = {
        "matching_records": total,
        "cases": [filter_fields(serialize_v2(c, proj.name), fields, exclude) for c in page],
    }
    if total > len(page) and page:
        base = [(k, v) for k, v in params if k not in ("last_case_id",)]
        base = [(k, v) for k, v in base if not (k == "indexed_on.gte" and last_case_id)]
        last = page[-1]
        nxt = [
            *base,
            ("indexed_on.gte", json_z(last.indexed_on) or ""),
            ("last_case_id", last.case_id),
        ]
        body["next"] = request.build_absolute_uri(
            f"/a/{proj.name}/api/case/v2/?cursor={encode_cursor(nxt)}"
        )
    return JsonResponse(body)


@router.api_operation(
    ["POST"],
    V2 + "/",
    operation_id="case_v2_create",
    summary="Create one case or bulk create/update",
    response={200: CaseWriteOut, **ERRORS},
    openapi_extra=OBJECT_OR_ARRAY,
)
@requires(Role.MEMBER)
def case_create(request: HttpRequest, project: str) -> JsonResponse:
    return _write(request, project, json_body(request))


@router.api_operation(
    ["PUT"],
    V2 + "/",
    operation_id="case_v2_put_root",
    summary="Update by case_id/external_id, or bulk",
    response={200: CaseWriteOut, **ERRORS},
    openapi_extra=OBJECT_OR_ARRAY,
)
@requires(Role.MEMBER)
def case_put_root(request: HttpRequest, project: str) -> JsonResponse:
    return _write(request, project, json_body(request))


@router.api_operation(
    ["POST"],
    V2 + "/bulk-fetch/",
    operation_id="case_v2_bulk_fetch",
    summary="Fetch many cases",
    response={200: CaseBulkOut, **ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "case_ids": {"type": "array", "items": {"type": "string"}},
                            "external_ids": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            },
        }
    },
)
@requires(Role.VIEWER)
def case_bulk_fetch(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    body = json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("Payload must include 'case_ids' or 'external_ids' fields")
    case_ids = body.get("case_ids", body.get("case_id"))
    external_ids = body.get("external_ids", body.get("external_id"))
    if case_ids is None and external_ids is None:
        raise BadRequest("Payload must include 'case_ids' or 'external_ids' fields")
    for value, name in ((case_ids, "case_ids"), (external_ids, "external_ids")):
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise BadRequest(f"'{name}' must be a list of strings")
    found, matching, missing = bulk_fetch(proj, case_ids or [], external_ids or [])
    return JsonResponse(
        {
            "matching_records": matching,
            "missing_records": missing,
            "cases": [c if isinstance(c, dict) else _out(request, c, proj.name) for c in found],
        }
    )


@router.api_operation(
    ["GET"],
    V2 + "/ext/{anytext:external_id}/",
    operation_id="case_v2_get_ext",
    summary="Get a case by external id",
    response={200: CaseV2, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def case_get_ext(request: HttpRequest, project: str, external_id: str) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(_out(request, get_case_by_external_id(proj, external_id), proj.name))


@router.api_operation(
    ["PUT"],
    V2 + "/ext/{anytext:external_id}/",
    operation_id="case_v2_upsert_ext",
    summary="Upsert a case by external id",
    response={200: CaseWriteOut, **ERRORS},
    openapi_extra=OBJECT_BODY,
)
@requires(Role.MEMBER)
def case_upsert_ext(request: HttpRequest, project: str, external_id: str) -> JsonResponse:
    return _write(request, project, json_body(request), ext_upsert=external_id)


def _get_one_or_many(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    proj = project_for(request, project)
    if "," in case_id:
        ids = [i for i in case_id.split(",") if i]
        found, matching, missing = bulk_fetch(proj, ids, [])
        return JsonResponse(
            {
                "matching_records": matching,
                "missing_records": missing,
                "cases": [c if isinstance(c, dict) else _out(request, c, proj.name) for c in found],
            }
        )
    return JsonResponse(_out(request, get_case(proj, case_id), proj.name))


def _delete(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    proj = project_for(request, project)
    state = do_delete_case(proj, case_id)
    return JsonResponse({"case_id": state.case_id, "deleted": True})


@router.api_operation(
    ["GET"],
    V2 + "/{case_id}",
    operation_id="case_v2_get",
    summary="Get one case, or several by comma-separated ids",
    response={200: CaseV2 | CaseBulkOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def case_get(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _get_one_or_many(request, project, case_id)


@router.api_operation(
    ["PUT"],
    V2 + "/{case_id}",
    operation_id="case_v2_update",
    summary="Update one case",
    response={200: CaseWriteOut, **ERRORS},
    openapi_extra=OBJECT_BODY,
)
@requires(Role.MEMBER)
def case_update(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _write(request, project, json_body(request), path_case_id=case_id)


@router.api_operation(
    ["DELETE"],
    V2 + "/{case_id}",
    operation_id="case_v2_delete",
    summary="Soft-delete one case (casereach extension)",
    response={200: CaseDeleted, **AUTH_ERRORS, **NOT_FOUND},
)
@requires(Role.MEMBER)
def case_delete(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _delete(request, project, case_id)


@router.api_operation(["GET"], V2 + "/{case_id}/", include_in_schema=False)
@requires(Role.VIEWER)
def case_get_slash(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _get_one_or_many(request, project, case_id)


@router.api_operation(["PUT"], V2 + "/{case_id}/", include_in_schema=False)
@requires(Role.MEMBER)
def case_update_slash(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _write(request, project, json_body(request), path_case_id=case_id)


@router.api_operation(["DELETE"], V2 + "/{case_id}/", include_in_schema=False)
@requires(Role.MEMBER)
def case_delete_slash(request: HttpRequest, project: str, case_id: str) -> JsonResponse:
    return _delete(request, project, case_id)


def method_not_allowed() -> HttpResponse:
    return JsonResponse({"error": "Request method not allowed"}, status=405)
