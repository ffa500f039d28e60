"""The "Connect to CommCare" page: what to paste into HQ (the Data Forwarding and form
receiver URLs, a dedicated API key shown once), the write-back connection (saved through
``projects.settings_change`` like every setting; the key write-only) with a test call, the
last forwarded case, the write-back backlog and the failed writes with a retry button.

Everyone in the project sees the page; only an admin sees the forms and buttons, and no one
ever sees a stored secret.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from casereach.cases.writeback import do_retry_write
from casereach.cases.writeback_queries import backlog, list_writes
from casereach.core.errors import CasereachError
from casereach.core.requests import absolute_url
from casereach.projects.actions import do_create_api_key
from casereach.projects.models import Project, Role
from casereach.projects.settings_change import do_change_settings
from casereach.projects.settings_schema import CommCareSettings, effective_settings
from casereach.web.access import project_page
from casereach.web.commcare_probe import ProbeResult, probe
from casereach.web.queries import last_forwarded

FAILED_SHOWN = 50


def hq_username(project: Project) -> str:
    """The user the dedicated HQ key belongs to (a member of this project only)."""
    return f"commcare-hq-{project.name}"[:150]


def _endpoints(request: HttpRequest, project: Project) -> dict[str, str]:
    base = f"/a/{project.name}"
    return {
        "forwarding": absolute_url(request, f"{base}/api/commcare/case-forwarding/"),
        "receiver": absolute_url(request, f"{base}/receiver/"),
    }


def _save(project: Project, post: Any) -> tuple[str | None, str | None]:
    """(saved message, error) of the write-back settings form; a blank key keeps the stored
    one."""
    key = post.get("api_key", "")
    block: dict[str, Any] = {
        "url": post.get("url", "").strip(),
        "domain": post.get("domain", "").strip(),
        "username": post.get("username", "").strip(),
        "api_key": key.strip() or None,
    }
    if post.get("remove_key"):
        block["api_key"] = ""
    try:
        do_change_settings(project, {"commcare": block})
    except CasereachError as exc:
        return None, exc.message.removeprefix("invalid settings: ")
    project.refresh_from_db()
    return "Write-back settings saved.", None


@project_page(get=Role.VIEWER, post=Role.ADMIN)
def connect(request: HttpRequest, project: Project) -> HttpResponse:
    saved = error = new_key = None
    result: ProbeResult | None = None
    typed: dict[str, str] | None = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "save":
            saved, error = _save(project, request.POST)
            if error:
                typed = {k: request.POST.get(k, "") for k in ("url", "domain", "username")}
                status = 400
        elif action == "test":
            result = probe(effective_settings(project.settings).commcare)
        elif action == "create_key":
            try:
                new_key = do_create_api_key(project, hq_username(project), role=Role.MEMBER)
            except CasereachError as exc:
                error, status = exc.message, 400
        elif action == "retry":
            raw = request.POST.get("write_id", "")
            try:
                write = do_retry_write(project, int(raw) if raw.isdigit() else -1)
            except CasereachError as exc:
                error, status = exc.message, exc.status if exc.status < 500 else 400
            else:
                saved = f"Write-back {write.pk} of case {write.case_id} queued again."
        else:
            error, status = "unknown action", 400
    cc: CommCareSettings = effective_settings(project.settings).commcare
    failed = list_writes(project, status="failed", limit=FAILED_SHOWN)
    return render(
        request,
        "web/connect.html",
        {
            "project": project,
            "nav": "connect",
            "is_admin": Role(getattr(request, "project_role", Role.VIEWER)).allows(Role.ADMIN),
            "endpoints": _endpoints(request, project),
            "hq_username": hq_username(project),
            "new_key": new_key,
            "cc": typed or {"url": cc.url, "domain": cc.domain, "username": cc.username},
            "key_set": cc.api_key_set,
            "configured": cc.configured,
            "saved": saved,
            "error": error,
            "result": result,
            "last": last_forwarded(project),
            "backlog": backlog(project),
            "failed": failed.objects,
            "failed_total": failed.total,
        },
        status=status,
    )
