"""The system administrator's pages (issue 16 item 10): global gateways and global routes in the
UI, for superusers only, through the same writers as the admin API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import global_routes
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.tenants import web_login
from casereach.testing.world import Api

LIST = "/sysadmin/gateways"
HTTP = {
    "type": "http",
    "name": "G-KE",
    "config-url": "https://sms.example.org/send",
    "config-method": "POST",
    "config-params": '{"to": "{to}", "text": "{text}"}',
    "config-username": "ke",
    "config-password": "s3cret-pass-word",
    "is_active": "on",
}


@pytest.fixture
def root(project: Project) -> tuple[Client, str]:
    get_user_model().objects.create_superuser("root@example.org", "root@example.org", "pw-root-1")
    return web_login("root@example.org", "pw-root-1")


def post(browser: tuple[Client, str], path: str, data: dict[str, str]) -> object:
    client, token = browser
    return client.post(path, {**data, "csrfmiddlewaretoken": token})


def test_a_superuser_manages_global_gateways_and_routes(
    root: tuple[Client, str], project: Project
) -> None:
    client, _ = root
    page = client.get(LIST).content.decode()
    assert 'href="/sysadmin/gateways"' in page
    assert 200 == client.get(LIST).status_code
    assert 200 == client.get(LIST + "/new?type=http").status_code

    r = post(root, LIST + "/new", HTTP)
    assert 302 == r.status_code, r.content.decode()[:2000]  # type: ignore[attr-defined]
    gw = GatewayConfig.objects.get(project__isnull=True, name="G-KE")
    edit = client.get(f"{LIST}/{gw.pk}").content.decode()
    assert "s3cret-pass-word" not in edit and "stored — leave empty to keep" in edit

    r = post(root, LIST, {"form": "routes", "default_gateway": "G-KE", "prefixes": "254 G-KE"})
    assert 302 == r.status_code  # type: ignore[attr-defined]
    assert ("G-KE", {"254": "G-KE"}) == (global_routes().default_gateway, global_routes().prefixes)

    renamed = {**HTTP, "name": "G-KENYA", "config-password": "", "config-method": "GET"}
    assert 302 == post(root, f"{LIST}/{gw.pk}", renamed).status_code  # type: ignore[attr-defined]
    gw.refresh_from_db()
    from casereach.core.crypto import decrypt_json

    assert ("G-KENYA", "GET", "s3cret-pass-word") == (
        gw.name,
        gw.config["method"],
        decrypt_json(gw.secrets)["password"],
    )
    assert ("G-KENYA", {"254": "G-KENYA"}) == (
        global_routes().default_gateway,
        global_routes().prefixes,
    )
    page = client.get(LIST).content.decode()
    assert "gateway G-KENYA saved" in page and "default, prefix 254" in page

    assert 302 == post(root, LIST, {"form": "deactivate", "gateway": str(gw.pk)}).status_code  # type: ignore[attr-defined]
    gw.refresh_from_db()
    assert gw.is_active is False
    r = post(root, LIST, {"form": "delete", "gateway": str(gw.pk)})
    assert 400 == r.status_code  # type: ignore[attr-defined]
    assert "change them first" in r.content.decode()  # type: ignore[attr-defined]
    assert (
        302
        == post(root, LIST, {"form": "routes", "default_gateway": "", "prefixes": ""}).status_code
    )  # type: ignore[attr-defined]
    assert 302 == post(root, LIST, {"form": "delete", "gateway": str(gw.pk)}).status_code  # type: ignore[attr-defined]
    assert not GatewayConfig.objects.filter(pk=gw.pk).exists()


def test_bad_input_is_shown_not_a_500(root: tuple[Client, str], api: Api) -> None:
    own = api.post("/a/{project}/api/messaging/v1/gateways", {"name": "P", "type": "test"})
    r = post(root, LIST, {"form": "routes", "default_gateway": "P", "prefixes": ""})
    assert 400 == r.status_code  # type: ignore[attr-defined]
    assert "no global gateway named &#x27;P&#x27;" in r.content.decode()  # type: ignore[attr-defined]
    r = post(root, LIST, {"form": "routes", "prefixes": "25x NOPE"})
    assert 400 == r.status_code  # type: ignore[attr-defined]
    assert "25x NOPE" in r.content.decode()  # type: ignore[attr-defined]  # kept as typed
    assert 400 == post(root, LIST, {"form": "delete", "gateway": "x" * 30}).status_code  # type: ignore[attr-defined]
    assert 400 == post(root, LIST, {"form": "nope"}).status_code  # type: ignore[attr-defined]
    assert 404 == root[0].get(f"{LIST}/{own.body['id']}").status_code  # a project's gateway
    assert 404 == root[0].get(LIST + "/new?type=nope").status_code
    r = post(root, LIST + "/new", {"type": "test", "name": "bad name!"})
    assert 400 == r.status_code  # type: ignore[attr-defined]
    assert 0 == GatewayConfig.objects.filter(project__isnull=True).count()


def test_only_a_superuser_gets_in_and_forms_need_the_csrf_token(
    root: tuple[Client, str], project: Project
) -> None:
    do_create_web_user(project, "pm@example.org", "pw-pm-12345", role=Role.ADMIN)
    pm, token = web_login("pm@example.org", "pw-pm-12345")
    assert 'href="/sysadmin/gateways"' not in pm.get(f"/a/{project.name}/").content.decode()
    for path in (LIST, LIST + "/new?type=test"):
        assert 403 == pm.get(path).status_code
    r = pm.post(LIST + "/new", {"type": "test", "name": "PM", "csrfmiddlewaretoken": token})
    assert 403 == r.status_code
    assert 302 == Client().get(LIST).status_code  # to the login page
    client, _ = root
    assert 403 == client.post(LIST + "/new", {"type": "test", "name": "NO-TOKEN"}).status_code
    assert 0 == GatewayConfig.objects.filter(project__isnull=True).count()
