"""Completing a batch: each message's outcome written through the message log
(``log.complete_leased``: conditional updates, applied only while the claim's lease token is
still its own), each gateway call logged as a send attempt, the gateways' circuits updated,
and the events whose messages are all final closed (``log.close_after_send``).

The outcomes are named rows (``log.Sent``, ``log.Failed``, ``log.Requeued``,
``log.AttemptDraft``), gathered job by job before one transaction writes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from casereach.gateways.base import PHONE_NUMBER_OPTED_OUT, GatewayError
from casereach.gateways.models import GatewayConfig
from casereach.messaging import chains, log
from casereach.messaging.dispatch import breaker
from casereach.messaging.dispatch.jobs import FAIL, POSTPONE, Job
from casereach.messaging.failure_hooks import failed_for_good
from casereach.messaging.optouts import do_person_opt_out, gateway_scope
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

TOO_MANY = "TOO_MANY_UNSUCCESSFUL_ATTEMPTS"


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
    sent: list[log.Sent] = field(default_factory=list)
    failed: list[log.Failed] = field(default_factory=list)
    requeued: list[log.Requeued] = field(default_factory=list)
    attempts: list[log.AttemptDraft] = field(default_factory=list)
    # gateway → [successes, retryable failures], for its circuit
    circuits: dict[int, list[int]] = field(default_factory=dict)
    opt_outs: list[tuple[str, GatewayConfig]] = field(default_factory=list)
    final_ids: list[str] = field(default_factory=list)
    # Failed attempts of fallback chains with a channel left: id → error code.
    chain_failures: dict[str, str | None] = field(default_factory=dict)
    # Messages of the event log that failed for good: (id, error code), for the conversations
    # they belong to (``failure_hooks``).
    logged_failures: list[tuple[str, str | None]] = field(default_factory=list)
    delays: RetryDelays = field(default_factory=RetryDelays)

    def add(self, j: Job) -> None:
        if j.action == FAIL:
            self._fail(j, j.error_code)
        elif j.action == POSTPONE:  # not an attempt: give the attempt back
            assert j.until is not None
            self._requeue(j, j.until, j.error_code, attempts=-1)
        elif j.result is not None:
            self._sent(j)
        else:
            self._failed_call(j)

    def _sent(self, j: Job) -> None:
        assert j.cfg is not None and j.result is not None
        self.sent.append(
            log.Sent(
                id=j.row["id"],
                lease_token=self.token,
                provider_id=j.result.provider_id,
                gateway_name=j.cfg.name,
                gateway_id=j.cfg.pk,
                gateway_source=j.gateway_source,
                sender=j.sender,
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
            log.Failed(
                id=j.row["id"],
                lease_token=self.token,
                error_code=code,
                provider_code=err.provider_code[:64] if err else "",
                error_detail=err.detail[:500] if err else "",
                gateway_name=j.cfg.name if j.cfg else j.row["gateway_name"],
                gateway_id=j.cfg.pk if j.cfg else j.row["gateway_id"],
                gateway_source=j.gateway_source,
            )
        )
        self.final_ids.append(j.row["id"])
        if j.row.get("subevent_id"):
            self.logged_failures.append((j.row["id"], code))
        if j.row.get("chain_next"):
            self.chain_failures[j.row["id"]] = code

    def _requeue(
        self,
        j: Job,
        until: dt.datetime,
        code: str | None,
        provider_code: str = "",
        *,
        attempts: int = 0,
        unknown: int = 0,
    ) -> None:
        self.requeued.append(
            log.Requeued(
                id=j.row["id"],
                lease_token=self.token,
                next_attempt_at=until,
                error_code=code,
                provider_code=provider_code,
                attempts=attempts,
                unknown_outcomes=unknown,
            )
        )

    def _attempt(self, j: Job, outcome: log.AttemptOutcome) -> None:
        err = j.error
        detail = err.detail if err else (j.result.detail if j.result else "")
        self.attempts.append(
            log.AttemptDraft(
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
                created_on=self.at,
            )
        )

    def write(self, jobs: list[Job]) -> None:
        with transaction.atomic():
            log.complete_leased(self.sent, self.failed, self.requeued, self.at)
            log.add_attempts(self.attempts)
            final_ids, failures = self.final_ids, self.logged_failures
            if self.chain_failures:  # the chains move on: their sub-events stay open
                moved = set(chains.move_on(self.chain_failures, self.at))
                final_ids = [i for i in final_ids if i not in moved]
                failures = [f for f in failures if f[0] not in moved]
            for number, cfg in self.opt_outs:  # the person's own STOP, told by the provider
                do_person_opt_out(number, gateway_scope(cfg), source=f"gateway:{cfg.name}")
            breaker.record_outcomes(
                {gw: (ok, failed) for gw, (ok, failed) in self.circuits.items()}, self.at
            )
            if any(j.row["event_id"] or j.row["subevent_id"] for j in jobs):
                # (none of the API's sends is in the event log: no statement for them)
                log.close_after_send(final_ids)
            failed_for_good(failures, self.at)


def complete(jobs: list[Job], token: str, at: dt.datetime) -> None:
    """Write the outcome of a claim's jobs (all under lease ``token``) as of ``at``."""
    out = Outcomes(at, token)
    for j in jobs:
        out.add(j)
    out.write(jobs)
