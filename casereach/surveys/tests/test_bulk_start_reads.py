"""What a bulk start (``surveys.sessions.bulk``) reads: a fixed set of statements per batch
whatever its size, with the cases and contacts looked up by id, and only the starting
project's own contacts and cases taken (another project's id is no recipient)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.core.timeutil import now
from casereach.messaging.models import Message, MessagingEvent
from casereach.projects.models import Project
from casereach.surveys.models import Survey, SurveySession
from casereach.surveys.sessions import bulk as bulk_start
from casereach.surveys.sessions.bulk import start_surveys
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
CHECK = {
    "name": "Weekly check",
    "questions": [
        {
            "id": "ok",
            "type": "single_select",
            "prompt": {"en": "Hello {case.name}. Are you well?", "sw": "Habari {case.name}."},
            "choices": [
                {"value": "yes", "label": {"en": "Yes", "sw": "Ndiyo"}},
                {"value": "no", "label": {"en": "No", "sw": "Hapana"}},
            ],
        }
    ],
}


def _survey(api: Api) -> Survey:
    r = api.post(S, CHECK)
    assert 201 == r.status, r.body
    return Survey.objects.get(pk=r.body["id"])


def test_a_batch_runs_the_same_statements_whatever_its_size(api: Api) -> None:
    default_gateway(api)
    ids = [case(api, name=f"Mother {n}", phone=f"25471300{n:04d}") for n in range(13)]
    project = Project.objects.get(pk=api.project.pk)
    survey = _survey(api)
    start_surveys(project, survey.pk, ids[:1], triggered_by="bench", at=now())  # warm

    with CaptureQueriesContext(connection) as small:
        small_out = start_surveys(project, survey.pk, ids[1:4], triggered_by="t", at=now())
    with CaptureQueriesContext(connection) as large:
        large_out = start_surveys(project, survey.pk, ids[4:], triggered_by="t", at=now())

    assert [None] * 12 == [o.error_code for o in small_out + large_out]
    assert 13 == SurveySession.objects.filter(status="active").count()
    assert 13 == Message.objects.filter(event__source="survey").count()
    assert len(small.captured_queries) == len(large.captured_queries), "\n".join(
        q["sql"][:120] for q in large.captured_queries
    )


def test_another_projects_contact_gets_no_session(api: Api, other_api: Api) -> None:
    default_gateway(api)
    default_gateway(other_api, "OTHER")
    ours = case(api, name="Amina", phone="254713000101")
    theirs = case(other_api, name="Zawadi", phone="254713000102")
    project = Project.objects.get(pk=api.project.pk)
    survey = _survey(api)

    outcomes = start_surveys(project, survey.pk, [theirs, ours], triggered_by="t", at=now())

    assert [(theirs, None, "NO_RECIPIENT"), (ours, True, None)] == [
        (o.contact_id, o.session_id and True, o.error_code) for o in outcomes
    ]
    assert [ours] == list(SurveySession.objects.values_list("contact_id", flat=True))


def test_a_pair_taken_meanwhile_leaves_no_question_of_the_batch_behind(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch's read of busy pairs misses a session that took a pair meanwhile (another
    # project's start on a shared gateway): the batch's sessions conflict when written, and
    # the batch is started again one contact at a time; what it sent first is undone.
    default_gateway(api)
    taken, free = (case(api, name=n, phone=f"2547130002{i:02d}") for i, n in enumerate("AB"))
    project = Project.objects.get(pk=api.project.pk)
    survey = _survey(api)
    start_surveys(project, survey.pk, [taken], triggered_by="first", at=now())
    monkeypatch.setattr(bulk_start, "_busy_pairs", lambda pairs: {})

    outcomes = start_surveys(project, survey.pk, [taken, free], triggered_by="t", at=now())

    assert [(taken, "queued"), (free, "active")] == [
        (s.contact_id, s.status)
        for s in SurveySession.objects.filter(triggered_by="t").order_by("id")
    ]
    assert [None, None] == [o.error_code for o in outcomes]
    assert 2 == Message.objects.filter(event__source="survey").count()  # the first's and B's
    assert [
        str(pk) for pk in SurveySession.objects.filter(status="active").values_list("pk", flat=True)
    ] == sorted(
        MessagingEvent.objects.filter(source="survey").values_list("source_id", flat=True),
        key=int,
    )
