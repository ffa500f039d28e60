"""The floors of casereach bench alerts: plain sqlite3 inserting the schedule instances an
activation makes, and writing what a due scan must write (event, sub-event, message, the
instance advanced), on the real tables and indexes."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from casereach.bench.workspace import (
    FLOOR_PRAGMAS,
    ZONES,
    BenchError,
    Target,
    Workspace,
    case_id,
)
from casereach.core.ids import time_ordered_id

INSTANCE_TABLE = "alerts_scheduleinstance"


def instance_schema(db: Path) -> tuple[list[str], list[str]]:
    """(CREATE statements of the real instance table and its indexes, foreign keys removed;
    its columns other than ``id``), read from a database ``casereach init`` made."""
    conn = sqlite3.connect(db)
    try:
        statements = [
            str(sql)
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type = 'index', name",
                (INSTANCE_TABLE,),
            )
        ]
        columns = _columns(conn, INSTANCE_TABLE)
    finally:
        conn.close()
    if not statements or not columns:
        raise BenchError(f"no table {INSTANCE_TABLE} in {db.name}")
    cleaned = [
        re.sub(r'\s*REFERENCES\s+"\w+"\s*\("\w+"\)(\s+DEFERRABLE INITIALLY DEFERRED)?', "", s)
        for s in statements
    ]
    return cleaned, columns


def floor_rows(columns: list[str], count: int) -> list[tuple[Any, ...]]:
    """``count`` instance rows of one alert, in ``columns`` order."""
    stamp = "2025-01-01 00:00:00.000000"
    rows = []
    for i in range(count):
        key = case_id()
        values: dict[str, Any] = {
            "alert_id": 1,
            "alert_version": 1,
            "project_id": 1,
            "recipient_key": key,
            "case_id": key,
            "contact_id": key,
            "time_zone": ZONES[i % len(ZONES)],
            "start": stamp,
            "period": 0,
            "event": 0,
            "next_due": "2025-01-01 06:00:00.000000",
            "active": True,
            "start_value": "",
            "time_value": "",
            "reset_value": "",
            "stop_value": "",
            "created_on": stamp,
            "updated_on": stamp,
        }
        try:
            rows.append(tuple(values[c] for c in columns))
        except KeyError as exc:
            raise BenchError(f"the floor has no value for column {exc}") from None
    return rows


def measure_floor(ws: Workspace, shape: Path, count: int) -> float:
    """Seconds for plain sqlite3 executemany of ``count`` instance rows, one transaction."""
    schema, columns = instance_schema(shape)
    rows = floor_rows(columns, count)
    conn = sqlite3.connect(ws.root / "alerts-floor.sqlite3", isolation_level=None)
    try:
        for pragma in FLOOR_PRAGMAS:
            conn.execute(pragma)
        for statement in schema:
            conn.execute(statement)
        insert = (
            f"INSERT INTO {INSTANCE_TABLE} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        (inserted,) = conn.execute(f"SELECT count(*) FROM {INSTANCE_TABLE}").fetchone()
    finally:
        conn.close()
    if inserted != count:
        raise BenchError(f"the floor inserted {inserted} of {count} rows")
    return seconds


WRITE_BATCH = 500  # the scheduler's batch


EVENT_TABLE = "messaging_messagingevent"


SUBEVENT_TABLE = "messaging_messagingsubevent"


MESSAGE_TABLE = "messaging_message"


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})") if row[1] != "id"]


def _floor_templates(stamp: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The column values every event, sub-event and message of the write floor shares."""
    base: dict[str, Any] = {
        "project_id": 1,
        "created_on": stamp,
        "updated_on": stamp,
        "status": "completed",
        "error_code": None,
    }
    event = {
        **base,
        "source": "conditional_alert",
        "source_id": "1",
        "source_name": "Bench ANC reminders",
        "content_type": "sms",
        "triggered_by": "",
    }
    subevent = {
        **base,
        "contact_type": "case",
        "recipient_name": "Mother",
        "date_last_activity": stamp,
        "survey_session_id": None,
        "survey_status": "",
        "survey_form": None,
    }
    message = {
        **base,
        "status": "queued",
        "direction": "out",
        "channel": "sms",
        "contact_type": "case",
        "email_address": "",
        "subject": "",
        "language": "en",
        "segments": 1,
        "encoding": "GSM",
        "gateway_name": "",
        "gateway_id": None,
        "gateway_source": "",
        "sender": "",
        "provider_code": "",
        "error_detail": "",
        "provider_id": None,
        "attempts": 0,
        "unknown_outcomes": 0,
        "allow_opted_out": False,
        "next_attempt_at": stamp,
        "lease_until": None,
        "lease_token": None,
        "sent_on": None,
        "delivered_on": None,
        "failed_on": None,
        "inbound_action": "",
        "read_on": None,
        "payload": None,
        "chain_id": None,
        "chain_step": 0,
        "chain_next": "",
        "fallback_reason": "",
        "moved_on_at": None,
        "estimated_cost_micros": 7500,  # the due scan prices every message it queues
        "actual_cost_micros": None,
        "cost_currency": "USD",
        "cost_source": "",
        "price_due_at": None,
    }
    return event, subevent, message


def write_floor_rows(
    conn: sqlite3.Connection, count: int
) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
    """The rows one due scan of ``count`` instances writes at the least — per instance a
    messaging event, a sub-event, an outbox message and the instance moved to its next
    occurrence — as (statement, rows), built before any clock starts."""
    stamp = "2025-01-01 06:00:00.000000"
    later = "2025-01-02 06:00:00.000000"
    event, subevent, message = _floor_templates(stamp)
    shapes = {t: _columns(conn, t) for t in (EVENT_TABLE, SUBEVENT_TABLE, MESSAGE_TABLE)}
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in shapes}
    try:
        for i in range(count):
            key = f"case{i:012d}"
            rows[EVENT_TABLE].append(tuple(event[c] for c in shapes[EVENT_TABLE]))
            values = {**subevent, "contact_id": key, "event_id": i + 1}
            rows[SUBEVENT_TABLE].append(tuple(values[c] for c in shapes[SUBEVENT_TABLE]))
            values = {
                **message,
                "contact_id": key,
                "phone_number": f"2547{i:08d}",
                "text": f"Hello Mother {i}, due 2025-03-01",
                "event_id": i + 1,
                "subevent_id": i + 1,
            }
            row = [values[c] for c in shapes[MESSAGE_TABLE]]
            rows[MESSAGE_TABLE].append((time_ordered_id(), *row))  # as our messages' ids
    except KeyError as exc:
        raise BenchError(f"the write floor has no value for column {exc}") from None
    statements: dict[str, tuple[str, list[tuple[Any, ...]]]] = {}
    for table, columns in shapes.items():
        names = (["id"] if table == MESSAGE_TABLE else []) + columns
        statements[table] = (
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            rows[table],
        )
    statements[INSTANCE_TABLE] = (
        f"UPDATE {INSTANCE_TABLE} SET next_due = ?, event = 0, period = period + 1, "
        "updated_on = ? WHERE id = ?",
        [(later, stamp, i + 1) for i in range(count)],
    )
    return statements


def measure_write_floor(ws: Workspace, count: int) -> float:
    """Seconds for plain sqlite3 to write what a due scan of ``count`` instances must write
    (``write_floor_rows``) on the real tables and indexes, foreign keys off, one transaction
    per scheduler batch, into a fresh file whose instance table already holds the
    ``count`` instances. No reading, rendering or checking: the best any due scan that keeps
    the message log can do."""
    db = ws.root / "alerts-writes.sqlite3"
    ws.cli(Target(str(db), "sqlite"), "init")
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for pragma in FLOOR_PRAGMAS:
            conn.execute(pragma)
        conn.execute("PRAGMA foreign_keys = OFF")
        columns = _columns(conn, INSTANCE_TABLE)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO {INSTANCE_TABLE} (id, {', '.join(columns)}) "
            f"VALUES (?, {', '.join('?' for _ in columns)})",
            [(i + 1, *row) for i, row in enumerate(floor_rows(columns, count))],
        )
        conn.execute("COMMIT")
        statements = write_floor_rows(conn, count)
        started = time.perf_counter()
        for start in range(0, count, WRITE_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            for sql, rows in statements.values():
                conn.executemany(sql, rows[start : start + WRITE_BATCH])
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        (written,) = conn.execute(f"SELECT count(*) FROM {MESSAGE_TABLE}").fetchone()
    finally:
        conn.close()
    db.unlink(missing_ok=True)
    if written != count:
        raise BenchError(f"the write floor wrote {written} of {count} messages")
    return seconds
