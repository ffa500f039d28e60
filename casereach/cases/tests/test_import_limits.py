"""Import limits (issue 15, item 10): a huge cell is refused before it is held in memory,
and kept row errors are capped while every error still reaches the report."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from casereach.cases.importer import KEPT_ERRORS, MAX_XLSX_CELL_BYTES, import_cases
from casereach.core.errors import BadRequest
from casereach.projects.models import Project

BIG = 64 * 1024 * 1024  # one cell's bytes: far past the limit, small once compressed
PLACEHOLDER = "PLACEHOLDER-CELL"

# Runs the real CLI and reports its peak RSS (KiB) on stderr when it exits.
PEAK = """
import atexit, resource, sys
atexit.register(lambda: sys.stderr.write(
    f"peak-kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n"))
from casereach.cli.main import run
sys.argv = ["casereach", *sys.argv[1:]]
run()
"""


def xlsx_with_cell(path: Path, size: int, *, shared: bool = False) -> Path:
    """A workbook whose row 2 has one cell of ``size`` bytes, written inline or in the
    shared-strings table; the zip member is streamed so the test never holds it either."""
    book = Workbook()
    sheet = book.active
    sheet.append(["external_id", "case_type", "case_name", "owner_id"])
    sheet.append(["e1", "patient", PLACEHOLDER, "o1"])
    template = path.with_suffix(".template.xlsx")
    book.save(template)
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if PLACEHOLDER.encode() not in data:
                out.writestr(info, data)
                continue
            head, tail = data.split(PLACEHOLDER.encode())
            if shared:  # move the text to a sharedStrings.xml the sheet points at
                head = head.rsplit(b"<c ", 1)[0] + b'<c r="C2" t="s"><v>0</v></c>'
                tail = tail.split(b"</c>", 1)[1]
                out.writestr(info, head + tail)
                name, head, tail = (
                    "xl/sharedStrings.xml",
                    b'<sst count="1" uniqueCount="1"><si><t>',
                    b"</t></si></sst>",
                )
            else:
                name = info.filename
            with out.open(name, "w", force_zip64=True) as member:
                member.write(head + b"A")
                block = b"x" * (1024 * 1024)
                for _ in range(size // len(block)):
                    member.write(block)
                member.write(tail)
    template.unlink()
    return path


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, CASEREACH_DATABASE_URL=str(tmp_path / "limits.sqlite3"))
    for args in (["init"], ["project", "create", "p"]):
        done = subprocess.run(
            [sys.executable, "-m", "casereach", *args], env=env, capture_output=True, check=False
        )
        assert 0 == done.returncode, done.stderr
    return env


def import_peak(env: dict[str, str], file: Path) -> tuple[int, str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, "import-cases", str(file), "--project", "p"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    peak = int(next(x for x in lines if x.startswith("peak-kib=")).split("=")[1])
    out = "\n".join([done.stdout, *(x for x in lines if not x.startswith("peak-kib="))])
    return done.returncode, out, peak


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True], ids=["inline", "shared"])
def test_a_huge_xlsx_cell_is_refused_in_bounded_memory(
    cli_env: dict[str, str], tmp_path: Path, shared: bool
) -> None:
    small = xlsx_with_cell(tmp_path / "small.xlsx", 0)
    size = BIG // 4 if shared else BIG  # (a 64 MB table is refused for its size alone)
    big = xlsx_with_cell(tmp_path / "big.xlsx", size, shared=shared)
    assert big.stat().st_size < 2 * 1024 * 1024  # the 310 KB file of the audit, near enough
    code, _, small_peak = import_peak(cli_env, small)
    assert 0 == code
    code, out, big_peak = import_peak(cli_env, big)
    assert 1 == code
    assert f"a cell may hold at most {MAX_XLSX_CELL_BYTES:,}" in out, out
    # Sanity bound, relative to a tiny import: far below the cell's own size.
    assert (big_peak - small_peak) * 1024 < size // 2, (small_peak, big_peak)


@pytest.mark.slow
def test_a_huge_csv_cell_is_a_row_error_in_bounded_memory(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    small = tmp_path / "small.csv"
    small.write_bytes(b"external_id,case_type,case_name,owner_id\ne1,patient,A,o1\n")
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        out.write(b"external_id,case_type,case_name,owner_id\ne1,patient,")
        for _ in range(BIG // (1024 * 1024)):
            out.write(b"x" * (1024 * 1024))
        out.write(b",o1\ne2,patient,B,o1\n")
    code, _, small_peak = import_peak(cli_env, small)
    assert 0 == code
    code, out, big_peak = import_peak(cli_env, big)
    assert 1 == code
    assert "imported 1 cases, 1 rows failed" in out, out
    report = (tmp_path / "big.csv.errors.csv").read_text()
    assert "line longer than" in report
    assert (big_peak - small_peak) * 1024 < BIG // 2, (small_peak, big_peak)


@pytest.mark.django_db(transaction=True)
def test_a_huge_xlsx_cell_is_refused_before_anything_is_written(
    project: Project, tmp_path: Path
) -> None:
    big = xlsx_with_cell(tmp_path / "big.xlsx", MAX_XLSX_CELL_BYTES + 1024)
    with pytest.raises(BadRequest, match="a cell may hold at most"):
        import_cases(project, big)


@pytest.mark.django_db(transaction=True)
def test_kept_errors_are_capped_and_every_error_is_emitted(
    project: Project, tmp_path: Path
) -> None:
    bad_rows = KEPT_ERRORS * 3
    source = tmp_path / "bad.csv"
    source.write_text("external_id,case_type\n" + ",patient\n" * bad_rows)
    emitted: list[object] = []
    report = import_cases(project, source, on_error=emitted.append)
    assert (bad_rows, bad_rows, KEPT_ERRORS) == (
        report.errors_total,
        len(emitted),
        len(report.errors),
    )
