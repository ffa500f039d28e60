"""The cases, contact and phone-number pages of the web UI."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from casereach.cases.queries import case_types, find_case, search_cases
from casereach.cases.writeback import do_retry_write
from casereach.cases.writeback_queries import case_of_write, unfinished_writes
from casereach.contacts.actions import do_transfer_ownership
from casereach.contacts.queries import (
    contact_names,
    contact_profile,
    contacts_by_id,
    normalise_number_filter,
    phone_entries,
    warnings_of,
)
from casereach.core.errors import CasereachError
from casereach.messaging.errors import describe
from casereach.messaging.queries import contact_messages
from casereach.projects.models import Project, Role
from casereach.projects.settings_schema import effective_settings
from casereach.web.access import project_page
from casereach.web.naming import link_holders
from casereach.web.pages import PAGE, message_row, offset_of, pager
from casereach.web.views_sessions import contact_start, contact_surveys, start_form


@project_page(get=Role.VIEWER)
def cases(request: HttpRequest, project: Project) -> HttpResponse:
    q = request.GET.get("q", "").strip()
    case_type = request.GET.get("case_type", "").strip()
    state = request.GET.get("state", "open")
    owner = request.GET.get("owner", "").strip()
    qs = search_cases(project, q=q, case_type=case_type, state=state, owner=owner)
    offset = offset_of(request)
    total = qs.count()
    page = list(qs.order_by("case_name", "case_id")[offset : offset + PAGE])
    contacts = contacts_by_id(project, (c.case_id for c in page))
    warned = warnings_of(project, list(contacts.values()))
    rows = [
        {"case": c, "contact": contacts.get(c.case_id), "warnings": warned.get(c.case_id, [])}
        for c in page
    ]
    types = case_types(project)
    return render(
        request,
        "web/cases.html",
        {
            "project": project,
            "rows": rows,
            "total": total,
            "types": types,
            "f": {"q": q, "case_type": case_type, "state": state, "owner": owner},
            **pager(request, offset, total),
            "nav": "cases",
        },
    )


TZ_SOURCES = {
    "contact": "set by the contact (time_zone property or the worker's settings)",
    "project": "the project's time zone",
    "default": "UTC, because neither the contact nor the project sets a zone",
}
LANG_SOURCES = {
    "contact": "set by the contact (language_code property or the worker's settings)",
    "project": "the project's first language",
    "default": "none: the project has no languages",
}
PHONE_STATUS = {
    "two_way": "two-way: can receive messages and reply by SMS",
    "one_way": "one-way: can receive messages, but replies are not matched to this contact",
    "pending": "waiting for verification before it becomes two-way",
    "conflict": "one-way because another contact holds this number for two-way SMS",
    "invalid": "not a usable number",
    "none": "no phone number",
}
GATEWAY_SOURCES = {
    "contact": "named by the contact (contact_backend_id)",
    "route": "chosen by the project's prefix route for this number",
    "project_default": "the project's default gateway",
    "global_route": "chosen by a server-wide prefix route",
    "global_default": "the server's default gateway",
    "none": "no gateway can carry this contact's SMS",
}


def _local(value: str | None, zone: str) -> str:
    if not value:
        return ""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y, %H:%M")


def _retry_write(project: Project, contact_id: str, raw: str) -> tuple[str | None, str, int]:
    """(done message, error, status) of the contact page's Retry of one of its case's
    write-backs; Http404 for a write of another case or project."""
    write_id = int(raw) if raw.isdigit() else -1
    if case_of_write(project, write_id) != contact_id:
        raise Http404("no such write-back for this case")
    try:
        write = do_retry_write(project, write_id)
    except CasereachError as exc:
        return None, exc.message, exc.status if exc.status < 500 else 400
    return f"Write-back {write.pk} queued again: it goes to CommCare HQ next.", "", 200


@project_page(get=Role.VIEWER, post=Role.MEMBER)
def contact(request: HttpRequest, project: Project, contact_id: str) -> HttpResponse:
    try:
        profile = contact_profile(project, contact_id)
    except CasereachError:
        raise Http404("no such contact") from None
    done, error, status = None, "", 200
    survey_done, survey_error = "", ""
    if request.method == "POST":
        if request.POST.get("action") == "start_survey":
            survey_done, survey_error, status = contact_start(request, project, contact_id)
        elif request.POST.get("action") != "retry_write":
            error, status = "unknown action", 400
        else:
            done, error, status = _retry_write(
                project, contact_id, request.POST.get("write_id", "")
            )
    zone = profile["time_zone"]["effective"] or project.time_zone
    for row in profile.get("upcoming", []):
        row["local"] = _local(row["due_local"], row["time_zone"])
        row["info"] = describe(row["error_code"]) if row.get("error_code") else None
    warnings = profile.get("warnings") or []
    for w, html in zip(warnings, link_holders(project, warnings), strict=True):
        w["html"] = html
    history = [message_row(m, zone) for m in contact_messages(project, contact_id, 100)]
    case = find_case(project, contact_id)
    return render(
        request,
        "web/contact.html",
        {
            "project": project,
            "p": profile,
            "case": case,
            "zone": zone,
            "phone_status": PHONE_STATUS.get(
                profile["phone"]["status"], profile["phone"]["status"]
            ),
            "tz_source": TZ_SOURCES.get(
                profile["time_zone"]["source"], profile["time_zone"]["source"]
            ),
            "lang_source": LANG_SOURCES.get(
                profile["language"]["source"], profile["language"]["source"]
            ),
            "gateway_source": GATEWAY_SOURCES.get(
                (profile.get("gateway") or {}).get("source") or "none", ""
            ),
            "history": history,
            "writes": unfinished_writes(project, contact_id) if case else None,
            "writeback_on": effective_settings(project.settings).commcare.configured,
            "can_retry": Role(getattr(request, "project_role", Role.VIEWER)).allows(Role.MEMBER),
            "done": done,
            "error": error,
            "sessions": contact_surveys(project, contact_id),
            "start": start_form(project),
            "survey_done": survey_done,
            "survey_error": survey_error,
            "nav": "cases",
        },
        status=status,
    )


# -- phone numbers -------------------------------------------------------------------------------


@project_page(get=Role.VIEWER)
def phone_numbers(request: HttpRequest, project: Project) -> HttpResponse:
    status = request.GET.get("status", "")
    number = request.GET.get("number", "").strip()
    offset = offset_of(request)
    error = None
    rows: list[dict[str, Any]] = []
    total = 0
    try:
        rows, total = phone_entries(
            project, number=number or None, status=status or None, limit=PAGE, offset=offset
        )
    except CasereachError as exc:
        error = exc.message
    names = contact_names(project, (r["contact_id"] for r in rows))
    for r in rows:
        r["name"] = names.get(r["contact_id"], "")
    return render(
        request,
        "web/phone_numbers.html",
        {
            "project": project,
            "rows": rows,
            "total": total,
            "error": error,
            "f": {"status": status, "number": number},
            "statuses": [
                ("", "all"),
                ("two_way", "two-way"),
                ("one_way", "one-way"),
                ("pending", "pending"),
                ("conflict", "conflicts"),
            ],
            **pager(request, offset, total),
            "nav": "numbers",
        },
    )


@project_page(get=Role.ADMIN)
def transfer(request: HttpRequest, project: Project, number: str) -> HttpResponse:
    """Confirm, then move two-way ownership of ``number`` to one of the project's contacts."""
    digits = normalise_number_filter(number)
    holders, _ = phone_entries(project, number=digits, limit=100)
    if not holders:
        raise Http404("no such number in this project")
    contact_id = request.POST.get("contact_id") or request.GET.get("contact_id", "")
    error = None
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            do_transfer_ownership(project, digits, contact_id)
        except CasereachError as exc:
            error = exc.message
        else:
            return HttpResponseRedirect(
                reverse("web:phone_numbers", args=[project.name]) + f"?number={digits}"
            )
    names = contact_names(project, (r["contact_id"] for r in holders))
    for r in holders:
        r["name"] = names.get(r["contact_id"], "")
    return render(
        request,
        "web/transfer.html",
        {
            "project": project,
            "number": digits,
            "holders": holders,
            "contact_id": contact_id,
            "error": error,
            "nav": "numbers",
        },
    )
