"""CommCare-compatible mobile-worker (user) API.

Served at ``/a/{project}/api/v0.5/user/`` and, as undocumented twins, at
``/a/{project}/api/user/v1/``. Bodies are parsed by hand (not by ninja schemas) so every error
carries CommCare's own text; the writers in ``casereach.workers.actions`` re-derive each
worker's messaging contact in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.core.errors import BadRequest, NotFound
from casereach.core.requests import json_object
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Project, Role
from casereach.workers.actions import (
    do_create_worker,
    do_retire_worker,
    do_set_worker_active,
    do_update_worker,
)
from casereach.workers.models import MobileWorker
from casereach.workers.serializers import (
    UserApiError,
    UserListOut,
    UserOut,
    serialize_worker,
    user_uri,
)

router = Router(tags=["mobile workers (CommCare user API)"])

V05 = "/a/{project}/api/v0.5/user"
V1 = "/a/{project}/api/user/v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# do_retire_worker renames the worker to "<username>#retired-<id prefix>"; such workers are
# gone as far as this API is concerned.
RETIRED_MARK = "#retired-"
# Keys HQ adds to user_data itself; never stored from a request body.
SYSTEM_USER_DATA = (
    "commcare_project",
    "commcare_location_id",
    "commcare_location_ids",
    "commcare_primary_case_sharing_id",
    "commcare_profile",
)

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_STRING_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
USER_WRITE_PROPERTIES: dict[str, Any] = {
    "username": {
        "type": "string",
        "description": "Required on create, ignored on update. A bare name becomes "
        "'<name>@<project>.commcarehq.org'.",
    },
    "password": {"type": "string", "description": "Required on create."},
    "first_name": {**_NULLABLE_STRING, "maxLength": 150},
    "last_name": {**_NULLABLE_STRING, "maxLength": 150},
    "email": {**_NULLABLE_STRING, "maxLength": 320},
    "phone_numbers": {
        **_STRING_LIST,
        "description": "Replaces the whole list; the first is the default. A leading '+' is "
        "removed.",
    },
    "default_phone_number": {
        **_NULLABLE_STRING,
        "description": "Added if missing and moved to the front of phone_numbers.",
    },
    "verified_numbers": {
        **_STRING_LIST,
        "description": "casereach: numbers an admin marks verified (two-way capable).",
    },
    "groups": {**_STRING_LIST, "description": "Replaces the group list."},
    "user_data": {
        "type": "object",
        "description": "Custom data; the keys given are merged into the stored data.",
    },
    "language": {**_NULLABLE_STRING, "maxLength": 32},
    "time_zone": {**_NULLABLE_STRING, "maxLength": 100, "description": "IANA zone name."},
    "is_active": {"type": "boolean"},
    "primary_location": {**_NULLABLE_STRING, "description": "Accepted and ignored."},
    "locations": {**_STRING_LIST, "description": "Accepted and ignored."},
    "require_account_confirmation": {"type": "boolean", "description": "Accepted and ignored."},
    "send_confirmation_email_now": {"type": "boolean", "description": "Accepted and ignored."},
    "role": {**_NULLABLE_STRING, "description": "Accepted and ignored."},
    "connect_username": {**_NULLABLE_STRING, "description": "Accepted and ignored."},
}


def _body_doc(*, required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": USER_WRITE_PROPERTIES,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


CREATE_BODY = _body_doc(required=["username", "password"])
UPDATE_BODY = _body_doc(required=[])


ERRORS: dict[int, Any] = {
    400: UserApiError,
    401: UserApiError,
    403: UserApiError,
    429: UserApiError,
}

F = TypeVar("F", bound=Callable[..., HttpResponse])


def _route(methods: list[str], suffix: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a view at the v0.5 path (documented) and the v1 twin (hidden)."""

    def register(view: F) -> F:
        router.api_operation(methods, V05 + suffix, **kwargs)(view)
        hidden = {k: v for k, v in kwargs.items() if k not in ("operation_id", "summary")}
        router.api_operation(methods, V1 + suffix, include_in_schema=False, **hidden)(view)
        return view

    return register


def _json_body(request: HttpRequest) -> dict[str, Any]:
    body = json_object(request)
    user_data = body.get("user_data")
    if isinstance(user_data, dict):
        # A GET-modify-PUT round trip sends HQ's system keys back; they are not custom data.
        body["user_data"] = {k: v for k, v in user_data.items() if k not in SYSTEM_USER_DATA}
    return body


def _workers(project: Project) -> QuerySet[MobileWorker]:
    return MobileWorker.objects.filter(project=project).exclude(username__contains=RETIRED_MARK)


def _find(project: Project, worker_id: str) -> MobileWorker | None:
    return _workers(project).filter(pk=worker_id).first()


def _require(project: Project, worker_id: str) -> MobileWorker:
    worker = _find(project, worker_id)
    if worker is None:
        raise NotFound(f"No mobile worker with id '{worker_id}' in project {project.name}")
    return worker


def _with_group(qs: QuerySet[MobileWorker], project: Project, group: str) -> QuerySet[MobileWorker]:
    if connection.vendor == "postgresql":
        return qs.filter(groups__contains=[group])
    # SQLite has no JSON containment lookup; json_each walks the stored array.
    table = MobileWorker._meta.db_table
    ids = RawSQL(  # noqa: S611 - only our own table name is interpolated; values are parameters
        f"SELECT w.id FROM {table} AS w, json_each(w.groups) AS g "
        "WHERE w.project_id = %s AND g.value = %s",
        (project.pk, group),
    )
    return qs.filter(pk__in=ids)


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequest(
            f"Invalid {name} '{raw}' provided. Please provide a positive integer"
            + (" >= 0." if name == "offset" else ".")
        )
    return value


def _page_uri(request: HttpRequest, project: Project, limit: int, offset: int) -> str:
    rest = [
        (k, v) for k in request.GET for v in request.GET.getlist(k) if k not in ("limit", "offset")
    ]
    query = urlencode([("limit", limit), ("offset", offset), *rest])
    return f"{user_uri(project.name)}?{query}"


@_route(
    ["GET"],
    "/",
    operation_id="user_list",
    summary="List mobile workers",
    response={200: UserListOut, **ERRORS},
)
@requires(Role.VIEWER)
def user_list(request: HttpRequest, project: str) -> HttpResponse:
    """Offset-paged (tastypie envelope). ``limit`` defaults to 20 and is capped at 1000;
    ``archived=true`` lists deactivated workers; ``group=<id>`` keeps one group's members."""
    proj = project_for(request, project)
    limit = _int_param(request, "limit", DEFAULT_LIMIT)
    if limit == 0 or limit > MAX_LIMIT:  # tastypie: 0 means "as many as allowed"
        limit = MAX_LIMIT
    offset = _int_param(request, "offset", 0)
    archived = request.GET.get("archived", "").strip().lower() in ("true", "1", "yes")
    qs = _workers(proj).filter(is_active=not archived)
    group = request.GET.get("group", "")
    if group:
        if not _with_group(_workers(proj), proj, group).exists():
            raise BadRequest(f"Project {proj.name} has no group with id={group}")
        qs = _with_group(qs, proj, group)
    total = qs.count()
    page = list(qs.order_by("username", "id")[offset : offset + limit]) if offset < total else []
    meta = {
        "limit": limit,
        "next": _page_uri(request, proj, limit, offset + limit) if offset + limit < total else None,
        "offset": offset,
        "previous": _page_uri(request, proj, limit, max(0, offset - limit)) if offset else None,
        "total_count": total,
    }
    return JsonResponse({"meta": meta, "objects": [serialize_worker(w, proj.name) for w in page]})


@_route(
    ["POST"],
    "/",
    operation_id="user_create",
    summary="Create a mobile worker",
    response={201: UserOut, 409: UserApiError, **ERRORS},
    openapi_extra=CREATE_BODY,
)
@requires(Role.ADMIN)
def user_create(request: HttpRequest, project: str) -> HttpResponse:
    proj = project_for(request, project)
    worker = do_create_worker(proj, _json_body(request))
    response = JsonResponse(serialize_worker(worker, proj.name), status=201)
    response["Location"] = user_uri(proj.name, worker.pk)
    return response


@_route(
    ["GET"],
    "/{user_id}/",
    operation_id="user_get",
    summary="Get one mobile worker",
    response={200: UserOut, **ERRORS},
)
@requires(Role.VIEWER)
def user_get(request: HttpRequest, project: str, user_id: str) -> HttpResponse:
    """An unknown id answers 400, as CommCare HQ does."""
    proj = project_for(request, project)
    worker = _find(proj, user_id)
    if worker is None:
        raise BadRequest(f"No mobile worker with id '{user_id}' in project {proj.name}")
    return JsonResponse(serialize_worker(worker, proj.name))


@_route(
    ["PUT"],
    "/{user_id}/",
    operation_id="user_update",
    summary="Update a mobile worker (only the fields given)",
    response={200: UserOut, 404: UserApiError, **ERRORS},
    openapi_extra=UPDATE_BODY,
)
@requires(Role.ADMIN)
def user_update(request: HttpRequest, project: str, user_id: str) -> HttpResponse:
    proj = project_for(request, project)
    worker = _require(proj, user_id)
    worker = do_update_worker(worker, _json_body(request))
    return JsonResponse(serialize_worker(worker, proj.name))


@_route(
    ["DELETE"],
    "/{user_id}/",
    operation_id="user_retire",
    summary="Retire a mobile worker (frees its numbers)",
    response={202: None, 404: UserApiError, **ERRORS},
)
@requires(Role.ADMIN)
def user_retire(request: HttpRequest, project: str, user_id: str) -> HttpResponse:
    proj = project_for(request, project)
    do_retire_worker(_require(proj, user_id))
    return HttpResponse(status=202)


@_route(
    ["POST"],
    "/{user_id}/activate/",
    operation_id="user_activate",
    summary="Reactivate a mobile worker",
    response={200: UserOut, 404: UserApiError, **ERRORS},
)
@requires(Role.ADMIN)
def user_activate(request: HttpRequest, project: str, user_id: str) -> HttpResponse:
    proj = project_for(request, project)
    worker = do_set_worker_active(_require(proj, user_id), True)
    return JsonResponse(serialize_worker(worker, proj.name))


@_route(
    ["POST"],
    "/{user_id}/deactivate/",
    operation_id="user_deactivate",
    summary="Deactivate a mobile worker (releases its two-way numbers)",
    response={200: UserOut, 404: UserApiError, **ERRORS},
)
@requires(Role.ADMIN)
def user_deactivate(request: HttpRequest, project: str, user_id: str) -> HttpResponse:
    proj = project_for(request, project)
    worker = do_set_worker_active(_require(proj, user_id), False)
    return JsonResponse(serialize_worker(worker, proj.name))
