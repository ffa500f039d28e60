"""Who may see what in the UI: a logged-in web user sees only the projects they belong to.

Any page or object of another project is a 404 (never a 403), so the UI never tells a
user which other projects exist.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from casereach.projects.models import Membership, Project

P = ParamSpec("P")
ProjectView = Callable[Concatenate[HttpRequest, Project, P], HttpResponseBase]


def user_projects(request: HttpRequest) -> list[Project]:
    """The projects the logged-in user is a member of, by name."""
    return list(
        Project.objects.filter(memberships__user__pk=request.user.pk or 0)
        .order_by("name")
        .distinct()
    )


def web_project(request: HttpRequest, name: str) -> Project:
    """The named project if the user is a member; Http404 otherwise."""
    project = Project.objects.filter(name=name).first()
    if (
        project is None
        or not request.user.is_authenticated
        or not Membership.objects.filter(user_id=request.user.pk, project=project).exists()
    ):
        raise Http404("no such project")
    return project


def project_page(view: ProjectView[P]) -> Callable[..., HttpResponseBase]:
    """Log-in required, then resolve ``project`` from the URL (404 for a non-member)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, project: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
        proj = web_project(request, project)
        request.project = proj  # type: ignore[attr-defined]
        return view(request, proj, *args, **kwargs)

    return wrapper
