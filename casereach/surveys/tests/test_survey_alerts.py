"""Alerts whose content is a survey (issue 20, "Starting one"): saving checks the survey,
a broadcast or a conditional alert's firing starts one session per recipient (queued behind
a busy pair), skipped recipients are logged with their reason, the dry run counts survey
starts, and another project's survey is never reachable."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from casereach.alerts.models import ScheduleInstance
from casereach.alerts.scheduler import run_until_idle
from casereach.contacts.models import PhoneEntry
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.surveys.models import SurveySession
from casereach.surveys.sessions import run_due_sessions
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway, default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
SESSIONS = "/a/{project}/api/surveys/v1/survey-sessions"
M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"
ENGLISH_ONLY: dict[str, Any] = {
    "name": "Quick check",
    "questions": [{"id": "ok", "type": "text", "prompt": {"en": "Are you well?"}}],
}


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def create_survey(api: Api, **over: Any) -> int:
    r = api.post(S, survey_body(**over) if "body" not in over else over["body"])
    assert 201 == r.status, r.body
    return int(r.body["id"])


def survey_alert(survey_id: int, **over: Any) -> dict[str, Any]:
    """An immediate broadcast of the survey to every open ``mother`` case."""
    return {
        "name": "Weekly check",
        "kind": "broadcast",
        "channel": "sms",
        "content": {"type": "survey", "survey_id": survey_id},
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "case_group", "case_type": "mother"}],
        **over,
    }


def sessions(api: Api, **query: Any) -> list[dict[str, Any]]:
    r = api.get(SESSIONS, limit=100, **query)
    assert 200 == r.status, r.body
    found: list[dict[str, Any]] = r.body["objects"]
    return sorted(found, key=lambda s: s["id"])


def mother(api: Api, name: str, phone: str | None, **props: str) -> str:
    return case(api, name=name, case_type="mother", phone=phone, verified="yes", **props)


# -- saving ---------------------------------------------------------------------------------------


def test_survey_content_is_stored_as_given_and_needs_no_texts(api: Api, gw: Any) -> None:
    survey_id = create_survey(api)
    r = api.post(M + "alerts", survey_alert(survey_id))
    assert 201 == r.status, r.body
    assert {"type": "survey", "survey_id": survey_id, "sms": {}, "email": None} == r.body["content"]
    assert ([], []) == (r.body["missing_translations"], r.body["estimates"])
    plain = api.post(
        M + "alerts", survey_alert(survey_id, name="Plain", content={"sms": {"en": "Hi"}})
    )
    assert 201 == plain.status, plain.body
    assert {"type": "message", "sms": {"en": "Hi"}, "email": None} == plain.body["content"]


@pytest.mark.parametrize(
    ("content", "channel", "expected"),
    [
        ({"type": "survey"}, "sms", "content: survey content needs survey_id"),
        (
            {"type": "survey", "survey_id": 999_999},
            "sms",
            "content.survey_id: survey 999999 not found",
        ),
        ({"type": "survey", "survey_id": 0}, "sms", "content.survey_id: Input should be greater"),
        (
            {"type": "quiz", "survey_id": 1},
            "sms",
            "content.type: Input should be 'message' or 'survey'",
        ),
        (
            {"type": "message", "survey_id": 1, "sms": {"en": "x"}},
            "sms",
            "survey_id goes with type",
        ),
    ],
)
def test_bad_survey_content_is_a_400_and_stores_nothing(
    api: Api, gw: Any, content: dict[str, Any], channel: str, expected: str
) -> None:
    r = api.post(M + "alerts", {**survey_alert(1), "content": content, "channel": channel})
    assert 400 == r.status, r.body
    assert expected in r.body["error"]
    assert [] == api.get(M + "alerts").body["objects"]


def test_an_email_channel_with_a_survey_is_a_400(api: Api, gw: Any) -> None:
    survey_id = create_survey(api)
    r = api.post(M + "alerts", survey_alert(survey_id, channel="email"))
    assert 400 == r.status, r.body
    assert "survey content is sent by SMS: it needs channel 'sms'" in r.body["error"]


def test_another_projects_survey_is_refused_like_a_missing_one(
    api: Api, other_api: Api, gw: Any
) -> None:
    theirs = create_survey(other_api, body=ENGLISH_ONLY)
    r = api.post(M + "alerts", survey_alert(theirs))
    assert 400 == r.status, r.body
    assert f"invalid alert: content.survey_id: survey {theirs} not found" == r.body["error"]


def test_an_inactive_survey_cannot_be_saved_or_activated(api: Api, gw: Any) -> None:
    survey_id = create_survey(api)
    alert = api.post(M + "alerts", survey_alert(survey_id))
    assert 201 == alert.status
    assert 200 == api.put(f"{S}/{survey_id}", survey_body(active=False)).status

    r = api.post(M + f"alerts/{alert.body['id']}/activate")
    assert 400 == r.status, r.body
    assert "is inactive" in r.body["error"]
    assert False is api.get(M + f"alerts/{alert.body['id']}").body["active"]
    r = api.post(M + "alerts", survey_alert(survey_id, name="Another"))
    assert 400 == r.status
    assert "is inactive" in r.body["error"]


# -- firing ---------------------------------------------------------------------------------------


def test_an_immediate_broadcast_starts_one_session_per_case(api: Api, gw: Any) -> None:
    amina = mother(api, "Amina", NUMBER, language_code="sw")
    zawadi = mother(api, "Zawadi", "254712000002")
    survey_id = create_survey(api)
    alert = api.post(M + "alerts", survey_alert(survey_id, active=True)).body

    assert 2 == run_until_idle()

    found = sessions(api)
    assert [(amina, "active", "took", "sw"), (zawadi, "active", "took", "en")] == [
        (s["contact_id"], s["status"], s["current_question"], s["language"]) for s in found
    ]
    assert {f"broadcast:{alert['id']}"} == set(
        SurveySession.objects.values_list("triggered_by", flat=True)
    )
    q1 = Message.objects.filter(event__source="survey_broadcast").order_by("phone_number")
    assert [
        ("254712000002", "Hello Zawadi. Did you take your medicine today? 1 Yes 2 No", "queued"),
        (NUMBER, "Habari Amina. Umekunywa dawa leo? 1 Ndiyo 2 Hapana", "queued"),
    ] == [(m.phone_number, m.text, m.status) for m in q1]
    sources = set(
        MessagingEvent.objects.filter(source="survey_broadcast").values_list("source_id", flat=True)
    )
    assert {str(s["id"]) for s in found} == sources
    # In CommCare's messaging-event API each session is a broadcast's sms-survey event.
    events = api.get("/a/{project}/api/v0.5/messaging-event/?content_type=sms-survey").body
    assert sorted(("broadcast", "in-progress", s["id"]) for s in found) == sorted(
        (e["source"]["type"], e["status"], e["survey_session_id"]) for e in events["objects"]
    )
    assert {s["event_id"] for s in found} == {m.event_id for m in q1}
    # The alert's own events (one per recipient of a broadcast): a completed sub-event each,
    # closed at once; question 1 is in the session's event.
    events = MessagingEvent.objects.filter(source="immediate_broadcast")
    assert [("completed", 0), ("completed", 0)] == [(e.status, e.messages.count()) for e in events]
    assert ["completed", "completed"] == [
        s.status for s in MessagingSubEvent.objects.filter(event__in=events)
    ]
    # The survey then runs as one started from the API.
    assert 200 == inbound(gw, "2").status_code
    assert "why_not" == sessions(api, contact_id=amina)[0]["current_question"]


def test_a_number_pinned_to_a_gateway_gets_its_session_there(api: Api, gw: Any) -> None:
    # The scheduler hands the starter the numbers it read: the entry's gateway comes too.
    create_gateway(api, "OTHER")
    pinned = mother(api, "Amina", NUMBER)
    plain = mother(api, "Zawadi", "254712000002")
    PhoneEntry.objects.filter(contact_id=pinned).update(gateway="OTHER")
    survey_id = create_survey(api)
    api.post(M + "alerts", survey_alert(survey_id, active=True))

    assert 2 == run_until_idle()

    assert [(pinned, "OTHER", "active"), (plain, "TEST", "active")] == [
        (s.contact_id, s.gateway_name, s.status)
        for s in SurveySession.objects.order_by("phone_number").reverse()
    ]
    assert {NUMBER: "OTHER", "254712000002": "TEST"} == dict(
        Message.objects.filter(event__source="survey_broadcast").values_list(
            "phone_number", "gateway_name"
        )
    )


def test_skipped_recipients_are_logged_with_their_reason(api: Api, gw: Any) -> None:
    started = mother(api, "Amina", NUMBER)
    no_phone = mother(api, "Nophone", None)
    opted = mother(api, "Opted", "254712000003")
    assert 200 == inbound(gw, "STOP", sender="254712000003").status_code
    survey_id = create_survey(api)
    api.post(M + "alerts", survey_alert(survey_id, active=True))

    run_until_idle()

    by_contact = {s["contact_id"]: s for s in sessions(api)}
    assert no_phone not in by_contact  # no session, as a single start refuses it
    assert ("opted_out", "the first question was not sent: PHONE_NUMBER_OPTED_OUT") == (
        by_contact[opted]["status"],
        by_contact[opted]["detail"],
    )
    subs = MessagingSubEvent.objects.filter(event__source="immediate_broadcast")
    by_sub = {s.contact_id: (s.status, s.error_code, s.event.status) for s in subs}
    assert ("error", "NO_PHONE_NUMBER", "error") == by_sub[no_phone]
    assert ("error", "PHONE_NUMBER_OPTED_OUT", "error") == by_sub[opted]
    assert ("completed", None, "completed") == by_sub[started]
    # The skipped recipient's failed message, with its reason, in the alert's event; the
    # opted-out one's is in its (ended) session's event, as for a single start.
    failed = Message.objects.filter(event__source="immediate_broadcast")
    assert [(no_phone, "failed", "NO_PHONE_NUMBER", f"(survey {survey_id})")] == [
        (m.contact_id, m.status, m.error_code, m.text) for m in failed
    ]
    assert [(opted, "failed", "PHONE_NUMBER_OPTED_OUT")] == [
        (m.contact_id, m.status, m.error_code)
        for m in Message.objects.filter(event__source="survey_broadcast")
        if m.contact_id == opted
    ]


def test_a_busy_pair_gets_the_new_session_queued_behind_its_active_one(api: Api, gw: Any) -> None:
    amina = mother(api, "Amina", NUMBER)
    first = api.post(f"{S}/{create_survey(api)}/start", {"contact_id": amina})
    assert 201 == first.status
    weekly = create_survey(api, name="Weekly")
    api.post(M + "alerts", survey_alert(weekly, active=True))

    run_until_idle()

    queued = sessions(api, survey=weekly)
    assert [("queued", None, None)] == [
        (s["status"], s["event_id"], s["current_question"]) for s in queued
    ]
    for text in ["1", "40", "5/1/2027"]:  # the API-started survey ends: the queued one starts
        inbound(gw, text)
    assert "active" == sessions(api, survey=weekly)[0]["status"]


def test_a_weekly_conditional_alert_starts_a_survey_per_case_each_week(api: Api, gw: Any) -> None:
    amina = mother(api, "Amina", NUMBER, edd="2027-01-01")
    zawadi = mother(api, "Zawadi", "254712000002", edd="2027-02-01")
    survey_id = create_survey(api, settings={"expire_after_minutes": 60})
    body = {
        **survey_alert(survey_id, active=True),
        "kind": "conditional",
        "case_type": "mother",
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "schedule": {
            "type": "timed",
            "events": [{"time": "09:00"}],
            "repeat": {"unit": "weeks", "iterations": 4},
        },
        "recipients": [{"type": "self"}],
    }
    alert = api.post(M + "alerts", body)
    assert 201 == alert.status, alert.body
    dues = []
    for _ in range(3):  # each week's occurrence, at its time (09:00 in the case's zone)
        pending = ScheduleInstance.objects.filter(active=True, next_due__isnull=False)
        when = min(d for d in pending.values_list("next_due", flat=True) if d is not None)
        dues.append(when)
        run_due_sessions(when)  # last week's sessions expired (after 60 minutes)
        run_until_idle(at=when)
    assert [dt.timedelta(days=7)] * 2 == [b - a for a, b in itertools.pairwise(dues)]

    per_case = {c: sessions(api, contact_id=c) for c in (amina, zawadi)}
    assert [3, 3] == [len(per_case[amina]), len(per_case[zawadi])]
    assert 2 * 3 == MessagingEvent.objects.filter(source="conditional_alert").count()
    assert 6 == Message.objects.filter(event__source="survey_alert").count()
    assert [["active", "expired", "expired"]] * 2 == [
        [s["status"] for s in reversed(per_case[c])] for c in (amina, zawadi)
    ]


def test_the_dry_run_counts_survey_starts_and_who_is_skipped(api: Api, gw: Any) -> None:
    mother(api, "Amina", NUMBER)
    no_phone = mother(api, "Nophone", None)
    survey_id = create_survey(api)
    alert = api.post(M + "alerts", survey_alert(survey_id)).body

    r = api.post(M + f"alerts/{alert['id']}/dry-run", days=1)
    assert 200 == r.status, r.body
    dry = r.body
    assert {"id": survey_id, "name": "Postnatal follow-up", "active": True} == dry["survey"]
    assert (2, 1, 1, 1) == (
        dry["recipients"],
        dry["contacts"],
        dry["survey_starts"],
        dry["messages"],
    )
    assert {"NO_PHONE_NUMBER": 1} == dry["unreachable_by_reason"]
    assert [no_phone] == [u["contact_id"] for u in dry["unreachable"]]
    assert 1 == sum(d["survey_starts"] for d in dry["per_day"])
    assert 0 == SurveySession.objects.count()  # nothing written


def test_another_project_never_sees_the_sessions(api: Api, other_api: Api, gw: Any) -> None:
    mother(api, "Amina", NUMBER)
    survey_id = create_survey(api)
    api.post(M + "alerts", survey_alert(survey_id, active=True))
    run_until_idle()
    [started] = sessions(api)

    assert [] == sessions(other_api)
    assert 404 == other_api.get(f"{SESSIONS}/{started['id']}").status
    assert 0 == MessagingSubEvent.objects.filter(project=other_api.project).count()
