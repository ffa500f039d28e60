"""Roles in the UI (issue 15 item 6): every page and form checks the member's role and
answers a 403 page naming the role it needs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.world import Api
from casereach.web.urls import urlpatterns


def _login(project: Project, role: Role) -> Client:
    do_create_web_user(project, role.value, "pw-for-" + role.value, role=role)
    client = Client()
    client.force_login(get_user_model().objects.get(username=role.value))
    return client


def _pages() -> list[tuple[str, Any]]:
    pages = []
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        if route.startswith("a/<str:project>/"):
            pages.append((route, pattern.callback))
    return pages


def test_every_project_page_declares_its_roles() -> None:
    assert [] == [route for route, view in _pages() if not hasattr(view, "page_roles")]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_every_page_and_form_above_the_role_is_a_403_naming_it(
    project: Project, role: Role
) -> None:
    client = _login(project, role)
    expected: dict[str, str] = {}
    actual: dict[str, str] = {}
    for route, view in _pages():
        url = "/" + re.sub(r"<(\w+:)?(\w+)>", "1", route).replace("a/1/", "a/demo/", 1)
        for method, needed in zip(("get", "post"), view.page_roles, strict=True):
            response = getattr(client, method)(url)
            label = f"{method.upper()} {route}"
            if role.allows(needed):
                assert 403 != response.status_code, label
                continue
            expected[label] = f"403 needs {needed.value}"
            page = response.content.decode()
            shown = re.search(r"needs the <strong>(\w+)</strong> role", page)
            actual[label] = f"{response.status_code} needs {shown.group(1) if shown else '?'}"
    assert expected == actual
    assert expected


def test_a_viewer_cannot_change_settings_through_the_form(api: Api, project: Project) -> None:
    client = _login(project, Role.VIEWER)
    before = api.get("/a/{project}/api/messaging/v1/settings").body
    page = client.get("/a/demo/settings")
    assert 200 == page.status_code
    response = client.post("/a/demo/settings", {"daily_limit": "1"})
    assert 403 == response.status_code
    assert "needs the <strong>admin</strong> role in demo; you are <strong>viewer</strong>" in (
        response.content.decode()
    )
    assert before == api.get("/a/{project}/api/messaging/v1/settings").body


def test_a_member_cannot_add_a_gateway_through_the_form(api: Api, project: Project) -> None:
    client = _login(project, Role.MEMBER)
    response = client.post("/a/demo/gateways/new", {"type": "test", "name": "m-gw"})
    assert 403 == response.status_code
    names = [g["name"] for g in api.get("/a/{project}/api/messaging/v1/gateways").body["objects"]]
    assert "m-gw" not in names
