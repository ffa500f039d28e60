"""Reading an import file one record at a time, bounded: CSV (lines, fields and encoding
checked as they stream) and XLSX (cell and shared-strings sizes checked on the compressed
stream before openpyxl reads them). casereach.cases.importer turns the records into case
changes."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from casereach.cases.changes import MAX_VALUE
from casereach.core import text as core_text
from casereach.core.errors import BadRequest

# A CSV line longer than this (bytes) is refused without being held in memory whole.
MAX_LINE_BYTES = 8 * 1024 * 1024


# csv's own per-field cap: values up to this are parsed (and refused with their column when
# longer than MAX_VALUE); longer ones are refused by the csv module without a column.
CSV_FIELD_LIMIT = 1_048_576


# XLSX: no cell's text may be longer than this (bytes of XML), checked on the compressed
# file's stream before openpyxl reads a cell; and the shared-strings table, which openpyxl
# holds in memory whole, may not be larger than this uncompressed.
MAX_XLSX_CELL_BYTES = CSV_FIELD_LIMIT


MAX_SHARED_STRINGS_BYTES = 64 * 1024 * 1024


_SCAN_CHUNK = 1024 * 1024


BAD_ENCODING = "bad encoding (not UTF-8)"


@dataclass(slots=True)
class SourceRow:
    """One record of the file: its values, or why it could not be read."""

    row: int
    values: list[str] | None
    error: str | None = None


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
