"""Query-count pins on ingest (issue 17): a batch costs the same number of statements
whatever its size — ``casereach import-cases`` (``import_cases``, one batch per file here) and
the bulk case API (one POST of many cases)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.cases.importer import import_cases
from casereach.projects.models import Project
from casereach.testing.cases import CASES
from casereach.testing.world import Api, case_body, make_project

SMALL, LARGE = 5, 60  # both within one IN-list chunk and one bulk request (at most 100)


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def _csv(path: Path, first: int, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["external_id", "case_type", "case_name", "owner_id", "contact_phone_number", "village"]
        )
        for n in range(first, first + count):
            writer.writerow(
                [f"ext-{n}", "patient", f"Patient {n}", "o1", f"2547123{n:05d}", "north"]
            )
    return path


def _import(project: Project, path: Path, rows: int) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        report = import_cases(project, path, batch_size=rows)
    assert (rows, 0) == (report.written, report.errors_total)
    return statements(captured)


def test_an_import_batch_costs_the_same_statements_whatever_its_size(
    db: None, tmp_path: Path
) -> None:
    warm = make_project(name="warm")
    _import(warm, _csv(tmp_path / "warm.csv", 0, 3), 3)  # one-time reads (settings, caches)

    small = _import(make_project(name="small"), _csv(tmp_path / "s.csv", 1000, SMALL), SMALL)
    large = _import(make_project(name="large"), _csv(tmp_path / "l.csv", 2000, LARGE), LARGE)

    assert len(small) == len(large), "\n".join(large)


def _bulk(api: Api, first: int, count: int) -> list[str]:
    bodies: list[dict[str, Any]] = [
        {
            **case_body(name=f"Patient {n}", external_id=f"ext-{n}", phone=f"2547124{n:05d}"),
            "create": True,
        }
        for n in range(first, first + count)
    ]
    with CaptureQueriesContext(connection) as captured:
        r = api.post(CASES, bodies)
    assert 200 == r.status, r.body
    assert count == len(r.body["cases"])
    return statements(captured)


def test_a_bulk_case_request_costs_the_same_statements_whatever_its_size(api: Api) -> None:
    _bulk(api, 0, 3)  # one-time reads (the key, settings, caches)

    small = _bulk(api, 1000, SMALL)
    large = _bulk(api, 2000, LARGE)

    assert len(small) == len(large), "\n".join(large)
