"""Survey answers received together by the SQLite webhook worker (decision 0015): the same
rows as the same answers received one at a time, in the same statements whatever the batch's
size; a batch holding anything but plain answers is received one at a time, nothing written by
the set-based path. PostgreSQL has no worker: there the set-based path declines every batch."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging import inbound_worker
from casereach.messaging.inbound import InboundResult, batched, do_receive
from casereach.messaging.inbound_batch import receive_together
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.projects.cache import generation_scope
from casereach.projects.models import Project
from casereach.surveys.models import SurveyAnswer, SurveySession
from casereach.surveys.tests.test_sessions import create_survey, start
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

SET_BASED = connection.vendor == "sqlite"
TO = "5550000"
# Round 1 and round 2 of each contact: valid by number, by label (Swahili), invalid (the retry
# prompt), and a "no" that shows the skippable question; none ends a session.
ROUNDS = [
    ["1", "Ndiyo", "maybe", "2", "1", "Hapana"],
    ["12", "7", "1", "1", "abc", "3"],
]
LANGUAGES = ["en", "sw", "en", "en", "sw", "sw"]


def _contacts(api: Api, group: str, survey: int | None = None) -> list[tuple[str, str, int]]:
    """(case id, number, session id) of one contact per answer in ``ROUNDS``, each with its
    session of the five-question survey (``survey``, else a new one) started through the API
    (so each has an event)."""
    survey = survey or create_survey(api, survey_body())
    found = []
    for i, language in enumerate(LANGUAGES):
        number = f"2547{group}{i:07d}"
        case_id = case(api, name=f"Person {i}", phone=number, verified="yes", language=language)
        found.append((case_id, number, int(start(api, survey, case_id)["id"])))
    return found


def _items(
    gw: GatewayConfig, contacts: list[tuple[str, str, int]], texts: list[str], tag: str
) -> list[tuple[GatewayConfig, InboundMessage]]:
    return [
        (gw, InboundMessage(sender=number, to=TO, text=text, provider_id=f"{tag}-{i}"))
        for i, ((_, number, _), text) in enumerate(zip(contacts, texts, strict=True))
    ]


VOLATILE = {
    "id",
    "event",
    "event_id",
    "subevent",
    "subevent_id",
    "session",
    "session_id",
    "survey_session",
    "survey_session_id",
    "message_id",
    "source_id",
    "created_on",
    "updated_on",
    "next_attempt_at",
    "date_last_activity",
    "received_on",
    "last_reply_on",
    "next_reask_at",
    "next_timer_at",
    "expires_at",
    "started_on",
    "phone_number",
    "triggered_by",
    "contact_id",
    "case_id",
    "provider_id",
    "survey",
    "survey_id",
    "survey_name",
}


def _row(obj: Any) -> dict[str, Any]:
    return {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.attname not in VOLATILE and f.name not in VOLATILE
    }


def _written(contact: tuple[str, str, int]) -> dict[str, Any]:
    """Everything the answers of one contact wrote, without ids, stamps and the number."""
    _, number, session_id = contact
    messages = list(Message.objects.filter(phone_number=number).order_by("created_on", "id"))
    events = MessagingEvent.objects.filter(pk__in={m.event_id for m in messages})
    subs = MessagingSubEvent.objects.filter(event_id__in={m.event_id for m in messages})
    answers = list(SurveyAnswer.objects.filter(session_id=session_id).order_by("id"))
    ids = {m.id for m in messages if m.direction == "in"}
    session = SurveySession.objects.get(pk=session_id)
    return {
        "messages": [_row(m) for m in messages],
        "events": sorted(
            (str(_row(e)), e.source_id == str(session_id)) for e in events.order_by("id")
        ),
        "subevents": sorted(
            (str(_row(s)), s.survey_session_id == session_id) for s in subs.order_by("id")
        ),
        "answers": [(_row(a), a.message_id in ids) for a in answers],
        "session": _row(session),
        "timers_follow_the_reply": session.next_reask_at is not None
        and session.last_reply_on is not None
        and session.next_reask_at - session.last_reply_on == dt.timedelta(minutes=240),
    }


def _outcome(r: InboundResult) -> tuple[Any, ...]:
    return (r.action, r.project, r.duplicate, len(r.replies), r.detail)


def _one_by_one(
    items: list[tuple[GatewayConfig, InboundMessage]],
) -> list[tuple[Any, ...]]:
    return [_outcome(do_receive(gw, m)) for gw, m in items]


def _together(items: list[tuple[GatewayConfig, InboundMessage]]) -> list[InboundResult] | None:
    with generation_scope(), batched():  # as the SQLite worker receives a batch
        return receive_together(items)


@pytest.mark.django_db(transaction=True)
def test_answers_received_together_write_what_they_write_one_by_one(api: Api) -> None:
    gw = GatewayConfig.objects.get(pk=default_gateway(api)["id"])
    survey = create_survey(api, survey_body())
    alone, together = _contacts(api, "1", survey), _contacts(api, "2", survey)

    for r, texts in enumerate(ROUNDS):
        expected = _one_by_one(_items(gw, alone, texts, f"a{r}"))
        results = _together(_items(gw, together, texts, f"b{r}"))
        if not SET_BASED:
            assert results is None
            results = [do_receive(g, m) for g, m in _items(gw, together, texts, f"b{r}")]
        assert results is not None
        assert expected == [_outcome(x) for x in results]

    assert [_written(c) for c in alone] == [_written(c) for c in together]
    assert all(_written(c)["timers_follow_the_reply"] for c in together)
    stamps = list(
        MessagingSubEvent.objects.order_by("date_last_activity").values_list(
            "date_last_activity", flat=True
        )
    )
    assert len(stamps) == len(set(stamps)), "the project's clock gives every stamp once"
    project = Project.objects.get(pk=gw.project_id)
    assert project.last_indexed_on == stamps[-1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "case",
    ["stop", "help", "no_session", "two_from_one_number", "stored_before", "ends_session"],
)
def test_a_batch_with_anything_but_plain_answers_is_left_to_the_single_path(
    api: Api, case: str
) -> None:
    gw = GatewayConfig.objects.get(pk=default_gateway(api)["id"])
    contacts = _contacts(api, "3")[:3]
    texts = ["1", "1", "1"]
    if case == "stop":
        texts[1] = "STOP"
    elif case == "help":
        texts[1] = "HELP"
    elif case == "no_session":
        SurveySession.objects.filter(pk=contacts[1][2]).update(status="completed")
    elif case == "ends_session":  # the last question answered: the closing message, the end
        SurveySession.objects.filter(pk=contacts[1][2]).update(current_question="visit")
        texts[1] = "15/01/2027"
    items = _items(gw, contacts, texts, "c")
    if case == "two_from_one_number":
        items[2] = (gw, InboundMessage(contacts[0][1], TO, "2", "c-9"))
    elif case == "stored_before":
        do_receive(gw, items[1][1])
    before = (Message.objects.count(), SurveyAnswer.objects.count(), MessagingEvent.objects.count())

    assert None is _together(items)
    assert before == (
        Message.objects.count(),
        SurveyAnswer.objects.count(),
        MessagingEvent.objects.count(),
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_costs_the_same_statements_whatever_its_size(api: Api) -> None:
    gw = GatewayConfig.objects.get(pk=default_gateway(api)["id"])
    survey = create_survey(api, survey_body())
    counts = []
    for size, group in ((2, "4"), (6, "5")):
        contacts = _contacts(api, group, survey)[:size]
        with CaptureQueriesContext(connection) as captured:
            results = _together(_items(gw, contacts, ["1"] * size, group))
        assert (size if SET_BASED else None) == (len(results) if results is not None else None)
        counts.append(len(captured.captured_queries))
        print("\n##".join(q["sql"][:150] for q in captured.captured_queries))
        print("=======")

    assert counts[0] == counts[1], counts


@pytest.mark.django_db(transaction=True)
def test_an_error_in_the_set_based_path_leaves_each_message_to_the_single_path(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = GatewayConfig.objects.get(pk=default_gateway(api)["id"])
    contacts = _contacts(api, "6")[:2]

    def broken(items: Any) -> None:
        raise ValueError("a definition it cannot read")

    monkeypatch.setattr(inbound_worker, "receive_together", broken)
    jobs = [
        inbound_worker.Job(lambda m=m: do_receive(gw, m), parse=lambda m=m: (gw, None, [m]))
        for _, m in _items(gw, contacts, ["1", "1"], "e")
    ]
    worker = inbound_worker.SqliteWorker()

    assert not worker._together(jobs)  # rolled back: the worker then receives each alone
    assert 0 == Message.objects.filter(direction="in").count()
    for job in jobs:
        worker._alone(job)
    assert [None, None] == [job.error for job in jobs]
    assert 2 == SurveyAnswer.objects.count()
