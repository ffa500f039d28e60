"""Read helpers for the message log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from dateutil import parser as dateparser
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from casereach.contacts.rules import normalize_digits
from casereach.core.errors import BadRequest
from casereach.core.timeutil import as_utc
from casereach.messaging.models import Message
from casereach.projects.models import Project

STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed")


# The event sources the alert scheduler writes, each with source_id = the alert's id: what the
# message log's ``alert`` filter (API and web UI) matches.
ALERT_SOURCES = ("conditional_alert", "immediate_broadcast", "scheduled_broadcast")


def _date(value: str, name: str, *, end: bool) -> dt.datetime:
    try:
        parsed = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}: cannot parse datetime '{value[:50]}'") from None
    if len(value) == 10 and end:
        parsed = parsed + dt.timedelta(days=1)
    return as_utc(parsed)


def filter_messages(project: Project, params: Mapping[str, str]) -> QuerySet[Message]:
    qs = Message.objects.filter(project=project)
    known = {
        "status",
        "error_code",
        "contact_id",
        "phone_number",
        "gateway",
        "alert",
        "direction",
        "since",
        "until",
        "limit",
        "offset",
        "format",
        "channel",
        "chain_id",
    }
    for key in params:
        if key not in known:
            raise BadRequest(f"'{key}' is not a valid parameter.")
    if status := params.get("status"):
        values = status.split(",")
        bad = [v for v in values if v not in STATUSES]
        if bad:
            raise BadRequest(f"status must be among {', '.join(STATUSES)}")
        qs = qs.filter(status__in=values)
    if code := params.get("error_code"):
        qs = qs.filter(error_code__in=code.split(","))
    if contact := params.get("contact_id"):
        qs = qs.filter(contact_id=contact)
    if chain := params.get("chain_id"):
        qs = qs.filter(chain_id=chain)
    if number := params.get("phone_number"):
        qs = qs.filter(phone_number=normalize_digits(number))
    if gateway := params.get("gateway"):
        qs = qs.filter(gateway_name__iexact=gateway)
    if alert := params.get("alert"):
        qs = qs.filter(event__source__in=ALERT_SOURCES, event__source_id=alert)
    if direction := params.get("direction"):
        if direction not in ("in", "out"):
            raise BadRequest("direction must be 'in' or 'out'")
        qs = qs.filter(direction=direction)
    if channel := params.get("channel"):
        qs = qs.filter(channel=channel)
    if since := params.get("since"):
        qs = qs.filter(created_on__gte=_date(since, "since", end=False))
    if until := params.get("until"):
        qs = qs.filter(created_on__lt=_date(until, "until", end=True))
    return qs


def outbound_per_day(
    project: Project, since: dt.datetime, zone: dt.tzinfo
) -> list[tuple[dt.date, str, int]]:
    """(local day, status, count) of the project's outbound messages created since ``since``,
    days taken in ``zone`` (the web dashboard's chart)."""
    rows = (
        Message.objects.filter(project=project, direction="out", created_on__gte=since)
        .annotate(day=TruncDate("created_on", tzinfo=zone))
        .values("day", "status")
        .annotate(n=Count("id"))
    )
    return [(row["day"], row["status"], row["n"]) for row in rows]


def error_code_counts(project: Project, since: dt.datetime) -> list[tuple[str, int]]:
    """(error code, count) of the project's messages created since ``since``, most frequent
    first."""
    rows = (
        Message.objects.filter(project=project, created_on__gte=since)
        .exclude(error_code__isnull=True)
        .exclude(error_code="")
        .values("error_code")
        .annotate(n=Count("id"))
        .order_by("-n", "error_code")
    )
    return [(str(row["error_code"]), int(row["n"])) for row in rows]


def contact_messages(project: Project, contact_id: str, limit: int = 100) -> list[Message]:
    """A contact's latest messages, newest first."""
    return list(
        Message.objects.filter(project=project, contact_id=contact_id).order_by(
            "-created_on", "-id"
        )[:limit]
    )
