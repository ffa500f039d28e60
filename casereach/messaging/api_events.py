"""CommCare's messaging-event API (``/a/{project}/api/v0.5/messaging-event/``, twin
``/api/messaging-event/v1/``): the message log that commcare-export reads.

One object per ``MessagingSubEvent`` (reference/commcare-api.md section 4). commcare-export
pages it with ``order_by=date_last_activity`` and an inclusive ``date_last_activity.gte`` taken
from the last object of each page, dropping the repeated object by ``id`` (section 4.6). Our
``date_last_activity`` is strictly increasing per project, so no two sub-events share it and
that loop can never stall; every ordering still ends with ``id``.

``meta`` holds only ``limit`` (the integer actually applied) and ``next``: an absolute URL with
an opaque ``cursor`` while more rows remain, ``null`` on the last page. The cursor is keyset
based on the sort field (unlike HQ's, which filters on ``date`` while sorting on
``date_last_activity``). A page is read with two queries: sub-events joined to their event,
then their messages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.core.errors import BadRequest
from casereach.core.openapi import AUTH_RESPONSES, HQ_ERROR_SCHEMA, json_error, json_ok, query_param
from casereach.messaging.event_query import (
    DATE_FIELDS,
    DATE_QUALIFIERS,
    EVENT_ID,
    event_rows,
    filter_events,
    limit_of,
    make_cursor,
    ordering_of,
    params_of,
    with_survey_messages,
)
from casereach.messaging.serializers_events import serialize_event
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Role

router = Router(tags=["messaging events (CommCare messaging-event API)"])

V05 = "/a/{project}/api/v0.5/messaging-event"
V1 = "/a/{project}/api/messaging-event/v1"


# --- views ------------------------------------------------------------------------------------


def _bad_request(exc: BadRequest) -> JsonResponse:
    # HQ's body is exactly {"error": …}; no "detail" as the global handler adds.
    return JsonResponse({"error": exc.message}, status=400)


def _list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    try:
        params = params_of(request.GET.dict())
        limit = limit_of(params)
        ordering = ordering_of(params)
        qs = filter_events(event_rows(proj), params)
    except BadRequest as exc:
        return _bad_request(exc)
    if params.after is not None:
        at, pk = params.after
        if ordering[0].startswith("-"):
            qs = qs.filter(Q(date_last_activity__lt=at) | Q(date_last_activity=at, id__lt=pk))
        else:
            qs = qs.filter(Q(date_last_activity__gt=at) | Q(date_last_activity=at, id__gt=pk))
    rows = list(qs.order_by(*ordering)[: limit + 1])
    page = rows[:limit]
    nxt = None
    if len(rows) > limit:
        cursor = urlencode({"cursor": make_cursor(params, page[-1])})
        nxt = request.build_absolute_uri(f"{request.path}?{cursor}")
    return JsonResponse(
        {
            "objects": [
                serialize_event(sub, proj.name) for sub in with_survey_messages(proj, page)
            ],
            "meta": {"limit": limit, "next": nxt},
        }
    )


def _detail(request: HttpRequest, project: str, event_id: str) -> HttpResponse:
    proj = project_for(request, project)
    sub = (
        event_rows(proj).filter(pk=int(event_id)).first() if EVENT_ID.fullmatch(event_id) else None
    )
    if sub is None:
        return HttpResponse(status=404)  # HQ: HttpResponseNotFound, empty body
    return JsonResponse(serialize_event(with_survey_messages(proj, [sub])[0], proj.name))


def _not_allowed(request: HttpRequest, project: str) -> JsonResponse:
    project_for(request, project)
    return JsonResponse({"error": "Request method not allowed"}, status=405)


# Response documents (OpenAPI only; the views answer JsonResponse / HttpResponse themselves).
# Keys are ints, like the 200 ninja writes, so each merges into one entry.
_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One messaging event (one recipient of one send) with its messages.",
    "properties": {
        "id": {"type": "integer"},
        "content_type": {"type": "string"},
        "date": {"type": "string"},
        "date_last_activity": {"type": "string"},
        "case_id": {"type": ["string", "null"]},
        "domain": {"type": "string"},
        "error": {"type": ["object", "null"]},
        "form": {
            "type": ["object", "null"],
            "description": "sms-survey only: app_id (null), form_definition_id (the survey id), "
            "form_name (the survey name), form_submission_id (the session id once completed).",
        },
        "survey_session_id": {
            "type": "integer",
            "description": "sms-survey only (casereach extension): the survey session.",
        },
        "messages": {"type": "array", "items": {"type": "object"}},
        "recipient": {"type": "object"},
        "source": {"type": "object"},
        "status": {"type": "string"},
    },
}
_EVENT_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["objects", "meta"],
    "properties": {
        "objects": {"type": "array", "items": _EVENT},
        "meta": {
            "type": "object",
            "properties": {"limit": {"type": "integer"}, "next": {"type": ["string", "null"]}},
        },
    },
}
_DATE_DOC = (
    "YYYY-MM-DD or ISO datetime (naive = UTC); a date alone is midnight, or the whole day for lte."
)
LIST_DOC: dict[str, Any] = {
    "parameters": [
        query_param("limit", "Page size, default 20, at most 1000 (larger values are capped)."),
        query_param("cursor", "From meta.next; replaces every other parameter."),
        query_param("order_by", "date_last_activity (default) or -date_last_activity; ties by id."),
        *(query_param(f"{field}.{q}", _DATE_DOC) for field in DATE_FIELDS for q in DATE_QUALIFIERS),
        query_param(
            "content_type",
            "Comma-separated slugs (sms, email, sms-survey, …); sms also matches the other SMS "
            "kinds, sms-survey ivr-survey.",
        ),
        query_param(
            "source",
            "Comma-separated slugs: other (ad-hoc and API sends), conditional-alert, broadcast, "
            "keyword, …; broadcast and reminder also match their specific kinds.",
        ),
        query_param(
            "status",
            "One of in-progress, completed, not-completed, error, email-sent, email-delivered.",
        ),
        query_param("error_code", "Exact error code, e.g. NO_PHONE_NUMBER."),
        query_param("phone_number", "Digits (optional +); matches part of a message's number."),
        query_param("email_address", "Exact e-mail address of a message."),
        query_param("case_id", "Recipient case id."),
        query_param("contact_id", "Recipient case or mobile-worker id (casereach extension)."),
    ],
    "responses": {
        200: json_ok(_EVENT_LIST),
        400: json_error('Bad filter, e.g. {"error": "Invalid limit …"}', HQ_ERROR_SCHEMA),
        **AUTH_RESPONSES,
    },
}
DETAIL_DOC: dict[str, Any] = {
    "responses": {
        200: json_ok(_EVENT),
        404: {"description": "No such event (empty body)."},
        **AUTH_RESPONSES,
    },
}
OTHER_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


@router.api_operation(
    ["GET"],
    V05 + "/",
    operation_id="messaging_event_list",
    summary="List messaging events (CommCare messaging-event API, used by commcare-export)",
    openapi_extra=LIST_DOC,
)
@requires(Role.VIEWER)
def messaging_event_list(request: HttpRequest, project: str) -> JsonResponse:
    """One object per recipient of each send, alert firing or keyword reply, with its
    messages."""
    return _list(request, project)


@router.api_operation(
    ["GET"],
    V05 + "/{event_id}/",
    operation_id="messaging_event_get",
    summary="Get one messaging event",
    openapi_extra=DETAIL_DOC,
)
@requires(Role.VIEWER)
def messaging_event_get(request: HttpRequest, project: str, event_id: str) -> HttpResponse:
    return _detail(request, project, event_id)


@router.api_operation(["GET"], V1 + "/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_v1_list(request: HttpRequest, project: str) -> JsonResponse:
    return _list(request, project)


@router.api_operation(["GET"], V1 + "/{event_id}/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_v1_get(request: HttpRequest, project: str, event_id: str) -> HttpResponse:
    return _detail(request, project, event_id)


@router.api_operation(OTHER_METHODS, V05 + "/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_list_other(request: HttpRequest, project: str) -> JsonResponse:
    return _not_allowed(request, project)


@router.api_operation(OTHER_METHODS, V05 + "/{event_id}/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_get_other(request: HttpRequest, project: str, event_id: str) -> JsonResponse:
    return _not_allowed(request, project)


@router.api_operation(OTHER_METHODS, V1 + "/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_v1_list_other(request: HttpRequest, project: str) -> JsonResponse:
    return _not_allowed(request, project)


@router.api_operation(OTHER_METHODS, V1 + "/{event_id}/", include_in_schema=False)
@requires(Role.VIEWER)
def messaging_event_v1_get_other(request: HttpRequest, project: str, event_id: str) -> JsonResponse:
    return _not_allowed(request, project)
