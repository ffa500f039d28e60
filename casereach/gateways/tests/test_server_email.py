"""The server's own SMTP settings become the global SERVER-EMAIL gateway."""

from __future__ import annotations

import pytest
from django.test import override_settings

from casereach.gateways.actions import do_sync_server_email_gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import email_gateway, instantiate
from casereach.projects.models import Project
from casereach.settings import _smtp_settings


def test_smtp_url_parsing() -> None:
    assert {
        "EMAIL_HOST": "mail.example.org",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "me@example.org",
        "EMAIL_HOST_PASSWORD": "p@ss word",
        "EMAIL_USE_SSL": False,
        "EMAIL_USE_TLS": True,
    } == _smtp_settings("smtp://me%40example.org:p%40ss%20word@mail.example.org?starttls=1")
    assert (465, True) == (
        _smtp_settings("smtps://mail.example.org")["EMAIL_PORT"],
        _smtp_settings("smtps://mail.example.org")["EMAIL_USE_SSL"],
    )
    with pytest.raises(ValueError, match="CASEREACH_SMTP_URL"):
        _smtp_settings("http://mail.example.org")


@pytest.mark.django_db
def test_projects_without_an_email_gateway_use_the_servers(project: Project) -> None:
    assert email_gateway(project) is None
    with override_settings(
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=2525,
        EMAIL_HOST_USER="u",
        EMAIL_HOST_PASSWORD="secret-pw",
        DEFAULT_FROM_EMAIL="Clinic <noreply@example.org>",
    ):
        gw = do_sync_server_email_gateway()
    assert gw is not None
    chosen = email_gateway(project)
    assert chosen is not None and "SERVER-EMAIL" == chosen.name
    assert "secret-pw" not in str(chosen.config)  # stored encrypted, not in the config
    assert "secret-pw" == instantiate(chosen).config.password  # type: ignore[attr-defined]
    with override_settings(EMAIL_HOST=""):
        do_sync_server_email_gateway()
    assert email_gateway(project) is None
    assert 1 == GatewayConfig.objects.filter(name="SERVER-EMAIL").count()
