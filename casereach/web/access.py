"""Who may see what in the UI: a logged-in web user sees only the projects they belong to,
and does there what their role allows.

Any page or object of another project is a 404 (never a 403), so the UI never tells a
user which other projects exist. A page or form above the member's role is a 403 page
naming the role it needs. Every page declares its roles with ``project_page``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render

from casereach.projects.models import Membership, Project, Role

P = ParamSpec("P")
ProjectView = Callable[Concatenate[HttpRequest, Project, P], HttpResponseBase]


def user_projects(request: HttpRequest) -> list[Project]:
    """The projects the logged-in user is a member of, by name."""
    return list(
        Project.objects.filter(memberships__user__pk=request.user.pk or 0)
        .order_by("name")
        .distinct()
    )


def web_project(request: HttpRequest, name: str) -> tuple[Project, Role]:
    """The named project and the user's role in it; Http404 for a non-member."""
    project = Project.objects.filter(name=name).first()
    membership = (
        Membership.objects.filter(user_id=request.user.pk, project=project).first()
        if project is not None and request.user.is_authenticated
        else None
    )
    if project is None or membership is None:
        raise Http404("no such project")
    return project, Role(membership.role)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def project_page(
    *, get: Role, post: Role | None = None
) -> Callable[[ProjectView[P]], Callable[..., HttpResponseBase]]:
    """Log-in required, then resolve ``project`` from the URL (404 for a non-member) and
    check the role the page needs: ``get`` to see it, ``post`` (default ``get``) to submit
    its forms. A weaker role gets the 403 page naming the role."""

    def decorate(view: ProjectView[P]) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapper(
            request: HttpRequest, project: str, *args: Any, **kwargs: Any
        ) -> HttpResponseBase:
            proj, role = web_project(request, project)
            needed = get if request.method in SAFE_METHODS else (post or get)
            request.project = proj  # type: ignore[attr-defined]
            request.project_role = role  # type: ignore[attr-defined]
            if not role.allows(needed):
                return render(
                    request,
                    "web/forbidden.html",
                    {"project": proj, "needed": needed.value, "role": role.value},
                    status=403,
                )
            return view(request, proj, *args, **kwargs)

        wrapper.page_roles = (get, post or get)  # type: ignore[attr-defined]
        return wrapper

    return decorate
