"""``casereach bench alerts``: activating a conditional alert over many cases, and the
scheduler turning as many due instances into outbox messages, beside the floor — plain
``sqlite3`` inserting as many schedule-instance rows (SPEC 9).

Set-up, not timed, on a fresh SQLite file in a temporary directory (as the other suites):
``casereach init``, the bench project, then ``casereach import-cases`` of ``--cases`` open
cases of type ``mother``, each with a phone number and the property ``edd``. The measured work
runs in one subprocess with Django configured, on that file:

- activation: ``do_create_alert`` of an active conditional alert (``edd has_value``, recipients
  self, a timed schedule daily at 09:00 for 30 iterations starting from the match) → cases/s;
  it must leave exactly one schedule instance per case;
- due scan: every instance made due a minute ago (an UPDATE, not timed), then
  ``run_until_idle(at=now)`` → instances/s; it must write one ``conditional_alert`` message per
  instance and move every instance past the occurrence it fired;
- floor: ``executemany`` of as many rows into a table of the real ``alerts_scheduleinstance``
  shape (columns, checks, unique constraint, partial and plain indexes; no foreign keys) in a
  fresh file, one transaction, rows built before the clock starts, no validation.

A failed check fails the run (after the table and ``--json`` are written).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from casereach.bench.alerts_floor import (
    measure_floor,
    measure_write_floor,
)
from casereach.bench.workspace import (
    LANGUAGES,
    PROJECT,
    ZONES,
    BenchError,
    Target,
    Workspace,
    machine_info,
    postgres_base_url,
)

CASE_TYPE = "mother"
HEADER = (
    "external_id",
    "case_type",
    "case_name",
    "owner_id",
    "contact_phone_number",
    "time_zone",
    "language_code",
    "edd",
)
DUE_AGO = dt.timedelta(minutes=1)  # well within the alert's late limit (48 h)
WORKER_TIMEOUT_S = 4 * 3600

TARGETS = {
    "activation_cases_per_s": 20_000.0,
    "due_scan_instances_per_s": 5_000.0,
    "activation_floor_ratio": 0.2,
    "due_scan_floor_ratio": 0.2,
}


def alert_body() -> dict[str, Any]:
    """The conditional alert the suite activates (the shape the API tests use)."""
    return {
        "name": "Bench ANC reminders",
        "kind": "conditional",
        "case_type": CASE_TYPE,
        "active": True,
        "criteria": {"match": "all", "rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}, due {case.edd}", "sw": "Habari {case.name}"}},
        "schedule": {
            "type": "timed",
            "events": [{"day": 0, "time": "09:00"}],
            "repeat": {"unit": "days", "iterations": 30},
            "start": {"from": "match"},
        },
        "recipients": [{"type": "self"}],
    }


def case_values(i: int) -> tuple[str, ...]:
    """Bench case ``i`` in HEADER order: unique numbers, an ``edd`` on every case."""
    edd = dt.date(2027, 1, 1) + dt.timedelta(days=i % 280)
    return (
        f"mother-{i:08d}",
        CASE_TYPE,
        f"Bench Mother {i}",
        "bench-owner",
        f"2547{i % 100_000_000:08d}",
        ZONES[i % len(ZONES)],
        LANGUAGES[i % len(LANGUAGES)],
        edd.isoformat(),
    )


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(case_values(i))


# --- the measured work (in a subprocess with Django configured) -------------------------------


def _count_by(values: list[tuple[Any, int]]) -> dict[str, int]:
    return {str(k): int(n) for k, n in values}


def measure_activation(project: Any) -> tuple[Any, float]:
    """Create the alert active (evaluating every case); (alert, seconds)."""
    from casereach.alerts.actions import do_create_alert

    started = time.perf_counter()
    alert = do_create_alert(project, alert_body())
    return alert, time.perf_counter() - started


def make_due(alert: Any, at: dt.datetime) -> int:
    """Every instance of ``alert`` due ``DUE_AGO`` before ``at``; how many were changed."""
    from casereach.alerts.models import ScheduleInstance

    changed: int = ScheduleInstance.objects.filter(alert=alert).update(
        next_due=at - DUE_AGO, active=True
    )
    return changed


def measure_due_scan(at: dt.datetime) -> tuple[int, float]:
    """``run_until_idle(at)``; (instances handled, seconds)."""
    from casereach.alerts.scheduler import run_until_idle

    started = time.perf_counter()
    handled = run_until_idle(at=at)
    return handled, time.perf_counter() - started


def worker(cases: int) -> dict[str, Any]:
    """Activation then due scan, with their checks; the JSON-able figures."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
    import django

    django.setup()
    from django.db.models import Count

    from casereach.alerts.models import Firing, ScheduleInstance
    from casereach.cases.models import Case
    from casereach.core.timeutil import now
    from casereach.messaging.models import Message
    from casereach.projects.queries import get_project_by_name

    project = get_project_by_name(PROJECT)
    open_cases = Case.objects.filter(
        project=project, case_type=CASE_TYPE, closed=False, deleted=False
    ).count()

    alert, activation_s = measure_activation(project)
    alert.refresh_from_db()
    instances = ScheduleInstance.objects.filter(alert=alert)
    instance_count = instances.count()
    scheduled = instances.filter(active=True, next_due__isnull=False).count()

    at = now()
    made_due = make_due(alert, at)
    handled, due_scan_s = measure_due_scan(at)

    messages = Message.objects.filter(event__source="conditional_alert")
    statuses = _count_by(list(messages.values_list("status").annotate(n=Count("id"))))
    errors = _count_by(
        list(
            messages.filter(error_code__isnull=False)
            .exclude(error_code="")
            .values_list("error_code")
            .annotate(n=Count("id"))
        )
    )
    return {
        "open_cases": open_cases,
        "activation_seconds": activation_s,
        "eval_state": alert.eval_state,
        "eval_processed": alert.eval_processed,
        "instances": instance_count,
        "instances_scheduled": scheduled,
        "instances_made_due": made_due,
        "due_scan_seconds": due_scan_s,
        "due_scan_handled": handled,
        "messages": sum(statuses.values()),
        "message_statuses": statuses,
        "message_errors": errors,
        "firings": Firing.objects.filter(alert=alert).count(),
        "instances_advanced": instances.filter(active=True, next_due__gt=at - DUE_AGO).count(),
        "instances_still_due": ScheduleInstance.objects.filter(
            active=True, next_due__lte=at
        ).count(),
    }


def worker_main() -> None:
    """Entry point of the worker subprocess: the figures as one JSON line on stdout."""
    result = worker(int(os.environ["BENCH_ALERT_CASES"]))
    sys.stdout.write(json.dumps(result) + "\n")


_WORKER = "from casereach.bench.alerts import worker_main; worker_main()"


def run_worker(ws: Workspace, target: Target, cases: int) -> dict[str, Any]:
    env = {**ws.env(target), "BENCH_ALERT_CASES": str(cases)}
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"the alerts worker failed: {proc.stderr.strip()[-800:]}")
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"the alerts worker printed no result: {proc.stderr[-500:]}") from None
    return result


# --- the floor --------------------------------------------------------------------------------


# --- what the due scan must write, in plain sqlite3 ------------------------------------------


# --- the suite --------------------------------------------------------------------------------


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _ratio(value: float, floor: float) -> float:
    return round(value / floor, 3) if floor else 0.0


def problems_of(results: dict[str, Any]) -> list[str]:
    cases = results["cases"]
    found = []
    if results["open_cases"] != cases:
        found.append(f"set-up left {results['open_cases']:,} open cases for {cases:,}")
    if results["instances"] != cases:
        found.append(f"activation wrote {results['instances']:,} schedule instances for {cases:,}")
    if results["instances_scheduled"] != cases:
        found.append(f"{results['instances_scheduled']:,} of {cases:,} instances have a next due")
    if results["eval_state"] != "done":
        found.append(f"the alert's evaluation ended {results['eval_state']!r}, not 'done'")
    if results["due_scan_handled"] != cases:
        found.append(f"the due scan handled {results['due_scan_handled']:,} of {cases:,} instances")
    if results["messages"] != cases:
        found.append(f"the due scan wrote {results['messages']:,} messages for {cases:,} instances")
    if results["firings"] != cases:
        found.append(f"{results['firings']:,} firings recorded for {cases:,} instances")
    if results["instances_advanced"] != cases:
        found.append(f"{results['instances_advanced']:,} of {cases:,} instances advanced")
    if results["message_errors"]:
        codes = ", ".join(f"{n:,} {code}" for code, n in results["message_errors"].items())
        found.append(f"messages were postponed or failed: {codes}")
    if results["instances_still_due"]:
        found.append(f"{results['instances_still_due']:,} instances still due after the scan")
    return found


def import_mothers(ws: Workspace, target: Target, csv_path: Path) -> float:
    """Import the bench's cases into ``target`` with ``casereach import-cases`` (untimed
    set-up); the seconds it took."""
    started = time.perf_counter()
    ws.cli(
        target,
        "import-cases",
        str(csv_path),
        "--project",
        PROJECT,
        "--errors",
        str(ws.root / "mothers.errors.csv"),
        timeout=WORKER_TIMEOUT_S,
    )
    return round(time.perf_counter() - started, 3)


def measure(ws: Workspace, cases: int) -> dict[str, Any]:
    say = ws.console.print
    results: dict[str, Any] = {"cases": cases, "database": ws.vendor}
    csv_path = ws.root / "mothers.csv"
    say(f"set-up: {cases:,} '{CASE_TYPE}' cases with a phone number and edd → {csv_path.name}")
    write_csv(csv_path, cases)
    target = ws.fresh("alerts")
    results["setup_import_seconds"] = import_mothers(ws, target, csv_path)
    csv_path.unlink()

    say("activation and due scan (one process, Django configured)")
    ours = run_worker(ws, target, cases)
    activation_s = float(ours.pop("activation_seconds"))
    due_scan_s = float(ours.pop("due_scan_seconds"))
    results["activation_seconds"] = round(activation_s, 3)
    results["activation_cases_per_s"] = _rate(cases, activation_s)
    results["due_scan_seconds"] = round(due_scan_s, 3)
    results["due_scan_instances_per_s"] = _rate(cases, due_scan_s)
    results.update(ours)

    say(f"floor: sqlite3 executemany of {cases:,} schedule-instance rows")
    # The floor is plain sqlite3 in both modes, on the real table's shape.
    shape = Path(target.url)
    if ws.vendor != "sqlite":
        shape = ws.root / "shape.sqlite3"
        ws.cli(Target(str(shape), "sqlite"), "init")
    floor_s = measure_floor(ws, shape, cases)
    floor = _rate(cases, floor_s)
    results["floor_seconds"] = round(floor_s, 3)
    results["floor_instances_per_s"] = floor
    results["activation_floor_ratio"] = _ratio(results["activation_cases_per_s"], floor)
    results["due_scan_floor_ratio"] = _ratio(results["due_scan_instances_per_s"], floor)
    say(f"write floor: sqlite3 writing what a due scan of {cases:,} instances must write")
    writes_s = measure_write_floor(ws, cases)
    results["due_scan_write_floor_per_s"] = _rate(cases, writes_s)
    # The best due-scan ratio any scheduler that keeps one event, one sub-event and one
    # message per firing could reach on this machine: its writes alone, against the floor.
    results["due_scan_write_floor_ratio"] = _ratio(results["due_scan_write_floor_per_s"], floor)
    results["due_scan_share_of_write_floor"] = _ratio(
        results["due_scan_instances_per_s"], results["due_scan_write_floor_per_s"]
    )
    results["problems"] = problems_of(results)
    return results


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(
        title=(
            f"casereach bench alerts: conditional alert over {results['cases']:,} cases "
            f"on {results['database']}"
        )
    )
    for column in ("measurement", "per second", "ratio to floor", "target", "result"):
        table.add_column(column, justify="left" if column == "measurement" else "right")

    for row in (*_rate_rows(results), *_count_rows(results)):
        table.add_row(*row)
    console.print(table)


def _verdict(results: dict[str, Any], key: str) -> str:
    return _check(results[key] >= TARGETS[key])


def _check(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[red]FAIL[/red]"


def _rate_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    rows.append(
        (
            "activation (cases/s)",
            f"{results['activation_cases_per_s']:,.0f}",
            f"{results['activation_floor_ratio']:.2f}",
            f"≥ {TARGETS['activation_cases_per_s']:,.0f}/s",
            _verdict(results, "activation_cases_per_s"),
        )
    )
    rows.append(
        (
            "activation ÷ floor",
            "",
            f"{results['activation_floor_ratio']:.2f}",
            f"≥ {TARGETS['activation_floor_ratio']:.2f}",
            _verdict(results, "activation_floor_ratio"),
        )
    )
    rows.append(
        (
            "due scan → outbox (instances/s)",
            f"{results['due_scan_instances_per_s']:,.0f}",
            f"{results['due_scan_floor_ratio']:.2f}",
            f"≥ {TARGETS['due_scan_instances_per_s']:,.0f}/s",
            _verdict(results, "due_scan_instances_per_s"),
        )
    )
    rows.append(
        (
            "due scan ÷ floor",
            "",
            f"{results['due_scan_floor_ratio']:.2f}",
            f"≥ {TARGETS['due_scan_floor_ratio']:.2f}",
            _verdict(results, "due_scan_floor_ratio"),
        )
    )
    rows.append(
        (
            "floor (sqlite3 executemany of instances)",
            f"{results['floor_instances_per_s']:,.0f}",
            "1.00",
            "",
            "",
        )
    )
    if "due_scan_write_floor_per_s" in results:
        rows.append(
            (
                "write floor: sqlite3 writing event + sub-event + message + advance",
                f"{results['due_scan_write_floor_per_s']:,.0f}",
                f"{results['due_scan_write_floor_ratio']:.2f}",
                "",
                "",
            )
        )
        rows.append(
            (
                "due scan ÷ write floor",
                "",
                f"{results['due_scan_share_of_write_floor']:.2f}",
                "",
                "",
            )
        )
    return rows


def _count_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    cases = results["cases"]
    rows.append(
        (
            "schedule instances / cases",
            f"{results['instances']:,} / {cases:,}",
            "",
            "equal",
            _check(results["instances"] == cases),
        )
    )
    rows.append(
        (
            "messages written / instances due",
            f"{results['messages']:,} / {cases:,}",
            "",
            "equal",
            _check(results["messages"] == cases),
        )
    )
    rows.append(
        (
            "instances advanced / instances due",
            f"{results['instances_advanced']:,} / {cases:,}",
            "",
            "equal",
            _check(results["instances_advanced"] == cases and not results["instances_still_due"]),
        )
    )
    return rows


def run_alerts_suite(*, cases: int, json_out: Path | None) -> dict[str, Any]:
    """``casereach bench alerts``: measure, print a table, optionally write JSON; raises
    ValueError (after printing) when a check failed."""
    if cases < 1:
        raise ValueError("--cases must be at least 1")
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-")), postgres_base_url())
    machine = machine_info(ws.vendor)
    try:
        results = measure(ws, cases)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"bench alerts: {exc}") from None
    finally:
        ws.cleanup()
    document = {"suite": "alerts", "results": results, "targets": TARGETS, "machine": machine}
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    print_table(results, console)
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        Console(stderr=True).print(f"results written to {json_out}")
    if results["problems"]:
        raise ValueError("bench alerts: " + "; ".join(results["problems"]))
    return document
