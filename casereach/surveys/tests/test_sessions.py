"""Survey sessions played through the inbound webhook of the test gateway and the API: the
five-question survey in two languages, HELP and STOP, the queue of a pair, shared phones,
duplicates, and the projects' boundaries."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

import pytest

from casereach.gateways.actions_global import do_create_global_gateway
from casereach.messaging.models import Message, MessagingEvent
from casereach.projects.models import Project, Role
from casereach.surveys.models import SurveyAnswer
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import ONE_QUESTION, survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
SESSIONS = "/a/{project}/api/surveys/v1/survey-sessions"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def create_survey(api: Api, body: dict[str, Any] | None = None) -> int:
    r = api.post(S, body if body is not None else survey_body())
    assert 201 == r.status, r.body
    return int(r.body["id"])


def start(api: Api, survey_id: int, contact_id: str, **extra: Any) -> dict[str, Any]:
    r = api.post(f"{S}/{survey_id}/start", {"contact_id": contact_id, **extra})
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def session(api: Api, session_id: int) -> dict[str, Any]:
    r = api.get(f"{SESSIONS}/{session_id}")
    assert 200 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def sent(number: str = NUMBER) -> list[str]:
    return list(
        Message.objects.filter(direction="out", phone_number=number)
        .order_by("created_on", "id")
        .values_list("text", flat=True)
    )


def properties(api: Api, case_id: str) -> dict[str, str]:
    r = api.get(V2 + case_id + "/")
    assert 200 == r.status, r.body
    props: dict[str, str] = r.body["properties"]
    return props


def last_action() -> str:
    found = Message.objects.filter(direction="in").order_by("-created_on", "-id").first()
    assert found is not None
    return found.inbound_action


def test_five_questions_in_swahili_with_a_retry_a_skip_and_show_if(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="sw")
    survey_id = create_survey(api)

    started = start(api, survey_id, mother)
    assert ("active", "took", "sw", "TEST") == (
        started["status"],
        started["current_question"],
        started["language"],
        started["gateway"],
    )
    for text in ["3", "hapana", "9", "xyz", "12", "3,5", "1/3/2027"]:
        assert 200 == inbound(gw, text).status_code

    assert [
        "Habari Amina. Umekunywa dawa leo? 1 Ndiyo 2 Hapana",
        "Tafadhali jibu 1 au 2. 1 Ndiyo 2 Hapana",
        "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha",
        "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha",
        "Ni siku ngapi tangu kujifungua?",
        "Uzito wa mtoto kwa kilo?",
        "Amina, ziara yako ijayo ni lini? (siku/mwezi/mwaka)",
        "Asante Amina. Ziara ijayo: 2027-03-01.",
    ] == sent()
    done = session(api, started["id"])
    assert ("completed", None) == (done["status"], done["current_question"])
    assert [
        ("took", "no", False),
        ("why_not", None, True),
        ("days", "12", False),
        ("weight", "3.5", False),
        ("visit", "2027-03-01", False),
    ] == [(a["question_id"], a["value"], a["skipped"]) for a in done["answers"]]
    props = properties(api, mother)
    assert {
        "took_medicine": "no",
        "days_since_birth": "12",
        "baby_weight": "3.5",
        "next_visit": "2027-03-01",
    } == {
        k: props.get(k) for k in ("took_medicine", "days_since_birth", "baby_weight", "next_visit")
    }
    assert "missed_reason" not in props
    # Every message of the session is in a messaging event of the session: its own (source
    # "survey") and the parts inside it (re-asks, answers: "survey_part").
    events = MessagingEvent.objects.filter(source_id=str(started["id"]))
    assert [("survey", 1), ("survey_part", 7)] == sorted(
        Counter(events.values_list("source", flat=True)).items()
    )


def test_english_answers_by_label_and_show_if_hides_questions(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Zawadi", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    for text in ["yes", "40", "2027-01-05"]:
        inbound(gw, text)

    assert [
        "Hello Zawadi. Did you take your medicine today? 1 Yes 2 No",
        "How many days since the birth?",
        "Zawadi, when is your next clinic visit? (day/month/year)",
        "Thank you Zawadi. Next visit: 2027-01-05.",
    ] == sent()
    assert "survey_completed" == last_action()
    assert "completed" == session(api, started["id"])["status"]
    props = properties(api, mother)
    assert ("yes", "40", "2027-01-05") == (
        props["took_medicine"],
        props["days_since_birth"],
        props["next_visit"],
    )
    assert "baby_weight" not in props  # hidden: 40 days is not below 29


def test_a_question_failing_its_retries_fails_the_session_and_writes_nothing(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    for text in ["7", "8", "9", "10"]:  # max_retries 3: the fourth invalid reply fails it
        inbound(gw, text)

    assert "failed" == session(api, started["id"])["status"]
    assert "survey_failed" == last_action()
    assert "took_medicine" not in properties(api, mother)


def test_per_answer_writes_each_answer_as_it_comes(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    body = survey_body(settings={"write_mode": "per_answer"})
    start(api, create_survey(api, body), mother)
    inbound(gw, "1")
    assert "yes" == properties(api, mother)["took_medicine"]
    assert "days_since_birth" not in properties(api, mother)


def test_help_resends_the_current_question(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    start(api, create_survey(api), mother)
    inbound(gw, "1")
    inbound(gw, "HELP")

    assert "survey_help" == last_action()
    assert ["How many days since the birth?"] * 2 == sent()[1:]


def test_stop_opts_out_ends_the_session_and_cancels_the_queue(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    first = start(api, create_survey(api), mother)
    second = start(api, create_survey(api, ONE_QUESTION), mother)
    assert "queued" == second["status"]

    inbound(gw, "STOP")

    assert "opt_out" == last_action()
    assert ("opted_out", "cancelled") == (
        session(api, first["id"])["status"],
        session(api, second["id"])["status"],
    )
    # Opted out: a new survey is refused by the send's own check.
    third = start(api, create_survey(api, {**ONE_QUESTION, "name": "Again"}), mother)
    assert ("opted_out", "the first question was not sent: PHONE_NUMBER_OPTED_OUT") == (
        third["status"],
        third["detail"],
    )


def test_a_second_survey_waits_for_the_first_then_starts(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    first = start(api, create_survey(api), mother)
    second = start(api, create_survey(api, ONE_QUESTION), mother)
    assert ("queued", None) == (second["status"], second["started_on"])
    assert 1 == len(sent())  # only the first survey's question went out

    for text in ["1", "40", "1/1/2027"]:
        inbound(gw, text)

    assert "completed" == session(api, first["id"])["status"]
    assert "active" == session(api, second["id"])["status"]
    assert "Are you well? 1 Yes 2 No" == sent()[-1]
    inbound(gw, "2")
    assert "completed" == session(api, second["id"])["status"]
    assert "no" == properties(api, mother)["feels_well"]


def test_a_shared_phone_answers_for_the_contact_the_survey_was_started_for(
    api: Api, gw: dict[str, Any]
) -> None:
    holder = case(api, name="Mother", phone=NUMBER, verified="yes")
    child = case(api, name="Child", phone=NUMBER)
    started = start(api, create_survey(api, ONE_QUESTION), child)
    assert (child, NUMBER) == (started["contact_id"], started["phone_number"])

    inbound(gw, "1")

    assert "completed" == session(api, started["id"])["status"]
    assert "yes" == properties(api, child)["feels_well"]
    assert "feels_well" not in properties(api, holder)
    answer = Message.objects.get(direction="in")
    assert child == answer.contact_id


def test_a_duplicate_provider_id_is_applied_once(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    inbound(gw, "1", id="4711")
    inbound(gw, "1", id="4711")

    assert 1 == SurveyAnswer.objects.count()
    assert "days" == session(api, started["id"])["current_question"]
    assert 2 == len(sent())


def test_another_projects_sessions_surveys_and_contacts_are_not_found(
    api: Api, other_api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    survey_id = create_survey(api)
    started = start(api, survey_id, mother)
    other_survey = create_survey(
        other_api,
        {
            **ONE_QUESTION,
            "closing": {},
            "questions": [
                {
                    **ONE_QUESTION["questions"][0],
                    "prompt": {"en": "Well?"},
                    "choices": [
                        {"value": "yes", "label": {"en": "Yes"}},
                        {"value": "no", "label": {"en": "No"}},
                    ],
                }
            ],
        },
    )

    assert 404 == other_api.get(f"{SESSIONS}/{started['id']}").status
    assert [] == other_api.get(SESSIONS).body["objects"]
    assert 404 == other_api.post(f"{S}/{survey_id}/start", {"contact_id": mother}).status
    assert 404 == api.post(f"{S}/{other_survey}/start", {"contact_id": mother}).status
    assert 404 == other_api.post(f"{S}/{other_survey}/start", {"contact_id": mother}).status
    assert 404 == other_api.get(f"{S}/{survey_id}/answers.csv").status


def test_start_refuses_bad_input_and_roles_apply(
    api: Api, project: Project, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    nophone = case(api, name="No phone")
    survey_id = create_survey(api)
    member = Api(project, "member@example.org", role=Role.MEMBER)
    viewer = Api(project, "viewer@example.org", role=Role.VIEWER)

    assert 403 == viewer.post(f"{S}/{survey_id}/start", {"contact_id": mother}).status
    for body, status in [
        ({}, 400),
        ({"contact_id": 5}, 400),
        ({"contact_id": mother, "extra": 1}, 400),
        ({"contact_id": "nobody"}, 404),
        ({"contact_id": nophone}, 400),
        ({"contact_id": mother, "gateway": "NOPE"}, 400),
    ]:
        r = member.post(f"{S}/{survey_id}/start", body)
        assert status == r.status, (body, r.body)
    r = api.put(f"{S}/{survey_id}", survey_body(active=False))
    assert 200 == r.status
    r = member.post(f"{S}/{survey_id}/start", {"contact_id": mother})
    assert (400, f"survey {survey_id} is inactive") == (r.status, r.body["error"])
    assert [] == viewer.get(SESSIONS).body["objects"]


def test_list_filters_and_the_answers_csv(api: Api, project: Project, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    other = case(api, name="Baraka", phone="254712000111", verified="yes")
    survey_id = create_survey(api)
    first = start(api, survey_id, mother)
    second = start(api, survey_id, other)
    for text in ["1", "40", "1/1/2027"]:
        inbound(gw, text)
    viewer = Api(project, "viewer@example.org", role=Role.VIEWER)

    def ids(**query: str) -> list[int]:
        r = viewer.get(SESSIONS, **query)
        assert 200 == r.status, r.body
        return [s["id"] for s in r.body["objects"]]

    assert [second["id"], first["id"]] == ids()
    assert [first["id"]] == ids(status="completed")
    assert [second["id"]] == ids(contact_id=other)
    assert [second["id"], first["id"]] == ids(survey=str(survey_id), started_from="2000-01-01")
    assert [] == ids(started_to="2000-01-01")
    assert [second["id"]] == ids(limit="1")
    assert 400 == viewer.get(SESSIONS, status="bogus").status
    assert 400 == viewer.get(SESSIONS, survey="x").status
    assert 404 == viewer.get(f"{SESSIONS}/0").status

    resp = viewer.client.get(
        f"{S}/{survey_id}/answers.csv".replace("{project}", project.name),
        HTTP_AUTHORIZATION=viewer.auth,
    )
    assert 200 == resp.status_code
    text = b"".join(resp.streaming_content).decode()  # type: ignore[arg-type]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [first["id"], second["id"]] == [int(row["session_id"]) for row in rows]
    assert ("yes", "", "40", "", "2027-01-01") == tuple(
        rows[0][q] for q in ("took", "why_not", "days", "weight", "visit")
    )
    assert ("active", "") == (rows[1]["status"], rows[1]["took"])


def test_the_test_phone_plays_a_survey(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api, ONE_QUESTION), mother)

    r = api.post("/a/{project}/api/messaging/v1/test-phone", {"from": NUMBER, "text": "ndiyo"})

    assert 201 == r.status, r.body
    assert "completed" == session(api, started["id"])["status"]
    assert ["Are you well? 1 Yes 2 No", "Thanks."] == sent()
    assert "yes" == properties(api, mother)["feels_well"]


def test_another_projects_test_phone_neither_answers_nor_stops_a_session(
    api: Api, other_api: Api
) -> None:
    """A global test gateway serves both projects; B's test phone acts as B's own gateway."""
    do_create_global_gateway({"name": "SHARED", "type": "test"})
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api, ONE_QUESTION), mother, gateway="SHARED")
    assert "active" == started["status"]

    for text in ("ndiyo", "STOP"):
        r = other_api.post(
            "/a/{project}/api/messaging/v1/test-phone", {"from": NUMBER, "text": text}
        )
        assert 201 == r.status, r.body

    assert ("active", []) == (
        session(api, started["id"])["status"],
        session(api, started["id"])["answers"],
    )
