"""Surveys under ``/a/{project}/api/surveys/v1/``: definitions (viewer reads, member writes)
and the preview that plays one against replies, storing nothing."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from casereach.alerts.templates import RenderContext
from casereach.core.errors import BadRequest
from casereach.core.openapi import ApiError
from casereach.core.requests import json_object
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Project, Role
from casereach.projects.settings_schema import effective_settings
from casereach.surveys.actions import do_create_survey, do_delete_survey, do_update_survey
from casereach.surveys.preview import play
from casereach.surveys.queries import get_survey, spec_of, surveys_of
from casereach.surveys.serializers import (
    PREVIEW_BODY,
    SURVEY_BODY,
    PreviewOut,
    SurveyList,
    SurveyOut,
    serialize_survey,
)

router = Router(tags=["surveys"])
BASE = "/a/{project}/api/surveys/v1"
MAX_REPLIES = 200
MAX_PROPERTIES = 500

ERRORS: dict[int, Any] = {400: ApiError, 401: ApiError, 403: ApiError, 429: ApiError}
NOT_FOUND: dict[int, Any] = {404: ApiError}


@router.api_operation(
    ["GET"],
    BASE + "/surveys",
    operation_id="surveys_list",
    summary="Surveys",
    response={200: SurveyList, **ERRORS},
)
@requires(Role.VIEWER)
def surveys_list(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse({"objects": [serialize_survey(s) for s in surveys_of(proj)]})


@router.api_operation(
    ["POST"],
    BASE + "/surveys",
    operation_id="surveys_create",
    summary="Create a survey",
    response={201: SurveyOut, **ERRORS, 409: ApiError},
    openapi_extra=SURVEY_BODY,
)
@requires(Role.MEMBER)
def surveys_create(request: HttpRequest, project: str) -> JsonResponse:
    proj = project_for(request, project)
    survey = do_create_survey(proj, json_object(request))
    return JsonResponse(serialize_survey(survey), status=201)


@router.api_operation(
    ["GET"],
    BASE + "/surveys/{survey_id}",
    operation_id="surveys_get",
    summary="One survey",
    response={200: SurveyOut, **ERRORS, **NOT_FOUND},
)
@requires(Role.VIEWER)
def surveys_get(request: HttpRequest, project: str, survey_id: int) -> JsonResponse:
    proj = project_for(request, project)
    return JsonResponse(serialize_survey(get_survey(proj, survey_id)))


@router.api_operation(
    ["PUT"],
    BASE + "/surveys/{survey_id}",
    operation_id="surveys_update",
    summary="Replace a survey's definition (a new version)",
    response={200: SurveyOut, **ERRORS, **NOT_FOUND, 409: ApiError},
    openapi_extra=SURVEY_BODY,
)
@requires(Role.MEMBER)
def surveys_update(request: HttpRequest, project: str, survey_id: int) -> JsonResponse:
    proj = project_for(request, project)
    survey = get_survey(proj, survey_id)
    return JsonResponse(serialize_survey(do_update_survey(survey, json_object(request))))


@router.api_operation(
    ["DELETE"],
    BASE + "/surveys/{survey_id}",
    operation_id="surveys_delete",
    summary="Delete a survey (409 while a keyword starts it)",
    response={204: None, **ERRORS, **NOT_FOUND, 409: ApiError},
)
@requires(Role.MEMBER)
def surveys_delete(request: HttpRequest, project: str, survey_id: int) -> HttpResponse:
    proj = project_for(request, project)
    do_delete_survey(get_survey(proj, survey_id))
    return HttpResponse(status=204)


def _strings(value: object, what: str, limit: int) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > limit:
        raise BadRequest(f"{what}: must be an object of at most {limit} strings")
    if not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"{what}: every value must be a string")
    return {str(k): str(v) for k, v in value.items()}


def _context(raw: object) -> RenderContext:
    if raw is None:
        return RenderContext()
    if not isinstance(raw, dict):
        raise BadRequest("case: must be an object")
    unknown = set(raw) - {"name", "owner_name", "properties"}
    if unknown:
        raise BadRequest(f"case: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "owner_name"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise BadRequest(f"case.{key}: must be a string")
    props = _strings(raw.get("properties") or {}, "case.properties", MAX_PROPERTIES)
    return RenderContext(
        case_name=raw.get("name"),
        case_properties=props,
        owner_name=raw.get("owner_name"),
        recipient_name=raw.get("name"),
    )


def _language(proj: Project, raw: object) -> str:
    languages = proj.languages
    if raw is None:
        return languages[0]
    if not isinstance(raw, str) or raw not in languages:
        raise BadRequest(f"language: must be one of the project's ({', '.join(languages)})")
    return raw


@router.api_operation(
    ["POST"],
    BASE + "/surveys/{survey_id}/preview",
    operation_id="surveys_preview",
    summary="Play the survey with these replies, in order (nothing is stored or sent)",
    response={200: PreviewOut, **ERRORS, **NOT_FOUND},
    openapi_extra=PREVIEW_BODY,
)
@requires(Role.VIEWER)
def surveys_preview(request: HttpRequest, project: str, survey_id: int) -> JsonResponse:
    proj = project_for(request, project)
    survey = get_survey(proj, survey_id)
    body = json_object(request)
    unknown = set(body) - {"replies", "language", "case"}
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(sorted(unknown))}")
    replies = body.get("replies")
    if (
        not isinstance(replies, list)
        or len(replies) > MAX_REPLIES
        or not all(isinstance(r, str) for r in replies)
    ):
        raise BadRequest(f"replies: must be a list of at most {MAX_REPLIES} strings")
    ctx = _context(body.get("case"))
    transcript = play(
        spec_of(survey),
        replies,
        language=_language(proj, body.get("language")),
        ctx=ctx,
        default_country=effective_settings(proj.settings).default_country,
    )
    return JsonResponse(transcript.as_json())
