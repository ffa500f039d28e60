"""Reading surveys; every lookup is scoped to one project (another project's id is 404)."""

from __future__ import annotations

from django.db.models import QuerySet

from casereach.core.errors import NotFound
from casereach.projects.models import Project
from casereach.surveys.models import Survey
from casereach.surveys.spec import SurveySpec, load_stored

MAX_ID = 2**63 - 1  # past it the database cannot hold the id: not found, never a 500
_SPECS: dict[tuple[int, int, str], SurveySpec] = {}


def get_survey(project: Project, survey_id: int) -> Survey:
    """The project's survey ``survey_id``, or NotFound (also for another project's)."""
    if not 0 < survey_id <= MAX_ID:
        raise NotFound(f"survey {survey_id} not found")
    survey = Survey.objects.filter(project=project, pk=survey_id).first()
    if survey is None:
        raise NotFound(f"survey {survey_id} not found")
    return survey


def surveys_of(project: Project) -> QuerySet[Survey]:
    return Survey.objects.filter(project=project).order_by("id")


def spec_of(survey: Survey) -> SurveySpec:
    """The parsed definition, cached per (id, version, updated_on)."""
    key = (survey.pk, survey.version, survey.updated_on.isoformat())
    spec = _SPECS.get(key)
    if spec is None:
        if len(_SPECS) > 1000:
            _SPECS.clear()
        spec = _SPECS[key] = load_stored(survey.definition)
    return spec
