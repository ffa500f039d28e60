"""Hardening at the HTTP edge: who may read /metrics, which Host headers are answered, the
Content-Security-Policy header, and phone numbers masked in every log line."""

from __future__ import annotations

import logging
import sys

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.core import hosts
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role

NUMBER = "254712345678"


# --- /metrics --------------------------------------------------------------------------------


def test_metrics_only_for_this_machine_by_default(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASEREACH_METRICS_TOKEN", raising=False)
    assert 200 == Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code
    assert 200 == Client(REMOTE_ADDR="::1").get("/metrics").status_code
    for client in (
        Client(REMOTE_ADDR="203.0.113.5"),
        Client(REMOTE_ADDR="10.0.0.2"),
        Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5"),  # via a proxy
        Client(REMOTE_ADDR="127.0.0.1", HTTP_FORWARDED="for=203.0.113.5"),
    ):
        response = client.get("/metrics")
        assert 403 == response.status_code
        assert "CASEREACH_METRICS_TOKEN" in response.json()["error"]
        assert b"casereach_" not in response.content


def test_metrics_token_is_required_when_set(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEREACH_METRICS_TOKEN", "scrape-token-1")
    far = "203.0.113.5"
    ok = Client(REMOTE_ADDR=far, HTTP_AUTHORIZATION="Bearer scrape-token-1").get("/metrics")
    assert 200 == ok.status_code
    assert b"casereach_" in ok.content
    for header in (
        "",
        "Bearer wrong",
        "Basic scrape-token-1",
        "Bearer scrape-token-1x",
        "Bearer ü",
    ):
        for remote in (far, "127.0.0.1"):  # with a token, loopback is no exception
            response = Client(REMOTE_ADDR=remote, HTTP_AUTHORIZATION=header).get("/metrics")
            assert 401 == response.status_code, (header, remote)
            assert 'Bearer realm="metrics"' == response["WWW-Authenticate"]


# --- allowed hosts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["127.0.0.1", "localhost", "[::1]", "testserver"]),
        (
            {"CASEREACH_PUBLIC_URL": "https://SMS.example.org:8443/base/"},
            ["127.0.0.1", "localhost", "[::1]", "testserver", "sms.example.org"],
        ),
        (
            {"CASEREACH_PUBLIC_URL": "https://[2001:db8::5]/"},
            ["127.0.0.1", "localhost", "[::1]", "testserver", "[2001:db8::5]"],
        ),
        (
            {
                "CASEREACH_ALLOWED_HOSTS": "a.example.org, b.example.org",
                "CASEREACH_PUBLIC_URL": "https://c.example.org",
            },
            ["a.example.org", "b.example.org"],
        ),
        ({"CASEREACH_ALLOWED_HOSTS": "*"}, ["*"]),
    ],
)
def test_allowed_hosts_are_derived(env: dict[str, str], expected: list[str]) -> None:
    assert expected == hosts.allowed_hosts(env)


def test_other_host_headers_are_refused(db: None, settings: object) -> None:
    assert 200 == Client().get("/healthz").status_code  # testserver
    assert 200 == Client(HTTP_HOST="localhost:8000").get("/healthz").status_code
    assert 400 == Client(HTTP_HOST="evil.example.org").get("/healthz").status_code


def test_serve_answers_to_its_bind_address(
    db: None, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASEREACH_ALLOWED_HOSTS", raising=False)
    assert 400 == Client(HTTP_HOST="192.0.2.10:8000").get("/healthz").status_code
    hosts.allow_bind_address("192.0.2.10")
    assert 200 == Client(HTTP_HOST="192.0.2.10:8000").get("/healthz").status_code
    monkeypatch.setenv("CASEREACH_ALLOWED_HOSTS", "only.example.org")
    hosts.allow_bind_address("192.0.2.11")  # the operator's list wins
    assert 400 == Client(HTTP_HOST="192.0.2.11:8000").get("/healthz").status_code


# --- Content-Security-Policy -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/api/docs", "/healthz", "/no-such-page"])
def test_every_response_carries_a_content_security_policy(db: None, path: str) -> None:
    policy = Client().get(path)["Content-Security-Policy"]
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert "'self'" == directives["script-src"]
    assert "'self'" == directives["style-src"]
    assert "'none'" == directives["frame-ancestors"]


# --- phone numbers in logs -------------------------------------------------------------------


def test_django_4xx_lines_mask_phone_numbers(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    web = Client()
    web.force_login(get_user_model().objects.get(username="pm"))
    with caplog.at_level(logging.WARNING):
        assert 404 == web.get(f"/a/demo/phone-numbers/{NUMBER}/transfer").status_code
        assert 404 == web.get(f"/a/demo/no-such-page/+{NUMBER}").status_code
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("django")]
    assert 2 == len(lines), lines
    assert all(NUMBER not in line for line in lines), lines
    assert all("2547*****678" in line for line in lines), lines


@pytest.mark.parametrize(
    "logger", ["django.request", "django.server", "waitress", "django.security.DisallowedHost"]
)
def test_framework_loggers_mask_phone_numbers(
    logger: str, caplog: pytest.LogCaptureFixture
) -> None:
    # django.server does not propagate to the root logger, where caplog listens by default.
    target = logging.getLogger(logger)
    own_handler = not target.propagate
    if own_handler:
        target.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=logger):
            target.warning("GET /a/x/%s/transfer %s", NUMBER, 404)
    finally:
        if own_handler:
            target.removeHandler(caplog.handler)
    assert ["GET /a/x/2547*****678/transfer 404"] == [r.getMessage() for r in caplog.records]


def test_every_handler_masks_phone_numbers() -> None:
    """Records of our own loggers (any name) are masked where they are written out."""
    console = next(h for h in logging.getLogger().handlers if h.name == "console")
    logger = logging.getLogger("casereach.messaging.dispatch")
    try:
        raise ValueError(f"no contact for +{NUMBER}")
    except ValueError:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "sending to %s", (NUMBER,), sys.exc_info()
        )
    assert console.filter(record)  # the handler's filters run before it writes
    text = console.format(record)
    assert NUMBER not in text
    assert "sending to 2547*****678" in text
    assert "no contact for +2547*****678" in text
