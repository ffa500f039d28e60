"""Survey pages: the list, the builder (create/edit) with its live segment counts, and the
preview that plays the survey being built against a list of replies.

The builder is only a way of writing the survey body the API takes: ``surveys.actions``
validates and saves it, and each problem ``surveys.spec`` finds is shown by its path (e.g.
``questions[2].choices[0].label[sw]``) next to the question it is about, with everything
typed kept. The preview plays the form as it stands (saved or not) with
``surveys.preview.play``; nothing is stored or sent.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from casereach.alerts.templates import RenderContext
from casereach.core.errors import CasereachError
from casereach.projects.models import Project, Role
from casereach.projects.settings_schema import effective_settings
from casereach.surveys.actions import do_create_survey, do_update_survey
from casereach.surveys.models import Survey
from casereach.surveys.preview import play
from casereach.surveys.queries import get_survey, spec_of, surveys_of
from casereach.surveys.spec import survey_problems
from casereach.web.access import project_page
from casereach.web.survey_form import (
    BLANK_CHOICES,
    SELECTS,
    TYPES,
    Values,
    blank_question,
    body_from_form,
    form_from_post,
    form_from_spec,
    languages_of,
    segment_estimate,
)

MAX_REPLIES = 200
_QUESTION = re.compile(r"^questions\[(\d+)\]")


def _texts(texts: dict[str, str], langs: list[str]) -> list[dict[str, Any]]:
    return [
        {"lang": lang, "text": texts.get(lang, ""), "seg": segment_estimate(texts.get(lang, ""))}
        for lang in langs
    ]


def _question_view(q: Values, i: int | str, langs: list[str], problems: list[str]) -> Values:
    """One question block's template values."""
    choices = list(q["choices"]) + [{"value": "", "label": {}} for _ in range(BLANK_CHOICES)]
    return {
        **q,
        "i": i,
        "prompts": _texts(q["prompt"], langs),
        "retries": _texts(q["retry_prompt"], langs),
        "choice_rows": [
            {
                "j": j,
                "value": c["value"],
                "labels": [{"lang": lang, "text": c["label"].get(lang, "")} for lang in langs],
            }
            for j, c in enumerate(choices)
        ],
        "choice_count": len(choices),
        "blank_choice": {"value": "", "labels": [{"lang": lang, "text": ""} for lang in langs]},
        "is_select": q["type"] in SELECTS,
        "problems": problems,
    }


def _split_problems(problems: list[str], count: int) -> tuple[list[list[str]], list[str]]:
    """The problems per question (by the path's ``questions[i]``) and the others."""
    per_question: list[list[str]] = [[] for _ in range(count)]
    others = []
    for problem in problems:
        m = _QUESTION.match(problem)
        if m and int(m.group(1)) < count:
            per_question[int(m.group(1))].append(problem)
        else:
            others.append(problem)
    return per_question, others


def _problems_of(exc: CasereachError) -> list[str]:
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    problems = detail.get("problems")
    if isinstance(problems, list) and problems:
        return [str(p) for p in problems]
    return [exc.message.removeprefix("invalid survey: ")]


def _form_page(
    request: HttpRequest,
    project: Project,
    survey: Survey | None,
    v: Values,
    problems: list[str],
    preview: dict[str, Any] | None = None,
) -> HttpResponse:
    langs = languages_of(project, v["closing"], *(q["prompt"] for q in v["questions"]))
    per_question, others = _split_problems(problems, len(v["questions"]))
    questions = [_question_view(q, i, langs, per_question[i]) for i, q in enumerate(v["questions"])]
    questions.append(_question_view(blank_question(), len(questions), langs, []))
    return render(
        request,
        "web/survey_form.html",
        {
            "project": project,
            "survey": survey,
            "v": v,
            "langs": langs,
            "closing": _texts(v["closing"], langs),
            "questions": questions,
            "question_count": len(questions),
            "template_question": _question_view(blank_question(), "__q__", langs, []),
            "types": TYPES,
            "problems": problems,
            "other_problems": others,
            "preview": preview or _preview_form(request, project),
            "nav": "surveys",
        },
        status=400 if problems else 200,
    )


@project_page(get=Role.VIEWER)
def surveys(request: HttpRequest, project: Project) -> HttpResponse:
    rows = []
    for survey in surveys_of(project):
        spec = spec_of(survey)
        langs: list[str] = []
        for q in spec.questions:
            langs += [lang for lang in q.prompt if lang not in langs]
        rows.append(
            {
                "id": survey.pk,
                "name": survey.name,
                "questions": len(spec.questions),
                "languages": langs,
                "active": survey.active,
                "version": survey.version,
                "updated_on": survey.updated_on,
            }
        )
    return render(request, "web/surveys.html", {"project": project, "rows": rows, "nav": "surveys"})


def _survey(project: Project, survey_id: int) -> Survey:
    try:
        return get_survey(project, survey_id)
    except CasereachError:
        raise Http404("no such survey") from None


def _save(
    request: HttpRequest, project: Project, survey: Survey | None, langs: list[str]
) -> HttpResponse:
    v = form_from_post(request.POST, langs)
    if request.POST.get("action") == "preview":
        return _form_page(request, project, survey, v, [], _preview(request, project, v))
    try:
        body = {**body_from_form(v), "active": v["active"]}
        if survey is None:
            survey = do_create_survey(project, body)
        else:
            do_update_survey(survey, body)
    except CasereachError as exc:
        return _form_page(request, project, survey, v, _problems_of(exc))
    return HttpResponseRedirect(reverse("web:surveys", args=[project.name]) + f"?saved={survey.pk}")


@project_page(get=Role.MEMBER)
def survey_new(request: HttpRequest, project: Project) -> HttpResponse:
    if request.method == "POST":
        return _save(request, project, None, languages_of(project))
    v = form_from_spec({"questions": []})
    return _form_page(request, project, None, v, [])


@project_page(get=Role.MEMBER)
def survey_edit(request: HttpRequest, project: Project, survey_id: int) -> HttpResponse:
    survey = _survey(project, survey_id)
    if request.method == "POST":
        stored = form_from_spec(survey.definition)
        langs = languages_of(
            project, stored["closing"], *(q["prompt"] for q in stored["questions"])
        )
        return _save(request, project, survey, langs)
    v = form_from_spec({**survey.definition, "active": survey.active})
    return _form_page(request, project, survey, v, [])


def _preview_form(request: HttpRequest, project: Project) -> dict[str, Any]:
    langs = list(project.languages or ["en"])
    language = request.POST.get("preview_language", "")
    return {
        "languages": langs,
        "language": language if language in langs else langs[0],
        "replies": request.POST.get("preview_replies", ""),
        "case_name": request.POST.get("preview_case_name", ""),
        "transcript": None,
        "problems": [],
    }


def _preview(request: HttpRequest, project: Project, v: Values) -> dict[str, Any]:
    """The preview panel's values: the survey in the form played with the replies typed
    (one per line), or the problems that keep it from being played."""
    panel = _preview_form(request, project)
    try:
        body = body_from_form(v)
    except CasereachError as exc:
        panel["problems"] = _problems_of(exc)
        return panel
    spec, problems = survey_problems(body, project.languages)
    if spec is None:
        panel["problems"] = problems
        return panel
    replies = [line.strip() for line in panel["replies"].splitlines() if line.strip()]
    if len(replies) > MAX_REPLIES:
        panel["problems"] = [f"replies: at most {MAX_REPLIES} lines"]
        return panel
    ctx = RenderContext(
        case_name=panel["case_name"] or None, recipient_name=panel["case_name"] or None
    )
    transcript = play(
        spec,
        replies,
        language=panel["language"],
        ctx=ctx,
        default_country=effective_settings(project.settings).default_country,
    ).as_json()
    asked = {m["question"] for m in transcript["messages"] if m["question"]}
    transcript["not_asked"] = (
        [q.id for q in spec.questions if q.id not in asked]
        if transcript["status"] == "completed"
        else []
    )
    panel["transcript"] = transcript
    return panel


@project_page(get=Role.MEMBER)
def survey_preview(request: HttpRequest, project: Project) -> HttpResponse:
    """The preview panel for the builder's form as posted (an htmx partial); a GET shows the
    empty panel."""
    if request.method != "POST":
        panel = _preview_form(request, project)
    else:
        v = form_from_post(request.POST, languages_of(project))
        panel = _preview(request, project, v)
    return render(request, "web/survey_preview.html", {"project": project, "preview": panel})


@project_page(get=Role.MEMBER)
def survey_segments(request: HttpRequest, project: Project) -> JsonResponse:
    """Characters, encoding and SMS segments of the text posted as ``text`` (the builder's
    live counts), counted as the alert form counts them."""
    return JsonResponse(segment_estimate(request.POST.get("text", "")[:5000]))
