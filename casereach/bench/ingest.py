"""``casereach bench``: our paths and the floor they are up against, side by side (SPEC 9).

Every measurement runs the real command line in a subprocess against a database of its own,
so the numbers are what a user gets: a fresh temporary SQLite file each (or, when
``CASEREACH_DATABASE_URL`` names PostgreSQL, a fresh temporary database on that server). The
floor is always plain ``sqlite3`` in a temporary file.

Suite ``ingest``:

- ``import-cases``: N cases with all six contact properties from a CSV file;
- bulk Case API: the same N cases as 100-case bulk upserts from one HTTP client to a real
  ``casereach serve``;
- floor: ``executemany`` of the same N cases and their phone entries into tables of the same
  shape (the schema ``casereach init`` creates: columns, checks, indexes; no foreign keys), in
  one transaction, rows built before the clock starts, no validation;
- peak RSS of an import of ``--rss-rows`` rows (streaming must keep it bounded).
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from casereach.bench.workspace import (
    API_USER,
    FLOOR_PRAGMAS,
    LANGUAGES,
    PROJECT,
    ZONES,
    BenchError,
    Target,
    Workspace,
    case_id,
    machine_info,
    postgres_base_url,
    rss_mb,
    serving,
)

SUITES = ("ingest",)  # "dispatch" is routed to casereach.bench.dispatch by the CLI
BULK_SIZE = 100
HEADER = (
    "external_id",
    "case_type",
    "case_name",
    "owner_id",
    "contact_phone_number",
    "contact_phone_number_is_verified",
    "commcare_email_address",
    "time_zone",
    "language_code",
    "contact_backend_id",
)

TARGETS_SQLITE = {
    "import_cases_per_s": 15_000,
    "import_floor_ratio": 0.25,
    "bulk_api_cases_per_s": 2_500,
    "import_1m_peak_rss_mb": 300,
}
# The PostgreSQL target is the import rate alone: the floor is plain sqlite3 in
# both runs, so a ratio to it says little about PostgreSQL; the other figures are shown.
TARGETS_POSTGRES = {"import_cases_per_s": 8_000}
# Targets that are ceilings rather than floors.
MAXIMUM_TARGETS = frozenset({"import_1m_peak_rss_mb"})

FLOOR_TABLES = ("cases_case", "contacts_phoneentry")
CASE_COLUMNS = (
    "case_id",
    "project_id",
    "case_type",
    "case_name",
    "owner_id",
    "external_id",
    "properties",
    "indices",
    "closed",
    "date_closed",
    "deleted",
    "deleted_on",
    "date_opened",
    "last_modified",
    "server_last_modified",
    "indexed_on",
    "opened_by",
    "user_id",
)
ENTRY_COLUMNS = (
    "number",
    "contact_id",
    "project_id",
    "contact_type",
    "position",
    "gateway",
    "verified_requested",
    "requested_on",
    "holder",
    "pending",
    "registered_on",
)


def case_values(i: int) -> tuple[str, ...]:
    """Bench case ``i`` in HEADER order: every contact property set, unique numbers."""
    return (
        f"bench-{i:08d}",
        "patient",
        f"Bench Person {i}",
        "bench-owner",
        f"2547{i % 100_000_000:08d}",
        "1" if i % 2 == 0 else "0",
        f"person{i}@example.org",
        ZONES[i % len(ZONES)],
        LANGUAGES[i % len(LANGUAGES)],
        "bench-gw",
    )


def write_csv(path: Path, rows: int) -> None:
    """Write the bench CSV one row at a time (never the whole file in memory)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(case_values(i))


# --- environment ---------------------------------------------------------------------------


# --- measurements --------------------------------------------------------------------------


@dataclass
class ImportRun:
    seconds: float
    peak_rss_mb: float
    imported: int


# Runs one command and reports its own peak RSS. The bench process is large (it holds the
# floor's rows and the API bodies); a child forked straight from it would count the parent's
# pages in its ru_maxrss before exec, so a small helper process does the fork instead.
_MEASURE = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "w") as out:
    started = time.perf_counter()
    proc = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "seconds": seconds,
                  "maxrss": usage.ru_maxrss}))
"""


def measure_import(ws: Workspace, name: str, csv_path: Path, rows: int) -> ImportRun:
    """Time one ``casereach import-cases`` run and read that process's own peak RSS."""
    target = ws.fresh(name)
    errors = ws.root / f"{name}.errors.csv"
    output_path = ws.root / f"{name}.out"
    command = [
        sys.executable,
        "-m",
        "casereach",
        "import-cases",
        str(csv_path),
        "--project",
        PROJECT,
        "--errors",
        str(errors),
    ]
    helper = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(output_path), *command],
        cwd=ws.root,
        env=ws.env(target),
        capture_output=True,
        text=True,
        check=False,
    )
    output = output_path.read_text(errors="replace") if output_path.exists() else ""
    try:
        measured = json.loads(helper.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(
            f"could not measure import-cases: {helper.stderr.strip()[-300:]}"
        ) from None
    if measured["code"] != 0:
        raise BenchError(f"import-cases exited with {measured['code']}: {output.strip()[-300:]}")
    found = re.search(r"imported ([\d,]+) cases", output)
    imported = int(found.group(1).replace(",", "")) if found else -1
    if imported != rows:
        raise BenchError(f"import-cases imported {imported} of {rows} rows: {output[-300:]}")
    return ImportRun(float(measured["seconds"]), rss_mb(int(measured["maxrss"])), imported)


@dataclass
class ApiRun:
    seconds: float
    requests: int
    throttled: int


def measure_bulk_api(ws: Workspace, cases: int) -> ApiRun:
    """The same cases as 100-case bulk upserts (``"create": null``) from one client."""
    target = ws.fresh("api")
    key = ws.cli(target, "apikey", "create", "--project", PROJECT, "--username", API_USER)
    key = key.strip().splitlines()[-1].strip()
    bodies: list[bytes] = []
    for start in range(0, cases, BULK_SIZE):
        items = []
        for i in range(start, min(start + BULK_SIZE, cases)):
            values = case_values(i)
            items.append(
                {
                    "create": None,
                    "external_id": values[0],
                    "case_type": values[1],
                    "case_name": values[2],
                    "owner_id": values[3],
                    "properties": dict(zip(HEADER[4:], values[4:], strict=True)),
                }
            )
        bodies.append(json.dumps(items).encode())
    headers = {"Authorization": f"ApiKey {API_USER}:{key}", "Content-Type": "application/json"}
    throttled = 0
    with serving(ws, target) as base, httpx.Client(base_url=base, timeout=120) as client:
        url = f"/a/{PROJECT}/api/case/v2/"
        client.get("/healthz")
        started = time.perf_counter()
        for body in bodies:
            while True:
                resp = client.post(url, content=body, headers=headers)
                if resp.status_code != 429:
                    break
                throttled += 1
                time.sleep(float(resp.headers.get("Retry-After", "1")))
            if resp.status_code != 200:
                raise BenchError(f"bulk Case API answered {resp.status_code}: {resp.text[:300]}")
        seconds = time.perf_counter() - started
    return ApiRun(seconds, len(bodies), throttled)


def floor_schema(ws: Workspace) -> list[str]:
    """CREATE statements of the real case and phone-entry tables, foreign keys removed."""
    shape = ws.root / "shape.sqlite3"
    ws.cli(Target(str(shape), "sqlite"), "init")
    conn = sqlite3.connect(shape)
    try:
        marks = ", ".join("?" for _ in FLOOR_TABLES)
        statements = [
            str(sql)
            for (sql,) in conn.execute(
                f"SELECT sql FROM sqlite_master WHERE tbl_name IN ({marks}) AND sql IS NOT NULL "
                "ORDER BY type = 'index', name",
                FLOOR_TABLES,
            )
        ]
    finally:
        conn.close()
    return [
        re.sub(r'\s*REFERENCES\s+"\w+"\s*\("\w+"\)(\s+DEFERRABLE INITIALLY DEFERRED)?', "", s)
        for s in statements
    ]


def measure_floor(ws: Workspace, cases: int) -> float:
    """Seconds for plain sqlite3 executemany of the cases and their phone entries."""
    schema = floor_schema(ws)
    path = ws.root / "floor.sqlite3"
    stamp = "2025-01-01 00:00:00.000000"
    case_rows: list[tuple[Any, ...]] = []
    entry_rows: list[tuple[Any, ...]] = []
    for i in range(cases):
        values = case_values(i)
        new_id = case_id()
        properties = dict(zip(HEADER[4:], values[4:], strict=True))
        verified = values[5] == "1"
        case_rows.append(
            (
                new_id,
                1,
                values[1],
                values[2],
                values[3],
                values[0],
                json.dumps(properties, separators=(",", ":")),
                "{}",
                False,
                None,
                False,
                None,
                stamp,
                stamp,
                stamp,
                stamp,
                "bench",
                "bench",
            )
        )
        entry_rows.append(
            (
                values[4],
                new_id,
                1,
                "case",
                0,
                values[9],
                verified,
                stamp if verified else None,
                False,
                False,
                stamp,
            )
        )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in FLOOR_PRAGMAS:
            conn.execute(pragma)
        for statement in schema:
            conn.execute(statement)
        case_sql = (
            f"INSERT INTO cases_case ({', '.join(CASE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in CASE_COLUMNS)})"
        )
        entry_sql = (
            f"INSERT INTO contacts_phoneentry ({', '.join(ENTRY_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in ENTRY_COLUMNS)})"
        )
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(case_sql, case_rows)
        conn.executemany(entry_sql, entry_rows)
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        (count,) = conn.execute("SELECT count(*) FROM cases_case").fetchone()
    finally:
        conn.close()
    if count != cases:
        raise BenchError(f"floor inserted {count} of {cases} cases")
    return seconds


# --- the suite -----------------------------------------------------------------------------


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def run_ingest(ws: Workspace, cases: int, rss_rows: int) -> dict[str, Any]:
    say = ws.console.print
    results: dict[str, Any] = {"cases": cases, "database": ws.vendor}
    csv_path = ws.root / "gen.csv"
    say(f"generating {cases:,} cases → {csv_path.name}")
    write_csv(csv_path, cases)

    say(f"import-cases: {cases:,} rows ({ws.vendor})")
    run = measure_import(ws, "import", csv_path, cases)
    results["import_seconds"] = round(run.seconds, 3)
    results["import_cases_per_s"] = _rate(cases, run.seconds)
    results["import_peak_rss_mb"] = round(run.peak_rss_mb, 1)

    say(f"bulk Case API: {cases:,} cases, {BULK_SIZE} per request, one client")
    api = measure_bulk_api(ws, cases)
    results["bulk_api_seconds"] = round(api.seconds, 3)
    results["bulk_api_cases_per_s"] = _rate(cases, api.seconds)
    results["bulk_api_requests"] = api.requests
    results["bulk_api_throttled"] = api.throttled

    say(f"floor: sqlite3 executemany of {cases:,} cases + phone entries")
    floor = measure_floor(ws, cases)
    results["floor_seconds"] = round(floor, 3)
    results["floor_cases_per_s"] = _rate(cases, floor)
    floor_rate = results["floor_cases_per_s"]
    results["import_floor_ratio"] = (
        round(results["import_cases_per_s"] / floor_rate, 3) if floor_rate else 0.0
    )
    results["bulk_api_floor_ratio"] = (
        round(results["bulk_api_cases_per_s"] / floor_rate, 3) if floor_rate else 0.0
    )

    if rss_rows > 0:
        big = ws.root / "rss.csv"
        say(f"generating {rss_rows:,} rows → {big.name}")
        write_csv(big, rss_rows)
        say(f"import-cases: {rss_rows:,} rows, peak RSS")
        rss = measure_import(ws, "rss", big, rss_rows)
        big.unlink()
        results["import_1m_rows"] = rss_rows
        results["import_1m_peak_rss_mb"] = round(rss.peak_rss_mb, 1)
        results["import_1m_seconds"] = round(rss.seconds, 3)
        results["import_1m_cases_per_s"] = _rate(rss_rows, rss.seconds)
    return results


def passed(name: str, value: float, target: float) -> bool:
    return value <= target if name in MAXIMUM_TARGETS else value >= target


def print_table(results: dict[str, Any], targets: dict[str, float], console: Console) -> None:
    table = Table(
        title=f"casereach bench ingest: {results['cases']:,} cases on {results['database']}"
    )
    table.add_column("measurement")
    table.add_column("cases/s", justify="right")
    table.add_column("ratio to floor", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result", justify="right")

    def verdict(key: str) -> str:
        if key not in targets or key not in results:
            return ""
        ok = passed(key, results[key], targets[key])
        return "[green]pass[/green]" if ok else "[red]FAIL[/red]"

    floor = results["floor_cases_per_s"]
    table.add_row(
        "import-cases (CSV)",
        f"{results['import_cases_per_s']:,.0f}",
        f"{results['import_floor_ratio']:.2f}",
        f"≥ {targets['import_cases_per_s']:,.0f}/s",
        verdict("import_cases_per_s"),
    )
    table.add_row(
        "import-cases ÷ floor",
        "",
        f"{results['import_floor_ratio']:.2f}",
        f"≥ {targets['import_floor_ratio']:.2f}" if "import_floor_ratio" in targets else "",
        verdict("import_floor_ratio"),
    )
    table.add_row(
        f"bulk Case API ({BULK_SIZE}/request)",
        f"{results['bulk_api_cases_per_s']:,.0f}",
        f"{results['bulk_api_floor_ratio']:.2f}",
        f"≥ {targets['bulk_api_cases_per_s']:,.0f}/s" if "bulk_api_cases_per_s" in targets else "",
        verdict("bulk_api_cases_per_s"),
    )
    table.add_row("floor (sqlite3 executemany)", f"{floor:,.0f}", "1.00", "", "")
    if "import_1m_peak_rss_mb" in results:
        rate = results["import_1m_cases_per_s"]
        table.add_row(
            f"import {results['import_1m_rows']:,} rows",
            f"{rate:,.0f}",
            f"{rate / floor:.2f}" if floor else "",
            f"peak RSS < {targets.get('import_1m_peak_rss_mb', 300):,.0f} MB",
            f"{results['import_1m_peak_rss_mb']:,.0f} MB {verdict('import_1m_peak_rss_mb')}",
        )
    console.print(table)


def run_bench(suite: str, *, cases: int, json_out: Path | None, rss_rows: int) -> dict[str, Any]:
    """Run ``suite``; prints the table, writes ``json_out``; returns the JSON document."""
    if suite not in SUITES:
        raise ValueError(f"unknown benchmark suite {suite!r} (available: ingest, dispatch)")
    if cases < 1:
        raise ValueError("--cases must be at least 1")
    if rss_rows < 0:
        raise ValueError("--rss-rows must be 0 (skip) or more")
    base_url = postgres_base_url()
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-")), base_url)
    machine = machine_info(ws.vendor)
    try:
        results = run_ingest(ws, cases, rss_rows)
    except BenchError as exc:
        raise ValueError(f"bench {suite}: {exc}") from None
    finally:
        ws.cleanup()
    targets = dict(TARGETS_POSTGRES if base_url else TARGETS_SQLITE)
    document = {"suite": suite, "results": results, "targets": targets, "machine": machine}
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)
    print_table(results, targets, console)
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        Console(stderr=True).print(f"results written to {json_out}")
    return document
