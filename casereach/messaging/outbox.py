"""Claiming outbox rows with leases — the dialect-specific SQL of the dispatcher.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of dispatchers claim disjoint
batches. SQLite: the IMMEDIATE write transaction already excludes other writers.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

from casereach.core import bulk
from casereach.messaging.models import Message, SendAttempt

TABLE = Message._meta.db_table
ATTEMPTS = SendAttempt._meta.db_table


def claim(limit: int, lease_until: dt.datetime, token: str, at: dt.datetime) -> list[str]:
    """Mark up to ``limit`` due queued messages as ``sending`` under ``token``; their ids."""
    lock = " FOR UPDATE SKIP LOCKED" if bulk.is_postgres() else ""
    sql = (
        f"UPDATE {TABLE} SET status = 'sending', lease_until = %s, lease_token = %s, "
        f"attempts = attempts + 1, updated_on = %s "
        f"WHERE id IN (SELECT id FROM {TABLE} WHERE status = 'queued' AND next_attempt_at <= %s "
        f"ORDER BY next_attempt_at LIMIT %s{lock}) AND status = 'queued' RETURNING id"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                bulk.adapt_datetime(lease_until),
                token,
                bulk.adapt_datetime(at),
                bulk.adapt_datetime(at),
                limit,
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def reap(at: dt.datetime, limit: int = 1000) -> list[str]:
    """Put messages whose lease expired mid-send back in the queue.

    Their gateway call may or may not have happened: the attempt is recorded as ``unknown``
    and the retry reuses the message id as idempotency key.
    """
    lock = " FOR UPDATE SKIP LOCKED" if bulk.is_postgres() else ""
    sql = (
        f"UPDATE {TABLE} SET status = 'queued', lease_until = NULL, lease_token = NULL, "
        f"unknown_outcomes = unknown_outcomes + 1, next_attempt_at = %s, updated_on = %s "
        f"WHERE id IN (SELECT id FROM {TABLE} WHERE status = 'sending' AND lease_until < %s "
        f"LIMIT %s{lock}) AND status = 'sending' RETURNING id, attempts, gateway_name"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        stamp = bulk.adapt_datetime(at)
        cursor.execute(sql, [stamp, stamp, stamp, limit])
        rows = cursor.fetchall()
        bulk.insert(
            ATTEMPTS,
            (
                "message_id",
                "number",
                "gateway_name",
                "outcome",
                "error_code",
                "provider_code",
                "detail",
                "request",
                "response",
                "duration_ms",
                "created_on",
            ),
            [
                (
                    mid,
                    attempts,
                    gw or "",
                    "unknown",
                    None,
                    "",
                    "lease expired during the gateway call; outcome unknown, retried with the same id",
                    "",
                    "",
                    0,
                    stamp,
                )
                for mid, attempts, gw in rows
            ],
        )
        return [row[0] for row in rows]
