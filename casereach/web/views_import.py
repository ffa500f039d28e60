"""Importing cases from a file in the web UI: the upload, its progress and its errors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse

from casereach.core.errors import CasereachError
from casereach.projects.models import Project, Role
from casereach.web.access import project_page
from casereach.web.importing import SHOWN_ERRORS, error_report_path, first_errors, start_import
from casereach.web.models import ImportProgress
from casereach.web.pages import user_id
from casereach.web.queries import is_interrupted, last_import


def _import_context(request: HttpRequest, project: Project, error: str | None) -> dict[str, Any]:
    uid = user_id(request)
    job = last_import(project, uid)
    interrupted = job is not None and is_interrupted(job)
    done = job is not None and job.state == ImportProgress.DONE
    return {
        "project": project,
        "job": job,
        "running": job is not None and job.state == ImportProgress.RUNNING and not interrupted,
        "interrupted": interrupted,
        "done": done,
        "errors": first_errors(project, uid) if done and job and job.errors_total else [],
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
                start_import(project, user_id(request), upload, case_type)
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
    path = error_report_path(project, user_id(request))
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
