"""Claiming outbox rows with leases — the dialect-specific SQL of the dispatcher.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of dispatchers claim disjoint
batches. SQLite: the IMMEDIATE write transaction already excludes other writers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.db import connection, transaction
from django.utils.dateparse import parse_datetime

from casereach.core import bulk
from casereach.messaging import log
from casereach.messaging.models import QUEUED, SENDING, Message

TABLE = Message._meta.db_table


# What became of one gateway call (``SendAttempt.outcome``): accepted, retried, maybe sent
# (retried with the same idempotency key), refused for good.
AttemptOutcome = Literal["sent", "retry", "unknown", "failed"]


def _claim_statement(returning: str) -> str:
    """The claiming UPDATE: due queued messages become ``sending`` under a lease.

    Parameters: at, limit, lease_until, token, at.
    """
    if bulk.is_postgres():
        # The locked rows are picked once, in a materialised CTE. Inside ``WHERE id IN
        # (subquery)`` PostgreSQL may rescan the subquery, and every rescan skips the rows
        # the previous one locked and returns new ones: under contention one claim took the
        # whole outbox instead of ``limit`` rows.
        return (
            f"WITH picked AS MATERIALIZED (SELECT id FROM {TABLE} WHERE status = '{QUEUED}' "
            f"AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s "
            f"FOR UPDATE SKIP LOCKED) "
            f"UPDATE {TABLE} AS m SET status = '{SENDING}', lease_until = %s, lease_token = %s, "
            f"attempts = m.attempts + 1, updated_on = %s FROM picked WHERE m.id = picked.id "
            f"RETURNING {', '.join('m.' + c for c in returning.split(', '))}"
        )
    # SQLite: the IMMEDIATE write transaction excludes every other claimer.
    return (
        f"WITH picked AS (SELECT id FROM {TABLE} WHERE status = '{QUEUED}' "
        f"AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s) "
        f"UPDATE {TABLE} SET status = '{SENDING}', lease_until = %s, lease_token = %s, "
        f"attempts = attempts + 1, updated_on = %s "
        f"WHERE id IN (SELECT id FROM picked) AND status = '{QUEUED}' RETURNING {returning}"
    )


def claim(limit: int, lease_until: dt.datetime, token: str, at: dt.datetime) -> list[str]:
    """Mark up to ``limit`` due queued messages as ``sending`` under ``token``; their ids."""
    lease, stamp = bulk.adapt_datetime(lease_until), bulk.adapt_datetime(at)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_claim_statement("id"), [stamp, limit, lease, token, stamp])
        return [row[0] for row in cursor.fetchall()]


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
)


def claim_rows(
    limit: int, lease_until: dt.datetime, token: str, at: dt.datetime
) -> list[dict[str, Any]]:
    """``claim``, returning each claimed message's ``CLAIM_COLUMNS`` (``attempts`` already
    counting this one) in one statement, oldest first. ``created_on`` is the driver's value
    (a naive UTC datetime on SQLite, an aware one on PostgreSQL): see ``raw_before``."""
    stamp = bulk.adapt_datetime(at)
    sql = _claim_statement(", ".join(CLAIM_COLUMNS))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [stamp, limit, bulk.adapt_datetime(lease_until), token, stamp])
        rows = [dict(zip(CLAIM_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["allow_opted_out"] = bool(row["allow_opted_out"])  # SQLite returns 0/1
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


LEASE_EXPIRED = "lease expired during the gateway call; outcome unknown, retried with the same id"


def reap(at: dt.datetime, limit: int = 1000) -> list[str]:
    """Put messages whose lease expired mid-send back in the queue.

    Their gateway call may or may not have happened: the attempt is recorded as ``unknown``
    and the retry reuses the message id as idempotency key.
    """
    stamp = bulk.adapt_datetime(at)
    if bulk.is_postgres():  # picked once, as in claim()
        sql = (
            f"WITH picked AS MATERIALIZED (SELECT id FROM {TABLE} WHERE status = '{SENDING}' "
            f"AND lease_until < %s LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {TABLE} AS m SET status = '{QUEUED}', lease_until = NULL, lease_token = NULL, "
            f"unknown_outcomes = m.unknown_outcomes + 1, next_attempt_at = %s, updated_on = %s "
            f"FROM picked WHERE m.id = picked.id RETURNING m.id, m.attempts, m.gateway_name"
        )
        params = [stamp, limit, stamp, stamp]
    else:
        sql = (
            f"UPDATE {TABLE} SET status = '{QUEUED}', lease_until = NULL, lease_token = NULL, "
            f"unknown_outcomes = unknown_outcomes + 1, next_attempt_at = %s, updated_on = %s "
            f"WHERE id IN (SELECT id FROM {TABLE} WHERE status = '{SENDING}' "
            f"AND lease_until < %s LIMIT %s) AND status = '{SENDING}' "
            f"RETURNING id, attempts, gateway_name"
        )
        params = [stamp, stamp, stamp, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        log.add_attempts(
            [
                log.AttemptDraft(
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
