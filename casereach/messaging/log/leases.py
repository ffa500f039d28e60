"""The outbox's leases: due messages claimed under a lease, expired leases reaped, and a
dispatcher batch's outcomes written back while its lease still holds.

A claim turns due ``queued`` messages into ``sending`` under a lease token; the dispatcher
then records each one's outcome with ``complete_leased`` (a conditional update: only while
the token is still the message's) and closes what became final with ``close_after_send``.
A dispatcher that dies mid-send leaves its lease to expire: ``reap`` puts those messages
back in the queue with an ``unknown`` attempt.

Dialects: where rows can be locked (PostgreSQL) ``FOR UPDATE SKIP LOCKED`` lets any number
of dispatchers claim disjoint batches; elsewhere (SQLite) the IMMEDIATE write transaction
already excludes other writers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from casereach.core import bulk
from casereach.core.sqlgen import RowUpdate, update_sql
from casereach.messaging.log.events import (
    SUBEVENT_ERROR,
    SUBEVENT_TABLE,
    AttemptDraft,
    add_attempts,
    outcome,
    set_event_outcomes,
)
from casereach.messaging.models import (
    COMPLETED,
    ERROR,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    Message,
)
from casereach.projects.actions import lock_project, tick_clock

TABLE = Message._meta.db_table

# -- claiming ------------------------------------------------------------------------------------

# What the dispatcher needs of each claimed message, returned by the claiming statement itself.
CLAIM_COLUMNS = (
    "id",
    "project_id",
    "channel",
    "contact_id",
    "phone_number",
    "email_address",
    "subject",
    "text",
    "segments",
    "encoding",
    "gateway_id",
    "gateway_name",
    "gateway_source",
    "attempts",
    "created_on",
    "allow_opted_out",
    "event_id",
    "subevent_id",
    "chain_next",
    "payload",
    "estimated_cost_micros",
)


def _claim_statement(returning: Sequence[str]) -> str:
    """The claiming UPDATE: due queued messages become ``sending`` under a lease.

    Parameters: at, limit, lease_until, token, at.
    """
    pick = (
        f"SELECT id FROM {TABLE} WHERE status = '{QUEUED}' "
        f"AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s"
    )
    if bulk.has_row_locks():
        # The locked rows are picked once, in a materialised CTE. Inside ``WHERE id IN
        # (subquery)`` PostgreSQL may rescan the subquery, and every rescan skips the rows
        # the previous one locked and returns new ones: under contention one claim took the
        # whole outbox instead of ``limit`` rows.
        return (
            f"WITH picked AS MATERIALIZED ({bulk.for_update(pick, skip_locked=True)}) "
            f"UPDATE {TABLE} AS m SET status = '{SENDING}', lease_until = %s, lease_token = %s, "
            f"attempts = m.attempts + 1, updated_on = %s FROM picked WHERE m.id = picked.id "
            f"RETURNING {', '.join('m.' + c for c in returning)}"
        )
    # SQLite: the IMMEDIATE write transaction excludes every other claimer.
    return (
        f"WITH picked AS ({pick}) "
        f"UPDATE {TABLE} SET status = '{SENDING}', lease_until = %s, lease_token = %s, "
        f"attempts = attempts + 1, updated_on = %s "
        f"WHERE id IN (SELECT id FROM picked) AND status = '{QUEUED}' "
        f"RETURNING {', '.join(returning)}"
    )


def claim(limit: int, lease_until: dt.datetime, token: str, at: dt.datetime) -> list[str]:
    """Mark up to ``limit`` due queued messages as ``sending`` under ``token``; their ids."""
    lease, stamp = bulk.adapt_datetime(lease_until), bulk.adapt_datetime(at)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_claim_statement(("id",)), [stamp, limit, lease, token, stamp])
        return [row[0] for row in cursor.fetchall()]


def claim_rows(
    limit: int, lease_until: dt.datetime, token: str, at: dt.datetime
) -> list[dict[str, Any]]:
    """``claim``, returning each claimed message's ``CLAIM_COLUMNS`` (``attempts`` already
    counting this one) in one statement, oldest first. ``created_on`` is the driver's value
    (a naive UTC datetime on SQLite, an aware one on PostgreSQL): see ``raw_before``."""
    stamp = bulk.adapt_datetime(at)
    sql = _claim_statement(CLAIM_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [stamp, limit, bulk.adapt_datetime(lease_until), token, stamp])
        rows = [dict(zip(CLAIM_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["allow_opted_out"] = bool(row["allow_opted_out"])  # SQLite returns 0/1
        if isinstance(row["payload"], str):  # JSON text (SQLite; PostgreSQL's driver decodes)
            row["payload"] = json.loads(row["payload"])
    rows.sort(key=lambda r: (r["created_on"], r["id"]))
    return rows


def raw_before(raw: Any, when: dt.datetime) -> bool:
    """Whether a raw ``created_on`` from ``claim_rows`` is earlier than ``when``."""
    if isinstance(raw, dt.datetime):  # PostgreSQL; SQLite through Django's converter (naive UTC)
        return (raw if raw.tzinfo is not None else raw.replace(tzinfo=dt.UTC)) < when
    adapted = bulk.adapt_datetime(when)
    if isinstance(raw, str) and isinstance(adapted, str):
        # Both are str() of a naive UTC datetime: "YYYY-MM-DD HH:MM:SS[.ffffff]"; the optional
        # fraction only follows an equal prefix, so text order is time order.
        return raw < adapted
    parsed = parse_datetime(str(raw))
    if parsed is None:
        raise ValueError(f"unreadable created_on {raw!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed < when


# -- reaping -------------------------------------------------------------------------------------

LEASE_EXPIRED = "lease expired during the gateway call; outcome unknown, retried with the same id"


def _reap_statement(stamp: Any, limit: int) -> tuple[str, list[Any]]:
    """The reaping UPDATE, with its parameters: expired leases back to ``queued``, one more
    unknown outcome each."""
    pick = f"SELECT id FROM {TABLE} WHERE status = '{SENDING}' AND lease_until < %s LIMIT %s"
    if bulk.has_row_locks():  # picked once, as in the claim
        sql = (
            f"WITH picked AS MATERIALIZED ({bulk.for_update(pick, skip_locked=True)}) "
            f"UPDATE {TABLE} AS m SET status = '{QUEUED}', lease_until = NULL, lease_token = NULL, "
            f"unknown_outcomes = m.unknown_outcomes + 1, next_attempt_at = %s, updated_on = %s "
            f"FROM picked WHERE m.id = picked.id RETURNING m.id, m.attempts, m.gateway_name"
        )
        return sql, [stamp, limit, stamp, stamp]
    sql = (
        f"UPDATE {TABLE} SET status = '{QUEUED}', lease_until = NULL, lease_token = NULL, "
        f"unknown_outcomes = unknown_outcomes + 1, next_attempt_at = %s, updated_on = %s "
        f"WHERE id IN ({pick}) AND status = '{SENDING}' "
        f"RETURNING id, attempts, gateway_name"
    )
    return sql, [stamp, stamp, stamp, limit]


def reap(at: dt.datetime, limit: int = 1000) -> list[str]:
    """Put messages whose lease expired mid-send back in the queue; their ids.

    Their gateway call may or may not have happened: the attempt is recorded as ``unknown``
    and the retry reuses the message id as idempotency key.
    """
    sql, params = _reap_statement(bulk.adapt_datetime(at), limit)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        add_attempts(
            [
                AttemptDraft(
                    message_id=mid,
                    number=attempts,
                    gateway_name=gw or "",
                    outcome="unknown",
                    error_code=None,
                    provider_code="",
                    detail=LEASE_EXPIRED,
                    request="",
                    response="",
                    duration_ms=0,
                    created_on=at,
                )
                for mid, attempts, gw in rows
            ]
        )
        return [row[0] for row in rows]


# -- a dispatcher batch's outcomes ---------------------------------------------------------------


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


# Each row type's fields are its statement's columns: the key (``id``, ``lease_token``: the
# lease still held) in the WHERE clause, the others set; the ``shared`` columns take the
# batch's time.
LEASE_KEY = ("id", "lease_token")
RELEASE = ("lease_until = NULL", "lease_token = NULL")
STILL_SENDING = f"status = '{SENDING}'"
SENT_UPDATE = RowUpdate(
    Message,
    Sent,
    key=LEASE_KEY,
    shared=("sent_on", "updated_on"),
    exprs={"sent_on": "COALESCE(sent_on, %s)"},  # kept from a send before a retry
    # a delivery report may have overtaken the completion: the status only moves forward
    fixed=(
        f"status = CASE WHEN status = '{SENDING}' THEN '{SENT}' ELSE status END",
        "error_code = NULL",
        *RELEASE,
    ),
)
FAILED_UPDATE = RowUpdate(
    Message,
    Failed,
    key=LEASE_KEY,
    shared=("failed_on", "updated_on"),
    fixed=(f"status = '{FAILED}'", *RELEASE, "next_attempt_at = NULL"),
    condition=STILL_SENDING,
)
REQUEUED_UPDATE = RowUpdate(
    Message,
    Requeued,
    key=LEASE_KEY,
    shared=("updated_on",),
    exprs={"attempts": "attempts + %s", "unknown_outcomes": "unknown_outcomes + %s"},
    fixed=(f"status = '{QUEUED}'", *RELEASE),
    condition=STILL_SENDING,
    adapt={"next_attempt_at": bulk.adapt_datetime},
)


def complete_leased(
    sent: Sequence[Sent], failed: Sequence[Failed], requeued: Sequence[Requeued], at: dt.datetime
) -> None:
    """Record a dispatcher batch's outcomes on its leased messages: three statements, each
    applied only while the caller's lease (``lease_token``) still holds."""
    stamp = bulk.adapt_datetime(at)
    bulk.execute_many(SENT_UPDATE.sql, SENT_UPDATE.params(sent, sent_on=stamp, updated_on=stamp))
    bulk.execute_many(
        FAILED_UPDATE.sql, FAILED_UPDATE.params(failed, failed_on=stamp, updated_on=stamp)
    )
    bulk.execute_many(REQUEUED_UPDATE.sql, REQUEUED_UPDATE.params(requeued, updated_on=stamp))


_CLOSE_SUBEVENT_SQL = update_sql(
    SUBEVENT_TABLE, ("status", "error_code", "date_last_activity"), ("id",)
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
    bulk.execute_many(_CLOSE_SUBEVENT_SQL, changes)
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
