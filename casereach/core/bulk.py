"""Set-based writes in one small module, with a SQLite and a PostgreSQL dialect.

The ORM's bulk helpers build a Python object per row and, for updates, a giant CASE
expression; the ingest path instead sends one parameterised statement per table and lets the
driver's ``executemany`` stream the rows (SQLite's C loop, psycopg's pipeline mode).
Column and table names come only from our own code, never from input.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

Row = Sequence[Any]


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def adapt_datetime(value: dt.datetime | None) -> Any:
    """The parameter form of a datetime that matches what the ORM itself writes."""
    if value is None:
        return None
    return connection.ops.adapt_datetimefield_value(value)


def adapt_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def upsert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    conflict: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT … ON CONFLICT (conflict) DO UPDATE SET update (same syntax on both dialects)."""
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    if update:
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
    else:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    batch = list(rows)
    if not batch:
        return
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def insert(table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
    batch = list(rows)
    if not batch:
        return
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def execute_many(sql: str, rows: Iterable[Row]) -> None:
    batch = list(rows)
    if not batch:
        return
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def lock_keys(namespace: str, keys: Iterable[str]) -> None:
    """Serialise writers on the given keys until the transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in sorted order so two writers can
    never deadlock on them. SQLite: the IMMEDIATE write transaction already excludes every
    other writer, so there is nothing more to take.
    """
    if not is_postgres():
        return
    ids = sorted({zlib.crc32(f"{namespace}:{k}".encode()) - 2**31 for k in keys})
    if not ids:
        return
    with connection.cursor() as cursor:
        for chunk_start in range(0, len(ids), 1000):
            chunk = ids[chunk_start : chunk_start + 1000]
            cursor.execute(
                "SELECT pg_advisory_xact_lock(s.k) FROM "
                "(SELECT k FROM unnest(%s::bigint[]) AS k ORDER BY k) AS s",
                [chunk],
            )


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
