"""Completing a batch: each message's outcome written with a conditional update (only while
the claim's lease token is still its own), each gateway call logged as a send attempt, the
gateways' circuits updated, and the events whose messages are all final closed.

The updates take named rows (``SentRow``, ``FailRow``, ``RequeueRow``) whose fields are the
statement's placeholders, in order: a column is named once, in its row type.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import transaction

from casereach.core import bulk
from casereach.core.timeutil import now
from casereach.gateways.base import PHONE_NUMBER_OPTED_OUT, GatewayError
from casereach.gateways.models import GatewayConfig
from casereach.messaging.dispatch import breaker
from casereach.messaging.dispatch.jobs import FAIL, POSTPONE, Job
from casereach.messaging.models import (
    COMPLETED,
    ERROR,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    Message,
    MessagingEvent,
    MessagingSubEvent,
)
from casereach.messaging.optouts import do_person_opt_out, gateway_scope
from casereach.messaging.outbox import AttemptOutcome, AttemptRow, insert_attempts
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

MSG_TABLE = Message._meta.db_table
SUBEVENT_TABLE = MessagingSubEvent._meta.db_table
TOO_MANY = "TOO_MANY_UNSUCCESSFUL_ATTEMPTS"
Stamp = Any  # a datetime adapted for the driver (``bulk.adapt_datetime``)


def update_statement(
    table: str,
    fields: Sequence[str],
    *,
    key: Sequence[str],
    exprs: Mapping[str, str] | None = None,
    fixed: Sequence[str] = (),
    condition: str = "",
) -> str:
    """``UPDATE table SET field = %s, … WHERE key = %s AND …`` with one placeholder per field
    of a row type, in its order: the key fields (its last ones) in the WHERE clause, the
    others set (through ``exprs[field]``, an expression with one ``%s``, when given), then
    the ``fixed`` assignments and the extra ``condition``."""
    if tuple(fields[-len(key) :]) != tuple(key):
        raise ValueError(f"the key fields {key} must come last in {fields}")
    exprs = exprs or {}
    sets = [f"{f} = {exprs.get(f, '%s')}" for f in fields[: -len(key)]] + list(fixed)
    where = [f"{k} = %s" for k in key] + ([condition] if condition else [])
    return f"UPDATE {table} SET {', '.join(sets)} WHERE {' AND '.join(where)}"


class SentRow(NamedTuple):
    """The provider accepted the message."""

    provider_id: str | None
    sent_on: Stamp  # kept when already set (a retry of a message sent before)
    gateway_name: str
    gateway_id: int | None
    gateway_source: str
    sender: str
    updated_on: Stamp
    id: str
    lease_token: str


class FailRow(NamedTuple):
    """The message failed for good (a check, the provider, or too many attempts)."""

    error_code: str | None
    provider_code: str
    error_detail: str
    failed_on: Stamp
    gateway_name: str
    gateway_id: int | None
    gateway_source: str
    updated_on: Stamp
    id: str
    lease_token: str


class RequeueRow(NamedTuple):
    """Back in the queue until ``next_attempt_at``: a retry, or a postponed message (which
    gives its attempt back: ``attempts`` -1)."""

    next_attempt_at: Stamp
    error_code: str | None
    provider_code: str
    attempts: int  # added
    unknown_outcomes: int  # added
    updated_on: Stamp
    id: str
    lease_token: str


KEY = ("id", "lease_token")
RELEASE = ("lease_until = NULL", "lease_token = NULL")
STILL_SENDING = f"status = '{SENDING}'"
SENT_SQL = update_statement(
    MSG_TABLE,
    SentRow._fields,
    key=KEY,
    exprs={"sent_on": "COALESCE(sent_on, %s)"},
    # a delivery report may have overtaken the completion: the status only moves forward
    fixed=(
        f"status = CASE WHEN status = '{SENDING}' THEN '{SENT}' ELSE status END",
        "error_code = NULL",
        *RELEASE,
    ),
)
FAIL_SQL = update_statement(
    MSG_TABLE,
    FailRow._fields,
    key=KEY,
    fixed=(f"status = '{FAILED}'", *RELEASE, "next_attempt_at = NULL"),
    condition=STILL_SENDING,
)
REQUEUE_SQL = update_statement(
    MSG_TABLE,
    RequeueRow._fields,
    key=KEY,
    exprs={"attempts": "attempts + %s", "unknown_outcomes": "unknown_outcomes + %s"},
    fixed=(f"status = '{QUEUED}'", *RELEASE),
    condition=STILL_SENDING,
)


class RetryDelays:
    """Each project's retry delays (its settings read once per batch)."""

    def __init__(self) -> None:
        self._settings: dict[int | None, ProjectSettings] = {}

    def after(self, row: Mapping[str, Any], err: GatewayError) -> dt.timedelta | None:
        """How long until the next attempt; None when the message had all its attempts."""
        s = self._settings.get(row["project_id"])
        if s is None:
            owner = Project.objects.filter(pk=row["project_id"]).first()
            s = self._settings[row["project_id"]] = (
                effective_settings(owner.settings) if owner else ProjectSettings()
            )
        delays = s.retry_delays_minutes
        if row["attempts"] > len(delays):
            return None
        delay = dt.timedelta(minutes=delays[row["attempts"] - 1])
        if err.retry_after is not None:
            delay = max(delay, dt.timedelta(seconds=err.retry_after))
        return delay


@dataclass
class Outcomes:
    """What completing a batch writes, gathered job by job (``add``) before one transaction
    writes it all (``write``)."""

    at: dt.datetime
    token: str
    stamp: Stamp = None
    sent: list[SentRow] = field(default_factory=list)
    failed: list[FailRow] = field(default_factory=list)
    requeued: list[RequeueRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    # gateway → [successes, retryable failures], for its circuit
    circuits: dict[int, list[int]] = field(default_factory=dict)
    opt_outs: list[tuple[str, GatewayConfig]] = field(default_factory=list)
    final_ids: list[str] = field(default_factory=list)
    delays: RetryDelays = field(default_factory=RetryDelays)

    def __post_init__(self) -> None:
        self.stamp = bulk.adapt_datetime(self.at)

    def add(self, j: Job) -> None:
        if j.action == FAIL:
            self._fail(j, j.error_code)
        elif j.action == POSTPONE:  # not an attempt: give the attempt back
            self._requeue(j, j.until, j.error_code, attempts=-1)
        elif j.result is not None:
            self._sent(j)
        else:
            self._failed_call(j)

    def _sent(self, j: Job) -> None:
        assert j.cfg is not None and j.result is not None
        self.sent.append(
            SentRow(
                provider_id=j.result.provider_id,
                sent_on=self.stamp,
                gateway_name=j.cfg.name,
                gateway_id=j.cfg.pk,
                gateway_source=j.gateway_source,
                sender=j.sender,
                updated_on=self.stamp,
                id=j.row["id"],
                lease_token=self.token,
            )
        )
        self._attempt(j, "sent")
        self.circuits.setdefault(j.cfg.pk, [0, 0])[0] += 1
        self.final_ids.append(j.row["id"])

    def _failed_call(self, j: Job) -> None:
        """The gateway call raised: a retry (or the last one failed), or a refusal."""
        err = j.error
        assert j.cfg is not None and err is not None
        code = j.error_code or err.code
        if not err.retryable:
            self._attempt(j, "failed")
            self._fail(j, code, err)
            if code == PHONE_NUMBER_OPTED_OUT and j.row["phone_number"]:
                self.opt_outs.append((j.row["phone_number"], j.cfg))
            return
        self.circuits.setdefault(j.cfg.pk, [0, 0])[1] += 1
        self._attempt(j, "unknown" if err.outcome_unknown else "retry")
        delay = self.delays.after(j.row, err)
        if delay is None:
            self._fail(j, TOO_MANY, err)
            return
        unknown = 1 if err.outcome_unknown else 0
        self._requeue(j, self.at + delay, code, err.provider_code[:64], unknown=unknown)

    def _fail(self, j: Job, code: str | None, err: GatewayError | None = None) -> None:
        self.failed.append(
            FailRow(
                error_code=code,
                provider_code=err.provider_code[:64] if err else "",
                error_detail=err.detail[:500] if err else "",
                failed_on=self.stamp,
                gateway_name=j.cfg.name if j.cfg else j.row["gateway_name"],
                gateway_id=j.cfg.pk if j.cfg else j.row["gateway_id"],
                gateway_source=j.gateway_source,
                updated_on=self.stamp,
                id=j.row["id"],
                lease_token=self.token,
            )
        )
        self.final_ids.append(j.row["id"])

    def _requeue(
        self,
        j: Job,
        until: dt.datetime | None,
        code: str | None,
        provider_code: str = "",
        *,
        attempts: int = 0,
        unknown: int = 0,
    ) -> None:
        self.requeued.append(
            RequeueRow(
                next_attempt_at=bulk.adapt_datetime(until),
                error_code=code,
                provider_code=provider_code,
                attempts=attempts,
                unknown_outcomes=unknown,
                updated_on=self.stamp,
                id=j.row["id"],
                lease_token=self.token,
            )
        )

    def _attempt(self, j: Job, outcome: AttemptOutcome) -> None:
        err = j.error
        detail = err.detail if err else (j.result.detail if j.result else "")
        self.attempts.append(
            AttemptRow(
                message_id=j.row["id"],
                number=j.row["attempts"],
                gateway_name=j.cfg.name if j.cfg else "",
                outcome=outcome,
                error_code=(j.error_code or err.code) if err else None,
                provider_code=err.provider_code[:64] if err else "",
                detail=detail[:500],
                request=j.request_log,
                response=j.response_log,
                duration_ms=j.duration_ms,
                created_on=self.stamp,
            )
        )

    def write(self, jobs: list[Job]) -> None:
        with transaction.atomic():
            bulk.execute_many(SENT_SQL, self.sent)
            bulk.execute_many(FAIL_SQL, self.failed)
            bulk.execute_many(REQUEUE_SQL, self.requeued)
            insert_attempts(self.attempts)
            for number, cfg in self.opt_outs:  # the person's own STOP, told by the provider
                do_person_opt_out(number, gateway_scope(cfg), source=f"gateway:{cfg.name}")
            breaker.record_outcomes(
                {gw: (ok, failed) for gw, (ok, failed) in self.circuits.items()}, self.at
            )
            close_events(self.final_ids, jobs)


def complete(jobs: list[Job], token: str, at: dt.datetime) -> None:
    """Write the outcome of a claim's jobs (all under lease ``token``) as of ``at``."""
    out = Outcomes(at, token)
    for j in jobs:
        out.add(j)
    out.write(jobs)


def close_events(final_ids: list[str], jobs: list[Job]) -> None:
    """Close sub-events and events whose messages are all final: a fixed number of
    statements per batch (sub-events stamped with strictly increasing activity times)."""
    if not final_ids:
        return
    if not any(j.row["event_id"] or j.row["subevent_id"] for j in jobs):
        return  # messages outside the event log (none of the API's sends)
    msgs: list[dict[str, Any]] = [
        dict(m)
        for m in Message.objects.filter(bulk.is_in("id", final_ids)).values(
            "subevent_id", "event_id", "project_id", "status", "error_code"
        )
    ]
    _close_subevents(msgs)
    _close_events(sorted({m["event_id"] for m in msgs if m["event_id"]}))


def _close_subevents(msgs: list[dict[str, Any]]) -> None:
    by_project: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in msgs:
        if m["subevent_id"]:
            by_project[m["project_id"]].append(m)
    rows: list[tuple[Any, ...]] = []
    for project_id, group in by_project.items():
        project = lock_project(project_id)
        tick = now()
        if project.last_indexed_on is not None:
            tick = max(tick, project.last_indexed_on + dt.timedelta(microseconds=1))
        for sub in group:
            failed = sub["status"] == FAILED
            rows.append(
                (
                    ERROR if failed else COMPLETED,
                    sub["error_code"] if failed else None,
                    bulk.adapt_datetime(tick),
                    sub["subevent_id"],
                )
            )
            tick += dt.timedelta(microseconds=1)
        project.last_indexed_on = tick - dt.timedelta(microseconds=1)
        project.save(update_fields=["last_indexed_on"])
    bulk.execute_many(
        f"UPDATE {SUBEVENT_TABLE} SET status = %s, error_code = %s, "
        "date_last_activity = %s WHERE id = %s",
        rows,
    )


def _close_events(event_ids: list[int]) -> None:
    statuses: dict[int, set[str]] = defaultdict(set)
    for event_id, status in Message.objects.filter(event_id__in=event_ids).values_list(
        "event_id", "status"
    ):
        statuses[event_id].add(status)
    failed_events = [e for e, st in statuses.items() if st == {FAILED}]
    completed = [e for e, st in statuses.items() if st != {FAILED} and not st & {QUEUED, SENDING}]
    if failed_events:
        MessagingEvent.objects.filter(pk__in=failed_events).update(
            status=ERROR, error_code="SUBEVENT_ERROR"
        )
    if completed:
        MessagingEvent.objects.filter(pk__in=completed).update(status=COMPLETED)
