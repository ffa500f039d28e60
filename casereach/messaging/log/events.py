"""Events, sub-events, messages and send attempts: written one at a time or as drafts, and
closed by one rule (``outcome``).

- one at a time, with model instances (an API send, an inbound reply): ``new_event``,
  ``new_subevent``, ``add_message``, ``close_event``;
- set-based, with ``core.rows`` drafts (the due scan, the dispatcher batch): ``add_events``,
  ``add_subevents``, ``add_messages``, ``add_attempts``, ``set_event_outcomes`` — one
  statement set per batch, whatever its size.

Sub-events are stamped with the project's clock (``projects.actions.tick_clock``), under the
project lock the caller holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, Literal

from django.db import connection

from casereach.billing.queries import estimate
from casereach.contacts.models import Contact
from casereach.core import bulk, rows
from casereach.core.ids import time_ordered_id
from casereach.core.rows import Draft
from casereach.core.sqlgen import update_sql
from casereach.core.timeutil import now
from casereach.messaging.models import (
    COMPLETED,
    ERROR,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    SENDING,
    EventStatus,
    Message,
    MessagingEvent,
    MessagingSubEvent,
    SendAttempt,
)
from casereach.projects.actions import tick_clock
from casereach.projects.models import Project

EVENT_TABLE = MessagingEvent._meta.db_table
SUBEVENT_TABLE = MessagingSubEvent._meta.db_table

# The code of an event all of whose messages failed.
SUBEVENT_ERROR = "SUBEVENT_ERROR"


def outcome(statuses: Collection[str]) -> EventStatus | None:
    """How a set of messages closes an event or sub-event: ``error`` when every one failed,
    ``completed`` when none is still queued or sending (or there is none), else None (it
    stays in progress)."""
    if not statuses:
        return COMPLETED
    if all(s == FAILED for s in statuses):
        return ERROR
    if any(s in (QUEUED, SENDING) for s in statuses):
        return None
    return COMPLETED


# -- one at a time -------------------------------------------------------------------------------


def new_event(
    project: Project,
    *,
    source: str,
    source_id: str = "",
    source_name: str = "",
    content_type: str = "sms",
    triggered_by: str = "",
    status: EventStatus = IN_PROGRESS,
    created_on: dt.datetime | None = None,
) -> MessagingEvent:
    """INSERT one event (``status`` ``completed``: one that gets no messages)."""
    event = MessagingEvent(
        project=project,
        source=source,
        source_id=source_id,
        source_name=source_name,
        content_type=content_type,
        status=status,
        triggered_by=triggered_by,
        created_on=created_on or now(),
    )
    rows.insert_instance(event)
    return event


def new_subevent(
    project: Project,
    event: MessagingEvent,
    contact: Contact | None,
    *,
    status: EventStatus = IN_PROGRESS,
    created_on: dt.datetime | None = None,
    survey_session_id: int | None = None,
) -> MessagingSubEvent:
    """INSERT the sub-event of ``contact`` (or of a raw number), stamped with the project's
    clock (the caller holds the project lock); ``survey_session_id``: part of that survey
    session's conversation (``log.surveys.add_to_survey``)."""
    sub = MessagingSubEvent(
        event=event,
        project=project,
        contact_id=contact.contact_id if contact else None,
        contact_type=contact.contact_type if contact else "",
        recipient_name=contact.name if contact else "",
        status=status,
        created_on=created_on or now(),
        date_last_activity=tick_clock(project),
        survey_session_id=survey_session_id,
    )
    rows.insert_instance(sub)
    return sub


# A provider re-delivering one inbound message: the unique index ``message_inbound_once``.
INBOUND_ONCE = "(gateway_id, provider_id) WHERE direction = 'in' AND provider_id IS NOT NULL"


def add_message(msg: Message, *, inbound_once: bool = False) -> bool:
    """INSERT one message (its id, a time-ordered uuid, is set by the model), an outbound one
    with its estimated cost. ``inbound_once``: skip it if the same inbound message is stored
    already (then False)."""
    if msg.direction == "out" and msg.project_id is not None:
        known = {msg.project_id: msg.project} if Message.project.is_cached(msg) else None
        estimate([msg], known)  # type: ignore[arg-type]
    return rows.insert_instance(msg, INBOUND_ONCE if inbound_once else "")


def add_inbound(msg: Message, replies: Sequence[Message], *, once: bool = False) -> bool:
    """INSERT the ``replies`` to an inbound message and the message, in one statement.
    ``once``: nothing is written if the same inbound message is stored already (then False:
    only the inbound message can clash on ``INBOUND_ONCE``)."""
    if not replies:
        return add_message(msg, inbound_once=once)
    known = {r.project_id: r.project for r in replies if Message.project.is_cached(r)}
    estimate([r for r in replies if r.project_id is not None], known or None)  # type: ignore[arg-type]
    # writes: messaging.Message
    written = rows.insert_instances([*replies, msg], INBOUND_ONCE if once else "")
    return written == len(replies) + 1


def close_event(
    event: MessagingEvent | None,
    sub: MessagingSubEvent | None,
    messages: Sequence[tuple[str, str | None]],
) -> None:
    """Close an event of one sub-event by ``outcome`` of its outbound ``messages`` ((status,
    error code) each; the sub-event's error is the first message's). Nothing when it stays in
    progress; the dispatcher closes it when its messages reach a final state."""
    if event is None or sub is None:
        return
    closed = outcome([status for status, _ in messages])
    if closed is None:
        return
    code = messages[0][1] if closed == ERROR else None
    _set_status(SUBEVENT_TABLE, sub.pk, closed, code)
    _set_status(EVENT_TABLE, event.pk, closed, SUBEVENT_ERROR if closed == ERROR else None)
    sub.status, sub.error_code = closed, code
    event.status, event.error_code = closed, SUBEVENT_ERROR if closed == ERROR else None


def _set_status(table: str, pk: int, status: str, error_code: str | None) -> None:
    if error_code is None and status == COMPLETED:
        # The error code is kept as it is (a completed row never had one).
        # writes: messaging.MessagingEvent, messaging.MessagingSubEvent
        rows.execute(update_sql(table, ("status",), ("id",)), [status, pk])
        return
    # writes: messaging.MessagingEvent, messaging.MessagingSubEvent
    rows.execute(update_sql(table, ("status", "error_code"), ("id",)), [status, error_code, pk])


# -- set-based: drafts of many rows ----------------------------------------------------------


class EventDraft(Draft):
    model = MessagingEvent


class SubEventDraft(Draft):
    model = MessagingSubEvent


class MessageDraft(Draft):
    model = Message

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)
        if values.get("id") is None:
            self.__dict__["id"] = time_ordered_id()


# What became of one gateway call (``SendAttempt.outcome``): accepted, retried, maybe sent
# (retried with the same idempotency key), refused for good.
AttemptOutcome = Literal["sent", "retry", "unknown", "failed"]


class AttemptDraft(Draft):
    model = SendAttempt


def add_events(drafts: Sequence[EventDraft]) -> None:
    """One batch INSERT; each draft gets its ``pk``."""
    rows.insert(drafts)  # writes: messaging.MessagingEvent


def add_subevents(project: Project, drafts: Sequence[SubEventDraft]) -> None:
    """One batch INSERT, the drafts stamped in order with the project's clock (the caller
    holds the project lock); each draft gets its ``pk``."""
    if not drafts:
        return
    tick = tick_clock(project, len(drafts))
    step = dt.timedelta(microseconds=1)
    for i, d in enumerate(drafts):
        d.date_last_activity = tick + step * i
    rows.insert(drafts)  # writes: messaging.MessagingSubEvent


def add_messages(drafts: Sequence[MessageDraft], project: Project | None = None) -> None:
    """One batch INSERT, each queued outbound message with its estimated cost (``billing``:
    a fixed number of queries per batch; ``project``, when all are its, saves reading it)."""
    estimate(drafts, {project.pk: project} if project is not None else None)
    rows.insert(drafts)  # writes: messaging.Message


def add_received(
    inbound: Sequence[MessageDraft], replies: Sequence[MessageDraft], project: Project
) -> bool:
    """INSERT inbound messages received together and their replies (``project``'s, each reply
    with its estimated cost) in one statement, each inbound message once per provider id
    (``INBOUND_ONCE``); False when one of them was stored already (the caller rolls back)."""
    estimate(replies, {project.pk: project})
    t = rows.table(Message)
    built = [d.row() for d in (*replies, *inbound)]
    marks = "(" + ", ".join(["%s"] * len(t.columns)) + ")"
    sql = (  # writes: messaging.Message
        f"INSERT INTO {t.name} ({', '.join(t.columns)}) VALUES {', '.join([marks] * len(built))}"
        f" ON CONFLICT {INBOUND_ONCE} DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [v for row in built for v in row])
        return int(cursor.rowcount) == len(built)


def add_attempts(drafts: Sequence[AttemptDraft]) -> None:
    rows.insert(drafts)  # writes: messaging.SendAttempt


def set_event_outcomes(changes: Sequence[tuple[int, str, str | None]]) -> None:
    """``(event id, status, error code)`` each (each event once), in one statement (a survey
    broadcast closes every event of its batch at once)."""
    bulk.update_by_key(
        EVENT_TABLE, ("id", "bigint"), (("status", "text"), ("error_code", "text")), changes
    )
