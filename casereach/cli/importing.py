"""``casereach import-cases``: a progress bar over the streaming importer, and its error report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from casereach.cases.import_files import file_kind
from casereach.cases.importer import Progress as ImportProgress
from casereach.cases.importer import RowError, import_cases
from casereach.core.errors import BadRequest


class RowsColumn(ProgressColumn):
    """Rows read so far and the rate in rows per second."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:,} rows  {rate:,.0f} rows/s", style="progress.data.speed")


def default_report_path(file: Path) -> Path:
    return file.with_name(file.name + ".errors.csv")


def run_import(
    file: Path,
    project: Any,
    case_type: str | None,
    errors: Path | None,
    batch_size: int,
) -> int:
    """Import ``file`` into ``project``; returns the number of rows that failed."""
    kind = file_kind(file)
    if not file.is_file():
        raise BadRequest(f"no such file: {file}")
    report_path = errors or default_report_path(file)
    try:
        report_file = report_path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot write the error report {report_path}: {exc.strerror}") from None
    console = Console(stderr=True)
    unit = "bytes" if kind == "csv" else "rows"
    with (
        report_file,
        Progress(
            TextColumn("[bold]importing[/bold] {task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            RowsColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        ) as bar,
    ):
        writer = csv.writer(report_file)
        writer.writerow(["row", "column", "reason"])
        task = bar.add_task(escape(file.name), total=None, rows=0, unit=unit)

        def on_progress(p: ImportProgress) -> None:
            bar.update(task, completed=p.done, total=p.total, rows=p.rows)

        def on_error(err: RowError) -> None:
            writer.writerow([err.row, err.column, err.reason])

        report = import_cases(
            project,
            file,
            case_type=case_type,
            batch_size=batch_size,
            on_progress=on_progress,
            on_error=on_error,
        )
        final_total = bar.tasks[0].total
        bar.update(task, completed=final_total or 0, rows=report.rows_read)
    typer.echo(
        f"imported {report.rows_ok:,} cases, {report.rows_failed:,} rows failed; "
        f"error report: {report_path}"
    )
    return report.rows_failed
