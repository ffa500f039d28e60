"""A browser session may not be used cross-site (issue 15 item 5): unsafe API requests signed
in by session need the CSRF token; API keys need none."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.world import Api

KEYWORDS = "/a/demo/api/messaging/v1/keywords"
BODY = json.dumps({"keyword": "EVIL", "reply": {"en": "pwned"}})


@pytest.fixture
def browser(project: Project) -> Client:
    """A logged-in browser that, like a real one, is held to Django's CSRF rules."""
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="pm"))
    return client


def _keywords(api: Api) -> list[str]:
    return [k["keyword"] for k in api.get("/a/{project}/api/messaging/v1/keywords").body["objects"]]


def test_a_cross_site_text_plain_post_with_the_session_cookie_is_refused(
    browser: Client, api: Api
) -> None:
    # What a no-cors fetch from another origin can send: a "simple" text/plain body, the
    # session cookie, no custom header.
    r = browser.post(KEYWORDS, BODY, content_type="text/plain")
    assert 403 == r.status_code
    body = r.json()
    assert body["error"].startswith("CSRF check failed")
    assert "X-CSRFToken" in body["error"]
    assert [] == _keywords(api)
    for method in ("put", "patch", "delete"):
        r = getattr(browser, method)(KEYWORDS + "/1", BODY, content_type="application/json")
        assert 403 == r.status_code, method


def test_the_session_with_its_csrf_token_may_write(browser: Client, api: Api) -> None:
    token = get_token(RequestFactory().get("/"))
    browser.cookies["csrftoken"] = token
    r = browser.post(KEYWORDS, BODY, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert 201 == r.status_code, r.content
    assert ["EVIL"] == _keywords(api)
    assert 200 == browser.get(KEYWORDS).status_code  # reads need no token


def test_an_api_key_needs_no_csrf_token(api: Api) -> None:
    client = Client(enforce_csrf_checks=True)
    r = client.post(KEYWORDS, BODY, content_type="text/plain", HTTP_AUTHORIZATION=api.auth)
    assert 201 == r.status_code, r.content
