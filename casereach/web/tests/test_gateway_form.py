"""The project's gateway form: what it shows for a JSON field with no default is what it takes
back (an http gateway's ``headers`` showed ``null`` and posting the form unchanged was a 400)."""

from __future__ import annotations

import re

from casereach.gateways.models import GatewayConfig
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.tenants import web_login

FORM = {
    "type": "http",
    "name": "KE-HTTP",
    "config-url": "https://sms.example.org/send",
    "config-method": "POST",
    "config-params": '{"to": "{to}", "text": "{text}"}',
    "is_active": "on",
}


def test_an_http_gateway_is_created_from_the_form_as_shown(project: Project) -> None:
    do_create_web_user(project, "pm@example.org", "pw-pm-12345", role=Role.ADMIN)
    client, token = web_login("pm@example.org", "pw-pm-12345")
    page = client.get(f"/a/{project.name}/gateways/new?type=http").content.decode()
    headers = re.search(r'<textarea[^>]*name="config-headers"[^>]*>([^<]*)</textarea>', page)
    assert headers is not None, "the form shows a headers field"
    assert "" == headers.group(1).strip()
    for shown in ("", "null"):  # blank as shown now, or "null" as older pages showed it
        body = {**FORM, "name": f"KE-HTTP-{len(shown)}", "config-headers": shown}
        r = client.post(f"/a/{project.name}/gateways/new", {**body, "csrfmiddlewaretoken": token})
        assert 302 == r.status_code, r.content.decode()[:500]
    assert 2 == GatewayConfig.objects.filter(project=project, type="http").count()
