"""Reads of the web app's own tables, and the list of a project's alerts the pages show."""

from __future__ import annotations

import datetime as dt

from casereach.alerts.models import Alert
from casereach.cases.models import LastForwarded
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.web.models import ImportProgress

# A running import records progress at least once a batch; one silent this long died with the
# process that ran it (a restart, a kill) and is shown as interrupted.
STALE_AFTER = dt.timedelta(minutes=10)


def last_import(project: Project, user_id: int) -> ImportProgress | None:
    """The user's last import in ``project`` (running, done or failed), if any."""
    return ImportProgress.objects.filter(project=project, user_id=user_id).first()


def is_interrupted(job: ImportProgress) -> bool:
    return job.state == ImportProgress.RUNNING and now() - job.updated_on >= STALE_AFTER


def project_alerts(project: Project, *, newest_first: bool = False) -> list[Alert]:
    """The project's alerts by name (the message log's alert filter), or newest first (the
    alerts page)."""
    return list(Alert.objects.filter(project=project).order_by("-id" if newest_first else "name"))


def last_forwarded(project: Project) -> LastForwarded | None:
    """The last case HQ's Data Forwarding sent to ``project`` (the Connect page)."""
    return LastForwarded.objects.filter(project_id=project.pk).first()
