"""The survey-session pages (issue 20) through Django's test client: a survey's sessions
(counts, filters, paging), a session's transcript and the properties written, the contact
page's *Surveys* card and *Start a survey*, the test phone playing a survey, *Cancel* (page
and API), roles, CSRF and another project's ids."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.surveys import ONE_QUESTION as ONE
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api
from casereach.web.tests.test_survey_pages import _client

S = "/a/{project}/api/surveys/v1/surveys"
SESSIONS = "/a/{project}/api/surveys/v1/survey-sessions"
NUMBER = "254712345678"


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


@pytest.fixture
def member(project: Project) -> Client:
    return _client(project, Role.MEMBER)


@pytest.fixture
def viewer(project: Project) -> Client:
    return _client(project, Role.VIEWER)


def _survey(api: Api, body: dict[str, Any] | None = None) -> int:
    r = api.post(S, body if body is not None else survey_body())
    assert 201 == r.status, r.body
    return int(r.body["id"])


def _start(api: Api, survey_id: int, contact_id: str) -> dict[str, Any]:
    r = api.post(f"{S}/{survey_id}/start", {"contact_id": contact_id})
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def _status(api: Api, session_id: int) -> str:
    return str(api.get(f"{SESSIONS}/{session_id}").body["status"])


def _phone(client: Client, text: str) -> None:
    r = client.post("/a/demo/test-phone", {"from": NUMBER, "text": text})
    assert 200 == r.status_code


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def test_the_test_phone_starts_and_plays_a_survey_to_its_closing(
    api: Api, gw: dict[str, Any], member: Client
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="sw")
    survey_id = _survey(api)
    page = member.post(
        "/a/demo/test-phone", {"action": "start_survey", "from": NUMBER, "survey": survey_id}
    )
    html = page.content.decode()
    assert 200 == page.status_code
    assert "started: the first question was sent" in html
    assert "Habari Amina. Umekunywa dawa leo? 1 Ndiyo 2 Hapana" in html
    for reply in ["3", "hapana", "9", "9", "12", "3,25", "5/1/2027"]:
        _phone(member, reply)
    conversation = member.get(f"/a/demo/test-phone/conversation?number={NUMBER}")
    html = conversation.content.decode()
    assert 'data-status="completed"' in html
    assert "Asante Amina. Ziara ijayo: 2027-01-05." in html
    written = re.search(r'class="written-properties">(.*?)</span></p>', html, re.S)
    assert written is not None
    assert (
        "took_medicine=no, days_since_birth=12, baby_weight=3.25, next_visit=2027-01-05"
        == _text(written.group(1))
    )
    props = api.get(f"/a/{{project}}/api/case/v2/{mother}/").body["properties"]
    assert ("no", "2027-01-05") == (props["took_medicine"], props["next_visit"])
    assert "missed_reason" not in props


def test_the_session_page_shows_the_transcript_with_each_result(
    api: Api, gw: dict[str, Any], member: Client, viewer: Client
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", language_code="sw")
    started = _start(api, _survey(api), mother)
    for reply in ["3", "hapana", "9", "9", "70"]:
        _phone(member, reply)
    page = viewer.get(f"/a/demo/survey-sessions/{started['id']}")
    assert 200 == page.status_code
    html = page.content.decode()
    results = re.findall(r'data-direction="(in|out)"(?: data-result="(\w+)")?', html)
    assert [
        ("out", ""),
        ("in", "invalid"),
        ("out", ""),
        ("in", "accepted"),
        ("out", ""),
        ("in", "invalid"),
        ("out", ""),
        ("in", "skipped"),
        ("out", ""),
        ("in", "invalid"),
        ("out", ""),
    ] == results
    assert "Tafadhali tuma namba kutoka 0 hadi 60." in html
    assert "Cancel this session" not in html  # a viewer reads only
    state = _text(re.search(r'id="session-status">(.*?)</dd>', html, re.S).group(1))  # type: ignore[union-attr]
    assert "active" == state
    # write_mode "end": nothing is written while the survey is under way.
    assert "not written yet" in html and "written-properties" not in html


def test_a_surveys_sessions_are_counted_filtered_and_paged(
    api: Api, gw: dict[str, Any], viewer: Client
) -> None:
    survey_id = _survey(api, ONE)
    other_survey = _survey(api, {**ONE, "name": "Another"})
    ids = [case(api, name=f"C{i}", phone=f"25471200{i:04d}", verified="yes") for i in range(52)]
    for contact_id in ids:
        _start(api, survey_id, contact_id)
    _start(api, other_survey, ids[0])  # another survey's session is not listed
    api.post(f"{SESSIONS}/{_first(api, survey_id)}/cancel", {})

    page = viewer.get(f"/a/demo/surveys/{survey_id}/sessions")
    html = page.content.decode()
    assert 200 == page.status_code
    counts = dict(re.findall(r'<span data-count="(\w+)">(\d+)</span>', html))
    assert {"active": "51", "cancelled": "1", "queued": "0", "completed": "0"} == {
        k: counts[k] for k in ("active", "cancelled", "queued", "completed")
    }
    assert 50 == html.count("<tr data-session=")
    assert "1–50 of 52" in html and "Next →" in html
    page2 = viewer.get(f"/a/demo/surveys/{survey_id}/sessions?offset=50").content.decode()
    assert 2 == page2.count("<tr data-session=")
    cancelled = viewer.get(f"/a/demo/surveys/{survey_id}/sessions?status=cancelled")
    assert 1 == cancelled.content.decode().count("<tr data-session=")
    future = viewer.get(f"/a/demo/surveys/{survey_id}/sessions?started_from=2999-01-01")
    assert "No sessions match these filters" in future.content.decode()
    bad = viewer.get(f"/a/demo/surveys/{survey_id}/sessions?status=asleep")
    assert 400 == bad.status_code
    assert "status: must be one of" in bad.content.decode()


def _first(api: Api, survey_id: int) -> int:
    body = api.get(SESSIONS, survey=str(survey_id), limit="100").body
    return int(min(s["id"] for s in body["objects"]))


def test_the_contact_card_starts_queues_and_lists_with_the_queue_place(
    api: Api, gw: dict[str, Any], member: Client
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = _survey(api, ONE)
    url = f"/a/demo/contacts/{mother}"
    first = member.post(url, {"action": "start_survey", "survey": survey_id})
    assert 200 == first.status_code
    assert "started: the first question was sent" in first.content.decode()
    second = member.post(url, {"action": "start_survey", "survey": survey_id, "gateway": "TEST"})
    html = second.content.decode()
    assert "queued: another survey is under way on this number" in html
    rows = re.findall(r'<tr data-session="(\d+)" data-status="(\w+)">', html)
    assert ["active", "queued"] == [status for _, status in rows]
    assert "1st in the queue of 254712345678" in html

    # Cancelling the active one on its page starts the queued one.
    active_id, queued_id = (int(pk) for pk, _ in rows)
    r = member.post(f"/a/demo/survey-sessions/{active_id}", {"action": "cancel"})
    assert 302 == r.status_code
    assert ("cancelled", "active") == (_status(api, active_id), _status(api, queued_id))
    again = member.post(f"/a/demo/survey-sessions/{active_id}", {"action": "cancel"})
    assert 409 == again.status_code
    assert "has already ended (cancelled)" in again.content.decode()


def test_start_refuses_bad_input_with_the_problem(
    api: Api, gw: dict[str, Any], member: Client
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    nophone = case(api, name="Kesi")
    survey_id = _survey(api, ONE)
    url = f"/a/demo/contacts/{mother}"
    for data, problem in [
        ({"survey": "x"}, "survey: choose one of the project's surveys"),
        ({"survey": survey_id, "gateway": "NOPE"}, "gateway 'NOPE' not found"),
    ]:
        r = member.post(url, {"action": "start_survey", **data})
        assert 400 == r.status_code
        assert problem in unescape(r.content.decode())
    r = member.post(f"/a/demo/contacts/{nophone}", {"action": "start_survey", "survey": survey_id})
    assert (400, True) == (r.status_code, "has no phone number" in r.content.decode())
    assert [] == api.get(SESSIONS).body["objects"]


def test_a_viewer_reads_but_cannot_start_or_cancel(
    api: Api, gw: dict[str, Any], viewer: Client
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = _survey(api, ONE)
    started = _start(api, survey_id, mother)
    contact_page = viewer.get(f"/a/demo/contacts/{mother}").content.decode()
    assert f'href="/a/demo/survey-sessions/{started["id"]}"' in contact_page
    assert 'id="start-survey"' not in contact_page
    r = viewer.post(f"/a/demo/contacts/{mother}", {"action": "start_survey", "survey": survey_id})
    assert 403 == r.status_code
    r = viewer.post(f"/a/demo/survey-sessions/{started['id']}", {"action": "cancel"})
    assert 403 == r.status_code
    assert 200 == viewer.get(f"/a/demo/surveys/{survey_id}/sessions").status_code
    assert 1 == len(api.get(SESSIONS).body["objects"])
    assert "active" == _status(api, started["id"])


def test_the_cancel_api(api: Api, other_api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = _survey(api, ONE)
    first = _start(api, survey_id, mother)
    second = _start(api, survey_id, mother)

    assert 404 == other_api.post(f"{SESSIONS}/{first['id']}/cancel", {}).status
    assert 404 == api.post(f"{SESSIONS}/{2**63 + 1}/cancel", {}).status
    r = api.post(f"{SESSIONS}/{second['id']}/cancel", {})
    assert (200, "cancelled") == (r.status, r.body["status"])
    assert "active" == _status(api, first["id"])  # a queued one leaves the queue only
    r = api.post(f"{SESSIONS}/{first['id']}/cancel", {})
    assert (200, "cancelled") == (r.status, r.body["status"])
    r = api.post(f"{SESSIONS}/{first['id']}/cancel", {})
    assert 409 == r.status
    assert "has already ended" in r.body["error"]


def test_another_projects_ids_are_404_on_every_page(
    api: Api, other_api: Api, gw: dict[str, Any], member: Client, other_project: Project
) -> None:
    default_gateway(other_api, "OTHER")
    theirs_case = case(other_api, name="Bo", phone="254733000111", verified="yes")
    one = {
        **ONE,
        "closing": {},
        "questions": [
            {
                **ONE["questions"][0],  # type: ignore[index]
                "prompt": {"en": "Well?"},
                "choices": [
                    {"value": "yes", "label": {"en": "Yes"}},
                    {"value": "no", "label": {"en": "No"}},
                ],
            }
        ],
    }
    theirs_survey = _survey(other_api, one)
    theirs = _start(other_api, theirs_survey, theirs_case)
    ours = _survey(api, ONE)
    mine = case(api, name="Amina", phone=NUMBER, verified="yes")
    for path in [
        f"/a/demo/surveys/{theirs_survey}/sessions",
        f"/a/demo/survey-sessions/{theirs['id']}",
        f"/a/demo/survey-sessions/{2**63 + 5}",
        f"/a/other/survey-sessions/{theirs['id']}",
        f"/a/other/surveys/{theirs_survey}/sessions",
    ]:
        assert 404 == member.get(path).status_code, path
    assert (
        404
        == member.post(f"/a/demo/survey-sessions/{theirs['id']}", {"action": "cancel"}).status_code
    )
    r = member.post(f"/a/demo/contacts/{mine}", {"action": "start_survey", "survey": theirs_survey})
    assert 400 == r.status_code
    assert (
        404
        == member.post(
            f"/a/demo/contacts/{theirs_case}", {"action": "start_survey", "survey": ours}
        ).status_code
    )
    assert "active" == other_api.get(f"{SESSIONS}/{theirs['id']}").body["status"]
    assert [] == api.get(SESSIONS).body["objects"]


def test_the_forms_need_the_csrf_token(api: Api, gw: dict[str, Any], project: Project) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    survey_id = _survey(api, ONE)
    started = _start(api, survey_id, mother)
    do_create_web_user(project, "m", "pw-member-1", role=Role.MEMBER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="m"))
    assert (
        403
        == client.post(f"/a/demo/survey-sessions/{started['id']}", {"action": "cancel"}).status_code
    )
    r = client.post(f"/a/demo/contacts/{mother}", {"action": "start_survey", "survey": survey_id})
    assert 403 == r.status_code
    r = client.post(
        "/a/demo/test-phone", {"action": "start_survey", "from": NUMBER, "survey": survey_id}
    )
    assert 403 == r.status_code
    assert ["active"] == [s["status"] for s in api.get(SESSIONS).body["objects"]]
