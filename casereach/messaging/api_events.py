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

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from dateutil import parser as dateparser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.core.errors import BadRequest
from casereach.core.openapi import AUTH_RESPONSES, HQ_ERROR_SCHEMA, json_error, json_ok, query_param
from casereach.core.timeutil import as_utc
from casereach.messaging.errors import describe
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Project, Role

router = Router(tags=["messaging events (CommCare messaging-event API)"])

V05 = "/a/{project}/api/v0.5/messaging-event"
V1 = "/a/{project}/api/messaging-event/v1"

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000  # HQ's max_value: larger values are silently capped

# --- internal values → CommCare slugs (reference 4.4 / 4.5) ---------------------------------

# MessagingEvent.content_type → content_type slug.
CONTENT_TYPE_SLUGS: dict[str, str] = {"sms": "sms", "email": "email"}
ALL_CONTENT_TYPES = frozenset(
    {
        "none",
        "sms",
        "sms-callback",
        "sms-survey",
        "ivr-survey",
        "phone-verification",
        "manual-sms",
        "api-sms",
        "chat-sms",
        "email",
        "fcm-notification",
    }
)
CONTENT_TYPE_EXPANSIONS: dict[str, tuple[str, ...]] = {
    "sms": ("phone-verification", "manual-sms", "api-sms", "chat-sms"),
    "sms-survey": ("ivr-survey",),
}

# MessagingEvent.source → source slug. An ad-hoc or API send is HQ's SOURCE_OTHER. Alerts do not
# yet record whether they are a broadcast or a conditional alert, so "alert" reports the
# conditional-alert slug; the finer internal names are mapped for when they are recorded.
SOURCE_SLUGS: dict[str, str] = {
    "send": "other",
    "other": "other",
    "alert": "conditional-alert",
    "conditional_alert": "conditional-alert",
    "reminder": "reminder",
    "broadcast": "broadcast",
    "scheduled_broadcast": "scheduled-broadcast",
    "immediate_broadcast": "immediate-broadcast",
    "keyword": "keyword",
    "opt_out": "keyword",
    "opt_in": "keyword",
    "help": "keyword",
    "self_registration": "keyword",
    "default_response": "unrecognized",
    "verification": "other",
    "unrecognized": "unrecognized",
    "forwarded": "forwarded-message",
}
ALL_SOURCES = frozenset(
    {
        "broadcast",
        "scheduled-broadcast",
        "immediate-broadcast",
        "keyword",
        "reminder",
        "conditional-alert",
        "unrecognized",
        "forwarded-message",
        "other",
    }
)
SOURCE_EXPANSIONS: dict[str, tuple[str, ...]] = {
    "broadcast": ("scheduled-broadcast", "immediate-broadcast"),
    "reminder": ("conditional-alert",),
    "other": ("forwarded-message",),
}

# MessagingSubEvent.status → status slug.
STATUS_SLUGS: dict[str, str] = {
    "in_progress": "in-progress",
    "completed": "completed",
    "not_completed": "not-completed",
    "error": "error",
    "email_sent": "email-sent",
    "email_delivered": "email-delivered",
}
STATUS_VALUES = {slug: internal for internal, slug in STATUS_SLUGS.items()}

RECIPIENT_SLUGS: dict[str, str] = {"case": "case", "worker": "mobile-worker", "web": "web-user"}
DIRECTION_SLUGS: dict[str, str] = {"in": "incoming", "out": "outgoing"}
# Message.status → HQ's SMS status slug (an inbound message is "received").
SMS_STATUS_SLUGS: dict[str, str] = {
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "failed": "error",
}

# --- parameters -------------------------------------------------------------------------------

DATE_FIELDS = {"date": "created_on", "date_last_activity": "date_last_activity"}
DATE_QUALIFIERS = ("gt", "gte", "lt", "lte")
SIMPLE_PARAMS = frozenset(
    {
        "limit",
        "order_by",
        "content_type",
        "source",
        "status",
        "error_code",
        "phone_number",
        "email_address",
        "case_id",
        "contact_id",
        "format",  # HQ answers JSON whatever it says
    }
)
ORDERINGS = {
    "date_last_activity": ("date_last_activity", "id"),
    "-date_last_activity": ("-date_last_activity", "-id"),
}
# Only ever inside a cursor: the position after which the next page starts.
CURSOR_AFTER = "last_date_last_activity"
CURSOR_ID = "last_object_id"
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PHONE = re.compile(r"\+?[0-9]+")
_EVENT_ID = re.compile(r"[0-9]{1,18}")  # beyond bigint no row can match (and SQL would fail)


class Params:
    """The request's parameters (HQ: ``request.GET.dict()``, the last value of a repeated
    name wins), or those decoded from ``cursor``, which replaces every other parameter."""

    def __init__(self, values: Mapping[str, str], after: tuple[dt.datetime, int] | None) -> None:
        self.values = dict(values)
        self.after = after


def _parse_cursor(raw: str) -> Params:
    try:
        text = base64.urlsafe_b64decode(raw.encode("ascii") + b"==").decode("utf-8")
        values = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
        after_text, after_id = values.pop(CURSOR_AFTER), values.pop(CURSOR_ID)
        after = as_utc(dt.datetime.fromisoformat(after_text))
        if not _EVENT_ID.fullmatch(after_id):
            raise ValueError(after_id)
    except (ValueError, KeyError, UnicodeError, binascii.Error):
        raise BadRequest(f"Invalid cursor '{raw[:100]}'") from None
    if "cursor" in values:
        raise BadRequest(f"Invalid cursor '{raw[:100]}'")
    return Params(values, (after, int(after_id)))


def _params(request: HttpRequest) -> Params:
    values = request.GET.dict()
    if "cursor" in values:
        return _parse_cursor(values["cursor"])
    return Params(values, None)


def _make_cursor(params: Params, last: MessagingSubEvent) -> str:
    values = dict(params.values)
    values[CURSOR_AFTER] = as_utc(last.date_last_activity).replace(tzinfo=None).isoformat()
    values[CURSOR_ID] = str(last.pk)
    return base64.urlsafe_b64encode(urlencode(values).encode("utf-8")).decode("ascii").rstrip("=")


def _limit(params: Params) -> int:
    raw = params.values.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise BadRequest(
            f"Invalid limit '{raw[:100]}' provided. Please provide a positive integer."
        )
    return min(value, MAX_LIMIT)


def _ordering(params: Params) -> tuple[str, str]:
    raw = params.values.get("order_by") or "date_last_activity"
    ordering = ORDERINGS.get(raw)
    if ordering is None:
        raise BadRequest(f"No matching '{raw[:100]}' field for ordering")
    return ordering


def parse_event_date(value: str, qualifier: str) -> dt.datetime:
    """A ``date.*`` / ``date_last_activity.*`` value → aware UTC datetime.

    Naive values are UTC (commcare-export sends naive ``isoformat()``); an offset is converted.
    A date alone means midnight, except for ``lte`` where it covers the whole day (HQ).
    """
    if _DATE_ONLY.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"Cannot parse datetime '{value}'") from None
        at = dt.time.max if qualifier == "lte" else dt.time.min
        return dt.datetime.combine(day, at, tzinfo=dt.UTC)
    try:
        return as_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        raise BadRequest(f"Cannot parse datetime '{value[:100]}'") from None


def _slugs(
    name: str, value: str, known: frozenset[str], expansions: Mapping[str, tuple[str, ...]]
) -> set[str]:
    """Comma-separated slugs; unknown ones are dropped (HQ), none known at all is a 400."""
    wanted = {v for v in value.split(",") if v in known}
    if not wanted:
        raise BadRequest(f"'{value[:100]}' is an invalid value for the '{name}' filter")
    for slug in list(wanted):
        wanted.update(expansions.get(slug, ()))
    return wanted


def _failed_message() -> Exists:
    return Exists(Message.objects.filter(subevent=OuterRef("pk"), status="failed"))


def _status_filter(value: str) -> Q:
    internal = STATUS_VALUES.get(value)
    if internal is None:
        raise BadRequest(f"'{value[:100]}' is an invalid value for the 'status' filter")
    if internal == "error":
        # HQ: also events having any SMS in error
        return Q(status="error") | Q(_failed_message())
    if internal == "completed":
        # a completed sub-event with a failed message is shown as "error"
        return Q(status="completed") & ~Q(_failed_message())
    return Q(status=internal)


def _checked(name: str, value: str) -> str:
    value = value.strip()
    if name == "phone_number":
        if not _PHONE.fullmatch(value):
            raise BadRequest(f"'{value[:100]}' is invalid value for the 'phone_number' filter")
        return value.lstrip("+")
    try:
        validate_email(value)
    except ValidationError:
        raise BadRequest(
            f"'{value[:100]}' is invalid value for the 'email_address' filter"
        ) from None
    return value


def filter_events(qs: QuerySet[MessagingSubEvent], params: Params) -> QuerySet[MessagingSubEvent]:
    """Apply every filter of reference 4.2; an unknown parameter is a 400."""
    matchable = True
    for name, value in params.values.items():
        field, _, qualifier = name.partition(".")
        if qualifier and field in DATE_FIELDS:
            if qualifier not in DATE_QUALIFIERS:
                raise BadRequest(f"'{qualifier[:100]}' is not a valid type of date range.")
            when = parse_event_date(value, qualifier)
            qs = qs.filter(**{f"{DATE_FIELDS[field]}__{qualifier}": when})
            continue
        if name not in SIMPLE_PARAMS:
            raise BadRequest(f"'{name[:100]}' is not a valid filter")
        if name == "content_type":
            slugs = _slugs(name, value, ALL_CONTENT_TYPES, CONTENT_TYPE_EXPANSIONS)
            internal = [k for k, slug in CONTENT_TYPE_SLUGS.items() if slug in slugs]
            qs = qs.filter(event__content_type__in=internal)
        elif name == "source":
            slugs = _slugs(name, value, ALL_SOURCES, SOURCE_EXPANSIONS)
            internal = [k for k, slug in SOURCE_SLUGS.items() if slug in slugs]
            qs = qs.filter(event__source__in=internal)
        elif name == "status":
            qs = qs.filter(_status_filter(value))
        elif name in ("phone_number", "email_address"):
            value = _checked(name, value)  # digits or a valid address: never a NUL
            lookup = "phone_number__contains" if name == "phone_number" else "email_address"
            qs = qs.filter(
                Exists(Message.objects.filter(subevent=OuterRef("pk"), **{lookup: value}))
            )
        elif name in ("error_code", "case_id", "contact_id"):
            # No stored text can hold NUL (PostgreSQL refuses it even as a parameter); the
            # middleware refuses it in a query string, but a cursor can still carry one.
            if "\x00" in value:
                matchable = False
                continue
            if name == "error_code":
                qs = qs.filter(error_code=value)
            elif name == "case_id":
                qs = qs.filter(contact_id=value, contact_type="case")
            else:
                qs = qs.filter(contact_id=value)
    return qs if matchable else qs.none()


# --- serialization ----------------------------------------------------------------------------


def _naive(value: dt.datetime) -> str:
    """``datetime.isoformat()`` of the naive UTC value: microseconds only when non-zero."""
    return as_utc(value).replace(tzinfo=None).isoformat()


def _naive_ms(value: dt.datetime) -> str:
    """What Django's JSON encoder makes of HQ's SMS ``date``: cut (never rounded) to ms."""
    text = _naive(value)
    return text[:23] if value.microsecond else text


def _sms_status(m: Message) -> str:
    if m.status == "failed":
        return "error"
    if m.direction == "in":
        return "received"
    return SMS_STATUS_SLUGS.get(m.status, "unknown")


def _serialize_message(m: Message, event_status: str, event_failed: bool) -> dict[str, Any]:
    if m.channel == "email":
        data: dict[str, Any] = {
            "message_id": m.pk,
            "date": _naive(m.created_on),
            "date_modified": _naive(m.updated_on),
            "type": "email",
            "direction": "outgoing",
            "content": m.text,
            "status": event_status,
            "backend": "email",
            "email_address": m.email_address or None,
        }
    else:
        data = {
            "message_id": m.pk,
            "date": _naive_ms(m.created_on),
            "date_modified": _naive(m.updated_on),
            "type": "sms",
            "direction": DIRECTION_SLUGS.get(m.direction, "unknown"),
            "content": m.text,
            # HQ: every message of a sub-event in error shows the event's status slug
            "status": event_status if event_failed else _sms_status(m),
            "backend": m.gateway_name or (str(m.gateway_id) if m.gateway_id else None),
            "phone_number": m.phone_number or None,
        }
    if m.status == "failed":
        info = describe(m.error_code)
        message = info.description if info else m.error_code
        if message:
            data["error_message"] = message
    return data


def serialize_event(sub: MessagingSubEvent, domain: str) -> dict[str, Any]:
    """The event object of reference 4.4; ``sub.event`` and ``sub.messages`` are prefetched."""
    event: MessagingEvent = sub.event
    msgs = list(sub.messages.all())
    content_type = CONTENT_TYPE_SLUGS.get(event.content_type, "unknown")
    status = STATUS_SLUGS.get(sub.status, "unknown")
    if sub.status == "completed" and any(m.status == "failed" for m in msgs):
        status = "error"
    messages = (
        [_serialize_message(m, status, sub.status == "error") for m in msgs]
        if content_type in ("sms", "email")
        else []
    )
    error = None
    if sub.error_code:
        info = describe(sub.error_code)
        detail = next((m.error_detail for m in msgs if m.status == "failed" and m.error_detail), "")
        error = {
            "code": sub.error_code,
            "message": info.description if info else None,
            "message_detail": detail or None,
        }
    return {
        "id": sub.pk,
        "content_type": content_type,
        "date": _naive(sub.created_on),
        "date_last_activity": _naive(sub.date_last_activity),
        "case_id": sub.contact_id if sub.contact_type == "case" else None,
        "domain": domain,
        "error": error,
        "form": None,  # only for sms-survey / ivr-survey, which we do not have
        "messages": messages,
        "recipient": {
            "recipient_id": sub.contact_id,
            "type": RECIPIENT_SLUGS.get(sub.contact_type, "unknown"),
            "name": sub.recipient_name or "unknown",
        },
        "source": {
            "source_id": event.source_id or None,
            "type": SOURCE_SLUGS.get(event.source, "unknown"),
            # HQ names the keyword / broadcast / rule when it can, else the content type slug
            "name": event.source_name or content_type,
        },
        "status": status,
    }


def _base(proj: Project) -> QuerySet[MessagingSubEvent]:
    return (
        MessagingSubEvent.objects.filter(project=proj)
        .select_related("event")
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.order_by("created_on", "id"))
        )
    )


# --- views ------------------------------------------------------------------------------------


def _bad_request(exc: BadRequest) -> JsonResponse:
    # HQ's body is exactly {"error": …}; no "detail" as the global handler adds.
    return JsonResponse({"error": exc.message}, status=400)


def _list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    try:
        params = _params(request)
        limit = _limit(params)
        ordering = _ordering(params)
        qs = filter_events(_base(proj), params)
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
        cursor = urlencode({"cursor": _make_cursor(params, page[-1])})
        nxt = request.build_absolute_uri(f"{request.path}?{cursor}")
    return JsonResponse(
        {
            "objects": [serialize_event(sub, proj.name) for sub in page],
            "meta": {"limit": limit, "next": nxt},
        }
    )


def _detail(request: HttpRequest, project: str, event_id: str) -> HttpResponse:
    proj = project_for(request, project)
    sub = _base(proj).filter(pk=int(event_id)).first() if _EVENT_ID.fullmatch(event_id) else None
    if sub is None:
        return HttpResponse(status=404)  # HQ: HttpResponseNotFound, empty body
    return JsonResponse(serialize_event(sub, proj.name))


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
        "form": {"type": "null"},
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
            "Comma-separated slugs (sms, email, …); sms also matches the other SMS kinds.",
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
