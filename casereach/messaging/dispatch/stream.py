"""The pipelined send loop (``Dispatcher.stream``): ``concurrency`` gateway calls in flight, a
new call started as soon as one ends, finished messages completed every ``STREAM_FLUSH_S``.

``run_once`` waits for the slowest call of its batch before it claims the next one, so one
provider request that hangs until its timeout stalls everything behind it; here it holds one
slot. The steps are those of ``run_once`` (claim under a lease, the checks, the call, the
conditional completion), all in the calling thread; a batch is claimed whenever fewer than
``concurrency`` claimed messages wait for a slot.

The database work (claims, completions) runs between turns of the event loop, never inside
it: Django refuses database calls from a running loop. Inside the loop up to ``window``
workers take claimed messages one after the other; the loop hands back when claimed messages
run low, every worker is done, or it is time to complete.
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
        self.window = max(dispatcher.concurrency, 1)
        self.waiting: deque[tuple[Job, str]] = deque()  # claimed, not yet called
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
                elif len(self.waiting) < self.window and time.monotonic() >= self.next_claim:
                    self.claim()
                self.start_workers()
                self.maybe_flush()
                if self.workers:
                    self.turn()
                    continue
                if self.waiting or self.finished:
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

    def claim(self) -> None:
        token, jobs = self.d.claim_batch()
        self.drained = not jobs
        if self.drained:
            self.next_claim = time.monotonic() + self.idle_s
        self.total += len(jobs)
        for job in jobs:
            (self.waiting if job.action == SEND else self.finished).append((job, token))

    def give_back(self) -> None:
        """Claimed messages not yet sent go back to the queue, without an attempt."""
        while self.waiting:
            job, token = self.waiting.popleft()
            job.postpone(self.d.clock())
            self.finished.append((job, token))

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

    async def work(self) -> None:
        while self.waiting:
            job, token = self.waiting.popleft()
            await self.d.calls.call_job(self.loop, job)
            self.finished.append((job, token))
            if len(self.waiting) < self.window and not self.drained:
                self.wake()  # time to claim more

    def start_workers(self) -> None:
        while self.waiting and len(self.workers) < self.window:
            task = self.loop.create_task(self.work())
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
