"""Reads of the web app's own tables."""

from __future__ import annotations

from casereach.projects.models import Project
from casereach.web.models import ImportProgress


def running_import(project: Project, user_id: int) -> ImportProgress | None:
    """The user's running import in ``project``, if any."""
    return ImportProgress.objects.filter(project=project, user_id=user_id).first()
