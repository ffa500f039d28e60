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

import csv
import gc
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import BASE_FIELDS, MAX_FIELD, MAX_VALUE, CaseChange, valid_xml_name
from casereach.cases.models import Case
from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core import text as core_text
from casereach.core.errors import BadRequest
from casereach.projects.models import Project

# A CSV line longer than this (bytes) is refused without being held in memory whole.
MAX_LINE_BYTES = 8 * 1024 * 1024
# csv's own per-field cap: values up to this are parsed (and refused with their column when
# longer than MAX_VALUE); longer ones are refused by the csv module without a column.
CSV_FIELD_LIMIT = 1_048_576
KEPT_ERRORS = 1000
# XLSX: no cell's text may be longer than this (bytes of XML), checked on the compressed
# file's stream before openpyxl reads a cell; and the shared-strings table, which openpyxl
# holds in memory whole, may not be larger than this uncompressed.
MAX_XLSX_CELL_BYTES = CSV_FIELD_LIMIT
MAX_SHARED_STRINGS_BYTES = 64 * 1024 * 1024
_SCAN_CHUNK = 1024 * 1024
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

BAD_ENCODING = "bad encoding (not UTF-8)"
KEY_REQUIRED = "case_id or external_id is required"


@dataclass(slots=True)
class SourceRow:
    """One record of the file: its values, or why it could not be read."""

    row: int
    values: list[str] | None
    error: str | None = None


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


class RowSource:
    """Iterates a file's records; ``done`` / ``total`` measure progress through it."""

    total: int | None = None
    done: int = 0

    def __iter__(self) -> Iterator[SourceRow]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""


def file_kind(path: Path) -> str:
    """``csv`` or ``xlsx`` from the file name; BadRequest for anything else."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    raise BadRequest(
        f"cannot import {path.name!r}: unknown file type {suffix or '(none)'!r}; "
        "use a .csv or .xlsx file"
    )


def open_rows(path: Path) -> RowSource:
    """A streaming reader for ``path`` chosen by its extension (.csv / .xlsx)."""
    kind = file_kind(path)
    if not path.is_file():
        raise BadRequest(f"no such file: {path}")
    return CsvRows(path) if kind == "csv" else XlsxRows(path)


def iter_rows(path: Path) -> Iterator[SourceRow]:
    """Every record of a CSV or XLSX file in order, header first, one at a time."""
    source = open_rows(path)
    try:
        yield from source
    finally:
        source.close()


# --- CSV ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    number: int
    text: str
    error: str | None


class CsvRows(RowSource):
    """CSV read as bytes and decoded per line, so one bad line is one bad row.

    The csv module parses records from the decoded lines; we see exactly which lines each
    record consumed. A record that spans several lines but does not have the header's number
    of values is a broken quote: its first line is reported and the following lines are
    parsed again, so one stray quote costs one row, not the rest of the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[bytes] = path.open("rb")
        self.total = path.stat().st_size
        self.done = 0
        self._next_number = 1
        self._pending: deque[_Line] = deque()
        self._consumed: list[_Line] = []
        self.width: int | None = None

    def close(self) -> None:
        self.file.close()

    def _read_line(self) -> _Line | None:
        raw = self.file.readline(MAX_LINE_BYTES)
        if not raw:
            return None
        self.done += len(raw)
        number = self._next_number
        self._next_number += 1
        if len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while True:  # skip the rest of the overlong line without holding it
                more = self.file.readline(MAX_LINE_BYTES)
                self.done += len(more)
                if not more or more.endswith(b"\n"):
                    break
            return _Line(number, "\n", f"line longer than {MAX_LINE_BYTES} bytes")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = core_text.decode(raw)
        except core_text.InvalidText:
            return _Line(number, raw.decode("utf-8", "replace"), BAD_ENCODING)
        if "\x00" in text:
            return _Line(number, text.replace("\x00", ""), "contains a NUL character")
        return _Line(number, text, None)

    def next_line(self) -> str:
        """The csv reader's input: the next line, remembered as part of the current record.

        Not a generator on purpose: after the end of the file, lines pushed back by
        ``_requeue`` must still be served.
        """
        line = self._pending.popleft() if self._pending else self._read_line()
        if line is None:
            raise StopIteration
        self._consumed.append(line)
        return line.text

    def __iter__(self) -> Iterator[SourceRow]:
        previous_limit = csv.field_size_limit(CSV_FIELD_LIMIT)
        try:
            yield from self._records()
        finally:
            csv.field_size_limit(previous_limit)

    def _records(self) -> Iterator[SourceRow]:
        reader = csv.reader(_Feed(self), strict=True)
        consumed = self._consumed
        while True:
            del consumed[:]
            try:
                values: list[str] | None = next(reader)
                problem: str | None = None
            except StopIteration:
                if not consumed:
                    return
                values, problem = None, "unexpected end of file inside a quoted value"
            except csv.Error as exc:
                values, problem = None, _csv_problem(str(exc))
            if not consumed:
                return
            first = consumed[0]
            bad = next((line.error for line in consumed if line.error), None)
            if bad is not None:
                if first.error is None and len(consumed) > 1:
                    # A bad line swallowed into a record that started earlier: report the
                    # start as broken and re-read the rest on its own.
                    self._requeue()
                    yield SourceRow(first.number, None, "broken quotes (unclosed quoted value)")
                    continue
                if len(consumed) > 1:
                    self._requeue()
                yield SourceRow(first.number, None, bad)
                continue
            if problem is not None:
                if len(consumed) > 1:
                    self._requeue()
                yield SourceRow(first.number, None, problem)
                continue
            assert values is not None
            if not any(v.strip() for v in values):
                continue  # a blank line, or a row of empty cells
            if self.width is None:
                self.width = len(values)
            elif len(values) != self.width:
                if len(consumed) > 1:
                    self._requeue()
                    yield SourceRow(first.number, None, "broken quotes (unclosed quoted value)")
                    continue
                yield SourceRow(
                    first.number,
                    None,
                    f"the row has {len(values)} values but the header has {self.width} columns",
                )
                continue
            yield SourceRow(first.number, values)

    def _requeue(self) -> None:
        """Parse every line of the current record but the first again."""
        self._pending.extendleft(reversed(self._consumed[1:]))


class _Feed:
    """An iterator over a CsvRows' lines (csv.reader needs an object with ``__next__``)."""

    def __init__(self, rows: CsvRows) -> None:
        self.rows = rows

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        return self.rows.next_line()


def _csv_problem(message: str) -> str:
    if "field larger than field limit" in message:
        return f"a value is longer than {MAX_VALUE} characters"
    if "unexpected end of data" in message:
        return "broken quotes (a quoted value is never closed)"
    if "expected after" in message or "quote" in message.lower():
        return f"broken quotes ({message})"
    return f"unreadable CSV ({message})"


# --- XLSX --------------------------------------------------------------------------------


class XlsxRows(RowSource):
    """The first sheet of a workbook, read with openpyxl's streaming (read-only) mode."""

    def __init__(self, path: Path) -> None:
        from openpyxl import load_workbook

        check_xlsx_sizes(path)
        try:
            self.book = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a bad file
            raise BadRequest(f"cannot read {path.name!r} as an XLSX workbook: {exc}") from None
        self.sheet = self.book.worksheets[0]
        self.total = self.sheet.max_row
        self.done = 0

    def close(self) -> None:
        self.book.close()

    def __iter__(self) -> Iterator[SourceRow]:
        width: int | None = None
        for number, cells in enumerate(self.sheet.iter_rows(min_row=1, values_only=True), 1):
            self.done = number
            values = [_cell_text(v) for v in cells]
            if not all(map(core_text.is_text, values)):  # an _xD800_ escape, say
                yield SourceRow(number, None, BAD_ENCODING)
                continue
            while values and values[-1] == "":
                values.pop()
            if not values:
                continue
            if width is None:
                width = len(values)
            elif len(values) < width:
                values.extend([""] * (width - len(values)))
            elif len(values) > width:
                yield SourceRow(
                    number,
                    None,
                    f"the row has a value in column {len(values)}, "
                    f"but the header has only {width} columns",
                )
                continue
            yield SourceRow(number, values)


def check_xlsx_sizes(path: Path) -> None:
    """BadRequest, before any cell is read, for a workbook whose shared-strings table is too
    large to hold or whose sheets or table hold a text longer than MAX_XLSX_CELL_BYTES (a
    310 KB file can hold a 300 MB cell). Memory stays at one chunk of the stream."""
    import zipfile

    try:
        book = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest(f"cannot read {path.name!r} as an XLSX workbook: {exc}") from None
    with book:
        for info in book.infolist():
            name = info.filename
            is_strings = name == "xl/sharedStrings.xml"
            if not is_strings and not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            if is_strings and info.file_size > MAX_SHARED_STRINGS_BYTES:
                raise BadRequest(
                    f"{path.name!r} is too large to import: its shared strings take "
                    f"{info.file_size:,} bytes (at most {MAX_SHARED_STRINGS_BYTES:,}); "
                    "save it as CSV or split it"
                )
            try:
                longest = _longest_text(book, info)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
                raise BadRequest(f"cannot read {path.name!r}: {exc}") from None
            if longest > MAX_XLSX_CELL_BYTES:
                raise BadRequest(
                    f"{path.name!r} has a cell of about {longest:,} bytes; a cell may hold "
                    f"at most {MAX_XLSX_CELL_BYTES:,} (and a property value "
                    f"{MAX_VALUE:,} characters)"
                )


def _longest_text(book: Any, info: Any) -> int:
    """The longest run of XML between two tags in one zip member, read a chunk at a time
    (stops early once past the limit)."""
    longest = run = 0
    with book.open(info) as stream:
        while chunk := stream.read(_SCAN_CHUNK):
            first = chunk.find(b"<")
            if first < 0:
                run += len(chunk)
            else:
                longest = max(longest, run + first)
                last = chunk.rfind(b"<")
                if last > first:
                    longest = max(longest, max(map(len, chunk[first:last].split(b"<"))))
                run = len(chunk) - last - 1
            longest = max(longest, run)
            if longest > MAX_XLSX_CELL_BYTES:
                break
    return longest


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # phone numbers and ids typed as numbers
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


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
