"""Surveys through the API: create, read, replace, delete, preview; roles and projects."""

from __future__ import annotations

from typing import Any

from casereach.projects.models import Project, Role
from casereach.surveys.models import Survey
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"


def create(api: Api, **over: Any) -> dict[str, Any]:
    r = api.post(S, survey_body(**over))
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def test_create_read_list_replace_delete(api: Api) -> None:
    made = create(api)
    assert (1, True, "Postnatal follow-up") == (made["version"], made["active"], made["name"])
    assert 240 == made["settings"]["reask_after_minutes"]
    assert 3 == made["questions"][0]["max_retries"]  # defaults filled in
    assert [] == made["missing_translations"]
    assert {"en": 1, "sw": 1} == made["segments"]["took"]
    one = api.get(f"{S}/{made['id']}")
    assert (200, made) == (one.status, one.body)
    assert [made["id"]] == [s["id"] for s in api.get(S).body["objects"]]

    r = api.put(f"{S}/{made['id']}", survey_body(name="Renamed", active=False))
    assert 200 == r.status, r.body
    assert ("Renamed", 2, False) == (r.body["name"], r.body["version"], r.body["active"])
    r = api.put(f"{S}/{made['id']}", survey_body(name="Renamed"))
    assert (3, False) == (r.body["version"], r.body["active"])  # active stays unless given

    assert 204 == api.delete(f"{S}/{made['id']}").status
    assert 404 == api.get(f"{S}/{made['id']}").status
    assert 0 == Survey.objects.count()


def test_bad_definition_is_400_naming_the_path_and_stores_nothing(api: Api) -> None:
    body = survey_body()
    body["questions"][0]["choices"][1]["label"]["sw"] = ""
    body["questions"][2]["constraints"] = {"min": "many"}
    r = api.post(S, body)
    assert 400 == r.status
    assert (
        "invalid survey: questions[0].choices[1].label[sw]: is blank; "
        "questions[2].constraints.min: 'many' is not a number"
    ) == r.body["error"]
    assert 2 == len(r.body["detail"]["problems"])
    assert 0 == Survey.objects.count()

    made = create(api)
    body = survey_body()
    body["questions"][0]["prompt"] = {"en": "only English"}
    r = api.put(f"{S}/{made['id']}", body)
    assert 400 == r.status
    assert "questions[0].prompt[sw]: missing" in r.body["error"]
    assert 1 == Survey.objects.get().version


def test_other_shapes_of_bad_input(api: Api) -> None:
    assert 400 == api.post(S, [survey_body()]).status
    assert 400 == api.post(S, survey_body(active="yes")).status
    assert 400 == api.post(S, raw="{not json").status
    assert 404 == api.get(f"{S}/99999999999999999999999").status
    assert 0 == Survey.objects.count()


def test_names_are_unique_per_project(api: Api, other_api: Api) -> None:
    create(api)
    r = api.post(S, survey_body())
    assert 409 == r.status
    assert "already exists" in r.body["error"]
    second = create(api, name="Second")
    assert 409 == api.put(f"{S}/{second['id']}", survey_body()).status
    assert 201 == other_api.post(S, _english_only()).status


def _english_only() -> dict[str, Any]:
    """The example's name, in a project whose only language is English."""
    return survey_body(
        questions=[{"id": "age", "type": "integer", "prompt": {"en": "Age?"}}], closing={}
    )


def test_viewers_read_and_preview_members_write(project: Project) -> None:
    member = Api(project, "member@example.org", role=Role.MEMBER)
    viewer = Api(project, "viewer@example.org", role=Role.VIEWER)
    assert 403 == viewer.post(S, survey_body()).status
    made = create(member)
    path = f"{S}/{made['id']}"
    assert 200 == viewer.get(path).status
    assert 200 == viewer.get(S).status
    assert 200 == viewer.post(path + "/preview", {"replies": ["1"]}).status
    assert 403 == viewer.put(path, survey_body(name="x")).status
    assert 403 == viewer.delete(path).status
    assert 200 == member.put(path, survey_body(name="x")).status
    assert 204 == member.delete(path).status


def test_another_projects_survey_is_404(api: Api, other_api: Api) -> None:
    mine = create(api)
    path = f"{S}/{mine['id']}"
    assert 404 == other_api.get(path).status
    assert 404 == other_api.put(path, _english_only()).status
    assert 404 == other_api.post(path + "/preview", {"replies": []}).status
    assert 404 == other_api.delete(path).status
    assert 403 == other_api.get(path.replace("{project}", api.project.name)).status
    assert 1 == Survey.objects.filter(version=1).count()


def test_preview_plays_the_survey_and_stores_nothing(api: Api) -> None:
    made = create(api)
    r = api.post(
        f"{S}/{made['id']}/preview",
        {
            "replies": ["2", "1 2", "40", "31/1/2027"],
            "language": "en",
            "case": {"name": "Amina", "properties": {"edd": "2026-01-01"}},
        },
    )
    assert 200 == r.status, r.body
    assert "completed" == r.body["status"]
    assert (
        "Hello Amina. Did you take your medicine today? 1 Yes 2 No" == r.body["messages"][0]["text"]
    )
    assert "Thank you Amina. Next visit: 2027-01-31." == r.body["messages"][-1]["text"]
    assert {"value": "forgot side_effects", "display": "Forgot, Side effects"} == r.body["answers"][
        "why_not"
    ]
    assert {
        "took_medicine": "no",
        "missed_reason": "forgot side_effects",
        "days_since_birth": "40",
        "next_visit": "2027-01-31",
    } == r.body["properties"]
    assert 1 == Survey.objects.get().version


def test_preview_bad_input(api: Api) -> None:
    path = f"{S}/{create(api)['id']}/preview"
    for body, message in [
        ({}, "replies: must be a list of at most 200 strings"),
        ({"replies": [1]}, "replies: must be a list of at most 200 strings"),
        ({"replies": [], "language": "fr"}, "language: must be one of the project's (en, sw)"),
        (
            {"replies": [], "case": {"properties": {"a": 1}}},
            "case.properties: every value must be a string",
        ),
        ({"replies": [], "colour": 1}, "unknown key(s) colour"),
    ]:
        r = api.post(path, body)
        assert (400, message) == (r.status, r.body["error"])
