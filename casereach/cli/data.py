"""Cases in bulk and their data quality: casereach import-cases and check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from casereach.cli.app import (
    app,
    fail,
    guarded,
    project_by_name,
)

if TYPE_CHECKING:
    pass


@app.command("import-cases")
def import_cases(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file")],
    project: Annotated[str, typer.Option("--project", help="Project name")],
    case_type: Annotated[
        str | None, typer.Option("--case-type", help="Case type for rows without one")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Where to write the error report (CSV)")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 5000,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Scale-out mode: hand the import to a worker (the file must be on storage "
            "every worker can read); prints the task id and returns",
        ),
    ] = False,
) -> None:
    """Import cases in bulk (streaming); bad rows go to an error report, good rows land."""
    if queue:

        def enqueue() -> str:
            from casereach.scaleout import config
            from casereach.scaleout.app import get_app

            if not config.broker_mode():
                fail(f"--queue needs {config.BROKER_ENV} (the scale-out mode)")
            if not file.is_file():
                fail(f"no such file: {file}")
            owner = project_by_name(project)
            result = get_app().send_task(
                "casereach.import_cases", args=(str(file.resolve()), owner.pk, case_type)
            )
            return str(result.id)

        task_id = guarded(enqueue)
        typer.echo(f"import queued for a worker: task {task_id}")
        return

    def run() -> int:
        from casereach.cli.importing import run_import

        failed: int = run_import(file, project_by_name(project), case_type, errors, batch_size)
        return failed

    failed = guarded(run)
    if failed:
        raise typer.Exit(1)


@app.command()
def check(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV instead of a table")] = False,
) -> None:
    """Data-quality report: every contact with a warning."""

    def run() -> None:
        from casereach.cli.reports import print_data_quality

        print_data_quality(project_by_name(project), csv_out=csv_out)

    guarded(run)
