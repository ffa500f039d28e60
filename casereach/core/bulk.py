"""Set-based writes in one small module, with a SQLite and a PostgreSQL dialect.

The ORM's bulk helpers build a Python object per row and, for updates, a giant CASE
expression; the ingest path instead writes each table with one statement: SQLite runs a
parameterised INSERT for every row in ``executemany``'s C loop, PostgreSQL gets the rows by
COPY and applies them with one INSERT … SELECT.
Column and table names come only from our own code, never from input.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import connection
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

Row = Sequence[Any]

# Bound values in one SQLite ``IN`` list: under its oldest variable limit (999).
IN_CHUNK = 900


# -- the dialect: every SQLite/PostgreSQL difference is decided here (and in core.rows) --------


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def one_writer_database() -> bool:
    """SQLite: one writer at a time for the whole database (its IMMEDIATE write transaction
    excludes every other writer, so per-row and advisory locks have nothing to add)."""
    return connection.vendor == "sqlite"


def has_row_locks() -> bool:
    """``SELECT … FOR UPDATE`` exists (PostgreSQL)."""
    return bool(connection.features.has_select_for_update)


def for_update(sql: str, *, skip_locked: bool = False) -> str:
    """``sql`` with a row lock where the dialect has one (SQLite: the write lock serialises)."""
    if not has_row_locks():
        return sql
    return sql + (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE")


# SQLite has one writer at a time. A transaction that finds the write lock taken waits in
# SQLite's busy handler, which sleeps 1, 2, 5, … up to 100 ms between tries: the lock sits idle
# while every waiter sleeps, and under a burst of webhooks throughput collapses and latency grows
# to seconds. The writers of this process that opt in queue on a mutex instead, and the next
# one starts the moment the last one commits.
_sqlite_writer = threading.Lock()


@contextlib.contextmanager
def process_writer_turn() -> Iterator[None]:
    """Hold the process's SQLite writer mutex for an outermost transaction (nothing to do on
    PostgreSQL, or inside a transaction that already holds the write lock)."""
    if not one_writer_database() or connection.in_atomic_block:
        yield
        return
    with _sqlite_writer:
        yield


@functools.cache
def _utc_datetime_form() -> str:
    """How the default connection takes a UTC datetime: ``text`` (SQLite with USE_TZ and a
    UTC connection zone: naive ``str()``), ``native`` (PostgreSQL: as is), else ``orm``."""
    if connection.vendor == "postgresql":
        return "native"
    if connection.vendor == "sqlite" and connection.timezone is dt.UTC:
        return "text"
    return "orm"


def adapt_datetime(value: dt.datetime | None) -> Any:
    """The parameter form of a datetime that matches what the ORM itself writes.

    The ORM's adapter costs several microseconds per value (settings and connection look-ups);
    ingest adapts ~7 values per case, so UTC values (all of ours) take a fast path that gives
    the same result, remembered for the few distinct stamps a batch writes.
    """
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        adapted = _adapted.get(value)
        if adapted is not None:
            return adapted
        form = _utc_datetime_form()
        if form == "text":
            # == str(value.replace(tzinfo=None)) without building that datetime: the UTC
            # isoformat is the naive one plus "+00:00".
            adapted = value.isoformat(" ")[:-6]
        elif form == "native":
            adapted = value
        else:
            adapted = connection.ops.adapt_datetimefield_value(value)
        if len(_adapted) >= 4096:
            _adapted.clear()
        _adapted[value] = adapted
        return adapted
    return connection.ops.adapt_datetimefield_value(value)


_adapted: dict[dt.datetime, Any] = {}
# The parameter of a UTC datetime ``adapt_datetime`` adapted already (None when it did not):
# ``core.rows``' datetime columns look here first, saving a call per value.
adapted_already = _adapted.get
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def adapt_json(value: Any) -> str:
    if type(value) is dict and not value:
        return "{}"
    if type(value) is list and not value:
        return "[]"
    return _encode_json(value)


def in_sql(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column IN (…)`` as SQL and parameters; PostgreSQL gets ``column = ANY(array)``.

    One array parameter plans in about half the time of an IN list there and has no length
    limit. ``values`` must already be of the column's type; ``column`` comes from our code.
    """
    if not values:
        return "1 = 0", []
    if is_postgres():
        if all(type(v) is str for v in values):
            return f"{column} = ANY(%s)", [_text_array(values)]
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def _text_array(values: Sequence[str]) -> str:
    """Strings as an untyped PostgreSQL array literal, ``{"a","b"}``: what psycopg sends for
    a list of strings (the server gives it the column's array type), built here in one join
    instead of psycopg's per-element Python dumper (about 4 µs an element; ingest sends a
    few 5,000-id lists a batch)."""
    return '{"' + '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values) + '"}'


def is_in(column: str, values: Sequence[Any]) -> RawSQL:
    """``in_sql`` as a filter expression for ``QuerySet.filter``: the ORM's ``__in`` lookup
    without its per-value preparation (about 2.5 µs a value; ingest does several look-ups
    per imported case)."""
    sql, params = in_sql(column, values)
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611 (our column names)


def in_chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """``items`` in chunks sized for one ``in_sql`` list: 900 bound values on SQLite (under
    its oldest variable limit), 10,000 on PostgreSQL (one array; each round trip costs)."""
    return chunks(items, 10_000 if is_postgres() else IN_CHUNK)


def upsert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    conflict: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT … ON CONFLICT (conflict) DO UPDATE SET update (same syntax on both dialects).

    Rows apply in order: a later row with the same conflict key wins.
    """
    if update:
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        suffix = f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {sets}"
    else:
        suffix = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    key = [list(columns).index(c) for c in conflict]
    _insert(table, columns, rows, suffix, key)


def insert(table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
    """INSERT the rows, in order."""
    _insert(table, columns, rows, "", None)


def _insert(
    table: str, columns: Sequence[str], rows: Iterable[Row], suffix: str, key: list[int] | None
) -> None:
    batch = list(rows)
    if not batch:
        return
    if is_postgres():
        _pg_copy_insert(table, columns, batch, suffix, key)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}){suffix}"
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def _pg_copy_insert(
    table: str, columns: Sequence[str], batch: list[Row], suffix: str, key: list[int] | None
) -> None:
    """PostgreSQL: COPY the rows into a session temp table, then one INSERT … SELECT.

    Django binds parameters client-side and disables prepared statements, so one INSERT per
    row (even pipelined by ``executemany``) is parsed and planned per row: ~90 µs a row for
    the contact table. COPY + INSERT … SELECT costs ~13 µs. Rows keep their order (``_ord``);
    a repeated conflict key starts a new round, since ON CONFLICT DO UPDATE cannot touch a
    row twice in one statement.
    """
    cols = ", ".join(columns)
    tmp = f"_bulk_{table}_{zlib.crc32(cols.encode()):08x}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ON COMMIT DELETE ROWS AS "
            f"SELECT 0 AS _ord, {cols} FROM {table} WITH NO DATA"
        )
        stamps = [i for i, v in enumerate(batch[0], 1) if isinstance(v, dt.datetime)]
        # psycopg's datetime dumper costs ~2 µs a value and isoformat ~1 µs; rows share
        # datetime objects (a case's four stamps, a batch's one ``updated_on``), so each
        # object is formatted once per call (keyed by id: the rows keep them alive).
        texts: dict[int, Any] = {}
        for part in _rounds(batch, key):
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {tmp} (_ord, {cols}) FROM STDIN") as copy,
            ):
                for i, row in enumerate(part):
                    values = [i, *row]
                    for at in stamps:
                        value = values[at]
                        text = texts.get(id(value))
                        if text is None:
                            text = texts[id(value)] = _copy_timestamp(value)
                        values[at] = text
                    copy.write_row(values)
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {tmp} ORDER BY _ord{suffix}"
            )
            cursor.execute(f"DELETE FROM {tmp}")


def _copy_timestamp(value: Any) -> Any:
    """An aware datetime as COPY text; anything else as it is."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        return value
    return value.isoformat(" ")


def _rounds(batch: list[Row], key: list[int] | None) -> Iterator[list[Row]]:
    """``batch`` cut, in order, into runs in which no conflict key repeats."""
    if key is None:
        yield batch
        return
    if len(key) == 1:
        (only,) = key
        if len({row[only] for row in batch}) == len(batch):
            yield batch  # the usual case: no key repeats
            return
    part: list[Row] = []
    seen: set[tuple[Any, ...]] = set()
    for row in batch:
        k = tuple(row[i] for i in key)
        if k in seen:
            yield part
            part, seen = [], set()
        seen.add(k)
        part.append(row)
    if part:
        yield part


def execute_many(sql: str, rows: Iterable[Row]) -> None:
    batch = list(rows)
    if not batch:
        return
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)


def update_by_key(
    table: str, key: tuple[str, str], columns: Sequence[tuple[str, str]], rows: Sequence[Row]
) -> None:
    """``UPDATE table SET column = …`` for each row — (key value, then one value per column),
    each key once; ``key`` and ``columns`` as (column, PostgreSQL type). PostgreSQL: one
    statement joining one array per column (``FROM unnest(…)``) instead of a round trip per
    row (``executemany`` of 500 single-row UPDATEs took 34 ms a batch); SQLite (no round
    trips): ``executemany``. Values must already be of the columns' types."""
    if not rows:
        return
    if not is_postgres():
        sets = ", ".join(f"{c} = %s" for c, _ in columns)
        execute_many(
            f"UPDATE {table} SET {sets} WHERE {key[0]} = %s", [(*r[1:], r[0]) for r in rows]
        )
        return
    names = [key[0], *(c for c, _ in columns)]
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in [key, *columns])
    sets = ", ".join(f"{c} = v.{c}" for c, _ in columns)
    sql = (
        f"UPDATE {table} AS t SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
        f"WHERE t.{key[0]} = v.{key[0]}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(values) for values in zip(*rows, strict=True)])


def refresh_statistics(tables: Sequence[str]) -> None:
    """PostgreSQL: ANALYZE ``tables`` now (bulk loads outrun autovacuum's analyze, and a
    planner without statistics probes a 300,000-row case table by project instead of by
    external id: 145 ms instead of 11 ms a batch look-up). SQLite: nothing (its planner
    prefers the longest usable index without statistics)."""
    if tables and is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(tables)}")


def refresh_stale_statistics(table: str, floor: int = 5000) -> None:
    """PostgreSQL: ANALYZE ``table`` now when it holds more than twice the rows its last
    ANALYZE counted (and more than ``floor``): a table that a bulk path fills batch after
    batch outruns autovacuum, and a planner that still believes it nearly empty walks a
    partial index instead of probing it. One catalog read; the ANALYZE once per doubling.
    SQLite: nothing."""
    if not is_postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.n_live_tup, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = %s::regclass",
            [table],
        )
        found = cursor.fetchone()
    if found is not None and found[0] > max(2 * float(found[1]), floor):
        refresh_statistics([table])


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


def insert_rows_returning_ids(table: str, columns: Sequence[str], rows: Sequence[Row]) -> list[Any]:
    """INSERT rows into a table with an auto id and return the new ids in row order.

    SQLite inside a transaction: the write lock is ours (IMMEDIATE), so the next ids are
    known — they are given explicitly and the rows go through ``executemany`` (a multi-row
    VALUES statement of 900 parameters costs more to prepare than it saves). Otherwise:
    multi-row ``INSERT … RETURNING id`` in chunks (both dialects return the rows in VALUES
    order — the ORM's own bulk_create relies on the same)."""
    if not rows:
        return []
    if not is_postgres() and connection.in_atomic_block:
        ids = reserve_ids(table, len(rows))
        with connection.cursor() as cursor:
            marks = ", ".join(["%s"] * (len(columns) + 1))
            cursor.executemany(
                f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES ({marks})",
                [(new_id, *row) for new_id, row in zip(ids, rows, strict=True)],
            )
        return ids
    per = max(1, (900 if not is_postgres() else 20_000) // len(columns))
    marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
    cols = ", ".join(columns)
    ids = []
    with connection.cursor() as cursor:
        for part in chunks(rows, per):
            values = ", ".join([marks] * len(part))
            params = [v for row in part for v in row]
            cursor.execute(f"INSERT INTO {table} ({cols}) VALUES {values} RETURNING id", params)
            ids.extend(r[0] for r in cursor.fetchall())
    return ids


def reserve_ids(table: str, count: int) -> list[int]:
    """The next ``count`` auto ids of ``table``, for rows the caller then INSERTs with their
    id given (a row that others must name before it is written: a bulk start's session,
    named by its question's event). PostgreSQL: taken from the table's sequence (never given
    again). SQLite: the ids after the highest one and the AUTOINCREMENT high-water mark (ids
    are never reused below it), in one statement; they stay free only while the write lock
    is ours, so the caller must be in a transaction and write them before it ends."""
    if count < 1:
        return []
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return sorted(int(row[0]) for row in cursor.fetchall())
        if not connection.in_atomic_block:
            raise RuntimeError(f"{table}: SQLite ids are reserved inside a transaction only")
        cursor.execute(
            f"SELECT COALESCE((SELECT MAX(id) FROM {table}), 0), "
            "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0)",
            [table],
        )
        top, seq = cursor.fetchone()
    first = max(int(top), int(seq)) + 1
    return list(range(first, first + count))
