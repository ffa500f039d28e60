"""The messaging-event API's reading side (reference/commcare-api.md section 4): CommCare's
slugs for our internal values, the request's parameters and its keyset cursor, and the filters
they apply to the sub-events of a project. The views are in ``api_events``; the objects they
answer are made by ``serializers_events.serialize_event``."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from dateutil import parser as dateparser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from casereach.core.errors import BadRequest
from casereach.core.timeutil import as_utc
from casereach.messaging.models import Message, MessagingSubEvent
from casereach.projects.models import Project

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000  # HQ's max_value: larger values are silently capped

# --- internal values → CommCare slugs (reference 4.4 / 4.5) ---------------------------------

# MessagingEvent.content_type → content_type slug.
# A WhatsApp message is "sms" as HQ shows it (HQ's WhatsApp backends, Turn and Infobip, are
# SMS backends); its messages show their gateway as the backend.
CONTENT_TYPE_SLUGS: dict[str, str] = {"sms": "sms", "email": "email", "whatsapp": "sms"}
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
    # SMS surveys (issue 20): the session's event has the source of what started it (an API
    # start is HQ's SOURCE_OTHER); "survey_part" rows (re-asks, answers) are inside it.
    "survey": "other",
    "survey_keyword": "keyword",
    "survey_alert": "conditional-alert",
    "survey_broadcast": "broadcast",
    "survey_part": "other",
    "survey_owner": "other",  # a no-reply message to the case's owner: a plain SMS event
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

# A survey session's event (MessagingSubEvent.survey_status set): its content type, and the
# session statuses (HQ's SQLXFormsSession.status_slug) it shows when the sub-event is completed.
SURVEY_CONTENT_TYPE = "sms-survey"
SURVEY_IN_PROGRESS = "in-progress"
SURVEY_COMPLETED = "completed"
SURVEY_PARTIAL = "partially_completed"
SURVEY_NOT_FINISHED = "not-finished"

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
    "read": "delivered",  # a WhatsApp read receipt: HQ has no "read", it shows delivered
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
EVENT_ID = re.compile(r"[0-9]{1,18}")  # beyond bigint no row can match (and SQL would fail)


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
        if not EVENT_ID.fullmatch(after_id):
            raise ValueError(after_id)
    except (ValueError, KeyError, UnicodeError, binascii.Error):
        raise BadRequest(f"Invalid cursor '{raw[:100]}'") from None
    if "cursor" in values:
        raise BadRequest(f"Invalid cursor '{raw[:100]}'")
    return Params(values, (after, int(after_id)))


def params_of(values: dict[str, str]) -> Params:
    """The parameters of a request (``request.GET.dict()``) or of the cursor it carries."""
    if "cursor" in values:
        return _parse_cursor(values["cursor"])
    return Params(values, None)


def make_cursor(params: Params, last: MessagingSubEvent) -> str:
    values = dict(params.values)
    values[CURSOR_AFTER] = as_utc(last.date_last_activity).replace(tzinfo=None).isoformat()
    values[CURSOR_ID] = str(last.pk)
    return base64.urlsafe_b64encode(urlencode(values).encode("utf-8")).decode("ascii").rstrip("=")


def limit_of(params: Params) -> int:
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


def ordering_of(params: Params) -> tuple[str, str]:
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
    # A completed survey event shows its session's status (reference 4.4).
    if internal == "completed":
        # a completed sub-event with a failed message is shown as "error"
        plain = Q(status="completed", survey_status="") & ~Q(_failed_message())
        return plain | Q(status="completed", survey_status=SURVEY_COMPLETED)
    if internal == "in_progress":  # HQ: also open survey sessions
        return Q(status=internal) | Q(status="completed", survey_status=SURVEY_IN_PROGRESS)
    if internal == "not_completed":  # HQ: also closed sessions without a submission
        ended = (SURVEY_PARTIAL, SURVEY_NOT_FINISHED)
        return Q(status=internal) | Q(status="completed", survey_status__in=ended)
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
            kinds = Q(event__content_type__in=internal, survey_session_id__isnull=True)
            if SURVEY_CONTENT_TYPE in slugs:
                kinds |= Q(survey_session_id__isnull=False)
            qs = qs.filter(kinds)
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


def event_rows(proj: Project) -> QuerySet[MessagingSubEvent]:
    """The project's sub-events with their event and their messages (two queries a page).
    The parts of a survey session's conversation are not events of their own: their
    messages are listed in the session's event (``with_survey_messages``)."""
    return (
        MessagingSubEvent.objects.filter(project=proj)
        .exclude(survey_session_id__isnull=False, survey_status="")
        .select_related("event")
        .prefetch_related(
            Prefetch("messages", queryset=Message.objects.order_by("created_on", "id"))
        )
    )


def with_survey_messages(proj: Project, page: list[MessagingSubEvent]) -> list[MessagingSubEvent]:
    """Give each survey session's event of ``page`` every SMS of the session, in and out
    (``session_messages``), in one query."""
    sessions = {sub.survey_session_id for sub in page if sub.survey_status}
    if not sessions:
        return page
    found: dict[int, list[Message]] = defaultdict(list)
    rows = (
        Message.objects.filter(project=proj, subevent__survey_session_id__in=sessions)
        .annotate(session_id=F("subevent__survey_session_id"))
        .order_by("created_on", "id")
    )
    for msg in rows:
        found[msg.session_id].append(msg)
    for sub in page:
        if sub.survey_status and sub.survey_session_id is not None:
            sub.session_messages = found[sub.survey_session_id]  # type: ignore[attr-defined]
    return page
