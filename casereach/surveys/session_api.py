"""Survey sessions under ``/a/{project}/api/surveys/v1/``: start one for a contact (member),
list and read them with their answers, and a CSV of a survey's answers (viewer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from ninja import Router

from casereach.core.errors import BadRequest
from casereach.core.openapi import ApiError
from casereach.core.requests import json_object, paged
from casereach.projects.auth import principal_of, project_for, requires
from casereach.projects.models import Role
from casereach.surveys.api import ERRORS, NOT_FOUND
from casereach.surveys.models import SurveyAnswer, SurveySession
from casereach.surveys.queries import get_survey, spec_of
from casereach.surveys.session_queries import (
    answers_by_session,
    filter_sessions,
    get_contact,
    get_session,
    retired_questions,
    sessions_of_survey,
)
from casereach.surveys.session_serializers import (
    ANSWERS_CSV,
    START_BODY,
    SessionList,
    SessionOut,
    answers_csv_rows,
    serialize_session,
)
from casereach.surveys.sessions import do_start_survey
from casereach.surveys.sessions.cancel import do_cancel_session

router = Router(tags=["surveys"])
BASE = "/a/{project}/api/surveys/v1"
CSV_PAGE = 500


@router.api_operation(
    ["POST"],
    BASE + "/surveys/{survey_id}/start",
    operation_id="surveys_start",
    summary="Start the survey for a contact (queued behind a survey its number is answering)",
    response={201: SessionOut, **ERRORS, **NOT_FOUND},
    openapi_extra=START_BODY,
)
@requires(Role.MEMBER)
def surveys_start(request: HttpRequest, project: str, survey_id: int) -> JsonResponse:
    proj = project_for(request, project)
    survey = get_survey(proj, survey_id)
    body = json_object(request)
    unknown = set(body) - {"contact_id", "gateway"}
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(sorted(unknown))}")
    contact = get_contact(proj, body.get("contact_id"))
    gateway = body.get("gateway")
    if gateway is not None and not isinstance(gateway, str):
        raise BadRequest("gateway: must be a gateway's name")
    who = principal_of(request).username
    session = do_start_survey(proj, survey, contact, gateway, triggered_by=who)
    return JsonResponse(serialize_session(session), status=201)


@router.api_operation(
    ["GET"],
    BASE + "/survey-sessions",
    operation_id="survey_sessions_list",
    summary="Survey sessions (filters: survey, contact_id, status, started_from, started_to)",
    response={200: SessionList, **ERRORS},
)
@requires(Role.VIEWER)
def survey_sessions_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    qs = filter_sessions(proj, request.GET)
    return JsonResponse(paged(request, qs.order_by("-created_on", "-id"), serialize_session))


@router.api_operation(
    ["GET"],
    BASE + "/survey-sessions/{session_id}",
    operation_id="survey_sessions_get",
    summary="One survey session with its answers",
    response={200: SessionOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def survey_sessions_get(request: HttpRequest, project: str, session_id: int) -> JsonResponse:
    proj = project_for(request, project)
    session = get_session(proj, session_id)
    answers = list(SurveyAnswer.objects.filter(session=session).order_by("id"))
    return JsonResponse(serialize_session(session, answers))


@router.api_operation(
    ["POST"],
    BASE + "/survey-sessions/{session_id}/cancel",
    operation_id="survey_sessions_cancel",
    summary="Cancel an active or queued session (an active one frees its pair: the next starts)",
    response={200: SessionOut, **ERRORS, **NOT_FOUND, 409: ApiError},
)
@requires(Role.MEMBER)
def survey_sessions_cancel(request: HttpRequest, project: str, session_id: int) -> JsonResponse:
    proj = project_for(request, project)
    session = do_cancel_session(proj, session_id, by=principal_of(request).username)
    answers = list(SurveyAnswer.objects.filter(session=session).order_by("id"))
    return JsonResponse(serialize_session(session, answers))


def _pages(sessions: Any) -> Iterator[tuple[SurveySession, list[SurveyAnswer]]]:
    last = 0
    while True:
        page = list(sessions.filter(pk__gt=last)[:CSV_PAGE])
        if not page:
            return
        answers = answers_by_session(page)
        for s in page:
            yield s, answers[s.pk]
        last = page[-1].pk


@router.api_operation(
    ["GET"],
    BASE + "/surveys/{survey_id}/answers.csv",
    operation_id="surveys_answers_csv",
    summary="The survey's answers: one row per session, one column per question",
    response={200: Any, **ERRORS, **NOT_FOUND},
    openapi_extra=ANSWERS_CSV,
)
@requires(Role.VIEWER)
def surveys_answers_csv(request: HttpRequest, project: str, survey_id: int) -> Any:
    proj = project_for(request, project)
    survey = get_survey(proj, survey_id)
    current = [q.id for q in spec_of(survey).questions]
    questions = current + retired_questions(survey.pk, current)
    rows = answers_csv_rows(questions, _pages(sessions_of_survey(proj, survey.pk)))
    response = StreamingHttpResponse(rows, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="survey-{survey.pk}-answers.csv"'
    return response
