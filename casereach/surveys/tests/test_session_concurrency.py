"""Survey answers under concurrent webhooks: many sessions answered at once, every answer
delivered twice at the same time (a provider retrying while the first is in flight), each
applied once and in order."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from casereach.messaging.models import Message
from casereach.projects.models import Project
from casereach.surveys.models import SurveyAnswer, SurveySession
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as post
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicated_answers_are_applied_once_and_in_order(project: Project) -> None:
    api = Api(project)
    gw = default_gateway(api)
    survey = api.post(S, survey_body())
    assert 201 == survey.status, survey.body
    senders = [f"2547000002{i:02d}" for i in range(4)]
    for number in senders:
        contact = case(api, phone=number, verified="yes")
        r = api.post(f"{S}/{survey.body['id']}/start", {"contact_id": contact})
        assert 201 == r.status, r.body
    statuses: list[int] = []

    def deliver(number: str, text: str, provider_id: str) -> None:
        try:
            statuses.append(post(gw, text, sender=number, id=provider_id).status_code)
        finally:
            connection.close()

    def answer(number: str) -> None:
        for k, text in enumerate(["2", "1 3", "12", "3.1", "1/2/2027"]):
            pair = [
                threading.Thread(target=deliver, args=(number, text, f"{number}{k}"))
                for _ in range(2)
            ]
            for t in pair:
                t.start()
            for t in pair:
                t.join()

    threads = [threading.Thread(target=answer, args=(n,)) for n in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [200] * 40 == statuses
    assert ["completed"] * 4 == list(SurveySession.objects.values_list("status", flat=True))
    for session in SurveySession.objects.all():
        assert [
            ("took", "no"),
            ("why_not", "forgot no_stock"),
            ("days", "12"),
            ("weight", "3.1"),
            ("visit", "2027-02-01"),
        ] == list(
            SurveyAnswer.objects.filter(session=session)
            .order_by("id")
            .values_list("question_id", "value")
        )
    # The next question went out once per accepted answer: a duplicate sent nothing.
    for number in senders:
        assert [
            "Hello Amina. Did you take your medicine today? 1 Yes 2 No",
            "Why not? 1 Forgot 2 Side effects 3 None left",
            "How many days since the birth?",
            "Baby's weight in kg?",
            "Amina, when is your next clinic visit? (day/month/year)",
            "Thank you Amina. Next visit: 2027-02-01.",
        ] == outgoing(number)


def outgoing(number: str) -> list[str]:
    return list(
        Message.objects.filter(direction="out", phone_number=number)
        .order_by("created_on", "id")
        .values_list("text", flat=True)
    )


TEXTS: dict[str, Any] = {
    "name": "Six words",
    "questions": [
        {"id": f"w{k}", "type": "text", "prompt": {"en": f"Word {k}?", "sw": f"Neno {k}?"}}
        for k in range(6)
    ],
    "settings": {"reask_max": 0},
}


@pytest.mark.django_db(transaction=True)
def test_one_session_racing_answers_and_duplicates_apply_once_in_arrival_order(
    project: Project,
) -> None:
    """Six different replies of ONE session delivered at the same time, each twice: each
    reply answers exactly one question, the questions are answered in the order the replies
    were applied (the message log's order), and every question went out once."""
    api = Api(project)
    gw = default_gateway(api)
    survey = api.post(S, TEXTS)
    assert 201 == survey.status, survey.body
    number = "254700000300"
    contact = case(api, phone=number, verified="yes")
    r = api.post(f"{S}/{survey.body['id']}/start", {"contact_id": contact})
    assert 201 == r.status, r.body
    statuses: list[int] = []
    barrier = threading.Barrier(12)

    def deliver(text: str, provider_id: str) -> None:
        try:
            barrier.wait()
            statuses.append(post(gw, text, sender=number, id=provider_id).status_code)
        finally:
            connection.close()

    replies = [f"reply{k}" for k in range(6)]
    threads = [
        threading.Thread(target=deliver, args=(text, f"9{k}"))
        for k, text in enumerate(replies)
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [200] * 12 == statuses
    session = SurveySession.objects.get()
    done = api.get(f"/a/{{project}}/api/surveys/v1/survey-sessions/{session.pk}")
    assert ("completed", None) == (done.body["status"], done.body["current_question"])
    answers = list(
        SurveyAnswer.objects.filter(session=session)
        .order_by("id")
        .values_list("question_id", "raw_text", "message_id")
    )
    assert [f"w{k}" for k in range(6)] == [qid for qid, _, _ in answers]
    assert sorted(replies) == sorted(text for _, text, _ in answers)
    # One inbound message per reply: the duplicates were not stored again.
    assert ["survey_accepted"] * 5 + ["survey_completed"] == sorted(
        Message.objects.filter(direction="in", phone_number=number).values_list(
            "inbound_action", flat=True
        )
    )
    # Applied in arrival order: each answer's message was received before the next one's.
    received = {
        m.id: (m.created_on, m.text)
        for m in Message.objects.filter(direction="in", phone_number=number)
    }
    in_order = [received[mid] for _, _, mid in answers]
    assert sorted(in_order) == in_order
    assert [f"Word {k}?" for k in range(6)] == outgoing(number)
