"""The message log's one writer: events, sub-events, messages and send attempts.

Every module that records a send, a reply, an alert firing or a delivery outcome calls this
one; none writes these tables itself. Two shapes of call:

- one at a time, with model instances (an API send, an inbound reply): ``new_event``,
  ``new_subevent``, ``add_message``, ``close_event``, ``set_status``;
- set-based, with ``core.rows`` drafts or named row types (the due scan, the dispatcher
  batch): ``add_events``, ``add_subevents``, ``add_messages``, ``add_attempts``,
  ``set_event_outcomes``, ``complete_leased``, ``close_after_send`` — a fixed number of
  statements per batch, whatever its size.

Closing follows one rule (``outcome``): a set of messages is ``error`` when all failed,
``completed`` when none is still queued or sending, and stays open otherwise. Sub-events are
stamped with the project's clock (``projects.actions.tick_clock``), under the project lock the
caller holds.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F

from casereach.contacts.models import Contact
from casereach.core import bulk, rows
from casereach.core.ids import time_ordered_id
from casereach.core.rows import Draft
from casereach.core.timeutil import now
from casereach.messaging.models import (
    COMPLETED,
    DELIVERED,
    ERROR,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    SENDING,
    SENT,
    STATUS_RANK,
    EventStatus,
    Message,
    MessagingEvent,
    MessagingSubEvent,
    SendAttempt,
)
from casereach.projects.actions import lock_project, tick_clock
from casereach.projects.models import Project

MSG_TABLE = Message._meta.db_table
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
) -> MessagingSubEvent:
    """INSERT the sub-event of ``contact`` (or of a raw number), stamped with the project's
    clock (the caller holds the project lock)."""
    sub = MessagingSubEvent(
        event=event,
        project=project,
        contact_id=contact.contact_id if contact else None,
        contact_type=contact.contact_type if contact else "",
        recipient_name=contact.name if contact else "",
        status=status,
        created_on=created_on or now(),
        date_last_activity=tick_clock(project),
    )
    rows.insert_instance(sub)
    return sub


# A provider re-delivering one inbound message: the unique index ``message_inbound_once``.
INBOUND_ONCE = "(gateway_id, provider_id) WHERE direction = 'in' AND provider_id IS NOT NULL"


def add_message(msg: Message, *, inbound_once: bool = False) -> bool:
    """INSERT one message (its id, a time-ordered uuid, is set by the model). ``inbound_once``:
    skip it if the same inbound message is stored already (then False)."""
    return rows.insert_instance(msg, INBOUND_ONCE if inbound_once else "")


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
        rows.execute(f"UPDATE {table} SET status = %s WHERE id = %s", [status, pk])
        return
    rows.execute(
        f"UPDATE {table} SET status = %s, error_code = %s WHERE id = %s", [status, error_code, pk]
    )


def set_status(
    message_id: str, status: str, *, error_code: str | None = None, provider_code: str = ""
) -> bool:
    """Move a message forward to ``status``; never backwards; its sub-event closes on a final
    status and is stamped with the project's clock. True when it changed."""
    lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    stamp = now()
    changes: dict[str, Any] = {"status": status, "updated_on": stamp}
    if status == DELIVERED:
        changes["delivered_on"] = stamp
    elif status == SENT:
        changes["sent_on"] = stamp
    elif status == FAILED:
        changes.update(
            failed_on=stamp, error_code=error_code or "GATEWAY_ERROR", provider_code=provider_code
        )
    with transaction.atomic():
        changed = Message.objects.filter(id=message_id, status__in=lower).update(**changes)
        if changed and status == DELIVERED:
            Message.objects.filter(id=message_id, sent_on__isnull=True).update(
                sent_on=F("delivered_on")
            )
        if changed:
            msg = Message.objects.only("subevent_id", "project_id", "status", "error_code").get(
                id=message_id
            )
            if msg.subevent_id is not None and msg.project_id is not None:
                closed = outcome([msg.status])
                if closed is not None:
                    code = msg.error_code if closed == ERROR else None
                    MessagingSubEvent.objects.filter(pk=msg.subevent_id).update(
                        status=closed, error_code=code
                    )
                MessagingSubEvent.objects.filter(pk=msg.subevent_id).update(
                    date_last_activity=tick_clock(lock_project(msg.project_id))
                )
    return bool(changed)


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


class AttemptDraft(Draft):
    model = SendAttempt


def add_events(drafts: Sequence[EventDraft]) -> None:
    """One batch INSERT; each draft gets its ``pk``."""
    rows.insert(drafts)


def add_subevents(project: Project, drafts: Sequence[SubEventDraft]) -> None:
    """One batch INSERT, the drafts stamped in order with the project's clock (the caller
    holds the project lock); each draft gets its ``pk``."""
    if not drafts:
        return
    tick = tick_clock(project, len(drafts))
    step = dt.timedelta(microseconds=1)
    for i, d in enumerate(drafts):
        d.date_last_activity = tick + step * i
    rows.insert(drafts)


def add_messages(drafts: Sequence[MessageDraft]) -> None:
    rows.insert(drafts)


def add_attempts(drafts: Sequence[AttemptDraft]) -> None:
    rows.insert(drafts)


def set_event_outcomes(changes: Sequence[tuple[int, str, str | None]]) -> None:
    """``(event id, status, error code)`` each, in one statement set."""
    bulk.execute_many(
        f"UPDATE {EVENT_TABLE} SET status = %s, error_code = %s WHERE id = %s",
        [(status, code, pk) for pk, status, code in changes],
    )


# -- set-based: the dispatcher's outcomes --------------------------------------------------------


@dataclass(slots=True)
class Sent:
    """A leased message the gateway accepted."""

    id: str
    lease_token: str
    provider_id: str | None
    gateway_name: str
    gateway_id: int | None
    gateway_source: str
    sender: str


@dataclass(slots=True)
class Failed:
    """A leased message that failed for good."""

    id: str
    lease_token: str
    error_code: str | None
    provider_code: str
    error_detail: str
    gateway_name: str
    gateway_id: int | None
    gateway_source: str


@dataclass(slots=True)
class Requeued:
    """A leased message to try again at ``next_attempt_at`` (``attempts``: added to its
    count, -1 to give back an attempt that was not made; ``unknown_outcomes``: 1 when the
    call's outcome is unknown)."""

    id: str
    lease_token: str
    next_attempt_at: dt.datetime
    error_code: str | None
    provider_code: str
    attempts: int = 0
    unknown_outcomes: int = 0


_SENT_SQL = (
    f"UPDATE {MSG_TABLE} SET provider_id = %s, sent_on = COALESCE(sent_on, %s), "
    "status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END, "
    "error_code = NULL, gateway_name = %s, gateway_id = %s, gateway_source = %s, "
    "sender = %s, lease_until = NULL, lease_token = NULL, updated_on = %s "
    "WHERE id = %s AND lease_token = %s"
)
_FAILED_SQL = (
    f"UPDATE {MSG_TABLE} SET status = 'failed', error_code = %s, provider_code = %s, "
    "error_detail = %s, failed_on = %s, gateway_name = %s, gateway_id = %s, "
    "gateway_source = %s, lease_until = NULL, lease_token = NULL, "
    "next_attempt_at = NULL, updated_on = %s "
    "WHERE id = %s AND lease_token = %s AND status = 'sending'"
)
_REQUEUED_SQL = (
    f"UPDATE {MSG_TABLE} SET status = 'queued', next_attempt_at = %s, error_code = %s, "
    "provider_code = %s, attempts = attempts + %s, "
    "unknown_outcomes = unknown_outcomes + %s, lease_until = NULL, lease_token = NULL, "
    "updated_on = %s WHERE id = %s AND lease_token = %s AND status = 'sending'"
)


def complete_leased(
    sent: Sequence[Sent], failed: Sequence[Failed], requeued: Sequence[Requeued], at: dt.datetime
) -> None:
    """Record a dispatcher batch's outcomes on its leased messages: three statements, each
    applied only while the caller's lease (``lease_token``) still holds."""
    stamp = bulk.adapt_datetime(at)
    adapt = bulk.adapt_datetime
    bulk.execute_many(
        _SENT_SQL,
        [
            (
                r.provider_id,
                stamp,
                r.gateway_name,
                r.gateway_id,
                r.gateway_source,
                r.sender,
                stamp,
                r.id,
                r.lease_token,
            )
            for r in sent
        ],
    )
    bulk.execute_many(
        _FAILED_SQL,
        [
            (
                r.error_code,
                r.provider_code,
                r.error_detail,
                stamp,
                r.gateway_name,
                r.gateway_id,
                r.gateway_source,
                stamp,
                r.id,
                r.lease_token,
            )
            for r in failed
        ],
    )
    bulk.execute_many(
        _REQUEUED_SQL,
        [
            (
                adapt(r.next_attempt_at),
                r.error_code,
                r.provider_code,
                r.attempts,
                r.unknown_outcomes,
                stamp,
                r.id,
                r.lease_token,
            )
            for r in requeued
        ],
    )


def close_after_send(message_ids: Sequence[str]) -> None:
    """Close the sub-events of messages the dispatcher just made final (``error`` when the
    message failed, else ``completed``; stamped with strictly increasing activity times) and
    the events all of whose messages are final: a fixed number of statements per batch."""
    if not message_ids:
        return
    msgs = list(
        Message.objects.filter(bulk.is_in("id", list(message_ids))).values(
            "subevent_id", "event_id", "project_id", "status", "error_code"
        )
    )
    by_project: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in msgs:
        if m["subevent_id"]:
            by_project[m["project_id"]].append(dict(m))
    changes: list[tuple[Any, ...]] = []
    step = dt.timedelta(microseconds=1)
    for project_id, group in by_project.items():
        tick = tick_clock(lock_project(project_id), len(group))
        for i, sub in enumerate(group):
            failed = sub["status"] == FAILED
            changes.append(
                (
                    ERROR if failed else COMPLETED,
                    sub["error_code"] if failed else None,
                    bulk.adapt_datetime(tick + step * i),
                    sub["subevent_id"],
                )
            )
    bulk.execute_many(
        f"UPDATE {SUBEVENT_TABLE} SET status = %s, error_code = %s, "
        "date_last_activity = %s WHERE id = %s",
        changes,
    )
    event_ids = sorted({m["event_id"] for m in msgs if m["event_id"]})
    statuses: dict[int, set[str]] = defaultdict(set)
    for event_id, status in Message.objects.filter(event_id__in=event_ids).values_list(
        "event_id", "status"
    ):
        statuses[event_id].add(status)
    closed = [(e, outcome(st)) for e, st in statuses.items()]
    set_event_outcomes(
        [(e, c, SUBEVENT_ERROR if c == ERROR else None) for e, c in closed if c is not None]
    )
