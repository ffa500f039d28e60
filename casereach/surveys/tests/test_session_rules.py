"""Session rules of issue 20 played through the API and the inbound webhook: a keyword or a
verification word during a survey is an answer; a case closed or deleted mid-survey; a
contact whose number changes mid-survey; queued sessions do not expire while queued; the
answers CSV after the survey changed; re-ask timers across a DST change."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest

from casereach.contacts.models import Contact
from casereach.core.timeutil import now
from casereach.projects.actions import do_update_settings
from casereach.projects.models import Project
from casereach.surveys.models import Survey
from casereach.surveys.sessions import do_start_survey, run_due_sessions
from casereach.surveys.tests.test_sessions import (
    NUMBER,
    ONE_QUESTION,
    SESSIONS,
    create_survey,
    properties,
    sent,
    session,
    start,
)
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
V2 = "/a/{project}/api/case/v2/"
K = "/a/{project}/api/messaging/v1/keywords"
WORD: dict[str, Any] = {
    "name": "One word",
    "questions": [
        {"id": "word", "type": "text", "prompt": {"en": "A word?", "sw": "Neno?"}},
        {"id": "more", "type": "text", "prompt": {"en": "Another?", "sw": "Jingine?"}},
    ],
}


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def answers(api: Api, session_id: int) -> list[tuple[str, str]]:
    return [(a["question_id"], a["value"]) for a in session(api, session_id)["answers"]]


# -- keywords and verification words are answers ---------------------------------------------


def test_a_keyword_during_a_survey_is_an_answer(api: Api, gw: dict[str, Any]) -> None:
    r = api.post(K, {"keyword": "VISIT", "reply": {"en": "Keyword reply", "sw": "Jibu"}})
    assert 201 == r.status, r.body
    started = start(api, create_survey(api, WORD), case(api, phone=NUMBER, verified="yes"))

    assert 200 == inbound(gw, "VISIT").status_code
    assert 200 == inbound(gw, "YES").status_code  # an opt-in word: answers too

    assert [("word", "VISIT"), ("more", "YES")] == answers(api, started["id"])
    assert ["A word?", "Another?"] == sent()


def test_a_verification_word_during_a_survey_is_an_answer(api: Api, gw: dict[str, Any]) -> None:
    # The contact's number is not verified: "123" would verify a pending mobile worker, and
    # YES is a common reply; both are answers to the open question here.
    started = start(api, create_survey(api, WORD), case(api, phone=NUMBER, verified="yes"))

    inbound(gw, "123")
    inbound(gw, "yes")

    assert [("word", "123"), ("more", "yes")] == answers(api, started["id"])


# -- the case closed or deleted mid-survey -----------------------------------------------------


@pytest.mark.parametrize("how", ["close", "delete"])
def test_a_case_closed_or_deleted_mid_survey_cancels_the_session(
    api: Api, gw: dict[str, Any], how: str
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    started = start(
        api, create_survey(api, ONE_QUESTION | {"questions": WORD["questions"]}), mother
    )
    inbound(gw, "first")
    r = api.put(V2 + mother, {"close": True}) if how == "close" else api.delete(V2 + mother)
    assert 200 == r.status, r.body

    assert 200 == inbound(gw, "second").status_code

    body = session(api, started["id"])
    assert ("cancelled", [("word", "first")]) == (body["status"], answers(api, started["id"]))
    assert f"the case was {'closed' if how == 'close' else 'deleted'}" == body["detail"]
    assert ["A word?", "Another?"] == sent()  # nothing more was sent


def test_a_session_whose_case_closed_is_cancelled_by_its_next_timer(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    started = start(api, create_survey(api, WORD), mother)
    assert 200 == api.put(V2 + mother, {"close": True}).status

    assert 1 == run_due_sessions(at=now() + dt.timedelta(minutes=241))

    body = session(api, started["id"])
    assert ("cancelled", "the case was closed") == (body["status"], body["detail"])
    assert ["A word?"] == sent()  # no re-ask to a closed case


def test_the_next_question_renders_the_case_its_owner_and_the_contact_as_they_are_now(
    api: Api, gw: dict[str, Any]
) -> None:
    # An answer reads the case, its owner's and the contact's names with the session: the
    # next question shows them as they are when the answer arrives.
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "nurse", "password": "s3cret-pass", "phone_numbers": ["254711000222"]},
    )
    assert 201 == r.status, r.body
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", owner_id=r.body["id"])
    asked = "{case.name} in {case.village}, owner {case.owner.name}, to {recipient.name}?"
    survey = ONE_QUESTION | {
        "questions": [
            WORD["questions"][0],
            {"id": "more", "type": "text", "prompt": {"en": asked, "sw": asked}},
        ]
    }
    start(api, create_survey(api, survey), mother)
    assert 200 == api.put(V2 + mother, {"properties": {"village": "Kisumu"}}).status

    assert 200 == inbound(gw, "first").status_code

    assert ["A word?", "Amina in Kisumu, owner nurse@demo.commcarehq.org, to Amina?"] == sent()


# -- the contact's number changes mid-survey ---------------------------------------------------


def test_a_session_stays_on_its_pair_when_the_contact_number_changes(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    started = start(api, create_survey(api, WORD), mother)
    new_number = "254799999999"
    r = api.put(V2 + mother, {"properties": {"contact_phone_number": new_number}})
    assert 200 == r.status, r.body

    inbound(gw, "from the old phone")
    inbound(gw, "from the new phone", sender=new_number)

    body = session(api, started["id"])
    assert (NUMBER, [("word", "from the old phone")]) == (
        body["phone_number"],
        answers(api, started["id"]),
    )
    assert ["A word?", "Another?"] == sent(NUMBER)
    assert [] == sent(new_number)


# -- queued sessions do not expire while queued ------------------------------------------------


def test_a_queued_session_expires_only_after_its_own_start(api: Api, gw: dict[str, Any]) -> None:
    body = survey_body(settings={"reask_max": 0, "expire_after_minutes": 60})
    survey_id = create_survey(api, body)
    first = start(api, survey_id, case(api, phone=NUMBER, verified="yes"))
    second = start(api, survey_id, case(api, name="Zawadi", phone=NUMBER, verified="yes"))
    assert ("queued", None) == (second["status"], second["expires_at"])

    at = now() + dt.timedelta(minutes=61)
    assert 1 == run_due_sessions(at=at)  # the first expires; the second starts now

    assert "expired" == session(api, first["id"])["status"]
    started = session(api, second["id"])
    assert "active" == started["status"]
    expires = dt.datetime.fromisoformat(started["expires_at"].replace("Z", "+00:00"))
    assert at + dt.timedelta(minutes=60) == expires
    assert 0 == run_due_sessions(at=at + dt.timedelta(minutes=59))
    assert "active" == session(api, second["id"])["status"]
    assert 1 == run_due_sessions(at=at + dt.timedelta(minutes=61))
    assert "expired" == session(api, second["id"])["status"]


# -- the answers CSV after the survey changed --------------------------------------------------


def test_the_answers_csv_has_the_current_questions_then_old_ones_that_were_answered(
    project: Project, api: Api, gw: dict[str, Any]
) -> None:
    survey_id = create_survey(api, WORD)
    old = start(api, survey_id, case(api, phone=NUMBER, verified="yes"))
    inbound(gw, "alpha")
    inbound(gw, "beta")
    changed = {
        **WORD,
        "questions": [
            WORD["questions"][1],
            {"id": "added", "type": "text", "prompt": {"en": "New?", "sw": "Mpya?"}},
        ],
    }
    assert 200 == api.put(f"{S}/{survey_id}", changed).status

    r = api.client.get(
        f"{S}/{survey_id}/answers.csv".replace("{project}", project.name),
        HTTP_AUTHORIZATION=api.auth,
    )
    assert 200 == r.status_code
    text = b"".join(r.streaming_content).decode()  # type: ignore[arg-type]
    rows = list(csv.reader(io.StringIO(text)))

    assert ["more", "added", "word"] == rows[0][9:]
    assert [str(old["id"]), "beta", "", "alpha"] == [rows[1][0], *rows[1][9:]]


# -- re-asks across a DST change ---------------------------------------------------------------


def test_a_reask_after_4_hours_across_a_dst_change_is_4_real_hours(
    project: Project, api: Api, gw: dict[str, Any]
) -> None:
    project.refresh_from_db()  # its routes were set through the API
    do_update_settings(project, {"time_zone": "America/New_York"})
    project.refresh_from_db()
    mother = case(api, phone=NUMBER, verified="yes", time_zone="America/New_York")
    survey = Survey.objects.get(pk=create_survey(api, WORD))
    # 00:30 EST on 14 March 2027; clocks go from 02:00 to 03:00 that night.
    at = dt.datetime(2027, 3, 14, 5, 30, tzinfo=dt.UTC)
    started = do_start_survey(project, survey, Contact.objects.get(contact_id=mother), at=at)
    assert at + dt.timedelta(hours=4) == started.next_reask_at

    assert 0 == run_due_sessions(at=at + dt.timedelta(minutes=239))
    assert 1 == run_due_sessions(at=at + dt.timedelta(minutes=240))  # 05:30 EDT: 4 real hours
    assert ["A word?", "A word?"] == sent()


def test_answers_are_written_to_the_case_before_it_closes(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    body = {**WORD, "settings": {"write_mode": "per_answer"}}
    body["questions"] = [dict(WORD["questions"][0], case_property="word"), WORD["questions"][1]]
    start(api, create_survey(api, body), mother)
    inbound(gw, "kept")
    assert 200 == api.put(V2 + mother, {"close": True}).status
    inbound(gw, "dropped")

    assert "kept" == properties(api, mother)["word"]
    r = api.get(SESSIONS + "?status=cancelled")
    assert 1 == len(r.body["objects"])
