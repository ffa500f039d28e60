"""The system administrator's API (issue 16 item 10): global gateways and global routes under
``/api/admin/v1/``, for a superuser's session or key only, and CommCare's routing order walked
through it: contact override → project prefix → project default → global prefix → global
default."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from casereach.projects.models import Project, Role
from casereach.testing.tenants import web_login
from casereach.testing.world import Api, case_body

A = "/api/admin/v1/"
M = "/a/{project}/api/messaging/v1/"
KE, US = "254712345678", "15551230000"
HTTP_CONFIG = {
    "url": "https://sms.example.org/send",
    "params": {"to": "{to}", "text": "{text}"},
    "headers": {},
}


@pytest.fixture
def root(project: Project) -> Api:
    """A superuser's API key (made for the demo project; it is not a member of it)."""
    get_user_model().objects.create_superuser("root@example.org", "root@example.org", "pw-root-1")
    return Api(project, username="root@example.org")


def test_without_credentials_401_and_a_project_admin_403_on_every_operation(
    api: Api, root: Api
) -> None:
    created = root.post(A + "gateways", {"name": "G-1", "type": "test"})
    assert 201 == created.status, created.body
    gid = created.body["id"]
    ops: list[tuple[str, str, Any]] = [
        ("GET", A + "gateways", None),
        ("POST", A + "gateways", {"name": "G-2", "type": "test"}),
        ("GET", A + f"gateways/{gid}", None),
        ("PUT", A + f"gateways/{gid}", {"name": "TAKEN"}),
        ("DELETE", A + f"gateways/{gid}", None),
        ("POST", A + f"gateways/{gid}/deactivate", None),
        ("POST", A + f"gateways/{gid}/activate", None),
        ("GET", A + "routes", None),
        ("PUT", A + "routes", {"default_gateway": "G-1", "prefixes": []}),
        ("PUT", A + "routes/default", {"gateway": "G-1"}),
        ("DELETE", A + "routes/default", None),
        ("PUT", A + "routes/prefixes/254", {"gateway": "G-1"}),
        ("DELETE", A + "routes/prefixes/254", None),
    ]
    for method, path, body in ops:
        assert 401 == api.call(method, path, body, auth=None).status, (method, path)
        r = api.call(method, path, body)  # the project's admin: no project role grants it
        assert 403 == r.status, (method, path, r.body)
        assert {"required_role": "system administrator"} == r.body["detail"]
    names = [g["name"] for g in root.get(A + "gateways").body["objects"]]
    assert ["G-1"] == names
    assert {"default_gateway": None, "prefixes": []} == root.get(A + "routes").body


def test_a_superusers_session_works_and_needs_the_csrf_token(root: Api) -> None:
    browser, token = web_login("root@example.org", "pw-root-1")
    assert 200 == browser.get(A + "gateways").status_code
    body = '{"name": "G-S", "type": "test"}'
    r = browser.post(A + "gateways", body, content_type="application/json")
    assert 403 == r.status_code
    r = browser.post(A + "gateways", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert 201 == r.status_code, r.content


def test_a_non_superuser_session_is_403(project: Project) -> None:
    from casereach.projects.actions import do_create_web_user

    do_create_web_user(project, "pm@example.org", "pw-pm-12345", role=Role.ADMIN)
    browser, _ = web_login("pm@example.org", "pw-pm-12345")
    assert 403 == browser.get(A + "gateways").status_code


def test_list_create_rename_edit_deactivate_delete(root: Api) -> None:
    r = root.post(
        A + "gateways",
        {
            "name": "KE-HTTP",
            "type": "http",
            "config": {**HTTP_CONFIG, "username": "ke", "password": "s3cret-pass-word"},
        },
    )
    assert 201 == r.status, r.body
    gw = r.body
    assert ("global", None, ["password"]) == (gw["scope"], gw["project"], gw["secrets_set"])
    assert "s3cret-pass-word" not in str(gw)
    assert gw["inbound_url"].endswith("/inbound")
    assert 409 == root.post(A + "gateways", {"name": "ke-http", "type": "test"}).status
    gid = gw["id"]
    assert 200 == root.put(A + "routes/prefixes/254", {"gateway": "KE-HTTP"}).status
    assert 200 == root.put(A + "routes/default", {"gateway": "ke-http"}).status

    # rename: the routes follow; edit params: the secret is kept when not sent
    r = root.put(A + f"gateways/{gid}", {"name": "KE-MAIN", "config": {"method": "GET"}})
    assert 200 == r.status, r.body
    assert (["password"], "GET") == (r.body["secrets_set"], r.body["config"]["method"])
    assert ["default", "prefix 254"] == r.body["routes"]
    assert {
        "default_gateway": "KE-MAIN",
        "prefixes": [{"prefix": "254", "gateway": "KE-MAIN"}],
    } == root.get(A + "routes").body
    assert "s3cret-pass-word" not in str(root.get(A + f"gateways/{gid}").body)

    assert False is root.post(A + f"gateways/{gid}/deactivate").body["is_active"]
    assert True is root.post(A + f"gateways/{gid}/activate").body["is_active"]

    # deleting a gateway the routes name is refused until they no longer do
    r = root.delete(A + f"gateways/{gid}")
    assert (409, ["default", "prefix 254"]) == (r.status, r.body["detail"]["routes"])
    assert 200 == root.delete(A + "routes/default").status
    assert 200 == root.delete(A + "routes/prefixes/254").status
    assert 404 == root.delete(A + "routes/prefixes/254").status
    assert {"id": gid, "deleted": True} == root.delete(A + f"gateways/{gid}").body
    assert [] == root.get(A + "gateways").body["objects"]


def test_bad_input_is_4xx_json(root: Api, api: Api) -> None:
    own = api.post(M + "gateways", {"name": "P-OWN", "type": "test"}).body["id"]
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", A + "gateways", {"name": "X", "type": "nope"}, 400),
        ("POST", A + "gateways", {"name": "X", "type": "test", "shared_with": ["demo"]}, 400),
        ("POST", A + "gateways", [1, 2], 400),
        ("POST", A + "gateways", {"name": "bad name!", "type": "test"}, 400),
        ("GET", A + f"gateways/{own}", None, 404),  # a project's gateway is not global
        ("GET", A + "gateways/99999999999999999999", None, 404),
        ("GET", A + f"gateways/{2**63}", None, 404),
        ("GET", A + "gateways/x", None, 400),
        ("GET", A + "gateways/0", None, 404),
        ("PUT", A + f"gateways/{own}", {"name": "X"}, 404),
        ("PUT", A + "routes", {"default_gateway": "P-OWN", "prefixes": []}, 400),
        ("PUT", A + "routes", {"prefixes": [{"prefix": "25a", "gateway": "X"}]}, 400),
        ("PUT", A + "routes/default", {"gateway": "NOPE"}, 400),
        ("PUT", A + "routes/default", {"gateway": ""}, 400),
        ("PUT", A + "routes/default", {"name": "x"}, 400),
        ("PUT", A + "routes/prefixes/abc", {"gateway": "X"}, 400),
        ("PUT", A + "routes/prefixes/1234567890123456", {"gateway": "X"}, 400),
        ("PUT", A + "routes/prefixes/254", {"gateway": None}, 400),
        ("DELETE", A + "routes/prefixes/%D9%A1", None, 400),
    ]
    for method, path, body, status in cases:
        r = root.call(method, path, body)
        assert (status, True) == (r.status, isinstance(r.body, dict) and "error" in r.body), (
            method,
            path,
            body,
            r.body,
        )
    r = root.call("PUT", A + "routes", raw="{not json")
    assert 400 == r.status


def _route(api: Api, to: str, **case: str) -> str:
    body: dict[str, Any] = {"phone_number": to, "text": "x"}
    if case:
        r = api.post("/a/{project}/api/case/v2/", case_body(phone=to, verified="1", **case))
        assert r.status in (200, 201), r.body
        body = {"contact_id": r.body["case"]["case_id"], "text": "x"}
    r = api.post(M + "send", body)
    assert 202 == r.status, r.body
    return str(r.body["messages"][0]["gateway"] or "")


def test_commcares_routing_order_walked_through_the_api(root: Api, api: Api) -> None:
    for name in ("G-DEFAULT", "G-KE"):
        assert 201 == root.post(A + "gateways", {"name": name, "type": "test"}).status
    assert "" == _route(api, KE)
    assert 200 == root.put(A + "routes/default", {"gateway": "G-DEFAULT"}).status
    assert "G-DEFAULT" == _route(api, KE)
    assert 200 == root.put(A + "routes/prefixes/254", {"gateway": "G-KE"}).status
    assert "G-KE" == _route(api, KE)
    assert "G-DEFAULT" == _route(api, US)

    for name in ("P-DEFAULT", "P-KE", "P-CONTACT"):
        assert 201 == api.post(M + "gateways", {"name": name, "type": "test"}).status
    routes = {"default_gateway": "P-DEFAULT", "prefixes": []}
    assert 200 == api.put(M + "routes", routes).status
    assert "P-DEFAULT" == _route(api, KE)  # beats the global prefix
    routes["prefixes"] = [{"prefix": "2547", "gateway": "P-KE"}]
    assert 200 == api.put(M + "routes", routes).status
    assert "P-KE" == _route(api, KE)
    assert "P-CONTACT" == _route(api, KE, name="Override", contact_backend_id="P-CONTACT")

    # Walking back: each step removed, the next one applies.
    assert 200 == api.put(M + "routes", {"default_gateway": None, "prefixes": []}).status
    assert "G-KE" == _route(api, KE)
    gke = next(g for g in root.get(A + "gateways").body["objects"] if g["name"] == "G-KE")
    assert 200 == root.post(A + f"gateways/{gke['id']}/deactivate").status
    assert "G-DEFAULT" == _route(api, KE)  # an inactive one is skipped
    assert 200 == root.delete(A + "routes/default").status
    r = api.post(M + "send", {"phone_number": US, "text": "x"})
    assert ("NO_SUITABLE_GATEWAY", None) == (
        r.body["messages"][0]["error_code"],
        r.body["messages"][0]["gateway"],
    ), r.body
