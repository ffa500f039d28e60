"""The pages of the web UI: log in, pick a project, dashboard, cases and contacts, phone
numbers, the message log, the test phone, settings and import.

Every page reads through the same ``queries`` and writes through the same ``actions`` as the
API; the views only turn form fields into those calls and their results into HTML.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from casereach.cases.models import Case
from casereach.cases.queries import case_types
from casereach.contacts.actions import do_transfer_ownership
from casereach.contacts.models import Contact
from casereach.contacts.queries import (
    contact_names,
    contact_profile,
    data_quality,
    normalise_number_filter,
    phone_entries,
    warnings_of,
)
from casereach.core.errors import CasereachError
from casereach.core.requests import bounded_int
from casereach.gateways.queries import visible_gateways
from casereach.messaging.api import message_csv_rows as messages_csv
from casereach.messaging.api import serialize_message
from casereach.messaging.errors import ERRORS, describe
from casereach.messaging.models import Message
from casereach.messaging.optouts import project_opt_outs
from casereach.messaging.queries import STATUSES, filter_messages
from casereach.messaging.testphone import (
    conversation,
    do_test_phone_receive,
    usable_number,
)
from casereach.projects.models import Project, Role
from casereach.web.access import project_page, user_projects
from casereach.web.charts import stacked_bars
from casereach.web.importing import SHOWN_ERRORS, error_report_path, first_errors, start_import
from casereach.web.models import ImportProgress
from casereach.web.naming import link_holders
from casereach.web.queries import is_interrupted, last_import

# The API's own statuses (``status`` of a message and of the log's filter), nothing else.
DAY_SERIES = ("delivered", "sent", "sending", "queued", "failed")
LOG_FILTERS = ("since", "until", "status", "error_code", "contact_id", "phone_number", "gateway")
PAGE = 50


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True


FAVICON = Path(__file__).resolve().parent / "static" / "web" / "favicon.svg"


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico`` for clients that ask for it without reading the page's ``<link>``
    (the same small SVG; browsers take an icon by its content type, not its name)."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The project picker (straight to the project when there is only one)."""
    projects = user_projects(request)
    if len(projects) == 1 and "pick" not in request.GET:
        return HttpResponseRedirect(reverse("web:dashboard", args=[projects[0].name]))
    return render(request, "web/home.html", {"projects": projects})


# -- dashboard -----------------------------------------------------------------------------------


@project_page(get=Role.VIEWER)
def dashboard(request: HttpRequest, project: Project) -> HttpResponse:
    zone = ZoneInfo(project.time_zone)
    today = timezone.now().astimezone(zone).date()
    first = today - dt.timedelta(days=29)
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range(30)]
    since = dt.datetime.combine(first, dt.time(), tzinfo=zone)
    counts: dict[str, list[int]] = {s: [0] * 30 for s in DAY_SERIES}
    rows = (
        Message.objects.filter(project=project, direction="out", created_on__gte=since)
        .annotate(day=TruncDate("created_on", tzinfo=zone))
        .values("day", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        index = (row["day"] - first).days
        if 0 <= index < 30:
            counts[row["status"]][index] += row["n"]
    chart = stacked_bars("Messages per day, last 30 days", days, counts, DAY_SERIES)
    chart.open_at_end = True  # on a phone, today is in view, not 30 days ago
    totals = {s: sum(v) for s, v in counts.items()}
    errors = []
    for code_row in (
        Message.objects.filter(project=project, created_on__gte=since)
        .exclude(error_code__isnull=True)
        .exclude(error_code="")
        .values("error_code")
        .annotate(n=Count("id"))
        .order_by("-n", "error_code")
    ):
        info = describe(code_row["error_code"])
        errors.append(
            {
                "code": code_row["error_code"],
                "count": code_row["n"],
                "description": info.description if info else "",
                "hint": info.hint if info else "",
            }
        )
    quality = data_quality(project)
    for q in quality[:20]:
        q["messages"] = link_holders(project, q["details"])
    conflicts, conflict_total = phone_entries(project, status="conflict", limit=20)
    names = contact_names(project, (c["contact_id"] for c in conflicts))
    for c in conflicts:
        c["name"] = names.get(c["contact_id"]) or c["contact_id"]
    opted = list(project_opt_outs(project).filter(opted_out=True)[:20])
    return render(
        request,
        "web/dashboard.html",
        {
            "project": project,
            "chart": chart,
            "totals": totals,
            "since": first.isoformat(),
            "errors": errors,
            "quality": quality[:20],
            "quality_total": len(quality),
            "conflicts": conflicts,
            "conflict_total": conflict_total,
            "opted_out": opted,
            "nav": "dashboard",
        },
    )


# -- cases and contacts --------------------------------------------------------------------------


@project_page(get=Role.VIEWER)
def cases(request: HttpRequest, project: Project) -> HttpResponse:
    qs = Case.objects.filter(project=project, deleted=False)
    q = request.GET.get("q", "").strip()
    case_type = request.GET.get("case_type", "").strip()
    state = request.GET.get("state", "open")
    owner = request.GET.get("owner", "").strip()
    if q:
        qs = qs.filter(
            Q(case_name__icontains=q) | Q(external_id__icontains=q) | Q(case_id__icontains=q)
        )
    if case_type:
        qs = qs.filter(case_type=case_type)
    if state == "open":
        qs = qs.filter(closed=False)
    elif state == "closed":
        qs = qs.filter(closed=True)
    if owner:
        qs = qs.filter(owner_id=owner)
    offset = _offset(request)
    total = qs.count()
    page = list(qs.order_by("case_name", "case_id")[offset : offset + PAGE])
    contacts = {
        c.contact_id: c
        for c in Contact.objects.filter(project=project, contact_id__in=[c.case_id for c in page])
    }
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
            **_pager(request, offset, total),
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


@project_page(get=Role.VIEWER)
def contact(request: HttpRequest, project: Project, contact_id: str) -> HttpResponse:
    try:
        profile = contact_profile(project, contact_id)
    except CasereachError:
        from django.http import Http404

        raise Http404("no such contact") from None
    zone = profile["time_zone"]["effective"] or project.time_zone
    for row in profile.get("upcoming", []):
        row["local"] = _local(row["due_local"], row["time_zone"])
        row["info"] = describe(row["error_code"]) if row.get("error_code") else None
    warnings = profile.get("warnings") or []
    for w, html in zip(warnings, link_holders(project, warnings), strict=True):
        w["html"] = html
    history = [
        _message_row(m, zone)
        for m in Message.objects.filter(project=project, contact_id=contact_id).order_by(
            "-created_on", "-id"
        )[:100]
    ]
    case = Case.objects.filter(project=project, case_id=contact_id).first()
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
            "nav": "cases",
        },
    )


def _message_row(m: Message, zone: str) -> dict[str, Any]:
    data = serialize_message(m)
    data["local"] = m.created_on.astimezone(ZoneInfo(zone)).strftime("%d %b %Y %H:%M")
    data["stopped"] = m.status == "failed" and m.attempts == 0
    return data


# -- phone numbers -------------------------------------------------------------------------------


@project_page(get=Role.VIEWER)
def phone_numbers(request: HttpRequest, project: Project) -> HttpResponse:
    status = request.GET.get("status", "")
    number = request.GET.get("number", "").strip()
    offset = _offset(request)
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
            **_pager(request, offset, total),
            "nav": "numbers",
        },
    )


@project_page(get=Role.ADMIN)
def transfer(request: HttpRequest, project: Project, number: str) -> HttpResponse:
    """Confirm, then move two-way ownership of ``number`` to one of the project's contacts."""
    digits = normalise_number_filter(number)
    holders, _ = phone_entries(project, number=digits, limit=100)
    if not holders:
        from django.http import Http404

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


# -- message log ---------------------------------------------------------------------------------


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
                messages_csv(qs.order_by("created_on", "id")), content_type="text/csv"
            )
            response["Content-Disposition"] = f'attachment; filename="{project.name}-messages.csv"'
            return response
        offset = _offset(request)
        total = qs.count()
        page = list(qs.order_by("-created_on", "-id")[offset : offset + PAGE])
    except CasereachError as exc:
        error, page, total, offset = exc.message, [], 0, 0
    from casereach.alerts.models import Alert

    rows = [_message_row(m, project.time_zone) for m in page]
    names = contact_names(project, {m["contact_id"] for m in rows if m["contact_id"]})
    for m in rows:
        m["contact_name"] = names.get(m["contact_id"] or "", "")
    gateways = sorted(visible_gateways(project).values_list("name", flat=True))
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
            "f": {k: request.GET.get(k, "") for k in (*LOG_FILTERS, "alert")},
            "statuses": STATUSES,
            "codes": [e.code for e in ERRORS],
            "gateways": gateways,
            "alerts": list(Alert.objects.filter(project=project).order_by("name")),
            "csv_url": "?" + csv_query.urlencode(),
            **_pager(request, offset, total),
            "nav": "messages",
        },
    )


# -- test phone ----------------------------------------------------------------------------------


@project_page(get=Role.MEMBER)
def test_phone(request: HttpRequest, project: Project) -> HttpResponse:
    number = request.POST.get("from") or request.GET.get("number", "")
    error = None
    result = None
    if request.method == "POST":
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
        "nav": "test_phone",
        **_conversation(project, number),
    }
    if request.headers.get("HX-Request") and request.method == "POST":
        return render(request, "web/test_phone_panel.html", context)
    return render(request, "web/test_phone.html", context)


def _conversation(project: Project, raw: str) -> dict[str, Any]:
    if not raw:
        return {"conversation": [], "opted_out": None, "contact_id": None}
    try:
        number = usable_number(raw, project, "number")
    except CasereachError:
        return {"conversation": [], "opted_out": None, "contact_id": None}
    msgs = conversation(project, number)
    rows = [_message_row(m, project.time_zone) for m in msgs]
    opt = project_opt_outs(project).filter(phone_number=number).first()
    holder = Contact.objects.filter(project=project, phone_number=number).first()
    return {
        "conversation": rows,
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


# -- import --------------------------------------------------------------------------------------


def _import_context(request: HttpRequest, project: Project, error: str | None) -> dict[str, Any]:
    user_id = _user_id(request)
    job = last_import(project, user_id)
    interrupted = job is not None and is_interrupted(job)
    done = job is not None and job.state == ImportProgress.DONE
    return {
        "project": project,
        "job": job,
        "running": job is not None and job.state == ImportProgress.RUNNING and not interrupted,
        "interrupted": interrupted,
        "done": done,
        "errors": first_errors(project, user_id) if done and job and job.errors_total else [],
        "shown_errors": SHOWN_ERRORS,
        "error": error,
        "nav": "import",
        "max_mb": int(settings.IMPORT_MAX_BYTES) // (1024 * 1024),
    }


@project_page(get=Role.MEMBER)
def import_cases_page(request: HttpRequest, project: Project) -> HttpResponse:
    """Upload a file; the import runs in the background and the page follows its progress
    (from any web process), then shows the result and the first row errors."""
    error = None
    limit = int(settings.IMPORT_MAX_BYTES)
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # Decided on the declared length, before Django stores a byte of the upload.
        upload = None if length > limit else request.FILES.get("file")
        case_type = (request.POST.get("case_type", "").strip() or None) if upload else None
        if length > limit or (upload is not None and (upload.size or 0) > limit):
            error = f"the file is too large: at most {limit // (1024 * 1024)} MB can be imported"
        elif upload is None:
            error = "choose a CSV or Excel (.xlsx) file"
        else:
            try:
                start_import(project, _user_id(request), upload, case_type)
            except CasereachError as exc:
                error = exc.message
        if error is None and not request.headers.get("HX-Request"):
            return HttpResponseRedirect(reverse("web:import", args=[project.name]))
    context = _import_context(request, project, error)
    if request.headers.get("HX-Request") and request.method == "POST":
        return render(request, "web/import_result.html", context)
    return render(request, "web/import.html", context)


@project_page(get=Role.MEMBER)
def import_progress(request: HttpRequest, project: Project) -> HttpResponse:
    """The user's last import: progress while it runs, then its result (an htmx partial that
    polls itself every second while the import runs)."""
    return render(request, "web/import_result.html", _import_context(request, project, None))


@project_page(get=Role.MEMBER)
def import_errors_csv(request: HttpRequest, project: Project) -> HttpResponseBase:
    """Every row error of the user's last import in this project, streamed from the file
    the import wrote (however many there were)."""
    path = error_report_path(project, _user_id(request))
    filename = f"{project.name}-import-errors.csv"
    if not path.is_file():
        response = HttpResponse("row,column,reason\r\n", content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=filename,
        content_type="text/csv; charset=utf-8",
    )


# -- helpers -------------------------------------------------------------------------------------


def _user_id(request: HttpRequest) -> int:
    """The signed-in user's id (every project page requires a signed-in user)."""
    pk = request.user.pk
    assert isinstance(pk, int)
    return pk


def _offset(request: HttpRequest) -> int:
    return bounded_int(request.GET.get("offset"), 0) or 0


def _pager(request: HttpRequest, offset: int, total: int) -> dict[str, str | None]:
    def link(to: int) -> str:
        query = request.GET.copy()
        query["offset"] = str(to)
        return "?" + query.urlencode()

    return {
        "prev_url": link(max(0, offset - PAGE)) if offset > 0 else None,
        "next_url": link(offset + PAGE) if offset + PAGE < total else None,
        "first_row": str(offset + 1 if total else 0),
        "last_row": str(min(total, offset + PAGE)),
    }
