"""The web app's own writes: the progress of imports started in the browser."""

from __future__ import annotations

from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.web.models import ImportProgress


def do_set_import_progress(project: Project, user_id: int, rows: int, percent: int | None) -> None:
    """Record how far the user's import has got, for whichever web process answers the
    polls (it commits at once: the import commits batch by batch)."""
    ImportProgress.objects.update_or_create(
        project=project,
        user_id=user_id,
        defaults={"rows": rows, "percent": percent, "updated_on": now()},
    )


def do_clear_import_progress(project: Project, user_id: int) -> None:
    ImportProgress.objects.filter(project=project, user_id=user_id).delete()
