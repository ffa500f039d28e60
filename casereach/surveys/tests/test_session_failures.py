"""A session whose message fails for good at the dispatcher ends instead of holding its pair
until it expires (``surveys/sessions/failures.py``): the refused first question, the refused
next question after an answer; the pair's queued session then starts."""

from __future__ import annotations

from typing import Any

from casereach.surveys.tests.test_sessions import NUMBER, create_survey, session, start
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.sending import drain
from casereach.testing.surveys import ONE_QUESTION
from casereach.testing.world import Api

GATEWAYS = "/a/{project}/api/messaging/v1/gateways"


def _refuse(api: Api, gw: dict[str, Any], numbers: list[str]) -> None:
    r = api.put(f"{GATEWAYS}/{gw['id']}", {"config": {"fail_numbers": numbers}})
    assert 200 == r.status, r.body


def test_a_refused_first_question_fails_the_session_and_the_next_starts(api: Api) -> None:
    gw = default_gateway(api)
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    first = start(api, create_survey(api), mother)
    second = start(api, create_survey(api, ONE_QUESTION), mother)
    assert ("active", "queued") == (first["status"], second["status"])
    _refuse(api, gw, [NUMBER])

    drain()  # the first question refused: the first ends, the second starts, and is refused

    refused = "the survey's message could not be sent: INVALID_DESTINATION_NUMBER"
    ended = [session(api, s["id"]) for s in (first, second)]
    assert [("failed", refused)] * 2 == [(s["status"], s["detail"]) for s in ended]
    assert ended[1]["started_on"] is not None


def test_a_refused_next_question_fails_the_session(api: Api) -> None:
    gw = default_gateway(api)
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    drain()
    _refuse(api, gw, [NUMBER])

    inbound(gw, "1")  # a valid answer: the next question is queued, then refused
    drain()

    ended = session(api, started["id"])
    assert ["took"] == [a["question_id"] for a in ended["answers"]]
    assert ("failed", "the survey's message could not be sent: INVALID_DESTINATION_NUMBER") == (
        ended["status"],
        ended["detail"],
    )


def test_a_delivered_question_leaves_the_session_active(api: Api) -> None:
    gw = default_gateway(api)
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    started = start(api, create_survey(api), mother)
    drain()
    inbound(gw, "1")
    drain()

    assert ("active", "days") == (
        session(api, started["id"])["status"],
        session(api, started["id"])["current_question"],
    )
