"""Roles (SPEC 2, issue 15 item 6): admin, member, viewer, enforced on every API operation
before anything is read or written, with a 403 naming the missing role."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from casereach.api.main import api as ninja_api
from casereach.projects.actions import do_set_role
from casereach.projects.auth import SystemRole
from casereach.projects.models import Project, Role
from casereach.testing.world import Api

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def _operations(
    *, documented_only: bool = False
) -> list[tuple[str, str, Role | SystemRole | None]]:
    """(method, path, declared role) of every authenticated operation (or only those in the
    OpenAPI document, which docs/api.md's table lists)."""
    found = []
    for bound in ninja_api._get_bound_routers():
        for path, view in bound.path_operations.items():
            for op in view.operations:
                if not op.auth_callbacks or (documented_only and not op.include_in_schema):
                    continue
                for method in op.methods:
                    found.append((method, path, getattr(op.view_func, "required_role", None)))
    return found


def _concrete(path: str, project: str) -> str:
    path = path.replace("{project}", project)
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_api_operation_declares_its_role() -> None:
    undeclared = [(m, p) for m, p, role in _operations() if role is None]
    assert [] == undeclared


def test_docs_table_lists_every_operation_with_its_role() -> None:
    rows = re.findall(r"^\| `([A-Z]+)` \| `([^`]+)` \| (\w[\w ]*\w) \|", DOCS.read_text(), re.M)
    documented = {(m, p): r for m, p, r in rows}
    declared = {
        (m, re.sub(r"{\w+:", "{", p)): role.value
        for m, p, role in _operations(documented_only=True)
        if role
    }
    assert declared == documented


def test_the_openapi_document_names_each_operations_role() -> None:
    paths = ninja_api.get_openapi_schema()["paths"]
    documented = {
        (method.upper(), path): op.get("x-required-role")
        for path, item in paths.items()
        for method, op in item.items()
        if op.get("security")
    }
    declared = {
        (m, re.sub(r"{\w+:", "{", p)): role.value
        for m, p, role in _operations(documented_only=True)
        if role
    }
    assert declared == documented


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER, Role.ADMIN])
def test_every_operation_above_the_callers_role_is_403_naming_the_role(
    project: Project, role: Role
) -> None:
    caller = Api(project, username=f"{role.value}@example.org", role=role)
    refused: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for method, path, needed in _operations():
        assert needed is not None
        url = _concrete(path, project.name)
        r = caller.call(method, url, {"x": 1} if method != "GET" else None)
        label = f"{method} {path}"
        if isinstance(needed, SystemRole):  # no project role grants it
            expected[label] = (403, {"required_role": needed.value})
            refused[label] = (r.status, (r.body or {}).get("detail"))
        elif not role.allows(needed):
            expected[label] = (403, {"required_role": needed.value, "role": role.value})
            refused[label] = (r.status, (r.body or {}).get("detail"))
        else:
            assert not (r.status == 403 and "role" in str(r.body)), label
    assert expected == refused
    assert expected, "some operation must be above the role"


def test_a_member_cannot_change_settings_or_create_a_gateway(api: Api, project: Project) -> None:
    member = Api(project, username="member@example.org", role=Role.MEMBER)
    before = api.get("/a/{project}/api/messaging/v1/settings").body
    r = member.call("PATCH", "/a/{project}/api/messaging/v1/settings", {"daily_limit": 1})
    assert 403 == r.status
    assert {
        "error": "this operation needs the admin role; this API key's owner is member in demo",
        "detail": {"required_role": "admin", "role": "member"},
    } == r.body
    created = member.post(
        "/a/{project}/api/messaging/v1/gateways",
        {"name": "m-gw", "type": "test", "config": {}},
    )
    assert 403 == created.status
    assert before == api.get("/a/{project}/api/messaging/v1/settings").body
    names = [g["name"] for g in api.get("/a/{project}/api/messaging/v1/gateways").body["objects"]]
    assert "m-gw" not in names


def test_a_viewer_reads_but_cannot_send_and_a_member_can(api: Api, project: Project) -> None:
    viewer = Api(project, username="viewer@example.org", role=Role.VIEWER)
    assert 200 == viewer.get("/a/{project}/api/messaging/v1/messages").status
    body = {"phone_number": "254700000001", "text": "hi"}
    r = viewer.post("/a/{project}/api/messaging/v1/send", body)
    assert (403, "member") == (r.status, r.body["detail"]["required_role"])
    member = Api(project, username="member@example.org", role=Role.MEMBER)
    assert 202 == member.post("/a/{project}/api/messaging/v1/send", body).status


def test_a_key_acts_with_its_owners_current_role(project: Project) -> None:
    owner = Api(project, username="pat@example.org", role=Role.ADMIN)
    path = "/a/{project}/api/messaging/v1/routes"
    routes = owner.get(path).body
    assert 200 == owner.put(path, routes).status
    do_set_role(project, "pat@example.org", Role.VIEWER)
    r = owner.put(path, routes)
    assert (403, "admin", "viewer") == (
        r.status,
        r.body["detail"]["required_role"],
        r.body["detail"]["role"],
    )
    assert 200 == owner.get(path).status
