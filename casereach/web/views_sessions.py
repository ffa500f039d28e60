"""Survey sessions in the web UI: the sessions of one survey (filtered by status and dates,
paged, counted per status), one session's page (its transcript, timers, answers and the case
properties written; *Cancel* for members), and the pieces the contact page and the test
phone show: a contact's sessions with their place in a queue, the *Start a survey* form.

Everything is read through ``surveys.session_queries`` and written through
``surveys.sessions`` (``do_start_survey``, ``do_cancel_session``), as the API does."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from casereach.contacts.models import Contact
from casereach.contacts.queries import contact_names
from casereach.core.errors import CasereachError
from casereach.gateways.queries import visible_gateways
from casereach.projects.models import Project, Role
from casereach.surveys.models import ACTIVE, QUEUED, SESSION_STATUSES, SurveySession
from casereach.surveys.queries import get_survey, surveys_of
from casereach.surveys.session_queries import (
    answers_of,
    contact_sessions,
    filter_sessions,
    get_session,
    properties_written,
    queue_places,
    session_spec,
    status_counts,
    transcript,
)
from casereach.surveys.sessions import do_start_survey
from casereach.surveys.sessions.cancel import do_cancel_session
from casereach.web.access import project_page
from casereach.web.pages import PAGE, offset_of, pager

SESSION_FILTERS = ("status", "started_from", "started_to")
LIVE = (ACTIVE, QUEUED)


def when(value: dt.datetime | None, zone: str) -> str:
    return value.astimezone(ZoneInfo(zone)).strftime("%d %b %Y %H:%M") if value else ""


def can_act(request: HttpRequest) -> bool:
    return Role(getattr(request, "project_role", Role.VIEWER)).allows(Role.MEMBER)


def session_row(s: SurveySession, zone: str, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": s.pk,
        "survey_id": s.survey_id,
        "survey_name": s.survey_name,
        "contact_id": s.contact_id,
        "contact_name": names.get(s.contact_id, ""),
        "phone_number": s.phone_number,
        "gateway": s.gateway_name,
        "language": s.language,
        "status": s.status,
        "detail": s.detail,
        "current_question": s.current_question if s.status in LIVE else None,
        "created": when(s.created_on, zone),
        "started": when(s.started_on, zone),
        "ended": when(s.ended_on, zone),
    }


# -- one survey's sessions ------------------------------------------------------------------------


@project_page(get=Role.VIEWER)
def survey_sessions(request: HttpRequest, project: Project, survey_id: int) -> HttpResponse:
    try:
        survey = get_survey(project, survey_id)
    except CasereachError:
        raise Http404("no such survey") from None
    params = {k: request.GET.get(k, "").strip() for k in SESSION_FILTERS}
    error, status, rows, total, offset = None, 200, [], 0, 0
    try:
        qs = filter_sessions(project, {**params, "survey": str(survey.pk)})
        offset = offset_of(request)
        total = qs.count()
        page = list(qs.order_by("-created_on", "-id")[offset : offset + PAGE])
    except CasereachError as exc:
        error, status, page = exc.message, 400, []
    names = contact_names(project, {s.contact_id for s in page})
    places = queue_places(page)
    for s in page:
        row = session_row(s, project.time_zone, names)
        row["place"] = places.get(s.pk)
        rows.append(row)
    return render(
        request,
        "web/survey_sessions.html",
        {
            "project": project,
            "survey": survey,
            "rows": rows,
            "total": total,
            "error": error,
            "f": params,
            "statuses": SESSION_STATUSES,
            "counts": status_counts(project, survey.pk),
            **pager(request, offset, total),
            "nav": "surveys",
        },
        status=status,
    )


# -- one session ----------------------------------------------------------------------------------


def session_view(project: Project, session: SurveySession) -> dict[str, Any]:
    """What the session page and the test phone show of a session: its answers (with each
    question's case property and whether it was written) and its place in a queue."""
    zone = project.time_zone
    spec = session_spec(session)
    answers = answers_of(session)
    written = properties_written(session, answers)
    prop_of = {q.id: q.case_property for q in spec.questions}
    rows = []
    for qid, answer in answers.items():
        prop = prop_of.get(qid)
        rows.append(
            {
                "question_id": qid,
                "display": answer.display if answer else None,
                "value": answer.value if answer else None,
                "skipped": answer is None,
                "property": prop,
                "written": bool(prop and prop in written),
            }
        )
    names = contact_names(project, [session.contact_id])
    return {
        **session_row(session, zone, names),
        "answers": rows,
        "written": written,
        "place": queue_places([session]).get(session.pk),
        "live": session.status in LIVE,
        "questions": len(spec.questions),
        "timers": [
            ("Last reply", when(session.last_reply_on, zone)),
            ("Next re-ask", when(session.next_reask_at, zone)),
            ("Reply due by", when(session.reply_due_at, zone)),
            ("Expires", when(session.expires_at, zone)),
        ],
        "retries": session.retries,
        "reask_count": session.reask_count,
        "version": session.survey_version,
    }


def transcript_rows(project: Project, session: SurveySession) -> list[dict[str, Any]]:
    return [
        {
            "direction": line.message.direction,
            "text": line.message.text,
            "status": line.message.status,
            "error_code": line.message.error_code,
            "local": when(line.message.created_on, project.time_zone),
            "result": line.result,
            "question_id": line.answer.question_id if line.answer else None,
            "display": line.answer.display if line.answer else None,
        }
        for line in transcript(project, session)
    ]


@project_page(get=Role.VIEWER, post=Role.MEMBER)
def survey_session(request: HttpRequest, project: Project, session_id: int) -> HttpResponse:
    try:
        session = get_session(project, session_id)
    except CasereachError:
        raise Http404("no such survey session") from None
    error, status = None, 200
    if request.method == "POST":
        if request.POST.get("action") != "cancel":
            error, status = "unknown action", 400
        else:
            try:
                do_cancel_session(project, session.pk, by=request.user.get_username())
            except CasereachError as exc:
                error, status = exc.message, 409
            else:
                url = reverse("web:survey_session", args=[project.name, session.pk])
                return HttpResponseRedirect(url + "?cancelled=1")
        session.refresh_from_db()
    return render(
        request,
        "web/survey_session.html",
        {
            "project": project,
            "s": session_view(project, session),
            "lines": transcript_rows(project, session),
            "can_cancel": can_act(request) and session.status in LIVE,
            "error": error,
            "nav": "surveys",
        },
        status=status,
    )


# -- the contact page's card and the test phone's form ------------------------------------------


def start_form(project: Project) -> dict[str, Any]:
    """The choices of the *Start a survey* form: the active surveys, the SMS gateways."""
    gateways = visible_gateways(project).filter(is_active=True).exclude(type="email")
    return {
        "surveys": [(s.pk, s.name) for s in surveys_of(project) if s.active],
        "gateways": sorted(gateways.values_list("name", flat=True)),
    }


def start_survey(
    request: HttpRequest, project: Project, contact: Contact, gateway: str | None
) -> tuple[SurveySession | None, str]:
    """Start the survey posted as ``survey`` for ``contact``: (the session, "") or (None,
    the problem)."""
    raw = request.POST.get("survey", "").strip()
    if not raw.isdigit():
        return None, "survey: choose one of the project's surveys"
    try:
        survey = get_survey(project, int(raw))
        session = do_start_survey(
            project, survey, contact, gateway or None, triggered_by=request.user.get_username()
        )
    except CasereachError as exc:
        return None, exc.message
    return session, ""


def started_message(session: SurveySession) -> str:
    if session.status == QUEUED:
        return f"Session {session.pk} queued: another survey is under way on this number."
    if session.status == ACTIVE:
        return f"Session {session.pk} started: the first question was sent."
    return f"Session {session.pk} ended at once ({session.status}): {session.detail}"


def contact_surveys(project: Project, contact_id: str) -> list[dict[str, Any]]:
    """The contact page's *Surveys* card: its sessions, live ones first, with queue places."""
    sessions = contact_sessions(project, contact_id)
    places = queue_places(sessions)
    rows = []
    for s in sessions:
        row = session_row(s, project.time_zone, {})
        row["place"] = places.get(s.pk)
        rows.append(row)
    return rows


def contact_start(request: HttpRequest, project: Project, contact_id: str) -> tuple[str, str, int]:
    """The contact page's *Start a survey*: (done message, problem, HTTP status)."""
    contact = Contact.objects.filter(project=project, contact_id=contact_id).first()
    if contact is None:
        raise Http404("no such contact")
    session, problem = start_survey(request, project, contact, request.POST.get("gateway"))
    if session is None:
        return "", problem, 400
    return started_message(session), "", 200
