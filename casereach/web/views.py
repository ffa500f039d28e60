"""The pages of the web UI: log in, pick a project and the dashboard. The other pages are in
``views_contacts`` (cases, contacts, phone numbers), ``views_messages`` (the message log and
the test phone), ``views_import``, ``views_alerts`` and ``views_admin`` (settings, gateways).

Every page reads through the same ``queries`` and writes through the same ``actions`` as the
API; the views only turn form fields into those calls and their results into HTML.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from casereach.contacts.queries import contact_names, data_quality, phone_entries
from casereach.messaging.costs import budget_status, cost_by_day_and_gateway
from casereach.messaging.errors import describe
from casereach.messaging.optouts import project_opt_outs
from casereach.messaging.queries import error_code_counts, outbound_per_day
from casereach.projects.models import Project, Role
from casereach.web.access import project_page, user_projects
from casereach.web.charts import stacked_bars
from casereach.web.naming import link_holders

# The API's own statuses (``status`` of a message and of the log's filter), nothing else.
DAY_SERIES = ("delivered", "sent", "sending", "queued", "failed")


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
    for day, status, n in outbound_per_day(project, since, zone):
        index = (day - first).days
        if 0 <= index < 30:
            # a WhatsApp read receipt comes after delivery: counted as delivered here
            counts["delivered" if status == "read" else status][index] += n
    chart = stacked_bars("Messages per day, last 30 days", days, counts, DAY_SERIES)
    chart.open_at_end = True  # on a phone, today is in view, not 30 days ago
    totals = {s: sum(v) for s, v in counts.items()}
    errors = []
    for code, n in error_code_counts(project, since):
        info = describe(code)
        errors.append(
            {
                "code": code,
                "count": n,
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
    costs = cost_by_day_and_gateway(project, since)
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
            "costs": costs,
            "budget": budget_status(project),
            "nav": "dashboard",
        },
    )
