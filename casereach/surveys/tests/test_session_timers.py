"""Survey-session timers through ``run_due_sessions(at=…)``: re-asks after silence (at most
``reask_max``), expiry (writing the answers so far when asked to), the reply deadline and
its no-reply actions; each timer fires once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.surveys.sessions import run_due_sessions
from casereach.surveys.tests.test_sessions import (
    NUMBER,
    ONE_QUESTION,
    create_survey,
    properties,
    sent,
    session,
    start,
)
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway, default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

W = "/a/{project}/api/v0.5/user/"


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def later(minutes: int) -> dt.datetime:
    return now() + dt.timedelta(minutes=minutes)


def test_reasks_after_silence_at_most_reask_max_times(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    question = "Hello Amina. Did you take your medicine today? 1 Yes 2 No"

    assert 0 == run_due_sessions(at=later(239))
    assert 1 == run_due_sessions(at=later(241))
    assert 0 == run_due_sessions(at=later(241))  # fired once
    assert 1 == run_due_sessions(at=later(2 * 241))
    assert 0 == run_due_sessions(at=later(3 * 241))  # reask_max is 2

    assert [question] * 3 == sent()
    assert 2 == session(api, started["id"])["reask_count"]
    inbound(gw, "1")  # an answer moves on: the next question gets its own re-asks
    body = session(api, started["id"])
    assert ("days", 0) == (body["current_question"], body["reask_count"])


def test_expiry_writes_the_answers_so_far_when_the_survey_says_so(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    body = survey_body(
        settings={"reask_max": 0, "expire_after_minutes": 60, "write_on_expiry": True}
    )
    started = start(api, create_survey(api, body), mother)
    inbound(gw, "2")

    assert 0 == run_due_sessions(at=later(59))
    assert 1 == run_due_sessions(at=later(61))

    assert "expired" == session(api, started["id"])["status"]
    assert "no" == properties(api, mother)["took_medicine"]


def test_expiry_without_write_on_expiry_writes_nothing_and_starts_the_queue(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    body = survey_body(settings={"reask_max": 0, "expire_after_minutes": 60})
    first = start(api, create_survey(api, body), mother)
    second = start(api, create_survey(api, ONE_QUESTION), mother)
    inbound(gw, "2")

    assert 1 == run_due_sessions(at=later(61))

    assert "expired" == session(api, first["id"])["status"]
    assert "took_medicine" not in properties(api, mother)
    assert "active" == session(api, second["id"])["status"]
    assert "Are you well? 1 Yes 2 No" == sent()[-1]


def _no_reply(action: dict[str, Any]) -> dict[str, Any]:
    return {**ONE_QUESTION, "settings": {"expect_reply_within_minutes": 30, "no_reply": action}}


def test_no_reply_sets_a_case_property(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    action = {"action": "set_property", "property": "survey_missed", "value": "yes"}
    started = start(api, create_survey(api, _no_reply(action)), mother)

    assert 0 == run_due_sessions(at=later(29))
    assert 1 == run_due_sessions(at=later(31))

    body = session(api, started["id"])
    assert ("no_reply", "no reply: set_property") == (body["status"], body["detail"])
    assert "yes" == properties(api, mother)["survey_missed"]


def test_a_reply_in_time_cancels_the_deadline(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    action = {"action": "set_property", "property": "survey_missed", "value": "yes"}
    body = _no_reply(action)
    body["questions"] = [*survey_body()["questions"][:1], *body["questions"]]
    started = start(api, create_survey(api, body), mother)
    inbound(gw, "1")

    run_due_sessions(at=later(31))

    assert "active" == session(api, started["id"])["status"]
    assert "survey_missed" not in properties(api, mother)


def test_no_reply_starts_the_survey_on_another_gateway(api: Api, gw: dict[str, Any]) -> None:
    create_gateway(api, "OTHER")
    mother = case(api, phone=NUMBER, verified="yes")
    action = {"action": "other_gateway", "gateway": "OTHER"}
    started = start(api, create_survey(api, _no_reply(action)), mother)

    run_due_sessions(at=later(31))

    assert "no_reply" == session(api, started["id"])["status"]
    r = api.get("/a/{project}/api/surveys/v1/survey-sessions", status="active")
    [again] = r.body["objects"]
    assert ("OTHER", mother) == (again["gateway"], again["contact_id"])
    assert ["Are you well? 1 Yes 2 No"] * 2 == sent()


def test_no_reply_messages_the_case_owner(api: Api, gw: dict[str, Any]) -> None:
    r = api.post(
        W, {"username": "nurse", "password": "s3cret-pass", "phone_numbers": ["254711000222"]}
    )
    assert 201 == r.status, r.body
    owner = r.body["id"]
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", owner_id=owner)
    action = {
        "action": "message_owner",
        "message": {"en": "{case.name} did not answer", "sw": "{case.name} hakujibu"},
    }
    start(api, create_survey(api, _no_reply(action)), mother)

    run_due_sessions(at=later(31))

    assert ["Amina did not answer"] == sent("254711000222")
