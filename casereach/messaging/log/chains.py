"""Fallback chains in the message log (``messaging.chains`` decides, this writes).

An attempt is *moved on* by one guarded UPDATE (``claim_moves``): it applies only while the
attempt has not moved on yet and is still in the state that moves it (``failed``, or ``sent``
for longer than the channel's wait), and its RETURNING clause names exactly the rows this
statement changed. Two scans that race for the same attempt both run the UPDATE; the second
one finds ``moved_on_at`` set (PostgreSQL re-checks the condition once the first commits;
SQLite runs one writer at a time) and changes nothing, so a chain moves on once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from casereach.core import bulk, rows
from casereach.core.sqlgen import update_sql
from casereach.messaging.log.events import EVENT_TABLE, SUBEVENT_TABLE
from casereach.messaging.models import FAILED, IN_PROGRESS, SENT, Message
from casereach.projects.actions import lock_project, tick_clock

TABLE = Message._meta.db_table

# What moving a chain on reads of each attempt (``claim_moves`` returns them, in this order).
MOVE_COLUMNS = (
    "id",
    "project_id",
    "event_id",
    "subevent_id",
    "contact_id",
    "contact_type",
    "channel",
    "text",
    "subject",
    "language",
    "chain_id",
    "chain_step",
    "chain_next",
)


def waiting(at: dt.datetime, waits: Mapping[tuple[int, str], int], limit: int) -> list[str]:
    """Ids of up to ``limit`` sent attempts (of a chain with a channel left) that had no
    delivery report within their project's wait for their channel (``waits``: (project,
    channel) → minutes); oldest first."""
    out: list[str] = []
    for (project_id, channel), minutes in sorted(waits.items()):
        if len(out) >= limit:
            break
        cutoff = bulk.adapt_datetime(at - dt.timedelta(minutes=minutes))
        found = rows.fetch_all(
            f"SELECT id FROM {TABLE} WHERE project_id = %s AND channel = %s "
            f"AND status = '{SENT}' AND moved_on_at IS NULL AND chain_next <> '' "
            f"AND sent_on <= %s ORDER BY sent_on LIMIT %s",
            [project_id, channel, cutoff, limit - len(out)],
        )
        out.extend(row[0] for row in found)
    return out


def waiting_pairs() -> list[tuple[int, str]]:
    """(project, channel) of every sent attempt still waiting for its delivery report in a
    chain with a channel left: one query on a partial index."""
    found = rows.fetch_all(
        f"SELECT DISTINCT project_id, channel FROM {TABLE} WHERE status = '{SENT}' "
        "AND moved_on_at IS NULL AND chain_next <> ''",
        [],
    )
    return [(int(p), str(c)) for p, c in found if p is not None]


def move_rows(ids: Sequence[str]) -> list[dict[str, Any]]:
    """``MOVE_COLUMNS`` of the attempts ``ids`` that may still move on (read, not claimed)."""
    out: list[dict[str, Any]] = []
    for chunk in bulk.in_chunks(sorted(set(ids))):
        where, params = bulk.in_sql("id", chunk)
        found = rows.fetch_all(
            f"SELECT {', '.join(MOVE_COLUMNS)} FROM {TABLE} WHERE {where} "
            "AND moved_on_at IS NULL AND chain_next <> ''",
            params,
        )
        out.extend(dict(zip(MOVE_COLUMNS, row, strict=True)) for row in found)
    return out


def claim_moves(
    ids: Sequence[str], reason: str, at: dt.datetime, *, timed_out_before: dt.datetime | None
) -> list[str]:
    """Mark the attempts ``ids`` as moved on (``reason``) where they still may be: not
    moved on yet and ``failed`` — or, with ``timed_out_before``, still ``sent`` (no delivery
    report) since before then. The ids this call changed (never one another call changed)."""
    if timed_out_before is None:
        state, extra = f"status = '{FAILED}'", []
    else:
        state, extra = (
            f"status = '{SENT}' AND sent_on <= %s",
            [bulk.adapt_datetime(timed_out_before)],
        )
    stamp = bulk.adapt_datetime(at)
    out: list[str] = []
    for chunk in bulk.in_chunks(sorted(set(ids))):
        where, params = bulk.in_sql("id", chunk)
        # writes: messaging.Message
        found = rows.fetch_all(
            f"UPDATE {TABLE} SET moved_on_at = %s, fallback_reason = %s, updated_on = %s "
            f"WHERE {where} AND moved_on_at IS NULL AND chain_next <> '' AND {state} "
            "RETURNING id",
            [stamp, reason, stamp, *params, *extra],
        )
        out.extend(row[0] for row in found)
    return out


def end_chains(ids: Sequence[str]) -> None:
    """No channel left that can reach the contact: these attempts are their chains' last."""
    for chunk in bulk.in_chunks(sorted(set(ids))):
        where, params = bulk.in_sql("id", chunk)
        # writes: messaging.Message
        rows.fetch_all(
            f"UPDATE {TABLE} SET chain_next = '' WHERE {where} AND moved_on_at IS NULL "
            "RETURNING id",
            params,
        )


_REOPEN_SUBEVENT_SQL = update_sql(
    SUBEVENT_TABLE, ("status", "error_code", "date_last_activity"), ("id",)
)
_REOPEN_EVENT_SQL = update_sql(EVENT_TABLE, ("status", "error_code"), ("id",))


def reopen(attempts: Sequence[Mapping[str, Any]]) -> None:
    """The events and sub-events of attempts a chain moved on from are in progress again
    (their next attempt is queued), the sub-events stamped with the project's clock."""
    by_project: dict[int, set[int]] = defaultdict(set)
    events: set[int] = set()
    for r in attempts:
        if r["subevent_id"] and r["project_id"]:
            by_project[r["project_id"]].add(r["subevent_id"])
        if r["event_id"]:
            events.add(r["event_id"])
    step = dt.timedelta(microseconds=1)
    changes: list[tuple[Any, ...]] = []
    for project_id, subs in sorted(by_project.items()):
        tick = tick_clock(lock_project(project_id), len(subs))
        changes.extend(
            (IN_PROGRESS, None, bulk.adapt_datetime(tick + step * i), sub)
            for i, sub in enumerate(sorted(subs))
        )
    bulk.execute_many(_REOPEN_SUBEVENT_SQL, changes)
    bulk.execute_many(_REOPEN_EVENT_SQL, [(IN_PROGRESS, None, e) for e in sorted(events)])
