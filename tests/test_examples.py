"""The files under examples/ do what README.md, docs/cli.md and docs/commcare-export.md say.

- ``examples/patients.csv``: the tour's import, through the CLI on a fresh database: six
  patients land, three rows fail with the reasons the docs name.
- ``examples/commcare-export/casereach-query.xlsx``: the committed workbook is exactly what its
  generator writes, and the real commcare-export CLI (1.16.0), run with the documented options
  against a live server, exports its three tables to CSV, XLSX and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pytest
from psycopg import sql

from casereach.cases.tests.test_commcare_export import run_export
from casereach.messaging.tests.test_commcare_export_events import drain
from casereach.projects.actions import do_create_api_key
from casereach.testing.world import Api, make_project

ROOT = Path(__file__).resolve().parent.parent
PATIENTS = ROOT / "examples" / "patients.csv"
WORKBOOK = ROOT / "examples" / "commcare-export" / "casereach-query.xlsx"
CONTACT_PROPERTIES = {
    "contact_phone_number",
    "contact_phone_number_is_verified",
    "commcare_email_address",
    "time_zone",
    "language_code",
    "contact_backend_id",
}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casereach", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_tour_import_lands_six_patients_and_reports_three_bad_rows(tmp_path: Path) -> None:
    with PATIENTS.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert CONTACT_PROPERTIES <= set(header)
    env = {**os.environ, "CASEREACH_DATABASE_URL": str(tmp_path / "tour.sqlite3")}
    assert 0 == cli(env, "demo", "--no-serve").returncode
    report = tmp_path / "errors.csv"

    r = cli(
        env,
        "import-cases",
        str(PATIENTS),
        "--project",
        "demo",
        "--case-type",
        "patient",
        "--errors",
        str(report),
    )

    assert 1 == r.returncode, r.stderr
    assert "imported 6 cases, 3 rows failed" in r.stdout, r.stdout
    with report.open(newline="", encoding="utf-8") as f:
        reported = list(csv.DictReader(f))
    assert [
        {"row": "8", "column": "owner_id", "reason": "Property owner_id is required."},
        {"row": "9", "column": "external_id", "reason": "case_id or external_id is required"},
        {"row": "10", "column": "case_name", "reason": "Property case_name is required."},
    ] == reported


def sheets(book: openpyxl.Workbook) -> dict[str, list[tuple[Any, ...]]]:
    return {ws.title: [tuple(row) for row in ws.iter_rows(values_only=True)] for ws in book}


def test_the_committed_workbook_is_what_its_generator_writes(tmp_path: Path) -> None:
    fresh = tmp_path / "query.xlsx"
    subprocess.run(
        [sys.executable, str(WORKBOOK.parent / "make_query.py"), str(fresh)],
        check=True,
        capture_output=True,
    )
    assert sheets(openpyxl.load_workbook(fresh)) == sheets(openpyxl.load_workbook(WORKBOOK))


@pytest.fixture
def export_db() -> Iterator[str]:
    """A scratch PostgreSQL database for commcare-export's SQL output; dropped after."""
    admin = os.environ.get(
        "CASEREACH_EXPORT_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"cc_example_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql://{con.info.user}@{con.info.host}:{con.info.port}/{name}"
        finally:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_commcare_export_exports_the_workbooks_three_tables(
    live_server: Any, tmp_path: Path, export_db: str
) -> None:
    project = make_project(name="example")
    api = Api(project)
    key = do_create_api_key(project, "exporter@example.org")
    base = f"/a/{project.name}/api"
    patients = [
        api.post(
            f"{base}/case/v2/",
            {
                "case_type": "patient",
                "case_name": f"Patient {n}",
                "owner_id": "clinic-1",
                "external_id": f"ANC-{n}",
                "properties": {"contact_phone_number": f"25470011100{n}", "edd": "2027-03-01"},
            },
        ).body["case"]["case_id"]
        for n in range(1, 4)
    ]
    gateway = {"name": "EX-TEST", "type": "test"}
    assert 201 == api.post(f"{base}/messaging/v1/gateways", gateway).status
    routes = {"default_gateway": "EX-TEST", "prefixes": []}
    assert 200 == api.put(f"{base}/messaging/v1/routes", routes).status
    for case_id in patients:
        send = {"contact_id": case_id, "content": {"sms": {"en": "Hi"}}}
        assert 202 == api.post(f"{base}/messaging/v1/send", send).status
    drain()

    csv_zip = tmp_path / "out.zip"
    run_export(
        live_server.url,
        project,
        key,
        WORKBOOK,
        tmp_path,
        "--output-format",
        "csv",
        "--output",
        str(csv_zip),
    )
    with zipfile.ZipFile(csv_zip) as zf:
        tables = {
            name: list(csv.DictReader(io.StringIO(zf.read(name).decode())))
            for name in zf.namelist()
        }
    assert ["cases.csv", "events.csv", "messages.csv"] == sorted(tables)
    assert sorted(patients) == sorted(row["id"] for row in tables["cases.csv"])
    assert {"2027-03-01"} == {row["edd"] for row in tables["cases.csv"]}
    assert 3 == len(tables["events.csv"]) == len(tables["messages.csv"])
    assert {"sms"} == {row["content_type"] for row in tables["messages.csv"]}

    xlsx = tmp_path / "out.xlsx"
    run_export(
        live_server.url,
        project,
        key,
        WORKBOOK,
        tmp_path,
        "--output-format",
        "xlsx",
        "--output",
        str(xlsx),
    )
    book = sheets(openpyxl.load_workbook(xlsx))
    assert {"cases": 4, "events": 4, "messages": 4} == {k: len(v) for k, v in book.items()}

    url = export_db.replace("postgresql://", "postgresql+psycopg://", 1)
    run_export(
        live_server.url, project, key, WORKBOOK, tmp_path, "--output-format", "sql", "--output", url
    )
    with psycopg.connect(export_db) as con:
        counts = {
            table: con.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in ("cases", "events", "messages")
        }
    assert {"cases": 3, "events": 3, "messages": 3} == counts
