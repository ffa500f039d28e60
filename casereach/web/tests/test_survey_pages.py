"""The survey pages (issue 20) through Django's test client: the list, the builder (new,
edit, save, problems named by their path with the input kept), the preview, roles and
another project's survey."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.survey_form import survey_form_data
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

SURVEYS = "/a/{project}/api/surveys/v1/surveys"
LANGS = ["en", "sw"]


def _client(project: Project, role: Role) -> Client:
    do_create_web_user(project, role.value, "pw-" + role.value, role=role)
    client = Client()
    client.force_login(get_user_model().objects.get(username=role.value))
    return client


@pytest.fixture
def member(project: Project) -> Client:
    return _client(project, Role.MEMBER)


@pytest.fixture
def viewer(project: Project) -> Client:
    return _client(project, Role.VIEWER)


def _stored(api: Api) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = api.get(SURVEYS).body["objects"]
    return objects


def _definition(survey: dict[str, Any]) -> dict[str, Any]:
    return {k: survey[k] for k in ("name", "questions", "closing", "settings")}


def test_the_list_shows_each_survey_and_links_to_its_builder(api: Api, member: Client) -> None:
    created = api.post(SURVEYS, survey_body()).body
    page = member.get("/a/demo/surveys")
    html = page.content.decode()
    assert 200 == page.status_code
    assert 'href="/a/demo/surveys/new"' in html
    assert f'href="/a/demo/surveys/{created["id"]}/edit"' in html
    assert f'href="/a/demo/surveys/{created["id"]}/sessions"' in html
    row = re.search(r"<tr><td data-label=\"Name\">.*?</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r'data-label="(\w+)">(.*?)</td>', row.group(0), re.S)
    shown = {k: re.sub(r"<[^>]+>", "", v).strip() for k, v in cells}
    assert {
        "Name": "Postnatal follow-up",
        "Questions": "5",
        "Languages": "en, sw",
        "State": "active",
        "Version": "1",
        "Sessions": f"Sessions of survey {created['id']}",
    } == {k: v for k, v in shown.items() if k != "Updated"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", shown["Updated"])
    assert 'aria-current="page">Surveys</a>' in html


def test_a_new_survey_built_in_the_form_is_the_survey_the_api_takes(
    api: Api, member: Client
) -> None:
    page = member.get("/a/demo/surveys/new")
    assert 200 == page.status_code
    html = page.content.decode()
    for field in ("q-0-prompt-en", "q-0-prompt-sw", "closing-sw", "q-0-c-0-label-sw"):
        assert f'name="{field}"' in html
    response = member.post("/a/demo/surveys/new", survey_form_data(survey_body(), LANGS))
    assert 302 == response.status_code
    [saved] = _stored(api)
    assert response["Location"] == f"/a/demo/surveys?saved={saved['id']}"
    expected = api.post(SURVEYS, survey_body(name="Via the API")).body
    assert {**_definition(expected), "name": "Postnatal follow-up"} == _definition(saved)
    assert saved["active"] is True


def test_editing_keeps_the_definition_and_bumps_the_version(api: Api, member: Client) -> None:
    created = api.post(SURVEYS, survey_body()).body
    page = member.get(f"/a/demo/surveys/{created['id']}/edit")
    html = page.content.decode()
    assert 200 == page.status_code
    assert "Habari {case.name}. Umekunywa dawa leo?" in html
    assert 'value="side_effects"' in html
    assert "&quot;ref&quot;: &quot;answer.took&quot;" in html
    body = survey_body(name="Renamed", active=False)
    body["questions"][2]["prompt"]["sw"] = "Siku ngapi?"
    response = member.post(f"/a/demo/surveys/{created['id']}/edit", survey_form_data(body, LANGS))
    assert 302 == response.status_code
    [saved] = _stored(api)
    assert (2, "Renamed", False, "Siku ngapi?") == (
        saved["version"],
        saved["name"],
        saved["active"],
        saved["questions"][2]["prompt"]["sw"],
    )
    assert _definition(created)["questions"][0] == saved["questions"][0]


def test_a_blank_question_and_blank_choice_rows_are_dropped(api: Api, member: Client) -> None:
    data = survey_form_data(survey_body(), LANGS)
    data.update({"question_count": "6", "q-5-id": "", "q-5-type": "text", "q-5-prompt-en": ""})
    data.update({"q-0-choice_count": "4", "q-0-c-2-value": "", "q-0-c-3-label-en": " "})
    assert 302 == member.post("/a/demo/surveys/new", data).status_code
    [saved] = _stored(api)
    assert 5 == len(saved["questions"])
    assert ["yes", "no"] == [c["value"] for c in saved["questions"][0]["choices"]]


def test_problems_name_their_path_next_to_the_question_and_keep_the_input(
    api: Api, member: Client
) -> None:
    body = survey_body()
    body["questions"][1]["choices"][0]["label"]["sw"] = ""
    body["questions"][2]["constraints"]["min"] = "many"
    data = survey_form_data(body, LANGS)
    data["q-4-prompt-en"] = "Kept as typed: when is your visit?"
    response = member.post("/a/demo/surveys/new", data)
    assert 400 == response.status_code
    html = response.content.decode()
    problems = re.findall(r"<li>(questions\[\d\][^<]*)</li>", html)
    assert any(p.startswith("questions[1].choices[0].label") for p in problems), problems
    assert any(p.startswith("questions[2].constraints.min") for p in problems), problems
    # each is shown inside its own question's block, too
    blocks = html.split("data-question>")
    assert "questions[1].choices[0].label" in blocks[2]
    assert "questions[2].constraints.min" in blocks[3]
    assert "Kept as typed: when is your visit?" in html
    assert 'value="many"' in html
    assert [] == _stored(api)


def test_invalid_show_if_json_and_a_taken_name_are_refused_with_the_input_kept(
    api: Api, member: Client
) -> None:
    api.post(SURVEYS, survey_body())
    data = survey_form_data(survey_body(name="Second"), LANGS)
    data["q-1-show_if"] = "{not json"
    response = member.post("/a/demo/surveys/new", data)
    assert 400 == response.status_code
    assert "questions[1].show_if: not valid JSON" in response.content.decode()
    assert "{not json" in response.content.decode()
    taken = member.post("/a/demo/surveys/new", survey_form_data(survey_body(), LANGS))
    assert 400 == taken.status_code
    assert "already exists" in taken.content.decode()
    assert 1 == len(_stored(api))


def test_garbage_in_any_field_is_a_400_naming_the_path_and_stores_nothing(
    api: Api, member: Client
) -> None:
    data = survey_form_data(survey_body(), LANGS)
    data.update(
        {
            "q-0-max_retries": "lots",
            "q-1-type": "bogus",
            "q-3-show_if": "[1, 2]",
            "reask_max": "-1",
            "no_reply": "[" * 100_000,
            "question_count": "99999999999999999999",
        }
    )
    response = member.post("/a/demo/surveys/new", data)
    assert 400 == response.status_code
    assert "settings.no_reply: nested too deeply" in response.content.decode()
    del data["no_reply"]
    response = member.post("/a/demo/surveys/new", data)
    assert 400 == response.status_code
    html = response.content.decode()
    for path in (
        "questions[0].max_retries",
        "questions[1].type",
        "questions[3].show_if",
        "settings.reask_max",
    ):
        assert f"<li>{path}" in html, path
    huge = survey_form_data(survey_body(), LANGS) | {"q-2-min": "1e400"}
    response = member.post("/a/demo/surveys/new", huge)
    assert 400 == response.status_code
    assert "<li>questions[2].constraints.min: " in response.content.decode()
    assert [] == _stored(api)


def test_the_preview_plays_the_form_with_a_retry_a_skipped_question_and_the_closing(
    api: Api, member: Client
) -> None:
    data = survey_form_data(survey_body(), LANGS)
    data.update(
        {
            "preview_language": "sw",
            "preview_case_name": "Amina",
            "preview_replies": "1\n75\n12\n3.2\n15/03/2027\n",
        }
    )
    response = member.post("/a/demo/surveys/preview", data)
    assert 200 == response.status_code
    html = response.content.decode()
    assert "Habari Amina. Umekunywa dawa leo?" in html
    assert "completed" in html
    assert "Tafadhali tuma namba kutoka 0 hadi 60." in html  # the retry after 75
    assert "Not asked" in html and "why_not</p>" in html
    assert "Asante Amina. Ziara ijayo:" in html
    props = dict(re.findall(r"<code>(\w+)</code></td><td data-label=\"Value\">([^<]*)</td>", html))
    assert {
        "took_medicine": "yes",
        "days_since_birth": "12",
        "baby_weight": "3.2",
        "next_visit": "2027-03-15",
    } == props
    assert [] == _stored(api)  # nothing saved


def test_the_preview_without_javascript_rerenders_the_builder(member: Client) -> None:
    data = survey_form_data(survey_body(), LANGS)
    data.update({"action": "preview", "preview_language": "en", "preview_replies": "2\nx\nx"})
    response = member.post("/a/demo/surveys/new", data)
    html = response.content.decode()
    assert 200 == response.status_code
    assert 'id="survey-form"' in html
    assert "Why not?" in html and "skipped" in html
    assert 'name="q-4-id" value="visit"' in html


def test_the_preview_names_the_problems_that_keep_it_from_playing(member: Client) -> None:
    data = survey_form_data(survey_body(), LANGS)
    data["q-0-prompt-sw"] = ""
    response = member.post("/a/demo/surveys/preview", data)
    assert 200 == response.status_code
    assert "questions[0].prompt" in response.content.decode()


def test_segment_counts_follow_the_alert_rules(member: Client) -> None:
    page = member.get("/a/demo/surveys/new")
    assert 'data-segments-url="/a/demo/surveys/segments"' in page.content.decode()
    counts = [
        member.post("/a/demo/surveys/segments", {"text": text}).json()
        for text in ("x" * 161, "Habari {case.name}", "ù" * 70 + "ş", "{oops")
    ]
    assert [
        {"characters": 161, "encoding": "GSM", "segments": 2, "error": None},
        {"characters": 17, "encoding": "GSM", "segments": 1, "error": None},
        {"characters": 71, "encoding": "UCS2", "segments": 2, "error": None},
    ] == counts[:3]
    assert counts[3]["error"]


def test_a_viewer_sees_the_list_but_not_the_builder(api: Api, viewer: Client) -> None:
    created = api.post(SURVEYS, survey_body()).body
    page = viewer.get("/a/demo/surveys")
    assert 200 == page.status_code
    html = page.content.decode()
    assert "Postnatal follow-up" in html
    assert "/surveys/new" not in html and "/edit" not in html
    for path in ("/a/demo/surveys/new", f"/a/demo/surveys/{created['id']}/edit"):
        assert 403 == viewer.get(path).status_code
    data = survey_form_data(survey_body(name="By a viewer"), LANGS)
    assert 403 == viewer.post("/a/demo/surveys/new", data).status_code
    assert 403 == viewer.post(f"/a/demo/surveys/{created['id']}/edit", data).status_code
    assert ["Postnatal follow-up"] == [s["name"] for s in _stored(api)]


def test_another_projects_survey_is_404_and_unchanged(
    member: Client, other_api: Api, other_project: Project
) -> None:
    days = survey_body()["questions"][2]
    days = {**days, "prompt": {"en": "Days?"}, "retry_prompt": {"en": "0 to 60"}}
    theirs = other_api.post(SURVEYS, survey_body(questions=[days], closing={}))
    assert 201 == theirs.status, theirs.body
    sid = theirs.body["id"]
    data = survey_form_data(survey_body(name="taken"), LANGS)
    assert 404 == member.get(f"/a/demo/surveys/{sid}/edit").status_code
    assert 404 == member.post(f"/a/demo/surveys/{sid}/edit", data).status_code
    assert 404 == member.get(f"/a/demo/surveys/{2**63 + 5}/edit").status_code
    assert 404 == member.get("/a/other/surveys").status_code
    assert 404 == member.get(f"/a/other/surveys/{sid}/edit").status_code
    assert 1 == other_api.get(f"{SURVEYS}/{sid}").body["version"]


def test_the_form_needs_the_csrf_token(project: Project, api: Api) -> None:
    do_create_web_user(project, "m", "pw-member-1", role=Role.MEMBER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="m"))
    data = survey_form_data(survey_body(), LANGS)
    assert 403 == client.post("/a/demo/surveys/new", data).status_code
    assert [] == _stored(api)
