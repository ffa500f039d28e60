"""The alert form's content choice: the surveys an alert can start."""

from __future__ import annotations

from typing import Any

from casereach.projects.models import Project
from casereach.surveys.queries import surveys_of


def survey_choices(project: Project, chosen: str) -> list[dict[str, Any]]:
    """The project's active surveys for the content choice (and the chosen one, even when
    it has since been deactivated, so that the form shows what is saved)."""
    return [
        {"id": str(s.pk), "name": s.name, "active": s.active}
        for s in surveys_of(project).order_by("name")
        if s.active or str(s.pk) == chosen
    ]
