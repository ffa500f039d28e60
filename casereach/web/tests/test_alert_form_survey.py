"""The alert form's content choice (issue 20): a message, or a survey picked from the
project's active surveys; it works as a plain form post (no JavaScript) and refuses what the
API refuses."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/alerts"
S = "/a/{project}/api/surveys/v1/surveys"


@pytest.fixture
def web(project: Project) -> Client:
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    client = Client()
    client.force_login(get_user_model().objects.get(username="pm"))
    return client


def form(**over: Any) -> dict[str, Any]:
    return {
        "name": "Weekly check",
        "kind": "broadcast",
        "channel": "sms",
        "rule_count": "0",
        "sched_type": "immediate",
        "case_groups": "mother",
        "late_limit_hours": "48",
        "content_type": "survey",
        **over,
    }


def test_the_form_offers_the_active_surveys_and_saves_survey_content(web: Client, api: Api) -> None:
    active = api.post(S, survey_body(name="Active one")).body["id"]
    api.post(S, survey_body(name="Switched off", active=False))

    page = web.get("/a/demo/alerts/new?kind=broadcast").content.decode()
    assert 'name="content_type" value="survey"' in page
    assert f'<option value="{active}" >Active one</option>' in page
    assert "Switched off" not in page

    response = web.post("/a/demo/alerts/new", form(survey_id=str(active)))
    assert 302 == response.status_code, response.content.decode()[:500]
    [saved] = api.get(M).body["objects"]
    content = api.get(f"{M}/{saved['id']}").body["content"]
    assert {"type": "survey", "survey_id": active, "sms": {}, "email": None} == content
    edit = web.get(f"/a/demo/alerts/{saved['id']}/edit").content.decode()
    assert f'<option value="{active}" selected>Active one</option>' in edit
    assert 'name="content_type" value="survey" checked' in edit


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"survey_id": ""}, "content.survey_id: choose a survey"),
        ({"channel": "email"}, "survey content is sent by SMS"),
        ({"survey_id": "999999"}, "content.survey_id: survey 999999 not found"),
    ],
)
def test_the_form_refuses_what_the_api_refuses_and_keeps_the_input(
    web: Client, api: Api, over: dict[str, str], expected: str
) -> None:
    survey_id = str(api.post(S, survey_body()).body["id"])
    response = web.post("/a/demo/alerts/new", form(**{"survey_id": survey_id, **over}))
    html = response.content.decode()
    assert 400 == response.status_code
    assert expected in html
    assert 'value="Weekly check"' in html
    assert 'name="content_type" value="survey" checked' in html
    assert [] == api.get(M).body["objects"]
