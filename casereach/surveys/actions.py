"""The only writers of surveys. A definition is checked whole (``spec.validated_survey``)
before anything is written, so a refused one changes nothing."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from casereach.core.errors import BadRequest, Conflict
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.surveys.keyword_start import keywords_naming
from casereach.surveys.models import Survey
from casereach.surveys.spec import SurveySpec, validated_survey


def _parsed(
    project: Project, data: dict[str, Any], default_active: bool
) -> tuple[SurveySpec, bool]:
    body = dict(data)
    active = body.pop("active", default_active)
    if not isinstance(active, bool):
        raise BadRequest("active: must be true or false")
    return validated_survey(body, project.languages), active


def _taken(project: Project, name: str, exclude: int | None = None) -> None:
    others = Survey.objects.filter(project=project, name=name)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    if others.exists():
        raise Conflict(f"name: a survey named {name!r} already exists in this project")


def do_create_survey(project: Project, data: dict[str, Any]) -> Survey:
    """A new survey (``active`` defaults to true) or BadRequest/Conflict, nothing stored."""
    spec, active = _parsed(project, data, True)
    _taken(project, spec.name)
    stamp = now()
    try:
        with transaction.atomic():
            return Survey.objects.create(
                project=project,
                name=spec.name,
                definition=spec.model_dump(mode="json"),
                active=active,
                created_on=stamp,
                updated_on=stamp,
            )
    except IntegrityError:  # a concurrent create took the name
        raise Conflict(f"name: a survey named {spec.name!r} already exists") from None


def do_update_survey(survey: Survey, data: dict[str, Any]) -> Survey:
    """Replace the definition (the body is a whole survey; ``active`` stays unless given);
    the version goes up by one."""
    spec, active = _parsed(survey.project, data, survey.active)
    _taken(survey.project, spec.name, exclude=survey.pk)
    try:
        with transaction.atomic():
            Survey.objects.filter(pk=survey.pk).update(
                name=spec.name,
                definition=spec.model_dump(mode="json"),
                active=active,
                version=survey.version + 1,
                updated_on=now(),
            )
    except IntegrityError:
        raise Conflict(f"name: a survey named {spec.name!r} already exists") from None
    survey.refresh_from_db()
    return survey


def do_delete_survey(survey: Survey) -> None:
    """Delete it, or Conflict naming the keywords that start it (nothing deleted). The row
    is locked first: saving a keyword naming it locks it too, so the two cannot cross."""
    with transaction.atomic():
        Survey.objects.select_for_update().filter(pk=survey.pk).first()
        names = keywords_naming(survey)
        if names:
            raise Conflict(
                f"the keyword {', '.join(names)} starts this survey: change or delete it first",
                {"keywords": names},
            )
        survey.delete()
