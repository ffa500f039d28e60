"""The real commcare-export CLI (1.16.0) against a live casereach server.

commcare-export pages the v0.5 case list with ``order_by=indexed_on`` and an inclusive
``indexed_on_start`` taken from the last case of each page, dropping the repeated case by
``id``; it never follows ``meta.next``'s offset. A small ``--batch-size`` makes it take many
such pages. The SQL output upserts by ``id``, so duplicates are checked on a CSV export (which
writes every emitted row) and through the client's own debug log.

commcare-export 1.16.0's SQL writer knows only PostgreSQL, MySQL, MSSQL and Oracle (SQLite
raises "Unknown database dialect"), so the SQL test writes to a scratch PostgreSQL database
(``CASEREACH_EXPORT_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``, is
used only to create and drop it) and is skipped when no server answers there.
"""

# Expected values come first in assertions (project convention); ruff's SIM300 would flip them.

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import parse_bulk
from casereach.projects.actions import do_create_api_key
from casereach.projects.models import Project
from casereach.testing.commcare_export import (
    CLI,
    USER,
    CommCareExport,
    csv_rows,
    received,
    sql_rows,
)
from casereach.testing.world import make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXPORT = CommCareExport(source="case", batch_size=10, timeout_s=120)
run_export, fetches = EXPORT.run, EXPORT.fetches

FIELDS = [
    ("id", "id"),
    ("name", "properties.case_name"),
    ("case_type", "properties.case_type"),
    ("owner_id", "properties.owner_id"),
    ("village", "properties.village"),
    ("visit", "properties.visit"),
    ("closed", "closed"),
    ("indexed_on", "indexed_on"),
]


def write_query(path: Path) -> Path:
    """An Excel query file: sheet "cases" = data source ``case`` filtered to type patient."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "cases"
    sheet.append(["Data Source", "Filter Name", "Filter Value", "Field", "Source Field"])
    for i, (field, source) in enumerate(FIELDS):
        if i == 0:
            sheet.append(["case", "type", "patient", field, source])
        else:
            sheet.append([None, None, None, field, source])
    book.save(path)
    return path


def add_cases(project: Project, first: int, count: int, *, closed: set[int] = frozenset()) -> None:
    """Patients ``first``…``first+count-1`` in bulk requests of 15, like the v2 bulk API."""
    numbers = list(range(first, first + count))
    for start in range(0, len(numbers), 15):
        items: list[dict[str, Any]] = [
            {
                "create": True,
                "case_type": "patient",
                "case_name": f"Patient {n:03d}",
                "owner_id": "owner-1",
                "external_id": f"ext-{n:03d}",
                "properties": {"village": f"village-{n % 3}", "visit": str(n)},
                "close": n in closed,
            }
            for n in numbers[start : start + 15]
        ]
        do_apply_case_changes(project, parse_bulk(items, user=USER))


def case_ids_by_name(project: Project) -> dict[str, str]:
    return {
        c.case_name: c.case_id
        for c in project.cases.filter(case_type="patient", deleted=False).only(
            "case_id", "case_name"
        )
    }


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
def test_commcare_export_sql_full_then_incremental(
    live_server: Any, tmp_path: Path, export_db: str
) -> None:
    project = make_project(name="export-demo")
    key = do_create_api_key(project, USER)
    add_cases(project, 1, 45, closed={7})
    # not a patient: the query file's "type" filter must keep it out
    do_apply_case_changes(
        project,
        parse_bulk(
            [{"create": True, "case_type": "household", "case_name": "House", "owner_id": "o"}],
            user=USER,
        ),
    )
    query = write_query(tmp_path / "query.xlsx")
    sql_out = ("--output-format", "sql", "--output", export_db.replace("://", "+psycopg://", 1))

    first = run_export(live_server.url, project, key, query, tmp_path, *sql_out)

    ids = case_ids_by_name(project)
    assert 45 == len(ids)
    rows = sql_rows(export_db)
    assert sorted(ids.values()) == sorted(r["id"] for r in rows), first.stderr[-3000:]
    by_id = {r["id"]: r for r in rows}
    for n in range(1, 46):
        row = by_id[ids[f"Patient {n:03d}"]]
        assert (
            f"Patient {n:03d}",
            "patient",
            "owner-1",
            f"village-{n % 3}",
            str(n),
        ) == (row["name"], row["case_type"], row["owner_id"], row["village"], row["visit"])
        assert (n == 7) == bool(row["closed"]), n
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", row["indexed_on"])
    # 45 cases in pages of 10 that each repeat the previous page's last case: >= 5 requests,
    # every one after the first resuming from an inclusive indexed_on_start
    requests = fetches(first)
    assert len(requests) >= 5, first.stderr[-3000:]
    assert all("'order_by': 'indexed_on'" in r for r in requests)
    assert all("'type': ['patient']" in r for r in requests)
    assert all("indexed_on_start" in r for r in requests[1:])

    # second run: only what changed since the checkpoint, nothing duplicated
    add_cases(project, 46, 5)

    second = run_export(live_server.url, project, key, query, tmp_path, *sql_out)

    ids = case_ids_by_name(project)
    assert 50 == len(ids)
    rows = sql_rows(export_db)
    assert 50 == len(rows)
    assert sorted(ids.values()) == sorted(r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    for n in range(46, 51):
        assert f"Patient {n:03d}" == by_id[ids[f"Patient {n:03d}"]]["name"]
    # it resumed from the checkpoint: the first page holds the old last case plus the 5 new
    assert "indexed_on_start" in fetches(second)[0], second.stderr[-3000:]
    assert "6 of 6" == received(second)[0], second.stderr[-3000:]


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
def test_commcare_export_emits_every_case_exactly_once(live_server: Any, tmp_path: Path) -> None:
    project = make_project(name="export-csv")
    key = do_create_api_key(project, USER)
    add_cases(project, 1, 45, closed={3})
    query = write_query(tmp_path / "query.xlsx")
    archive = tmp_path / "out.zip"

    proc = run_export(
        live_server.url,
        project,
        key,
        query,
        tmp_path,
        "--output-format",
        "csv",
        "--output",
        str(archive),
    )

    rows = csv_rows(archive)
    counts = Counter(r["id"] for r in rows)
    ids = case_ids_by_name(project)
    assert set(ids.values()) == set(counts), proc.stderr[-3000:]
    assert {1} == set(counts.values()), [i for i, c in counts.items() if c > 1]
    assert 45 == len(rows)
    names = {r["id"]: r["name"] for r in rows}
    assert {cid: name for name, cid in ids.items()} == names
    assert ["True"] == [r["closed"] for r in rows if r["id"] == ids["Patient 003"]]
    assert len(fetches(proc)) >= 5
