"""A survey session in CommCare's messaging-event API (reference/commcare-api.md 4.4-4.5):
one ``sms-survey`` event per session holding every SMS of the session, in and out, its
``form``, the session's status as HQ shows it, the status and content-type filters, and the
source of what started it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from casereach.contacts.models import Contact
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.surveys.models import Survey
from casereach.surveys.sessions import do_start_survey, run_due_sessions
from casereach.surveys.tests.test_sessions import NUMBER, create_survey, start
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.sending import drain
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

E = "/a/{project}/api/v0.5/messaging-event/"
TWO: dict[str, Any] = {
    "name": "Two numbers",
    "questions": [
        {
            "id": "days",
            "type": "integer",
            "prompt": {"en": "Days?", "sw": "Siku?"},
            "retry_prompt": {"en": "A number please.", "sw": "Namba tafadhali."},
            "case_property": "days",
        },
        {"id": "kids", "type": "integer", "prompt": {"en": "Kids?", "sw": "Watoto?"}},
    ],
    "closing": {"en": "Thanks.", "sw": "Asante."},
}


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def events(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get(E + ("?" + query if query else ""))
    assert 200 == r.status, r.body
    objects: list[dict[str, Any]] = r.body["objects"]
    return objects


def ids(api: Api, query: str) -> list[int]:
    return [e["id"] for e in events(api, query)]


def test_a_session_is_one_sms_survey_event_with_every_message(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = create_survey(api, TWO)
    started = start(api, survey_id, mother)
    drain()
    inbound(gw, "many")  # invalid: the retry prompt
    inbound(gw, "12")
    drain()

    [event] = events(api, "content_type=sms-survey")
    assert {
        "content_type": "sms-survey",
        "case_id": mother,
        "form": {
            "app_id": None,
            "form_definition_id": str(survey_id),
            "form_name": "Two numbers",
            "form_submission_id": None,
        },
        "status": "in-progress",
        "source": {"source_id": str(started["id"]), "type": "other", "name": "sms-survey"},
        "survey_session_id": started["id"],
    } == {k: event[k] for k in ("content_type", "case_id", "form", "status", "source")} | {
        "survey_session_id": event["survey_session_id"]
    }
    assert [
        ("outgoing", "Days?", "sent"),
        ("incoming", "many", "received"),
        ("outgoing", "A number please.", "sent"),
        ("incoming", "12", "received"),
        ("outgoing", "Kids?", "sent"),
    ] == [(m["direction"], m["content"], m["status"]) for m in event["messages"]]
    # The session's parts are not events of their own; nothing else is in the log.
    assert [event["id"]] == ids(api, "")
    assert [] == ids(api, "content_type=sms")
    assert [event["id"]] == ids(api, "content_type=sms,sms-survey")
    assert [event["id"]] == ids(api, "status=in-progress")
    assert [] == ids(api, "status=completed")

    inbound(gw, "3")
    drain()
    [done] = events(api, "content_type=sms-survey")
    assert ("completed", str(started["id"])) == (done["status"], done["form"]["form_submission_id"])
    assert done["date_last_activity"] > event["date_last_activity"]
    assert ["3", "Thanks."] == [m["content"] for m in done["messages"][-2:]]
    assert [done["id"]] == ids(api, "status=completed")
    assert [] == ids(api, "status=in-progress")
    # commcare-export resumes from the last activity: the session's event comes again.
    assert [done["id"]] == ids(api, f"date_last_activity.gte={event['date_last_activity']}")
    r = api.get(E + f"{done['id']}/")
    assert (200, done) == (r.status, r.body)


def _expire(api: Api, gw: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    mother = case(api, phone=NUMBER, verified="yes")
    body = {**TWO, "settings": {"reask_max": 0, "expire_after_minutes": 60, **settings}}
    start(api, create_survey(api, body), mother)
    drain()
    inbound(gw, "12")
    drain()
    assert 1 == run_due_sessions(at=now() + dt.timedelta(minutes=61))
    [event] = events(api, "content_type=sms-survey")
    return event


def test_an_expired_session_that_wrote_answers_is_partially_completed(
    api: Api, gw: dict[str, Any]
) -> None:
    event = _expire(api, gw, {"write_on_expiry": True})

    assert ("partially_completed", None) == (event["status"], event["form"]["form_submission_id"])
    assert [event["id"]] == ids(api, "status=not-completed")
    assert [] == ids(api, "status=in-progress")


def test_an_expired_session_that_wrote_nothing_is_not_finished(
    api: Api, gw: dict[str, Any]
) -> None:
    event = _expire(api, gw, {})

    assert "not-finished" == event["status"]
    assert [event["id"]] == ids(api, "status=not-completed")


def test_a_stopped_session_is_not_finished(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    start(api, create_survey(api, TWO), mother)
    drain()
    inbound(gw, "STOP")

    [event] = events(api, "content_type=sms-survey")
    assert "not-finished" == event["status"]


@pytest.mark.parametrize(
    ("triggered_by", "source_type", "also"),
    [
        ("keyword:SURVEY", "keyword", "keyword"),
        ("alert:12", "conditional-alert", "reminder"),
        ("broadcast:3", "broadcast", "broadcast"),
        ("ops@example.org", "other", "other"),
    ],
)
def test_the_event_source_is_what_started_the_session(
    project: Project, api: Api, gw: dict[str, Any], triggered_by: str, source_type: str, also: str
) -> None:
    mother = case(api, phone=NUMBER, verified="yes")
    survey = Survey.objects.get(pk=create_survey(api, survey_body()))
    project.refresh_from_db()  # its routes were set through the API
    do_start_survey(
        project, survey, Contact.objects.get(contact_id=mother), triggered_by=triggered_by
    )

    [event] = events(api, "content_type=sms-survey")
    assert source_type == event["source"]["type"]
    assert [event["id"]] == ids(api, f"source={also}")


def test_a_message_to_the_owner_on_no_reply_is_a_plain_sms_event(
    api: Api, gw: dict[str, Any]
) -> None:
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "wanjiru", "password": "pw-123456789", "phone_numbers": ["254700000777"]},
    )
    assert 201 == r.status, r.body
    mother = case(api, phone=NUMBER, verified="yes", owner_id=r.body["id"])
    body = {
        **TWO,
        "settings": {
            "expect_reply_within_minutes": 30,
            "no_reply": {
                "action": "message_owner",
                "message": {"en": "No reply.", "sw": "Hakuna."},
            },
        },
    }
    start(api, create_survey(api, body), mother)
    run_due_sessions(at=now() + dt.timedelta(minutes=31))

    assert ["sms-survey", "sms"] == [e["content_type"] for e in events(api, "")]
    [owner] = events(api, "content_type=sms")
    assert ("other", ["No reply."]) == (
        owner["source"]["type"],
        [m["content"] for m in owner["messages"]],
    )
