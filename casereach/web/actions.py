"""The web app's own writes: imports started in the browser, their progress and result."""

from __future__ import annotations

from casereach.core.errors import Conflict
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.web.models import ImportProgress
from casereach.web.queries import STALE_AFTER


def do_start_import(project: Project, user_id: int, file_name: str) -> ImportProgress:
    """Record that the user's import has started (409 while their last one still runs; an
    import that has not moved for STALE_AFTER died with its process and no longer counts)."""
    at = now()
    current = ImportProgress.objects.filter(project=project, user_id=user_id).first()
    if (
        current is not None
        and current.state == ImportProgress.RUNNING
        and at - current.updated_on < STALE_AFTER
    ):
        raise Conflict("your last import is still running: wait for it to finish")
    row, _ = ImportProgress.objects.update_or_create(
        project=project,
        user_id=user_id,
        defaults={
            "state": ImportProgress.RUNNING,
            "file_name": file_name[:255],
            "rows": 0,
            "percent": 0,
            "written": 0,
            "errors_total": 0,
            "error": "",
            "started_on": at,
            "updated_on": at,
            "finished_on": None,
        },
    )
    return row


def do_set_import_progress(project: Project, user_id: int, rows: int, percent: int | None) -> None:
    """Record how far the user's import has got, for whichever web process answers the
    polls (it commits at once: the import commits batch by batch)."""
    ImportProgress.objects.update_or_create(
        project=project,
        user_id=user_id,
        defaults={"rows": rows, "percent": percent, "updated_on": now()},
    )


def do_finish_import(
    project: Project,
    user_id: int,
    *,
    rows: int = 0,
    written: int = 0,
    errors_total: int = 0,
    error: str = "",
) -> None:
    """The import ended: its counts, or why the file was refused or the import stopped."""
    at = now()
    ImportProgress.objects.filter(project=project, user_id=user_id).update(
        state=ImportProgress.FAILED if error else ImportProgress.DONE,
        rows=rows,
        percent=None if error else 100,
        written=written,
        errors_total=errors_total,
        error=error,
        updated_on=at,
        finished_on=at,
    )
