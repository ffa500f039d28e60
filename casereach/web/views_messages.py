"""The message log and the test phone of the web UI."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from casereach.cases.writeback_queries import backlog, list_writes
from casereach.contacts.queries import contact_names, contact_with_number
from casereach.core.errors import CasereachError
from casereach.gateways.queries import visible_gateways
from casereach.messaging.errors import ERRORS
from casereach.messaging.optouts import project_opt_outs
from casereach.messaging.queries import STATUSES, filter_messages
from casereach.messaging.serializers import message_csv_rows
from casereach.messaging.testphone import (
    conversation,
    do_test_phone_receive,
    test_gateway,
    usable_number,
)
from casereach.projects.models import Project, Role
from casereach.surveys.session_queries import latest_on_number
from casereach.web.access import project_page
from casereach.web.pages import PAGE, message_row, offset_of, pager
from casereach.web.queries import project_alerts
from casereach.web.views_sessions import session_view, start_form, start_survey, started_message

WRITEBACK_SHOWN = 10
LOG_FILTERS = (
    "since",
    "until",
    "status",
    "error_code",
    "contact_id",
    "phone_number",
    "gateway",
    "chain_id",
)


def _log_params(request: HttpRequest) -> dict[str, str]:
    params = {k: request.GET.get(k, "").strip() for k in LOG_FILTERS}
    alert = request.GET.get("alert", "").strip()
    if alert:
        params["alert"] = alert
    return {k: v for k, v in params.items() if v}


@project_page(get=Role.VIEWER)
def messages(request: HttpRequest, project: Project) -> HttpResponseBase:
    params = _log_params(request)
    error = None
    try:
        qs = filter_messages(project, params)
        if request.GET.get("format") == "csv":
            response = StreamingHttpResponse(
                message_csv_rows(qs.order_by("created_on", "id")), content_type="text/csv"
            )
            response["Content-Disposition"] = f'attachment; filename="{project.name}-messages.csv"'
            return response
        offset = offset_of(request)
        total = qs.count()
        # One message's fallback chain reads in its order; the log, newest first.
        order = ("chain_step", "id") if params.get("chain_id") else ("-created_on", "-id")
        page = list(qs.order_by(*order)[offset : offset + PAGE])
    except CasereachError as exc:
        error, page, total, offset = exc.message, [], 0, 0
    rows = [message_row(m, project.time_zone) for m in page]
    names = contact_names(project, {m["contact_id"] for m in rows if m["contact_id"]})
    for m in rows:
        m["contact_name"] = names.get(m["contact_id"] or "", "")
    gateways = sorted(visible_gateways(project).values_list("name", flat=True))
    failed = list_writes(project, status="failed", limit=WRITEBACK_SHOWN)
    zone = ZoneInfo(project.time_zone)
    for w in failed.objects:
        w["local"] = dt.datetime.fromisoformat(w["updated_on"]).astimezone(zone)
        w["local"] = w["local"].strftime("%d %b %Y %H:%M")
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    csv_query.pop("offset", None)
    return render(
        request,
        "web/messages.html",
        {
            "project": project,
            "rows": rows,
            "total": total,
            "error": error,
            "chain_id": params.get("chain_id", ""),
            "f": {k: request.GET.get(k, "") for k in (*LOG_FILTERS, "alert")},
            "statuses": STATUSES,
            "codes": [e.code for e in ERRORS],
            "gateways": gateways,
            "alerts": project_alerts(project),
            "csv_url": "?" + csv_query.urlencode(),
            "wb_failed": failed.objects,
            "wb_failed_total": failed.total,
            "wb_backlog": backlog(project),
            **pager(request, offset, total),
            "nav": "messages",
        },
    )


# -- test phone ----------------------------------------------------------------------------------


@project_page(get=Role.MEMBER)
def test_phone(request: HttpRequest, project: Project) -> HttpResponse:
    number = request.POST.get("from") or request.GET.get("number", "")
    error = None
    result = None
    started = ""
    if request.method == "POST" and request.POST.get("action") == "start_survey":
        number, started, error = _start_survey(request, project, number)
    elif request.method == "POST":
        text = request.POST.get("text", "")
        try:
            sender = usable_number(number, project, "from")
            _, result = do_test_phone_receive(project, sender, text)
            number = sender
        except CasereachError as exc:
            error = exc.message
    context = {
        "project": project,
        "number": number,
        "error": error,
        "result": result,
        "started": started,
        "start": start_form(project),
        "nav": "test_phone",
        **_conversation(project, number),
    }
    if request.headers.get("HX-Request") and request.method == "POST":
        return render(request, "web/test_phone_panel.html", context)
    return render(request, "web/test_phone.html", context)


def _start_survey(request: HttpRequest, project: Project, raw: str) -> tuple[str, str, str]:
    """Start the chosen survey for the test phone's contact through the test gateway, so
    that what is typed here answers it: (number, done message, problem)."""
    try:
        number = usable_number(raw, project, "from")
        gateway = test_gateway(project)
    except CasereachError as exc:
        return raw, "", exc.message
    holder = contact_with_number(project, number)
    if holder is None:
        return number, "", f"no contact of this project has the number {number}"
    session, problem = start_survey(request, project, holder, gateway.name)
    if session is None:
        return number, "", problem
    return number, started_message(session), ""


def _survey_on(project: Project, number: str) -> dict[str, Any] | None:
    gateway_ids = list(visible_gateways(project).filter(type="test").values_list("pk", flat=True))
    session = latest_on_number(project, number, gateway_ids)
    return session_view(project, session) if session is not None else None


def _conversation(project: Project, raw: str) -> dict[str, Any]:
    if not raw:
        return {"conversation": [], "opted_out": None, "contact_id": None}
    try:
        number = usable_number(raw, project, "number")
    except CasereachError:
        return {"conversation": [], "opted_out": None, "contact_id": None}
    msgs = conversation(project, number)
    rows = [message_row(m, project.time_zone) for m in msgs]
    opt = project_opt_outs(project).filter(phone_number=number, channel="sms").first()
    holder = contact_with_number(project, number)
    return {
        "conversation": rows,
        "survey": _survey_on(project, number),
        "opted_out": bool(opt and opt.opted_out),
        "contact_id": holder.contact_id if holder else None,
        "contact_name": holder.name if holder else None,
    }


@project_page(get=Role.VIEWER)
def test_phone_conversation(request: HttpRequest, project: Project) -> HttpResponse:
    number = request.GET.get("number", "")
    return render(
        request,
        "web/test_phone_conversation.html",
        {"project": project, "number": number, **_conversation(project, number)},
    )
