"""The bulk start (``surveys.sessions.bulk``) against N single starts (``do_start_survey``):
the same sessions, events, sub-events and messages, field by field, for the same contacts —
started, queued behind a busy pair or a shared phone, ended at once (opted out), refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from casereach.contacts.models import Contact
from casereach.core.errors import CasereachError
from casereach.core.timeutil import now
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.projects.models import Project
from casereach.surveys.models import Survey, SurveySession
from casereach.surveys.sessions import do_start_survey
from casereach.surveys.sessions.bulk import start_surveys
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.surveys import survey_body
from casereach.testing.world import Api

S = "/a/{project}/api/surveys/v1/surveys"
SESSION_FIELDS = (
    "survey_id",
    "survey_name",
    "survey_version",
    "contact_id",
    "case_id",
    "gateway_id",
    "gateway_name",
    "phone_number",
    "language",
    "status",
    "detail",
    "current_question",
    "retries",
    "reask_count",
    "next_reask_at",
    "expires_at",
    "reply_due_at",
    "next_timer_at",
    "created_on",
    "started_on",
    "ended_on",
    "triggered_by",
)
MESSAGE_FIELDS = (
    "direction",
    "channel",
    "contact_id",
    "contact_type",
    "phone_number",
    "text",
    "language",
    "segments",
    "encoding",
    "gateway_name",
    "gateway_id",
    "gateway_source",
    "status",
    "error_code",
    "allow_opted_out",
)


class Rollback(Exception):
    pass


def _snapshot(before: set[int]) -> dict[str, Any]:
    """What the start wrote, without ids and clock stamps: the sessions in order, and for
    each its question-1 event, sub-event and message."""
    out: list[dict[str, Any]] = []
    for s in SurveySession.objects.exclude(pk__in=before).order_by("id"):
        row: dict[str, Any] = {f: getattr(s, f) for f in SESSION_FIELDS}
        event = MessagingEvent.objects.filter(pk=s.event_id or 0).first()
        row["event_is_sessions"] = event is not None and event.source_id == str(s.pk)
        if event is not None:
            row["event"] = (event.source, event.status, event.error_code, event.triggered_by)
            row["subevents"] = [
                (
                    *(x.contact_id, x.contact_type, x.recipient_name, x.status, x.error_code),
                    *(x.survey_session_id == s.pk, x.survey_form, x.survey_status),
                )
                for x in MessagingSubEvent.objects.filter(event=event)
            ]
            row["messages"] = [
                {f: getattr(m, f) for f in MESSAGE_FIELDS}
                for m in Message.objects.filter(event=event)
            ]
        out.append(row)
    events = MessagingEvent.objects.filter(source="survey").count()
    return {"sessions": out, "survey_events": events}


def _run(starter: Any, before: set[int]) -> dict[str, Any]:
    """Run ``starter`` in a savepoint, snapshot what it wrote, roll it back."""
    found: dict[str, Any] = {}
    try:
        with transaction.atomic():
            found["refused"] = starter()
            found.update(_snapshot(before))
            raise Rollback
    except Rollback:
        pass
    return found


def test_a_bulk_start_writes_what_n_single_starts_write(api: Api) -> None:
    gw = default_gateway(api)
    amina = case(api, name="Amina", case_type="mother", phone="254712000001", language_code="sw")
    zawadi = case(api, name="Zawadi", case_type="mother", phone="254712000002")
    busy = case(api, name="Busy", case_type="mother", phone="254712000003")
    shared_a = case(api, name="Shared A", case_type="mother", phone="254712000004")
    shared_b = case(api, name="Shared B", case_type="mother", phone="254712000004")
    opted = case(api, name="Opted", case_type="mother", phone="254712000005")
    nophone = case(api, name="Nophone", case_type="mother")
    closed = case(api, name="Closed", case_type="mother", phone="254712000006")
    assert 200 == inbound(gw, "STOP", sender="254712000005").status_code
    assert 200 == api.put(f"/a/{{project}}/api/case/v2/{closed}/", {"close": True}).status
    first = api.post(S, survey_body(name="First"))
    weekly = api.post(S, survey_body(name="Weekly"))
    assert 201 == api.post(f"{S}/{first.body['id']}/start", {"contact_id": busy}).status
    project = Project.objects.get(pk=api.project.pk)  # with the routes just set
    survey = Survey.objects.get(pk=weekly.body["id"])
    ids = [amina, zawadi, busy, shared_a, shared_b, opted, nophone, closed, amina]
    at = now() - dt.timedelta(minutes=1)
    before = set(SurveySession.objects.values_list("pk", flat=True))

    def bulk() -> list[str | None]:
        outcomes = start_surveys(project, survey.pk, ids, triggered_by="alert:7", at=at)
        return [o.error_code if o.session_id is None else None for o in outcomes]

    def singles() -> list[str | None]:
        refused: list[str | None] = []
        for contact_id in ids:
            contact = Contact.objects.get(project=project, contact_id=contact_id)
            try:
                do_start_survey(project, survey, contact, triggered_by="alert:7", at=at)
                refused.append(None)
            except CasereachError as exc:
                refused.append(exc.message)
        return refused

    one_by_one = _run(singles, before)
    at_once = _run(bulk, before)

    assert one_by_one["sessions"] == at_once["sessions"]
    assert one_by_one["survey_events"] == at_once["survey_events"]
    assert [None, None, None, None, None, None, "NO_PHONE_NUMBER", "CONTACT_IS_INACTIVE", None] == (
        at_once["refused"]
    )
    assert [s is not None for s in one_by_one["refused"]] == [
        s is not None for s in at_once["refused"]
    ]
    # The cases the comparison covers (so that it cannot pass on an empty world).
    assert [
        ("active", "took"),
        ("active", "took"),
        ("queued", None),
        ("active", "took"),
        ("queued", None),
        ("opted_out", "took"),
        ("queued", None),  # Amina asked twice: the second waits behind the first
    ] == [(s["status"], s["current_question"]) for s in at_once["sessions"]]
    assert (
        "Habari Amina. Umekunywa dawa leo? 1 Ndiyo 2 Hapana"
        == (at_once["sessions"][0]["messages"][0]["text"])
    )
    assert all(s["event_is_sessions"] for s in at_once["sessions"] if "event" in s)
    assert (True, {"form_definition_id": str(survey.pk), "form_name": "Weekly"}, "in-progress") == (
        at_once["sessions"][0]["subevents"][0][5:]
    )
