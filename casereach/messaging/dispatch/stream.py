"""The pipelined send loop (``Dispatcher.stream``): each gateway's calls in flight up to its
window (``max_in_flight``, see ``GatewayCalls.window``), a new call started as soon as one
ends, finished messages completed every ``STREAM_FLUSH_S``.

``run_once`` waits for the slowest call of its batch before it claims the next one, so one
provider request that hangs until its timeout stalls everything behind it; here it holds one
slot. The steps are those of ``run_once`` (claim under a lease, the checks, the call, the
conditional completion), all in the calling thread.

Claimed messages wait in one queue per gateway, so a gateway whose window is full never
holds back another's. A claim is made whenever some gateway's queue is shorter than its
window (and all queues together hold less than twice the windows: what waits in memory
waits under its lease); it fetches enough to fill the windows (at least ``batch_size``).
The rate limit (``rate_limit_per_s``) is applied at the claim (``breaker.throttle``): what
is above it is postponed, so a slow provider is used up to its rate limit and no further.

The database work (claims, completions) runs between turns of the event loop, never inside
it: Django refuses database calls from a running loop. Inside the loop each gateway's
workers take its claimed messages one after the other; the loop hands back when a claim is
wanted, every worker is done, or it is time to complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from casereach.messaging.dispatch.jobs import SEND, Job

if TYPE_CHECKING:
    from casereach.messaging.dispatch.dispatcher import Dispatcher

STREAM_FLUSH_S = 0.1  # how often ``stream`` completes the messages whose calls ended
MAX_CLAIM = 5000  # the most messages one claim fetches


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Stream:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        stop: threading.Event | None,
        idle_s: float,
        until_idle: bool,
        max_seconds: float | None,
    ) -> None:
        self.d = dispatcher
        self.loop = dispatcher.calls.loop
        self.stop = stop
        self.idle_s = idle_s
        self.until_idle = until_idle
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        # per gateway (config id): claimed messages not yet called, the window, the workers
        self.waiting: dict[int, deque[tuple[Job, str]]] = {}
        self.windows: dict[int, int] = {}
        self.running: dict[int, int] = {}
        self.queued = 0  # claimed messages not yet called, in all
        self.workers: set[asyncio.Task[None]] = set()
        self.finished: list[tuple[Job, str]] = []  # called (or decided), not yet completed
        self.waker: list[asyncio.Future[None]] = []  # what the loop runs until, while it runs
        self.flushed = time.monotonic()
        self.next_claim = 0.0  # monotonic time of the next claim (later after an empty one)
        self.drained = False  # the last claim found nothing due
        self.total = 0

    def run(self) -> int:
        """Returns how many messages were claimed (see ``Dispatcher.stream``)."""
        try:
            while True:
                if self.stopping():
                    self.give_back()
                elif self.wants_claim() and time.monotonic() >= self.next_claim:
                    self.claim()
                self.start_workers()
                self.maybe_flush()
                if self.workers:
                    self.turn()
                    continue
                if self.queued or self.finished:
                    continue
                if self.stopping() or (self.until_idle and self.drained):
                    return self.total
                self.pause()
        finally:
            self.wind_down()

    def stopping(self) -> bool:
        return (self.stop is not None and self.stop.is_set()) or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def total_window(self) -> int:
        return sum(self.windows.values()) or max(self.d.concurrency, 1)

    def wants_claim(self) -> bool:
        """Some gateway's queue is shorter than its window (or none is known yet), and the
        queues together hold less than twice the windows."""
        if self.queued >= 2 * self.total_window():
            return False
        return not self.windows or any(len(self.waiting[g]) < w for g, w in self.windows.items())

    def claim(self) -> None:
        limit = max(self.d.batch_size, min(MAX_CLAIM, self.total_window() - self.queued))
        token, jobs = self.d.claim_batch(limit)
        self.drained = not jobs
        if self.drained:
            self.next_claim = time.monotonic() + self.idle_s
        self.total += len(jobs)
        for job in jobs:
            if job.action != SEND or job.cfg is None:
                self.finished.append((job, token))
                continue
            gateway_id = job.cfg.pk
            if gateway_id not in self.waiting:
                self.waiting[gateway_id] = deque()
                self.running[gateway_id] = 0
            self.windows[gateway_id] = self.d.calls.window(job.cfg)  # the config may change
            self.waiting[gateway_id].append((job, token))
            self.queued += 1

    def give_back(self) -> None:
        """Claimed messages not yet sent go back to the queue, without an attempt."""
        for queue in self.waiting.values():
            while queue:
                job, token = queue.popleft()
                job.postpone(self.d.clock())
                self.finished.append((job, token))
        self.queued = 0

    def maybe_flush(self) -> None:
        if self.finished and (
            not self.workers
            or time.monotonic() - self.flushed >= STREAM_FLUSH_S
            or len(self.finished) >= self.d.batch_size
        ):
            done, self.finished[:] = list(self.finished), []
            self.d.complete_finished(done)
            self.flushed = time.monotonic()

    def wake(self) -> None:
        if self.waker:
            _wake(self.waker[0])

    async def work(self, gateway_id: int) -> None:
        queue = self.waiting[gateway_id]
        try:
            while queue:
                job, token = queue.popleft()
                self.queued -= 1
                await self.d.calls.call_job(self.loop, job)
                self.finished.append((job, token))
                if not self.drained and self.wants_claim():
                    self.wake()  # time to claim more
        finally:
            self.running[gateway_id] -= 1

    def start_workers(self) -> None:
        for gateway_id, queue in self.waiting.items():
            window = self.windows[gateway_id]
            while len(queue) > 0 and self.running[gateway_id] < window:
                self.running[gateway_id] += 1
                task = self.loop.create_task(self.work(gateway_id))
                self.workers.add(task)
                task.add_done_callback(self.worker_done)

    def worker_done(self, task: asyncio.Task[None]) -> None:
        self.workers.discard(task)
        if not self.workers:
            self.wake()

    def turn(self) -> None:
        """Run the event loop until a worker wakes it, or for STREAM_FLUSH_S at most."""
        pending = self.loop.create_future()
        self.waker[:] = [pending]
        timer = self.loop.call_later(STREAM_FLUSH_S, _wake, pending)
        try:
            self.loop.run_until_complete(pending)
        finally:
            timer.cancel()
            self.waker.clear()

    def pause(self) -> None:
        pause = max(0.0, self.next_claim - time.monotonic())
        if self.stop is not None:
            self.stop.wait(pause)
        else:
            time.sleep(pause)

    def wind_down(self) -> None:
        """After an error (a failed claim or completion) the calls in flight still finish,
        claimed messages not yet sent go back to the queue, and what can be completed is;
        the rest is reaped when its lease ends."""
        self.give_back()
        if self.workers:
            self.loop.run_until_complete(asyncio.gather(*self.workers, return_exceptions=True))
        if self.finished:
            with contextlib.suppress(Exception):
                self.d.complete_finished(list(self.finished))
