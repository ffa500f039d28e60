"""Survey answers under concurrent webhooks: many sessions answered at once, every answer
delivered twice at the same time (a provider retrying while the first is in flight), each
applied once and in order."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

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
