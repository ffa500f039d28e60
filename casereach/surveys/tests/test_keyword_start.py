"""A project keyword that starts an SMS survey (``"action": "survey"``): saved and checked
through the keywords API, started through the inbound webhook of the gateway the SMS came in
on, once per provider id, refused clearly for an inactive survey, and kept inside the
project."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from casereach.messaging.models import Message
from casereach.projects.models import Project, Role
from casereach.surveys.models import SurveySession
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway, default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
SESSIONS = "/a/{project}/api/surveys/v1/survey-sessions"
K = "/a/{project}/api/messaging/v1/keywords"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"
Q1_EN = "Hello Amina. Did you take your medicine today? 1 Yes 2 No"

EN_ONLY: dict[str, Any] = {
    "name": "Well?",
    "questions": [
        {
            "id": "ok",
            "type": "single_select",
            "prompt": {"en": "Are you well?"},
            "choices": [
                {"value": "yes", "label": {"en": "Yes"}},
                {"value": "no", "label": {"en": "No"}},
            ],
            "case_property": "feels_well",
        }
    ],
}


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def create_survey(api: Api, body: dict[str, Any] | None = None) -> int:
    r = api.post(S, body if body is not None else survey_body())
    assert 201 == r.status, r.body
    return int(r.body["id"])


def survey_keyword(api: Api, survey_id: int, word: str = "well", **extra: Any) -> dict[str, Any]:
    r = api.post(K, {"keyword": word, "action": "survey", "survey_id": survey_id, **extra})
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def sessions(api: Api) -> list[dict[str, Any]]:
    r = api.get(SESSIONS)
    assert 200 == r.status, r.body
    found: list[dict[str, Any]] = r.body["objects"]
    return found


def sent(number: str = NUMBER) -> list[tuple[str, str]]:
    """(gateway, text) of every SMS to ``number``, oldest first."""
    rows = Message.objects.filter(direction="out", phone_number=number)
    return list(rows.order_by("created_on", "id").values_list("gateway_name", "text"))


def last_inbound() -> Message:
    found = Message.objects.filter(direction="in").order_by("-created_on", "-id").first()
    assert found is not None
    return found


def test_a_survey_keyword_is_saved_and_shown_beside_reply_keywords(api: Api) -> None:
    survey_id = create_survey(api)
    saved = survey_keyword(api, survey_id, description="Start the check")
    r = api.post(K, {"keyword": "hi", "reply": {"en": "hello"}})
    assert 201 == r.status, r.body

    assert ("WELL", "survey", survey_id, {}, []) == (
        saved["keyword"],
        saved["action"],
        saved["survey_id"],
        saved["reply"],
        saved["fields"],
    )
    listed = {k["keyword"]: k for k in api.get(K).body["objects"]}
    assert [("HI", "reply", None), ("WELL", "survey", survey_id)] == [
        (word, k["action"], k["survey_id"]) for word, k in sorted(listed.items())
    ]
    assert saved == api.get(f"{K}/{saved['id']}").body
    # A partial update keeps the action; switching back to a reply drops the survey.
    r = api.call("PATCH", f"{K}/{saved['id']}", {"description": "Check"})
    assert (200, "survey", survey_id) == (r.status, r.body["action"], r.body["survey_id"])
    r = api.put(f"{K}/{saved['id']}", {"action": "reply", "reply": {"en": "Bye"}})
    assert (200, "reply", None) == (r.status, r.body["action"], r.body["survey_id"])


def test_bad_survey_keywords_are_refused_and_nothing_is_stored(api: Api, other_api: Api) -> None:
    survey_id = create_survey(api)
    inactive = create_survey(api, {**survey_body(name="Old"), "active": False})
    theirs = create_survey(other_api, EN_ONLY)
    base = {"keyword": "WELL", "action": "survey"}
    for body, fragment in [
        (base, "needs survey_id"),
        ({**base, "survey_id": str(survey_id)}, "an integer"),
        ({**base, "survey_id": True}, "an integer"),
        ({**base, "survey_id": 987654}, "survey 987654 not found in this project"),
        ({**base, "survey_id": 10**30}, f"survey {10**30} not found in this project"),
        ({**base, "survey_id": -1}, "survey -1 not found in this project"),
        ({**base, "survey_id": theirs}, f"survey {theirs} not found in this project"),
        ({**base, "survey_id": inactive}, f"survey {inactive} is inactive"),
        ({**base, "survey_id": survey_id, "reply": {"en": "hi"}}, "has no reply and no fields"),
        (
            {**base, "survey_id": survey_id, "fields": [{"property": "a", "type": "text"}]},
            "has no reply and no fields",
        ),
        ({**base, "action": "dance", "survey_id": survey_id}, "action must be one of"),
        ({"keyword": "WELL", "reply": {"en": "x"}, "survey_id": survey_id}, "only for"),
    ]:
        r = api.post(K, body)
        assert 400 == r.status, (body, r.body)
        assert fragment in r.body["error"], r.body
    assert [] == api.get(K).body["objects"]

    # Updating an existing keyword to another project's survey changes nothing.
    kept = survey_keyword(api, survey_id)
    r = api.put(f"{K}/{kept['id']}", {"survey_id": theirs})
    assert 400 == r.status
    assert kept == api.get(f"{K}/{kept['id']}").body
    viewer = Api(Project.objects.get(name="demo"), "viewer@example.org", role=Role.VIEWER)
    assert 403 == viewer.post(K, {**base, "keyword": "W2", "survey_id": survey_id}).status


def test_the_keyword_starts_the_survey_on_the_gateway_it_came_in_on(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    other_gw = create_gateway(api, "SECOND")  # not the contact's route: TEST is
    survey_id = create_survey(api)
    survey_keyword(api, survey_id)

    assert 200 == inbound(other_gw, "well please", id="k1").status_code

    assert "keyword_survey:WELL" == last_inbound().inbound_action
    [started] = sessions(api)
    assert (survey_id, mother, "SECOND", NUMBER, "active", "took") == (
        started["survey_id"],
        started["contact_id"],
        started["gateway"],
        started["phone_number"],
        started["status"],
        started["current_question"],
    )
    assert "keyword:WELL" == SurveySession.objects.get(pk=started["id"]).triggered_by
    # In CommCare's messaging-event API the session is a keyword's sms-survey event.
    [event] = api.get("/a/{project}/api/v0.5/messaging-event/?content_type=sms-survey").body[
        "objects"
    ]
    assert ("keyword", started["id"]) == (event["source"]["type"], event["survey_session_id"])
    assert [("SECOND", Q1_EN)] == sent()  # the first question is the keyword's reply
    # The session plays on that pair: the answer comes back through it.
    inbound(other_gw, "1", id="k2")
    assert ("survey_accepted", "How many days since the birth?") == (
        last_inbound().inbound_action,
        sent()[-1][1],
    )


def test_a_redelivered_keyword_starts_one_session(api: Api, gw: dict[str, Any]) -> None:
    case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_keyword(api, create_survey(api))

    inbound(gw, "WELL", id="dup-1")
    inbound(gw, "WELL", id="dup-1")

    assert 1 == len(sessions(api))
    assert [("TEST", Q1_EN)] == sent()
    assert 1 == Message.objects.filter(direction="in").count()


def test_an_inactive_survey_gets_a_clear_reply_and_nothing_starts(
    api: Api, gw: dict[str, Any]
) -> None:
    case(api, name="Amina", phone=NUMBER, verified="yes", language_code="sw")
    survey_id = create_survey(api)
    survey_keyword(api, survey_id, error_reply={"en": "Sorry:", "sw": "Samahani:"})
    assert 200 == api.put(f"{S}/{survey_id}", survey_body(active=False)).status

    inbound(gw, "well")

    assert [] == sessions(api)
    assert [("TEST", "Samahani: this survey is not available at the moment.")] == sent()
    msg = last_inbound()
    assert ("keyword_error:WELL", f"survey not started: survey {survey_id} is inactive") == (
        msg.inbound_action,
        msg.error_detail,
    )
    r = api.get("/a/{project}/api/messaging/v1/messages", direction="in")
    assert 200 == r.status, r.body
    assert [f"survey not started: survey {survey_id} is inactive"] == [
        m["detail"] for m in r.body["objects"]
    ]


def test_the_keyword_during_a_session_is_an_answer_not_a_start(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = create_survey(api)
    survey_keyword(api, survey_id)
    inbound(gw, "WELL")
    queued = api.post(
        f"{S}/{create_survey(api, survey_body(name='Second'))}/start", {"contact_id": mother}
    )
    assert (201, "queued") == (queued.status, queued.body["status"])

    inbound(gw, "WELL")  # the active session takes it: not a choice, the retry prompt

    assert "survey_invalid" == last_inbound().inbound_action
    assert ["active", "queued"] == [s["status"] for s in reversed(sessions(api))]
    assert "Please reply 1 or 2. 1 Yes 2 No" == sent()[-1][1]


def test_a_survey_a_keyword_starts_cannot_be_deleted(api: Api) -> None:
    survey_id = create_survey(api)
    kw = survey_keyword(api, survey_id)

    r = api.call("DELETE", f"{S}/{survey_id}")

    assert (409, "the keyword WELL starts this survey: change or delete it first") == (
        r.status,
        r.body["error"],
    )
    assert 200 == api.get(f"{S}/{survey_id}").status
    assert 204 == api.call("DELETE", f"{K}/{kw['id']}").status
    assert 204 == api.call("DELETE", f"{S}/{survey_id}").status


def test_an_unknown_sender_gets_the_usual_handling(api: Api, gw: dict[str, Any]) -> None:
    r = api.call(
        "PATCH",
        "/a/{project}/api/messaging/v1/settings",
        {"default_inbound_response": {"en": "Who is this?"}},
    )
    assert 200 == r.status, r.body
    case(api, name="One way", phone=NUMBER)  # holds no number for two-way
    survey_keyword(api, create_survey(api))

    inbound(gw, "WELL")
    inbound(gw, "WELL", sender="254799999999")

    assert [] == sessions(api)
    assert ["default_response", "default_response"] == [
        m.inbound_action for m in Message.objects.filter(direction="in")
    ]


def test_each_project_starts_its_own_survey_with_the_same_word(
    api: Api, other_api: Api, gw: dict[str, Any]
) -> None:
    other_gw = default_gateway(other_api, "THEIRS")
    case(api, name="Amina", phone=NUMBER, verified="yes")
    theirs = case(other_api, name="Baraka", phone="254712000111", verified="yes")
    mine = survey_keyword(api, create_survey(api))
    their_survey = create_survey(other_api, EN_ONLY)
    survey_keyword(other_api, their_survey)

    inbound(other_gw, "well", sender="254712000111")

    assert [] == sessions(api)
    [started] = sessions(other_api)
    assert (their_survey, theirs, "THEIRS") == (
        started["survey_id"],
        started["contact_id"],
        started["gateway"],
    )
    assert [("THEIRS", "Are you well? 1 Yes 2 No")] == sent("254712000111")
    # A's contact writing to B's gateway is not B's contact: B's keyword does not run.
    inbound(other_gw, "well")
    assert 1 == len(sessions(other_api))
    assert 404 == other_api.get(f"{K}/{mine['id']}").status


def test_the_test_phone_starts_a_survey_by_keyword(api: Api, gw: dict[str, Any]) -> None:
    case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_keyword(api, create_survey(api))

    r = api.post("/a/{project}/api/messaging/v1/test-phone", {"from": NUMBER, "text": "well"})

    assert 201 == r.status, r.body
    [started] = sessions(api)
    assert ("TEST", "active") == (started["gateway"], started["status"])
    assert [("TEST", Q1_EN)] == sent()


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_keyword_start_one_session(project: Project) -> None:
    api = Api(project)
    gw = default_gateway(api)
    case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_keyword(api, create_survey(api))
    statuses: list[int] = []

    def deliver() -> None:
        try:
            statuses.append(inbound(gw, "WELL", id="same-id").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [200] * 4 == statuses
    assert 1 == SurveySession.objects.count()
    assert [("TEST", Q1_EN)] == sent()


def race_save_and_delete(api: Api, word: str, survey_id: int) -> tuple[int, int]:
    """(the keyword save's status, the survey delete's status), sent at the same time."""
    results: dict[str, int] = {}
    body = {"keyword": word, "action": "survey", "survey_id": survey_id}

    def save() -> None:
        try:
            results["save"] = api.post(K, body).status
        finally:
            connection.close()

    def delete() -> None:
        try:
            results["delete"] = api.call("DELETE", f"{S}/{survey_id}").status
        finally:
            connection.close()

    threads = [threading.Thread(target=save), threading.Thread(target=delete)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results["save"], results["delete"]


@pytest.mark.django_db(transaction=True)
def test_saving_a_keyword_and_deleting_its_survey_at_once_never_both_succeed(
    project: Project,
) -> None:
    api = Api(project)
    outcomes = [
        race_save_and_delete(api, f"W{n}", create_survey(api, survey_body(name=f"S{n}")))
        for n in range(4)
    ]

    assert set(outcomes) <= {(201, 409), (400, 204)}, outcomes
    for kw in api.get(K).body["objects"]:  # every keyword names a survey that exists
        assert 200 == api.get(f"{S}/{kw['survey_id']}").status
