"""The dispatcher: claim due messages with a lease, decide each one, call gateways outside
any transaction, complete them with conditional updates.

One ``Dispatcher.run_once()`` is one batch, which a Celery task runs (it holds no state that
needs a thread of its own). ``serve`` runs ``Dispatcher.stream()`` (``stream.py``): the same
claim, checks, calls and completion, with a new call started as soon as one ends, so that a
slow provider request holds one slot instead of the whole batch.

The steps live in their own modules: ``prepare`` (the pure decision per message),
``breaker`` (circuits and rates), ``calls`` (the gateway calls), ``complete`` (the writes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import httpx

from casereach.core.requests import public_base_url
from casereach.core.timeutil import now
from casereach.gateways.base import GatewayError, InboundMessage, StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.messaging import log as message_log
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.dispatch import breaker
from casereach.messaging.dispatch.calls import GatewayCalls, persistent_types
from casereach.messaging.dispatch.complete import complete
from casereach.messaging.dispatch.daily import DailyCounts
from casereach.messaging.dispatch.jobs import SEND, Job
from casereach.messaging.dispatch.monthly import MonthlyCosts
from casereach.messaging.dispatch.prepare import prepare
from casereach.messaging.dispatch.stream import Stream
from casereach.messaging.inbound import do_receive
from casereach.messaging.presend import PresendContext

log = logging.getLogger(__name__)

SESSION_CHECK_S = 10.0  # how often the dispatcher makes sure SMPP sessions are bound
BATCH_ENV, THREADS_ENV = "CASEREACH_DISPATCH_BATCH", "CASEREACH_DISPATCH_THREADS"
DEFAULT_BATCH, DEFAULT_THREADS = 200, 16


def dispatch_sizes() -> tuple[int, int]:
    """(messages per claim, gateway calls in flight) for every dispatcher of this process,
    from CASEREACH_DISPATCH_BATCH and CASEREACH_DISPATCH_THREADS (200 and 16). A slow
    provider needs more calls in flight: 16 calls of 300 ms each send 53 messages a second.
    ValueError names the variable when a value is not a whole number in range."""

    def read(name: str, default: int, top: int) -> int:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= top:
            raise ValueError(f"{name} must be a whole number from 1 to {top}, not {raw!r}")
        return value

    return read(BATCH_ENV, DEFAULT_BATCH, 5000), read(THREADS_ENV, DEFAULT_THREADS, 1024)


class Dispatcher:
    def __init__(
        self,
        *,
        batch_size: int = 200,
        lease_s: int | None = None,
        concurrency: int = 16,
        http: httpx.Client | None = None,
    ) -> None:
        self.batch_size = batch_size
        # A lease must outlive a batch's gateway calls; a crashed dispatcher's messages are
        # re-claimed once it expires.
        self.lease_s = lease_s or int(os.environ.get("CASEREACH_LEASE_SECONDS", "120"))
        self.concurrency = concurrency
        self.calls = GatewayCalls(concurrency=concurrency, http=http)
        self.daily = DailyCounts()
        self.monthly = MonthlyCosts()
        self._sessions_checked = -SESSION_CHECK_S

    def close(self) -> None:
        self.calls.close()

    def clock(self) -> dt.datetime:
        """The time the dispatcher works at: ``now`` (tests move it)."""
        return now()

    # -- one batch ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Reap expired leases, claim a batch, send it. Returns how many were claimed."""
        # nothing of ours is in flight between batches, even after an error
        self.daily.unsent.clear()
        token, jobs = self.claim_batch()
        if not jobs:
            return 0
        sending = [j for j in jobs if j.action == SEND]
        if sending:
            self.calls.send(sending)
        self.complete(jobs, token)
        return len(jobs)

    def claim_batch(self, limit: int | None = None) -> tuple[str, list[Job]]:
        """Session events, the reaper, then a claimed and checked batch of up to ``limit``
        (``batch_size`` unless given; empty when nothing is due) under a new lease token."""
        at = self.clock()
        self.poll_events()
        message_log.reap(at)
        token = uuid.uuid4().hex
        claimed = message_log.claim_rows(
            limit or self.batch_size, at + dt.timedelta(seconds=self.lease_s), token, at
        )
        if not claimed:
            return token, []
        self.calls.base_url = public_base_url()
        return token, self.prepare(claimed)

    def prepare(self, rows: list[dict[str, Any]]) -> list[Job]:
        """Read what the checks need, decide each message (``prepare.prepare``), then the
        gateways' circuits and rates (``breaker.throttle``)."""
        at = self.clock()
        ctx = PresendContext.load(rows)
        sent_today: dict[int | None, int] = {
            pk: self.daily.sent_today(p, ctx.settings[pk], at, len(rows))
            for pk, p in ctx.projects.items()
        }
        budgets: dict[int | None, tuple[int, int] | None] = {
            pk: self.monthly.budget(p, ctx.settings[pk], at) for pk, p in ctx.projects.items()
        }
        jobs = prepare(rows, ctx, at, sent_today, budgets)
        self.daily.prepared(jobs)
        self.monthly.prepared(jobs)
        breaker.throttle([j for j in jobs if j.action == SEND], at)
        self.daily.sending(jobs)
        return jobs

    def complete(self, jobs: list[Job], token: str) -> None:
        self.daily.completed(jobs)
        complete(jobs, token, self.clock())

    def complete_finished(self, finished: list[tuple[Job, str]]) -> None:
        """Complete finished messages, one conditional update per claim (lease token)."""
        by_token: dict[str, list[Job]] = defaultdict(list)
        for job, token in finished:
            by_token[token].append(job)
        for token, jobs in by_token.items():
            self.complete(jobs, token)

    def drain(self, max_seconds: float = 60.0) -> int:
        """Run batches until nothing is due (tests, demo)."""
        total = 0
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            done = self.run_once()
            total += done
            if done == 0:
                break
        return total

    # -- streaming ---------------------------------------------------------------------------

    def stream(
        self,
        *,
        stop: threading.Event | None = None,
        idle_s: float = 0.5,
        until_idle: bool = False,
        max_seconds: float | None = None,
    ) -> int:
        """Send continuously with ``concurrency`` gateway calls in flight (``stream.py``).

        Returns how many messages were claimed. Stops when ``stop`` is set or after
        ``max_seconds`` (claimed messages not yet sent go back to the queue, without an
        attempt), or with ``until_idle`` once nothing is due; otherwise waits ``idle_s``
        between empty claims."""
        self.daily.unsent.clear()  # nothing of ours is in flight yet
        return Stream(
            self, stop=stop, idle_s=idle_s, until_idle=until_idle, max_seconds=max_seconds
        ).run()

    # -- session-based gateways (SMPP) -------------------------------------------------------

    def open_sessions(self) -> int:
        """Bind every active session-based gateway (SMPP), so that inbound SMS and receipts
        arrive even before the first send. Returns how many are bound; a failed bind is
        logged and tried again at the next check."""
        self._sessions_checked = time.monotonic()
        bound = 0
        for cfg in GatewayConfig.objects.filter(type__in=persistent_types(), is_active=True):
            gateway = self.calls.gateway(cfg)
            try:
                gateway.connect()
                bound += 1
            except GatewayError as exc:
                log.warning("gateway %s: cannot open its session: %s", cfg.name, exc)
        return bound

    def poll_events(self) -> int:
        """Receipts and inbound SMS that session-based gateways (SMPP) collected since last
        time; inbound SMS go through the same handling as webhooks."""
        if time.monotonic() - self._sessions_checked >= SESSION_CHECK_S:
            self.open_sessions()
        applied = 0
        for cfg_id, gateway in self.calls.sessions():
            events = gateway.drain_events()
            if not events:
                continue
            cfg = GatewayConfig.objects.filter(pk=cfg_id).first()
            if cfg is None:
                continue
            for event in events:
                if isinstance(event, StatusUpdate):
                    applied += int(do_apply_status_update(cfg, event))
                elif isinstance(event, InboundMessage):  # deliver_sm that is not a receipt
                    do_receive(cfg, event)
        return applied
