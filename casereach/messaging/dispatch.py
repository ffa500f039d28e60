"""The dispatcher: claim due messages with a lease, re-check them, call gateways outside any
transaction, complete them with conditional updates.

One ``Dispatcher.run_once()`` is one batch, which a Celery task runs (it holds no state that
needs a thread of its own). ``serve`` runs ``Dispatcher.stream()``: the same claim, checks,
calls and completion, with a new call started as soon as one ends, so that a slow provider
request holds one slot instead of the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from django.db import transaction
from django.db.models import Q

from casereach.core import bulk
from casereach.core.requests import public_base_url
from casereach.core.timeutil import now
from casereach.gateways import netpolicy
from casereach.gateways.base import (
    Exchange,
    Gateway,
    GatewayError,
    InboundMessage,
    OutgoingMessage,
    SendResult,
    StatusUpdate,
)
from casereach.gateways.models import GatewayConfig, GatewayState, RateWindow
from casereach.gateways.queries import (
    instantiate,
)
from casereach.gateways.registry import gateway_class
from casereach.gateways.wire import WirePool
from casereach.messaging import outbox
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.inbound import do_receive
from casereach.messaging.models import (
    Message,
    MessagingEvent,
    MessagingSubEvent,
    SendAttempt,
)
from casereach.messaging.optouts import do_person_opt_out, gateway_scope
from casereach.messaging.presend import PresendContext, check
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

log = logging.getLogger(__name__)

CIRCUIT_THRESHOLD = 5
CIRCUIT_BASE_S = 30
CIRCUIT_MAX_S = 300
MSG_TABLE = Message._meta.db_table
ATTEMPT_TABLE = SendAttempt._meta.db_table
SUBEVENT_TABLE = MessagingSubEvent._meta.db_table
ATTEMPT_COLUMNS = (
    "message_id",
    "number",
    "gateway_name",
    "outcome",
    "error_code",
    "provider_code",
    "detail",
    "request",
    "response",
    "duration_ms",
    "created_on",
)
PERSISTENT_TYPES = frozenset({"smpp"})


STREAM_FLUSH_S = 0.1  # how often ``stream`` completes the messages whose calls ended
SENT_COUNT_TTL_S = 5.0  # how long a project's sent-today count is trusted (see _sent_today)
SESSION_CHECK_S = 10.0  # how often the dispatcher makes sure SMPP sessions are bound


@dataclass
class Job:
    """One claimed message and what to do with it."""

    row: dict[str, Any]
    action: str = "send"  # send | fail | postpone
    error_code: str | None = None
    until: dt.datetime | None = None
    gateway: GatewayConfig | None = None
    sender: str = ""
    gateway_source: str = ""
    result: SendResult | None = None
    error: GatewayError | None = None
    duration_ms: int = 0
    request_log: str = ""
    response_log: str = ""
    unsent: bool = False  # counted in Dispatcher._unsent until completed


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


MINUTE = dt.timedelta(minutes=1)


def per_minute(gw: GatewayConfig, group: list[Job], at: dt.datetime) -> list[Job]:
    """CommCare's per-minute limit: the first ``rate_limit_per_minute`` segments of a minute
    go at once (a burst), the rest are postponed to the minutes after, in order. The minute
    starts at its first send; each sender number has its own minute when the gateway limits
    per sender. Runs in ``_throttle``'s transaction; returns the jobs that may still send.
    """
    limit = gw.rate_limit_per_minute or 0
    by_sender: dict[str, list[Job]] = defaultdict(list)
    for j in group:
        by_sender[j.sender if gw.rate_limit_per_sender else ""].append(j)
    windows = {
        w.sender: w
        for w in RateWindow.objects.select_for_update().filter(
            gateway_id=gw.pk, sender__in=list(by_sender)
        )
    }
    allowed: list[Job] = []
    for sender, jobs in by_sender.items():
        window = windows.get(sender)
        if window is None:
            window = RateWindow(gateway_id=gw.pk, sender=sender, started_on=at, sent=0)
        elif at >= window.started_on + MINUTE:
            window.started_on, window.sent = at, 0
        ahead = 0
        for j in jobs:
            cost = min(limit, max(1, int(j.row["segments"] or 1)))
            if not ahead and window.sent + cost <= limit:
                window.sent += cost
                allowed.append(j)
            else:
                ahead += cost
                minutes = -(-(ahead - max(0, limit - window.sent)) // limit)  # ceiling
                j.action, j.until = "postpone", window.started_on + MINUTE * max(1, minutes)
        window.save()
    return allowed


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
        # One client per dispatch thread: a shared client's connection-pool lock was the
        # bottleneck (a third of all samples under 32 threads).
        self._shared_http = http
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._thread_gateways: list[Gateway] = []  # closed with the dispatcher (SMTP sessions)
        self._clients_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dispatch")
        self._persistent: dict[tuple[int, str], Gateway] = {}
        self._sessions_checked = -SESSION_CHECK_S
        # Gateway types with a lean-client path (``send_async``: the ``http`` type) are sent
        # from an event loop that this object owns and runs in whichever thread calls
        # ``run_once``, one batch at a time; keep-alive connections live in ``_wire``
        # between batches. Other types go through the thread pool as before.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wire: WirePool | None = None
        self._wire_gateways: dict[tuple[int, str], Gateway | None] = {}
        self._base_url = ""  # CASEREACH_PUBLIC_URL, read once per batch
        # project → (start of its day, when counted, messages sent that day): see _sent_today
        self._sent_counts: dict[int, tuple[dt.datetime, float, int]] = {}
        # project → messages this dispatcher prepared to send and has not completed yet: a
        # fresh daily count cannot see them (``stream`` prepares while earlier sends run)
        self._unsent: dict[int, int] = defaultdict(int)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for gw in [*self._persistent.values(), *self._thread_gateways]:
            gw.close()
        for client in self._clients:
            client.close()
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        if self._loop is not None:
            self._loop.run_until_complete(asyncio.sleep(0))  # let transports finish closing
            self._loop.close()
            self._loop = None

    @property
    def http(self) -> httpx.Client:
        """This thread's HTTP client (keep-alive connections are reused per thread)."""
        if self._shared_http is not None:
            return self._shared_http
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = netpolicy.make_client(
                httpx.Timeout(15.0, connect=5.0),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    # -- one batch ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Reap expired leases, claim a batch, send it. Returns how many were claimed."""
        self._unsent.clear()  # nothing of ours is in flight between batches, even after an error
        token, jobs = self._claim_batch()
        if not jobs:
            return 0
        sending = [j for j in jobs if j.action == "send"]
        if sending:
            self._send(sending)
        self._complete(jobs, token)
        return len(jobs)

    def _claim_batch(self) -> tuple[str, list[Job]]:
        """Session events, the reaper, then a claimed and checked batch (empty when nothing is
        due) under a new lease token."""
        at = now()
        self.poll_events()
        outbox.reap(at)
        token = uuid.uuid4().hex
        claimed = outbox.claim_rows(
            self.batch_size, at + dt.timedelta(seconds=self.lease_s), token, at
        )
        if not claimed:
            return token, []
        self._base_url = public_base_url()
        return token, self._prepare(claimed)

    # -- streaming: the embedded loop ----------------------------------------------------------

    def stream(
        self,
        *,
        stop: threading.Event | None = None,
        idle_s: float = 0.5,
        until_idle: bool = False,
        max_seconds: float | None = None,
    ) -> int:
        """Send continuously with ``concurrency`` gateway calls in flight: a new call starts
        as soon as one ends, and finished messages are completed every ``STREAM_FLUSH_S``.

        ``run_once`` waits for the slowest call of its batch before it claims the next one, so
        one provider request that hangs until its timeout stalls everything behind it; here
        it holds one slot. The steps are those of ``run_once`` (claim under a lease, the
        checks, the call, the conditional completion), all in the calling thread; a batch is
        claimed whenever fewer than ``concurrency`` claimed messages wait for a slot.

        Returns how many messages were claimed. Stops when ``stop`` is set or after
        ``max_seconds`` (claimed messages not yet sent go back to the queue, without an
        attempt), or with ``until_idle`` once nothing is due; otherwise waits ``idle_s``
        between empty claims."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        self._unsent.clear()  # nothing of ours is in flight yet
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        window = max(self.concurrency, 1)
        if self._wire is None:
            self._wire = WirePool(max_idle_per_origin=window)
        # The database work (claims, completions) runs here, between turns of the event loop,
        # never inside it: Django refuses database calls from a running loop. Inside the loop
        # up to ``window`` workers take claimed messages one after the other; the loop hands
        # back when claimed messages run low, every worker is done, or it is time to complete.
        waiting: deque[tuple[Job, str]] = deque()
        workers: set[asyncio.Task[None]] = set()
        finished: list[tuple[Job, str]] = []
        waker: list[asyncio.Future[None]] = []  # what the loop runs until, while it runs
        flushed = time.monotonic()
        next_claim = 0.0  # monotonic time of the next claim (later after an empty one)
        drained = False  # the last claim found nothing due
        total = 0

        def stopping() -> bool:
            return (stop is not None and stop.is_set()) or (
                deadline is not None and time.monotonic() >= deadline
            )

        def give_back() -> None:
            """Claimed messages not yet sent go back to the queue, without an attempt."""
            while waiting:
                job, token = waiting.popleft()
                job.action, job.until, job.error_code = "postpone", now(), None
                finished.append((job, token))

        def wake() -> None:
            if waker:
                _wake(waker[0])

        async def work() -> None:
            while waiting:
                job, token = waiting.popleft()
                await self._call_job(loop, job)
                finished.append((job, token))
                if len(waiting) < window and not drained:
                    wake()  # time to claim more

        def start_workers() -> None:
            while waiting and len(workers) < window:
                task = loop.create_task(work())
                workers.add(task)
                task.add_done_callback(worker_done)

        def worker_done(task: asyncio.Task[None]) -> None:
            workers.discard(task)
            if not workers:
                wake()

        try:
            while True:
                if stopping():
                    give_back()
                elif len(waiting) < window and time.monotonic() >= next_claim:
                    token, jobs = self._claim_batch()
                    drained = not jobs
                    if drained:
                        next_claim = time.monotonic() + idle_s
                    total += len(jobs)
                    for job in jobs:
                        (waiting if job.action == "send" else finished).append((job, token))
                start_workers()
                if finished and (
                    not workers
                    or time.monotonic() - flushed >= STREAM_FLUSH_S
                    or len(finished) >= self.batch_size
                ):
                    done, finished[:] = list(finished), []
                    self._complete_finished(done)
                    flushed = time.monotonic()
                if workers:
                    pending = loop.create_future()
                    waker[:] = [pending]
                    timer = loop.call_later(STREAM_FLUSH_S, _wake, pending)
                    try:
                        loop.run_until_complete(pending)
                    finally:
                        timer.cancel()
                        waker.clear()
                    continue
                if waiting or finished:
                    continue
                if stopping() or (until_idle and drained):
                    return total
                pause = max(0.0, next_claim - time.monotonic())
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
        finally:
            # After an error (a failed claim or completion) the calls in flight still finish,
            # claimed messages not yet sent go back to the queue, and what can be completed
            # is; the rest is reaped when its lease ends.
            give_back()
            if workers:
                loop.run_until_complete(asyncio.gather(*workers, return_exceptions=True))
            if finished:
                with contextlib.suppress(Exception):
                    self._complete_finished(list(finished))

    async def _call_job(self, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        """One gateway call: the lean client for types that have one, else the thread pool."""
        gw = self._wire_gateway(job.gateway) if self._shared_http is None else None
        if gw is None:
            await loop.run_in_executor(self.pool, self._call, job)
            return
        if self._wire is None:
            self._wire = WirePool(max_idle_per_origin=max(self.concurrency, 1))
        await self._call_wire(job, gw, self._wire)

    def _complete_finished(self, finished: list[tuple[Job, str]]) -> None:
        """Complete finished messages, one conditional update per claim (lease token)."""
        by_token: dict[str, list[Job]] = defaultdict(list)
        for job, token in finished:
            by_token[token].append(job)
        for token, jobs in by_token.items():
            self._complete(jobs, token)

    def open_sessions(self) -> int:
        """Bind every active session-based gateway (SMPP), so that inbound SMS and receipts
        arrive even before the first send. Returns how many are bound; a failed bind is
        logged and tried again at the next check."""
        self._sessions_checked = time.monotonic()
        bound = 0
        for cfg in GatewayConfig.objects.filter(type__in=PERSISTENT_TYPES, is_active=True):
            gateway = self._gateway(cfg)
            connect = getattr(gateway, "connect", None)
            try:
                if connect is not None:
                    connect()
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
        for (gw_id, _), gateway in list(self._persistent.items()):
            drain_events = getattr(gateway, "drain_events", None)
            if drain_events is None:
                continue
            events = drain_events()
            if not events:
                continue
            cfg = GatewayConfig.objects.filter(pk=gw_id).first()
            if cfg is None:
                continue
            for event in events:
                if isinstance(event, StatusUpdate):
                    applied += int(do_apply_status_update(cfg, event))
                elif isinstance(event, InboundMessage):  # deliver_sm that is not a receipt
                    do_receive(cfg, event)
        return applied

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

    # -- checks ------------------------------------------------------------------------------

    def _prepare(self, rows: list[dict[str, Any]]) -> list[Job]:
        """The checks of SPEC 4.3 before the gateway call (``presend.check``, the function the
        dry run and upcoming sends run too), for a batch of claimed rows."""
        at = now()
        ctx = PresendContext.load(rows)
        batch = len(rows)
        sent_today: dict[int | None, int] = {
            pk: self._sent_today(p, ctx.settings[pk], at, batch) for pk, p in ctx.projects.items()
        }
        sent_today[None] = 0
        jobs: list[Job] = []
        for row in rows:
            s = ctx.settings[row["project_id"]]
            verdict = check(
                ctx, row, at, limit_reached=sent_today[row["project_id"]] >= s.daily_limit
            )
            job = Job(
                row,
                action=verdict.action,
                error_code=verdict.error_code,
                until=verdict.until,
                gateway=verdict.gateway,
                sender=verdict.sender,
                gateway_source=verdict.gateway_source,
            )
            jobs.append(job)
            if verdict.action == "send":
                sent_today[row["project_id"]] += 1
        # What this batch is about to send counts toward the kept daily counts from now on.
        for pk, count in sent_today.items():
            cached = self._sent_counts.get(pk) if pk is not None else None
            if pk is not None and cached is not None:
                self._sent_counts[pk] = (cached[0], cached[1], count)
        self._throttle([j for j in jobs if j.action == "send"], at)
        for j in jobs:
            if j.action == "send" and j.row["project_id"] is not None:
                j.unsent = True
                self._unsent[j.row["project_id"]] += 1
        return jobs

    def _sent_today(self, project: Project, s: ProjectSettings, at: dt.datetime, batch: int) -> int:
        """Messages the project sent since its local midnight, for the daily limit.

        Counting scans the project's messages of the day, so the count is kept for
        SENT_COUNT_TTL_S and this dispatcher's own sends are added to it; it is counted
        afresh once it is that old, when the day changes, and whenever the limit is within
        two batches (so near the limit it is exact, as other dispatchers send too)."""
        zone = ZoneInfo(s.time_zone)
        local = at.astimezone(zone)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        cached = self._sent_counts.get(project.pk)
        mono = time.monotonic()
        if (
            cached is not None
            and cached[0] == start
            and mono - cached[1] < SENT_COUNT_TTL_S
            and cached[2] + 2 * batch < s.daily_limit
        ):
            return cached[2]
        count = Message.objects.filter(project=project, direction="out", sent_on__gte=start).count()
        count += self._unsent.get(project.pk, 0)
        self._sent_counts[project.pk] = (start, mono, count)
        return count

    def _throttle(self, jobs: list[Job], at: dt.datetime) -> None:
        """Circuit breaker and the segment-weighted token bucket, per gateway, shared by
        every dispatcher through GatewayState rows."""
        by_gateway: dict[int, list[Job]] = defaultdict(list)
        for j in jobs:
            assert j.gateway is not None
            by_gateway[j.gateway.pk].append(j)
        if not by_gateway:
            return
        with transaction.atomic():
            states = {
                s.pk: s
                for s in GatewayState.objects.select_for_update().filter(pk__in=list(by_gateway))
            }
            for gw_id, group in by_gateway.items():
                gw = group[0].gateway
                assert gw is not None
                state = states.get(gw_id)
                if state is None:
                    state = GatewayState(
                        gateway_id=gw_id, tokens=gw.rate_limit_per_s or 0, refilled_on=at
                    )
                if state.open_until is not None and state.open_until > at:
                    for j in group:
                        j.action, j.until = "postpone", state.open_until
                    continue
                if gw.rate_limit_per_minute:
                    group = per_minute(gw, group, at)
                rate = gw.rate_limit_per_s
                if rate:
                    elapsed = (at - state.refilled_on).total_seconds() if state.refilled_on else 0
                    capacity = max(rate, 1.0)
                    tokens = min(capacity, state.tokens + max(0.0, elapsed) * rate)
                    # Postponed messages queue behind each other (spread over their future
                    # slots) but take no tokens: when they come back they pay then. Taking
                    # tokens for them as well made every re-claim push the whole backlog
                    # further out, and a backlog larger than a batch never drained.
                    ahead = 0.0
                    for j in group:
                        cost = max(1, int(j.row["segments"] or 1))
                        if not ahead and tokens >= cost:
                            tokens -= cost
                        else:
                            ahead += cost
                            wait = (ahead - max(tokens, 0.0)) / rate
                            j.action, j.until = "postpone", at + dt.timedelta(seconds=wait)
                    state.tokens, state.refilled_on = tokens, at
                state.save()

    # -- the gateway call (no database access here) ------------------------------------------

    def _gateway(self, cfg: GatewayConfig) -> Gateway:
        """A ready gateway object: session types (SMPP) once per process, the others once per
        dispatch thread (each with that thread's HTTP client), rebuilt when the config
        changes. Building one validates the config and decrypts credentials, so not per
        message."""
        key = (cfg.pk, cfg.updated_on.isoformat())
        if cfg.type in PERSISTENT_TYPES:
            gw = self._persistent.get(key)
            if gw is None:
                gw = instantiate(cfg)
                self._persistent[key] = gw
            return gw
        cache: dict[tuple[int, str], Gateway] | None = getattr(self._local, "gateways", None)
        if cache is None:
            cache = self._local.gateways = {}
        gw = cache.get(key)
        if gw is None:
            for stale in [k for k in cache if k[0] == cfg.pk]:  # the config changed
                del cache[stale]
            gw = instantiate(cfg, http=self.http)
            cache[key] = gw
            with self._clients_lock:
                self._thread_gateways.append(gw)
        return gw

    def _send(self, jobs: list[Job]) -> None:
        """Every gateway call of a batch: lean-client types on the event loop, the others on
        the thread pool, at most ``concurrency`` calls in flight in all (the window
        ``CASEREACH_DISPATCH_THREADS`` sets, whatever mix of gateway types a batch holds)."""
        if self._shared_http is not None or not any(self._wire_gateway(j.gateway) for j in jobs):
            list(self.pool.map(self._call, jobs))  # the pool has ``concurrency`` threads
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._send_async(jobs))

    def _wire_gateway(self, cfg: GatewayConfig | None) -> Gateway | None:
        """The gateway object for ``cfg`` when its type has a lean-client path, else None
        (also when it cannot be built: ``_call`` then reports why, as for any type)."""
        if cfg is None or cfg.type in PERSISTENT_TYPES:
            return None
        key = (cfg.pk, cfg.updated_on.isoformat())
        if key in self._wire_gateways:
            return self._wire_gateways[key]
        gw: Gateway | None = None
        try:
            if getattr(gateway_class(cfg.type), "send_async", None) is not None:
                gw = instantiate(cfg)
        except Exception:  # a bad config: the thread path logs and classifies it
            gw = None
        for stale in [k for k in self._wire_gateways if k[0] == cfg.pk]:  # the config changed
            old = self._wire_gateways.pop(stale)
            if old is not None:
                old.close()
        self._wire_gateways[key] = gw
        return gw

    async def _send_async(self, jobs: list[Job]) -> None:
        """``concurrency`` workers take the batch's jobs one after another, each call the way
        the streaming dispatcher makes it (``_call_job``)."""
        loop = asyncio.get_running_loop()
        pending = iter(jobs)

        async def worker() -> None:
            for job in pending:
                await self._call_job(loop, job)

        await asyncio.gather(*[worker() for _ in range(min(max(self.concurrency, 1), len(jobs)))])

    async def _call_wire(self, job: Job, gateway: Gateway, pool: WirePool) -> None:
        cfg = job.gateway
        assert cfg is not None

        def record(exchange: Exchange) -> None:
            job.request_log = exchange.request[:4000]
            job.response_log = exchange.response[:4000]

        started = time.monotonic()
        try:
            message = self._message(job)
            job.result = await gateway.send_async(message, pool, record)  # type: ignore[attr-defined]
        except GatewayError as exc:
            job.error = exc
        except Exception as exc:  # a bug or an unexpected library error: retried, logged
            _unexpected(job, cfg, exc)
        job.duration_ms = int((time.monotonic() - started) * 1000)

    def _message(self, job: Job) -> OutgoingMessage:
        cfg = job.gateway
        assert cfg is not None
        row = job.row
        base = self._base_url
        return OutgoingMessage(
            message_id=row["id"],
            channel=row["channel"],
            text=row["text"],
            to=row["phone_number"],
            sender=job.sender,
            segments=row["segments"] or 1,
            encoding=row["encoding"] or "GSM",
            subject=row["subject"],
            email_to=row["email_address"],
            status_url=f"{base}/gateways/{cfg.type}/{cfg.inbound_key}/status" if base else "",
        )

    def _call(self, job: Job) -> None:
        cfg = job.gateway
        assert cfg is not None
        message = self._message(job)
        started = time.monotonic()
        try:
            gateway = self._gateway(cfg)
            job.result = gateway.send(message)
        except GatewayError as exc:
            job.error = exc
        except Exception as exc:  # a bug or an unexpected library error: retried, logged
            _unexpected(job, cfg, exc)
        job.duration_ms = int((time.monotonic() - started) * 1000)
        exchange = getattr(gateway, "last_exchange", None) if "gateway" in locals() else None
        if exchange is not None:
            job.request_log = str(getattr(exchange, "request", ""))[:4000]
            job.response_log = str(getattr(exchange, "response", ""))[:4000]

    # -- completion ----------------------------------------------------------------------------

    def _complete(self, jobs: list[Job], token: str) -> None:
        at = now()
        stamp = bulk.adapt_datetime(at)
        settings_cache: dict[int | None, ProjectSettings] = {}
        sent_rows: list[tuple[Any, ...]] = []
        fail_rows: list[tuple[Any, ...]] = []
        queue_rows: list[tuple[Any, ...]] = []
        attempts: list[tuple[Any, ...]] = []
        circuit: dict[int, list[int]] = {}  # gateway → [successes, retryable failures]
        opt_outs: list[tuple[str, GatewayConfig]] = []
        final_ids: list[str] = []
        for j in jobs:
            if j.unsent:
                j.unsent = False
                self._unsent[j.row["project_id"]] -= 1
            row = j.row
            mid = row["id"]
            gw_name = j.gateway.name if j.gateway else row["gateway_name"]
            gw_id = j.gateway.pk if j.gateway else row["gateway_id"]
            if j.action == "fail":
                fail_rows.append(
                    (
                        j.error_code,
                        "",
                        "",
                        stamp,
                        gw_name,
                        gw_id,
                        j.gateway_source,
                        stamp,
                        mid,
                        token,
                    )
                )
                final_ids.append(mid)
                continue
            if j.action == "postpone":
                # Not an attempt: give the attempt back.
                queue_rows.append(
                    (bulk.adapt_datetime(j.until), j.error_code, "", -1, 0, stamp, mid, token)
                )
                continue
            assert j.gateway is not None
            if j.result is not None:
                sent_rows.append(
                    (
                        j.result.provider_id,
                        stamp,
                        gw_name,
                        gw_id,
                        j.gateway_source,
                        j.sender,
                        stamp,
                        mid,
                        token,
                    )
                )
                attempts.append(self._attempt(j, "sent", stamp))
                circuit.setdefault(j.gateway.pk, [0, 0])[0] += 1
                final_ids.append(mid)
                continue
            err = j.error
            assert err is not None
            code = j.error_code or err.code
            if err.retryable:
                circuit.setdefault(j.gateway.pk, [0, 0])[1] += 1
                s = settings_cache.get(row["project_id"])
                if s is None:
                    owner = Project.objects.filter(pk=row["project_id"]).first()
                    s = settings_cache[row["project_id"]] = (
                        effective_settings(owner.settings) if owner else ProjectSettings()
                    )
                delays = s.retry_delays_minutes
                if row["attempts"] <= len(delays):
                    delay = dt.timedelta(minutes=delays[row["attempts"] - 1])
                    if err.retry_after is not None:
                        delay = max(delay, dt.timedelta(seconds=err.retry_after))
                    queue_rows.append(
                        (
                            bulk.adapt_datetime(at + delay),
                            code,
                            err.provider_code[:64],
                            0,
                            1 if err.outcome_unknown else 0,
                            stamp,
                            mid,
                            token,
                        )
                    )
                    attempts.append(
                        self._attempt(j, "unknown" if err.outcome_unknown else "retry", stamp)
                    )
                    continue
                attempts.append(
                    self._attempt(j, "unknown" if err.outcome_unknown else "retry", stamp)
                )
                fail_rows.append(
                    (
                        "TOO_MANY_UNSUCCESSFUL_ATTEMPTS",
                        err.provider_code[:64],
                        err.detail[:500],
                        stamp,
                        gw_name,
                        gw_id,
                        j.gateway_source,
                        stamp,
                        mid,
                        token,
                    )
                )
                final_ids.append(mid)
                continue
            attempts.append(self._attempt(j, "failed", stamp))
            fail_rows.append(
                (
                    code,
                    err.provider_code[:64],
                    err.detail[:500],
                    stamp,
                    gw_name,
                    gw_id,
                    j.gateway_source,
                    stamp,
                    mid,
                    token,
                )
            )
            final_ids.append(mid)
            if code == "PHONE_NUMBER_OPTED_OUT" and row["phone_number"] and j.gateway is not None:
                opt_outs.append((row["phone_number"], j.gateway))
        with transaction.atomic():
            bulk.execute_many(
                f"UPDATE {MSG_TABLE} SET provider_id = %s, sent_on = COALESCE(sent_on, %s), "
                "status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END, "
                "error_code = NULL, gateway_name = %s, gateway_id = %s, gateway_source = %s, "
                "sender = %s, lease_until = NULL, lease_token = NULL, updated_on = %s "
                "WHERE id = %s AND lease_token = %s",
                sent_rows,
            )
            bulk.execute_many(
                f"UPDATE {MSG_TABLE} SET status = 'failed', error_code = %s, provider_code = %s, "
                "error_detail = %s, failed_on = %s, gateway_name = %s, gateway_id = %s, "
                "gateway_source = %s, lease_until = NULL, lease_token = NULL, "
                "next_attempt_at = NULL, updated_on = %s "
                "WHERE id = %s AND lease_token = %s AND status = 'sending'",
                fail_rows,
            )
            bulk.execute_many(
                f"UPDATE {MSG_TABLE} SET status = 'queued', next_attempt_at = %s, error_code = %s, "
                "provider_code = %s, attempts = attempts + %s, "
                "unknown_outcomes = unknown_outcomes + %s, lease_until = NULL, lease_token = NULL, "
                "updated_on = %s WHERE id = %s AND lease_token = %s AND status = 'sending'",
                queue_rows,
            )
            bulk.insert(ATTEMPT_TABLE, ATTEMPT_COLUMNS, attempts)
            for number, gw in opt_outs:  # the person's own STOP, told by the provider
                do_person_opt_out(number, gateway_scope(gw), source=f"gateway:{gw.name}")
            self._update_circuits(circuit, at)
            self._finish_log(final_ids, jobs)

    def _attempt(self, job: Job, outcome: str, stamp: Any) -> tuple[Any, ...]:
        """One SendAttempt row, in ATTEMPT_COLUMNS order (a plain row: no model object)."""
        err = job.error
        return (
            job.row["id"],
            job.row["attempts"],
            job.gateway.name if job.gateway else "",
            outcome,
            (job.error_code or err.code) if err else None,
            err.provider_code[:64] if err else "",
            (err.detail if err else (job.result.detail if job.result else ""))[:500],
            job.request_log,
            job.response_log,
            job.duration_ms,
            stamp,
        )

    def _update_circuits(self, outcomes: dict[int, list[int]], at: dt.datetime) -> None:
        """Any success closes a gateway's circuit; otherwise each retryable failure counts,
        and from CIRCUIT_THRESHOLD in a row the gateway rests (30 s, doubling to 5 min)."""
        for gw_id, (successes, failures) in outcomes.items():
            if successes > 0:  # one statement, and no write at all when already closed
                GatewayState.objects.filter(
                    Q(consecutive_failures__gt=0) | Q(open_until__isnull=False), gateway_id=gw_id
                ).update(consecutive_failures=0, open_until=None)
                continue
            state, _ = GatewayState.objects.select_for_update().get_or_create(
                gateway_id=gw_id, defaults={"refilled_on": at}
            )
            state.consecutive_failures += failures
            if state.consecutive_failures >= CIRCUIT_THRESHOLD:
                extra = state.consecutive_failures - CIRCUIT_THRESHOLD
                seconds = min(CIRCUIT_MAX_S, CIRCUIT_BASE_S * (2 ** min(extra, 10)))
                state.open_until = at + dt.timedelta(seconds=seconds)
            state.save(update_fields=["consecutive_failures", "open_until"])

    def _finish_log(self, final_ids: list[str], jobs: list[Job]) -> None:
        """Close sub-events and events whose messages are all final: a fixed number of
        statements per batch (sub-events stamped with strictly increasing activity times)."""
        if not final_ids:
            return
        if not any(j.row["event_id"] or j.row["subevent_id"] for j in jobs):
            return  # messages outside the event log (none of the API's sends)
        msgs = list(
            Message.objects.filter(bulk.is_in("id", final_ids)).values(
                "subevent_id", "event_id", "project_id", "status", "error_code"
            )
        )
        by_project: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for m in msgs:
            if m["subevent_id"]:
                by_project[m["project_id"]].append(dict(m))
        rows: list[tuple[Any, ...]] = []
        for project_id, group in by_project.items():
            project = lock_project(project_id)
            tick = now()
            if project.last_indexed_on is not None:
                tick = max(tick, project.last_indexed_on + dt.timedelta(microseconds=1))
            for sub in group:
                failed = sub["status"] == "failed"
                rows.append(
                    (
                        "error" if failed else "completed",
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
        event_ids = sorted({m["event_id"] for m in msgs if m["event_id"]})
        statuses: dict[int, set[str]] = defaultdict(set)
        for event_id, status in Message.objects.filter(event_id__in=event_ids).values_list(
            "event_id", "status"
        ):
            statuses[event_id].add(status)
        failed_events = [e for e, st in statuses.items() if st == {"failed"}]
        completed = [
            e for e, st in statuses.items() if st != {"failed"} and not st & {"queued", "sending"}
        ]
        if failed_events:
            MessagingEvent.objects.filter(pk__in=failed_events).update(
                status="error", error_code="SUBEVENT_ERROR"
            )
        if completed:
            MessagingEvent.objects.filter(pk__in=completed).update(status="completed")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _unexpected(job: Job, cfg: GatewayConfig, exc: Exception) -> None:
    """A gateway call that failed with something other than a GatewayError (a bug or an
    unexpected library error): logged, and recorded as a retryable internal error."""
    log.exception("gateway %s failed unexpectedly", cfg.name)
    job.error = GatewayError(
        "GATEWAY_ERROR", retryable=True, detail=f"internal: {type(exc).__name__}"
    )
    job.error_code = "INTERNAL_SERVER_ERROR"
