"""Imports started in the browser run in the background, like ``import-cases --queue``.

The upload is saved under ``CASEREACH_IMPORT_DIR`` and the request returns at once; a thread
of the web process runs the same streaming importer as the CLI, recording its progress (and
at the end its counts) in the database, where every web process's polls read it. Every row
error goes to the user's error report file; the page shows the first ``SHOWN_ERRORS``.
"""

from __future__ import annotations

import csv
import logging
import secrets
import threading
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import close_old_connections, connection

from casereach.cases.importer import Progress, RowError, import_cases
from casereach.core.errors import CasereachError
from casereach.projects.models import Project
from casereach.web.actions import do_finish_import, do_set_import_progress, do_start_import
from casereach.web.models import ImportProgress

log = logging.getLogger(__name__)

SHOWN_ERRORS = 50  # row errors on the page; every one is in the downloadable report


def import_dir() -> Path:
    return Path(settings.IMPORT_DIR)


def error_report_path(project: Project, user_id: int) -> Path:
    """The user's last import's full error report (one per project and user)."""
    return import_dir() / f"errors-{project.pk}-{user_id}.csv"


def first_errors(project: Project, user_id: int, limit: int = SHOWN_ERRORS) -> list[RowError]:
    """The first ``limit`` row errors of the user's last import, read from its report."""
    path = error_report_path(project, user_id)
    found: list[RowError] = []
    try:
        with path.open(newline="", encoding="utf-8") as report:
            for row in csv.DictReader(report):
                found.append(RowError(int(row["row"]), row["column"], row["reason"]))
                if len(found) >= limit:
                    break
    except (OSError, ValueError, KeyError):
        return found
    return found


def start_import(
    project: Project, user_id: int, upload: UploadedFile[bytes], case_type: str | None
) -> ImportProgress:
    """Save the upload, record the import as running, and run it in a background thread.
    Raises Conflict while the user's previous import still runs."""
    name = Path(upload.name or "upload.csv").name
    job = do_start_import(project, user_id, name)
    suffix = Path(name).suffix.lower() or ".csv"
    folder = import_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload-{project.pk}-{user_id}-{secrets.token_hex(8)}{suffix}"
    try:
        with path.open("wb") as out:
            for part in upload.chunks():
                out.write(part)
    except OSError as exc:
        do_finish_import(project, user_id, error=f"the upload could not be saved: {exc}")
        path.unlink(missing_ok=True)
        return job
    thread = threading.Thread(
        target=_run,
        args=(project.pk, user_id, path, case_type),
        name=f"casereach-import-{project.pk}-{user_id}",
        daemon=True,
    )
    thread.start()
    return job


def _run(project_id: int, user_id: int, path: Path, case_type: str | None) -> None:
    """The background half: its own database connection, closed at the end."""
    close_old_connections()
    project = Project.objects.filter(pk=project_id).first()
    if project is None:  # deleted meanwhile: nothing to import into, nobody to tell
        path.unlink(missing_ok=True)
        connection.close()
        return
    report_path = error_report_path(project, user_id)
    try:
        with report_path.open("w", newline="", encoding="utf-8") as spill:
            writer = csv.writer(spill)
            writer.writerow(["row", "column", "reason"])

            def on_error(err: RowError) -> None:
                writer.writerow([err.row, err.column, err.reason])

            def on_progress(p: Progress) -> None:
                spill.flush()
                percent = min(100, p.done * 100 // p.total) if p.total else None
                do_set_import_progress(project, user_id, p.rows, percent)

            report = import_cases(
                project, path, case_type=case_type, on_progress=on_progress, on_error=on_error
            )
        do_finish_import(
            project,
            user_id,
            rows=report.rows_read,
            written=report.written,
            errors_total=report.errors_total,
        )
    except CasereachError as exc:
        do_finish_import(project, user_id, error=exc.message)
    except Exception:  # a bug or a lost database: say so on the page, keep the traceback in the log
        log.exception("import %s for project %s stopped", path.name, project.name)
        do_finish_import(project, user_id, error="the import stopped on an internal error")
    finally:
        path.unlink(missing_ok=True)
        connection.close()
