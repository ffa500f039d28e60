"""The message log's writer: one closing rule, the project clock, set-based outcomes."""

from __future__ import annotations

import datetime as dt

import pytest

from casereach.core import bulk
from casereach.core.timeutil import now
from casereach.messaging import log
from casereach.messaging.log import leases
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.projects.actions import lock_project, tick_clock
from casereach.projects.models import Project


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "completed"),
        (["failed"], "error"),
        (["failed", "failed"], "error"),
        (["queued"], None),
        (["failed", "sending"], None),
        (["sent", "failed"], "completed"),
        (["delivered", "received"], "completed"),
    ],
)
def test_one_closing_rule(statuses: list[str], expected: str | None) -> None:
    assert expected == log.outcome(statuses)


def test_the_clock_ticks_strictly_upwards(project: Project) -> None:
    locked = lock_project(project.pk)
    first = tick_clock(locked, 3)
    second = tick_clock(locked)
    assert second > first + dt.timedelta(microseconds=2)
    assert second == Project.objects.get(pk=project.pk).last_indexed_on


def _leased(project: Project, event: MessagingEvent, n: int) -> list[Message]:
    stamp = now()
    subs = [
        log.SubEventDraft(event_id=event.pk, project_id=project.pk, created_on=stamp)
        for _ in range(n)
    ]
    log.add_subevents(lock_project(project.pk), subs)
    drafts = [
        log.MessageDraft(
            project_id=project.pk,
            event_id=event.pk,
            subevent_id=s.pk,
            status="sending",
            lease_token="tok",
            created_on=stamp,
            updated_on=stamp,
        )
        for s in subs
    ]
    log.add_messages(drafts)
    return list(Message.objects.filter(event=event).order_by("id"))


def test_a_dispatcher_batch_is_recorded_and_closed(project: Project) -> None:
    at = now()
    event = log.new_event(project, source="send", created_on=at)
    sent, failed, again = _leased(project, event, 3)
    log.complete_leased(
        [log.Sent(sent.id, "tok", "P1", "G", 7, "default", "555")],
        [log.Failed(failed.id, "tok", "NOPE", "p9", "refused", "G", 7, "default")],
        [log.Requeued(again.id, "tok", at + dt.timedelta(minutes=1), "SLOW", "", 0, 1)],
        at,
    )
    got = {m.id: m for m in Message.objects.filter(event=event)}
    assert ("sent", "P1", "555") == (
        got[sent.id].status,
        got[sent.id].provider_id,
        got[sent.id].sender,
    )
    assert ("failed", "NOPE", "refused") == (
        got[failed.id].status,
        got[failed.id].error_code,
        got[failed.id].error_detail,
    )
    assert ("queued", 1, None) == (
        got[again.id].status,
        got[again.id].unknown_outcomes,
        got[again.id].lease_token,
    )
    log.close_after_send([sent.id, failed.id])
    by_pk = {s.pk: s for s in MessagingSubEvent.objects.filter(event=event)}
    subs = {m.id: by_pk[m.subevent_id or 0] for m in (sent, failed, again)}
    assert ("completed", None) == (subs[sent.id].status, subs[sent.id].error_code)
    assert ("error", "NOPE") == (
        subs[failed.id].status,
        subs[failed.id].error_code,
    )
    assert "in_progress" == subs[again.id].status
    assert "in_progress" == MessagingEvent.objects.get(pk=event.pk).status  # one still queued
    stamps = [
        subs[sent.id].date_last_activity,
        subs[failed.id].date_last_activity,
    ]
    assert stamps[0] != stamps[1]
    assert max(stamps) == Project.objects.get(pk=project.pk).last_indexed_on


def test_an_event_is_closed_once_by_its_replies(project: Project) -> None:
    locked = lock_project(project.pk)
    event = log.new_event(locked, source="keyword")
    sub = log.new_subevent(locked, event, None)
    log.close_event(event, sub, [("failed", "NO_GATEWAY"), ("failed", "OTHER")])
    stored = MessagingSubEvent.objects.get(pk=sub.pk)
    assert ("error", "NO_GATEWAY") == (stored.status, stored.error_code)
    assert ("error", "SUBEVENT_ERROR") == tuple(
        MessagingEvent.objects.filter(pk=event.pk).values_list("status", "error_code").get()
    )
    log.set_event_outcomes([(event.pk, "completed", None)])
    assert "completed" == MessagingEvent.objects.get(pk=event.pk).status


def test_the_dispatcher_statements_name_each_column_once() -> None:
    """The completion statements are generated from the named rows: a row's fields are the
    columns it sets (its key, ``id`` and ``lease_token``, guards the lease), the batch's time
    fills the ``shared`` stamps."""
    columns = {f.column for f in Message._meta.concrete_fields}
    for update in (leases.SENT_UPDATE, leases.FAILED_UPDATE, leases.REQUEUED_UPDATE):
        assert set(update.placeholders) <= columns
        assert ("id", "lease_token") == update.where_fields
        assert len(update.placeholders) == update.sql.count("%s")
    assert (
        "UPDATE messaging_message SET provider_id = %s, gateway_name = %s, gateway_id = %s, "
        "gateway_source = %s, sender = %s, sent_on = COALESCE(sent_on, %s), updated_on = %s, "
        "status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END, "
        "error_code = NULL, lease_until = NULL, lease_token = NULL "
        "WHERE id = %s AND lease_token = %s"
    ) == leases.SENT_UPDATE.sql
    assert (
        "UPDATE messaging_message SET error_code = %s, provider_code = %s, error_detail = %s, "
        "gateway_name = %s, gateway_id = %s, gateway_source = %s, failed_on = %s, "
        "updated_on = %s, status = 'failed', lease_until = NULL, lease_token = NULL, "
        "next_attempt_at = NULL WHERE id = %s AND lease_token = %s AND status = 'sending'"
    ) == leases.FAILED_UPDATE.sql
    assert (
        "UPDATE messaging_message SET next_attempt_at = %s, error_code = %s, "
        "provider_code = %s, attempts = attempts + %s, "
        "unknown_outcomes = unknown_outcomes + %s, updated_on = %s, status = 'queued', "
        "lease_until = NULL, lease_token = NULL "
        "WHERE id = %s AND lease_token = %s AND status = 'sending'"
    ) == leases.REQUEUED_UPDATE.sql
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    row = log.Requeued("m1", "tok", at, "SLOW", "p1", -1, 1)
    (params,) = leases.REQUEUED_UPDATE.params([row], updated_on="T")
    assert (bulk.adapt_datetime(at), "SLOW", "p1", -1, 1, "T", "m1", "tok") == params
