"""Reading alert reply waits: the inbound probe (read in the sender's statement), the waits an
inbound message may answer, the due scan, a reply the inbound hook did not see, and the API's
list. Every API lookup is scoped to one project."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.db.models import OuterRef, Q, QuerySet, Subquery

from casereach.alerts.models import REPLY_WAIT_STATUSES, WAITING, AlertReplyWait
from casereach.alerts.spec import AlertSpec
from casereach.core.errors import BadRequest
from casereach.gateways.queries import project_settings
from casereach.messaging.models import Message
from casereach.projects.models import Project

WAIT_TABLE = AlertReplyWait._meta.db_table
MESSAGE_TABLE = Message._meta.db_table

# The inbound conversation probe (``messaging.inbound_conversations``): a waiting reply wait
# whose message went out through this gateway to this number. On the partial index of
# waiting numbers, then the message's primary key: no statement more on the common path.
PROBE = (
    "alert_reply",
    f"SELECT w.id FROM {WAIT_TABLE} w JOIN {MESSAGE_TABLE} m ON m.id = w.message_id "
    "WHERE m.gateway_id = %s AND w.phone_number = %s AND w.status = 'waiting' LIMIT 1",
)


def waiting_for_pair(
    gateway_id: int, number: str, project_id: int | None
) -> QuerySet[AlertReplyWait]:
    """The waiting waits of the pair whose message was sent through ``gateway_id``, locked
    (``project_id``: only that project's; None: any project's), with the message's
    ``sent_on`` and gateway name annotated."""
    sent = Message.objects.filter(pk=OuterRef("message_id"))
    qs = AlertReplyWait.objects.filter(phone_number=number, status=WAITING).annotate(
        msg_gateway_id=Subquery(sent.values("gateway_id")[:1]),
        msg_sent_on=Subquery(sent.values("sent_on")[:1]),
        msg_gateway_name=Subquery(sent.values("gateway_name")[:1]),
    )
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    return qs.filter(msg_gateway_id=gateway_id).order_by("id")


def due_wait_ids(at: dt.datetime, limit: int) -> list[int]:
    """Waiting waits whose ``due_at`` has passed, oldest first (the partial index)."""
    qs = AlertReplyWait.objects.filter(status=WAITING, due_at__lte=at).order_by("due_at", "id")
    return list(qs.values_list("id", flat=True)[:limit])


def reply_seen(
    wait: AlertReplyWait, gateway_id: int, since: dt.datetime, until: dt.datetime
) -> Message | None:
    """The first inbound SMS on the pair from ``since`` to ``until`` that the wait's project
    sees (its own, or one no project took): a reply the hook did not see (an opt-in word, a
    verification reply, one received before the message's gateway was known)."""
    return (
        Message.objects.filter(
            phone_number=wait.phone_number,
            created_on__gte=since,
            created_on__lte=until,
            direction="in",
            gateway_id=gateway_id,
        )
        .filter(Q(project_id=wait.project_id) | Q(project_id__isnull=True))
        .exclude(inbound_action__startswith="opt_out")
        .order_by("created_on", "id")
        .only("id", "created_on")
        .first()
    )


def filter_waits(project: Project, params: Mapping[str, str]) -> QuerySet[AlertReplyWait]:
    """The project's waits, filtered by ``alert`` (id), ``status`` and ``contact_id``;
    BadRequest for a bad value."""
    qs = AlertReplyWait.objects.filter(project=project)
    alert = params.get("alert")
    if alert:
        if not alert.isdigit() or len(alert) > 18:
            raise BadRequest("alert: must be an alert id (a whole number)")
        qs = qs.filter(alert_id=int(alert))
    status = params.get("status")
    if status:
        if status not in REPLY_WAIT_STATUSES:
            raise BadRequest(f"status: must be one of {', '.join(REPLY_WAIT_STATUSES)}")
        qs = qs.filter(status=status)
    contact = params.get("contact_id")
    if contact:
        qs = qs.filter(contact_id=contact[:64])
    sent = Message.objects.filter(pk=OuterRef("message_id"))
    return qs.annotate(
        msg_sent_on=Subquery(sent.values("sent_on")[:1]),
        msg_gateway_name=Subquery(sent.values("gateway_name")[:1]),
    )


def check_reply_texts(project: Project, spec: AlertSpec) -> None:
    """BadRequest unless a ``message_owner`` no-reply message has a non-blank text in every
    language of the project and no other (as a survey's texts); nothing else needs the
    project."""
    nr = spec.no_reply
    if nr is None or nr.action != "message_owner":
        return
    languages = project_settings(project).languages
    problems = [
        f"no_reply.message[{lang}]: missing or blank"
        for lang in languages
        if not nr.message.get(lang, "").strip()
    ]
    problems += [
        f"no_reply.message[{lang}]: {lang!r} is not one of the project's languages "
        f"({', '.join(languages)})"
        for lang in nr.message
        if lang not in languages
    ]
    if problems:
        raise BadRequest(f"invalid alert: {'; '.join(problems[:5])}")
