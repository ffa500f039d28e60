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

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import parse_bulk
from casereach.projects.actions import do_create_api_key
from casereach.projects.models import Project
from casereach.testing.world import make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLI = shutil.which("commcare-export")
USER = "exporter@example.org"
TIMEOUT = 120
BATCH = 10

# Loaded into the CLI's interpreter through PYTHONPATH: any connection to a non-loopback
# address fails, so the export can only ever talk to the live test server.
LOCAL_ONLY = """
import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _check(address):
    if isinstance(address, tuple):
        host = address[0]
        try:
            local = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise OSError(f"commcare-export test: non-local connection to {address!r} refused")


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
"""

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


def run_export(
    server: str, project: Project, key: str, query: Path, workdir: Path, *output: str
) -> subprocess.CompletedProcess[str]:
    guard = workdir / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(LOCAL_ONLY)
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        and not k.startswith(("DJANGO_", "CASEREACH_"))
    }
    env["PYTHONPATH"] = str(guard)
    env["NO_PROXY"] = "localhost,127.0.0.1"
    assert CLI is not None
    cmd = [
        CLI,
        "--commcare-hq",
        server,
        "--project",
        project.name,
        "--auth-mode",
        "apikey",
        "--username",
        USER,
        "--password",
        key,
        "--query",
        str(query),
        "--batch-size",
        str(BATCH),
        "--no-logfile",
        "--verbose",
        *output,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"commcare-export timed out after {TIMEOUT}s; stderr:\n{exc.stderr!r}")
    if proc.returncode != 0 or "Traceback" in proc.stderr:
        sys.stderr.write(proc.stderr)
        pytest.fail(f"commcare-export exited {proc.returncode}; stderr:\n{proc.stderr[-5000:]}")
    return proc


def fetches(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The client's own debug lines: one per request it sent."""
    return re.findall(r"Fetching 'case' batch: (.*)", proc.stderr)


def received(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r"Received (\d+ of -?\d+)", proc.stderr)


def sql_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as con:
        return list(con.execute("SELECT * FROM cases"))


@pytest.fixture
def export_db() -> Iterator[str]:
    """A scratch PostgreSQL database for the SQL output and its checkpoints; dropped after."""
    admin = os.environ.get(
        "CASEREACH_EXPORT_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"cc_export_{uuid.uuid4().hex[:12]}"
    try:
        con = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL for commcare-export's SQL writer at {admin}: {exc}")
    with con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            info = con.info
            yield f"postgresql://{info.user}@{info.host}:{info.port}/{name}"
        finally:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def csv_rows(archive: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(archive) as zf:
        text = zf.read("cases.csv").decode()
    return list(csv.DictReader(io.StringIO(text)))


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
