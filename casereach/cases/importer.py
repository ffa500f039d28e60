"""Bulk case import from CSV or XLSX (``casereach import-cases``), streaming and bounded.

The file is read one record at a time and turned into :class:`CaseChange` objects; every
``batch_size`` changes go through :func:`do_apply_case_changes` with ``partial=True``, the same
path as the Case API, so an imported case becomes a contact in the same transaction.

Columns (the first row is the header):

- ``case_id`` or ``external_id`` — the upsert key. With ``case_id`` the row updates that case
  or creates it with that id; with only ``external_id`` it updates the project's live case with
  that external id or creates one. A file with neither column is refused as a whole; a row with
  both empty is a row error.
- ``case_type``, ``case_name``, ``owner_id`` — required to create a case (``--case-type``
  fills ``case_type`` for rows without one).
- ``close`` — ``1`` / ``true`` / ``yes`` (any case) closes the case; ``0`` / ``false`` /
  ``no`` / empty leave it as it is.
- any other column is a case property. An empty cell leaves the property unchanged.

Row numbers are the file's: the header is row 1; for CSV a record's row is the line it starts
on, for XLSX the sheet row. Bad rows never stop the import: each becomes one or more
``(row, column, reason)`` errors, and the good rows are written.
"""

from __future__ import annotations

import gc
import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import BASE_FIELDS, MAX_FIELD, MAX_VALUE, CaseChange, valid_xml_name
from casereach.cases.import_files import (
    MAX_XLSX_CELL_BYTES,
    RowSource,
    SourceRow,
    file_kind,
    iter_rows,
    open_rows,
)
from casereach.cases.models import Case
from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core.errors import BadRequest
from casereach.projects.models import Project

# The reading side lives in import_files; these are part of the importer's interface too.
__all__ = [
    "KEPT_ERRORS",
    "MAX_XLSX_CELL_BYTES",
    "ImportReport",
    "Progress",
    "RowError",
    "SourceRow",
    "file_kind",
    "import_cases",
    "iter_rows",
]

KEPT_ERRORS = 1000
# Tables an import grows, and when to refresh their planner statistics (cases written).
IMPORTED_TABLES = (Case._meta.db_table, Contact._meta.db_table, PhoneEntry._meta.db_table)
ANALYZE_FIRST = 50_000
IMPORT_USER = "import"

KEY_COLUMNS = ("case_id", "external_id")
FIELD_COLUMNS = ("case_type", "case_name", "owner_id")
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "n", "off"})
# Case API fields that an import cannot set and that therefore cannot be properties either.
RESERVED = BASE_FIELDS - {*KEY_COLUMNS, *FIELD_COLUMNS, "close"}

KEY_REQUIRED = "case_id or external_id is required"


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    reason: str


@dataclass(slots=True)
class Progress:
    """``done`` / ``total`` are bytes for CSV and rows for XLSX (``total`` may be None)."""

    rows: int
    done: int
    total: int | None


@dataclass
class ImportReport:
    rows_read: int = 0
    rows_failed: int = 0
    written: int = 0
    errors_total: int = 0
    # The first KEPT_ERRORS errors, for display; every error goes to ``on_error``.
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_ok(self) -> int:
        return self.rows_read - self.rows_failed


# --- XLSX --------------------------------------------------------------------------------


# --- rows → changes ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What each column of the header means."""

    case_id: int | None
    external_id: int | None
    fields: tuple[tuple[str, int], ...]
    close: int | None
    properties: tuple[tuple[str, int], ...]
    bad_columns: tuple[tuple[str, int, str], ...]


def _plan(header: list[str]) -> _Plan:
    names = [h.strip() for h in header]
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise BadRequest(f"the header names column {name!r} twice")
        seen.add(name)
    if not any(k in seen for k in KEY_COLUMNS):
        raise BadRequest(
            "the file has no case_id or external_id column; one of them is needed to match "
            f"rows to cases (header: {', '.join(n for n in names if n)[:200] or 'empty'})"
        )
    index = {name: i for i, name in enumerate(names) if name}
    properties: list[tuple[str, int]] = []
    bad: list[tuple[str, int, str]] = []
    for i, name in enumerate(names):
        if name in KEY_COLUMNS or name in FIELD_COLUMNS or name == "close":
            continue
        if not name:
            bad.append((f"column {i + 1}", i, "value in a column with no header"))
        elif name in RESERVED:
            bad.append((name, i, f"'{name}' cannot be imported (reserved case field)"))
        elif len(name) > MAX_FIELD or not valid_xml_name(name):
            bad.append((name[:100], i, "case property names must be valid XML identifiers"))
        else:
            properties.append((name, i))
    return _Plan(
        case_id=index.get("case_id"),
        external_id=index.get("external_id"),
        fields=tuple((f, index[f]) for f in FIELD_COLUMNS if f in index),
        close=index.get("close"),
        properties=tuple(properties),
        bad_columns=tuple(bad),
    )


def _row_change(
    plan: _Plan, row: int, values: list[str], case_type: str | None
) -> tuple[CaseChange | None, list[tuple[str, str]]]:
    """One record → a change, or the (column, reason) list of what is wrong with it."""
    problems: list[tuple[str, str]] = []
    case_id = values[plan.case_id].strip() if plan.case_id is not None else ""
    external_id = values[plan.external_id].strip() if plan.external_id is not None else ""
    if case_id:
        if len(case_id) > 64:
            problems.append(("case_id", "case_id must be at most 64 characters"))
    elif not external_id:
        problems.append(("case_id" if plan.case_id is not None else "external_id", KEY_REQUIRED))
    if len(external_id) > MAX_FIELD:
        problems.append(("external_id", f"external_id must be at most {MAX_FIELD} characters"))
    change = CaseChange(
        op="upsert_id" if case_id else "upsert",
        row=row,
        case_id=case_id or None,
        external_id=external_id or None,
        user=IMPORT_USER,
    )
    for name, i in plan.fields:
        value = values[i].strip()
        if not value:
            continue
        if len(value) > MAX_FIELD:
            problems.append((name, f"{name} must be at most {MAX_FIELD} characters"))
        setattr(change, name, value)
    if case_type and change.case_type is None:
        change.case_type = case_type
    if plan.close is not None:
        flag = values[plan.close].strip().lower()
        if flag in TRUE_WORDS:
            change.close = True
        elif flag not in FALSE_WORDS:
            problems.append(("close", "close must be 1/true/yes or 0/false/no"))
    properties = change.properties
    for name, i in plan.properties:
        value = values[i]
        if value:
            if len(value) > MAX_VALUE:
                problems.append((name, f"value longer than {MAX_VALUE} characters"))
            properties[name] = value
    for name, i, reason in plan.bad_columns:
        if values[i]:
            problems.append((name, reason))
    if problems:
        return None, problems
    return change, problems


_MESSAGE_COLUMN = re.compile(r"Property (\w+) is required")


def _error_column(message: str, plan: _Plan) -> str:
    found = _MESSAGE_COLUMN.search(message)
    if found:
        return found.group(1)
    if "external_id" in message:
        return "external_id"
    if plan.case_id is not None and ("case_id" in message or "case '" in message):
        return "case_id"
    return "case_id" if plan.case_id is not None else "external_id"


@dataclass
class _Chunk:
    """Up to ``batch_size`` parsed rows: the good ones as changes, the bad ones as errors."""

    changes: list[CaseChange] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    failed_rows: set[int] = field(default_factory=set)
    rows: int = 0
    done: int = 0


def _chunks(
    rows: Iterator[SourceRow],
    source: RowSource,
    plan: _Plan,
    case_type: str | None,
    batch_size: int,
) -> Iterator[_Chunk]:
    """The rows after the header, parsed into chunks of at most ``batch_size`` changes (or
    errors, so a file of bad rows is bounded too)."""
    chunk = _Chunk()
    for item in rows:
        chunk.rows += 1
        if item.values is None:
            chunk.errors.append(RowError(item.row, "", item.error or "unreadable row"))
            chunk.failed_rows.add(item.row)
        else:
            change, problems = _row_change(plan, item.row, item.values, case_type)
            if change is not None:
                chunk.changes.append(change)
            else:
                for column, reason in problems:
                    chunk.errors.append(RowError(item.row, column, reason))
                chunk.failed_rows.add(item.row)
        if len(chunk.changes) >= batch_size or len(chunk.errors) >= batch_size:
            chunk.done = source.done
            yield chunk
            chunk = _Chunk()
    chunk.done = source.done
    yield chunk


def import_cases(
    project: Project,
    path: Path,
    *,
    case_type: str | None = None,
    batch_size: int = 5000,
    on_progress: Callable[[Progress], None] | None = None,
    on_error: Callable[[RowError], None] | None = None,
) -> ImportReport:
    """Import ``path`` into ``project``; returns the counts and the first errors.

    Errors are emitted to ``on_error`` in row order, one batch at a time, so memory stays
    bounded whatever the size of the file or the number of bad rows. A file-level problem
    (no key column, unreadable header, unknown type) raises BadRequest before anything is
    written.
    """
    if batch_size < 1:
        raise BadRequest("batch size must be at least 1")
    report = ImportReport()
    source = open_rows(path)
    next_analyze = ANALYZE_FIRST
    try:
        with _collect_per_batch() as collect:
            rows = iter(source)
            plan = _plan(_first_row(rows))
            for chunk in _chunks(rows, source, plan, case_type, batch_size):
                if chunk.changes and report.written >= next_analyze:
                    # Keep planner statistics up with the load, each time it has doubled
                    # (checked before a batch, so an import never ends with an ANALYZE that
                    # no batch of it uses).
                    bulk.refresh_statistics(IMPORTED_TABLES)
                    next_analyze = report.written * 2
                _write_chunk(project, plan, chunk, report, on_error)
                done = chunk.done
                del chunk  # the batch's objects go before the collection, not after
                collect()
                if on_progress is not None:
                    on_progress(Progress(report.rows_read, done, source.total))
    finally:
        source.close()
    return report


@contextmanager
def _collect_per_batch() -> Iterator[Callable[[], object]]:
    """Run the cyclic garbage collector once per batch instead of by allocation count.

    A batch allocates a few hundred thousand objects that mostly live until it is written,
    so the automatic collector runs hundreds of times a batch, each older-generation pass
    scanning every object of the process (Django's included): about a sixth of an import's
    CPU time. Instead, what exists before the import is frozen (never scanned), automatic
    collection is off, and one full collection after each batch frees any cycles, so memory
    stays bounded as before.
    """
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield gc.collect
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


def _write_chunk(
    project: Project,
    plan: _Plan,
    chunk: _Chunk,
    report: ImportReport,
    on_error: Callable[[RowError], None] | None,
) -> None:
    errors = chunk.errors
    failed = chunk.failed_rows
    if chunk.changes:
        result = do_apply_case_changes(project, chunk.changes, partial=True)
        report.written += result.written
        for row, message in result.errors.items():
            errors.append(RowError(row, _error_column(message, plan), message))
            failed.add(row)
    errors.sort(key=lambda e: e.row)
    for err in errors:
        report.errors_total += 1
        if len(report.errors) < KEPT_ERRORS:
            report.errors.append(err)
        if on_error is not None:
            on_error(err)
    report.rows_read += chunk.rows
    report.rows_failed += len(failed)


def _first_row(rows: Iterator[SourceRow]) -> list[str]:
    for item in itertools.islice(rows, 1):
        if item.values is None:
            raise BadRequest(f"cannot read the header (row {item.row}): {item.error}")
        return item.values
    raise BadRequest("the file is empty (no header row)")
