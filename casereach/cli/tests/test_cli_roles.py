"""`casereach user role`, `apikey list` and `apikey revoke`, run in-process against the test
database so their effect is checked through the HTTP API."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from casereach.cli.main import app
from casereach.projects.models import Project
from casereach.testing.world import Api

ROUTES = "/a/{project}/api/messaging/v1/routes"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def owner(project: Project) -> Api:
    return Api(project, username="ops@example.org")


def test_user_role_changes_what_the_owners_key_may_do(owner: Api) -> None:
    routes = owner.get(ROUTES).body
    code, out, _ = run(
        "user", "role", "--project", "demo", "--username", "ops@example.org", "--role", "viewer"
    )
    assert (0, "ops@example.org is now viewer in demo\n") == (code, out)
    r = owner.put(ROUTES, routes)
    assert (403, "admin") == (r.status, r.body["detail"]["required_role"])
    run("user", "role", "--project", "demo", "--username", "ops@example.org", "--role", "admin")
    assert 200 == owner.put(ROUTES, routes).status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--username", "ops@example.org", "--role", "boss"],
            "error: unknown role 'boss': use viewer, member, admin",
        ),
        (
            ["--username", "nobody", "--role", "viewer"],
            "error: 'nobody' is not a member of project demo",
        ),
    ],
)
def test_user_role_refuses_in_one_line(owner: Api, args: list[str], message: str) -> None:
    code, _, err = run("user", "role", "--project", "demo", *args)
    assert (1, [message]) == (code, err.strip().splitlines())


def test_apikey_list_and_revoke(owner: Api, project: Project) -> None:
    second = Api(project, username="sync@example.org")
    code, out, _ = run("apikey", "list", "--project", "demo")
    assert 0 == code
    lines = out.strip().splitlines()
    assert 3 == len(lines)
    assert owner.key not in out and second.key not in out
    assert owner.key[:8] in lines[1] and "ops@example.org" in lines[1] and "active" in lines[1]
    code, out, _ = run("apikey", "list", "--project", "demo", "--username", "sync@example.org")
    assert [second.key[:8]] == [line.split()[0] for line in out.strip().splitlines()[1:]]

    code, out, _ = run("apikey", "revoke", "--project", "demo", "--prefix", owner.key[:8])
    assert (0, f"revoked API key {owner.key[:8]} of ops@example.org on demo\n") == (code, out)
    r = owner.get(ROUTES)
    assert (401, "invalid API key") == (r.status, r.body["error"])
    assert 200 == second.get(ROUTES).status
    _, out, _ = run("apikey", "list", "--project", "demo", "--username", "ops@example.org")
    assert "revoked" in out

    code, _, err = run("apikey", "revoke", "--project", "demo", "--prefix", owner.key[:8])
    assert 1 == code
    assert [f"error: no active API key with prefix {owner.key[:8]!r} in project demo"] == (
        err.strip().splitlines()
    )
    code, _, _ = run("apikey", "revoke", "--project", "demo", "--username", "sync@example.org")
    assert 0 == code
    assert 401 == second.get(ROUTES).status


def test_apikey_create_with_a_role_for_a_new_owner(project: Project) -> None:
    code, out, _ = run(
        "apikey", "create", "--project", "demo", "--username", "reader", "--role", "viewer"
    )
    assert 0 == code
    reader = Api(project, username="reader", key=out.strip().splitlines()[-1])
    assert 200 == reader.get(ROUTES).status
    assert 403 == reader.put(ROUTES, reader.get(ROUTES).body).status
    code, _, err = run(
        "apikey", "create", "--project", "demo", "--username", "reader", "--role", "admin"
    )
    assert (
        1,
        "error: reader is already viewer in demo; change roles with 'casereach user role'",
    ) == (code, err.strip())
