"""The inbound webhook's database work on SQLite: one worker thread, the messages that wait
for it received together in one transaction, set-based when they are all plain answers of one
conversation (``inbound_batch``, decision 0015). On PostgreSQL, or inside a transaction, the
work runs on the calling thread (``on_db_thread``)."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import DatabaseError, connection

from casereach.core import bulk
from casereach.core.errors import CasereachError
from casereach.gateways.base import Gateway, InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging.inbound import batched
from casereach.messaging.inbound_batch import Clash, receive_together
from casereach.messaging.inbound_queue import queues_inbound
from casereach.projects.cache import generation_scope

log = logging.getLogger(__name__)

# The gateways read by the SQLite worker's current batch (``SqliteWorker._together``): in
# its one write transaction no other writer can change them, and receiving a message never
# does, so the batch's later messages skip the read.
_batch_read = threading.local()

T = TypeVar("T")
MAX_BATCH = 32  # inbound messages sharing one SQLite transaction, at most
# How long the SQLite worker may wait for a batch to grow back to the previous one's size.
GATHER_S = float(os.environ.get("CASEREACH_INBOUND_GATHER_MS", "2")) / 1000


# An inbound webhook's parsed messages: its gateway row, its Gateway and what it carried.
Parsed = tuple[GatewayConfig, Gateway, list[InboundMessage]]


def _taken() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class Job:
    fn: Callable[[], Any]
    # An inbound webhook's parsing, when ``fn`` is parsing and receiving what it parsed.
    parse: Callable[[], Parsed] | None = None
    # Held until the job is done: the waiting request thread acquires it, the worker releases
    # it (one wake-up, where an Event takes a condition and its lock as well).
    done: threading.Lock = field(default_factory=_taken)
    result: Any = None
    error: BaseException | None = None


class SqliteWorker:
    """The inbound webhook's database work on SQLite, done in turn by one thread on one
    long-lived connection.

    SQLite has one writer at a time. A request thread doing its own work opens a connection
    for every request (set up, page cache cold, closed after), and then, for every statement,
    waits for the interpreter lock held by the other request threads — all while it holds the
    database's write lock, so every other inbound message waits as well. One thread with a warm
    connection and its prepared statements gets through more messages a second; the request
    threads keep the HTTP work and wait for their result (the reply still follows the commit).
    Messages that arrive while it is busy are received together in one transaction (one commit
    for all, in arrival order); if one of them fails inside it, nothing of that transaction is
    kept and each is received again on its own, so a failure stays with its own message.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, fn: Callable[[], T], job: Job | None = None) -> T:
        """``fn()`` on the worker thread (``job``: an inbound webhook's, whose ``fn`` is
        ``fn``); its result, or its exception raised here."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._loop, name="casereach-inbound-db", daemon=True
                    )
                    self._thread.start()
        job = job or Job(fn)
        self._jobs.put(job)
        job.done.acquire()
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def after_fork(self) -> None:
        """A forked child has no worker thread: it starts its own when it needs one."""
        self._jobs = queue.SimpleQueue()
        self._thread = None
        self._start = threading.Lock()

    def _loop(self) -> None:
        previous = 0
        while True:
            batch = self._gather(previous)
            previous = len(batch)
            try:
                if not self._together(batch):
                    for job in batch:
                        self._alone(job)
            except Exception as exc:  # the loop itself failed: its jobs get it, the loop goes on
                log.exception("the inbound worker failed a batch of %d", len(batch))
                for job in batch:
                    job.error = job.error or exc
                connection.close()
            except BaseException as exc:  # exiting: no job may wait forever
                for job in batch:
                    job.error = job.error or exc
                raise
            finally:
                for job in batch:
                    job.done.release()

    def _gather(self, previous: int) -> list[Job]:
        """The jobs waiting now, or (waiting at most ``GATHER_S``) as many as the previous
        batch had: under a steady load the requests of one batch come back together, but one
        by one, and the first back would otherwise pay a whole transaction's fixed statements
        alone while the others queue behind it (decision 0012's gathering)."""
        batch = [self._jobs.get()]
        deadline = 0.0
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._jobs.get_nowait())
                continue
            except queue.Empty:
                if len(batch) >= previous or GATHER_S <= 0:
                    break
            deadline = deadline or time.monotonic() + GATHER_S
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._jobs.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _alone(self, job: Job) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # for the waiting request thread to raise
            job.error = exc
            if isinstance(exc, DatabaseError):
                connection.close()  # the next job starts on a fresh connection

    def _together(self, batch: list[Job]) -> bool:
        """The jobs waiting together in one transaction (one commit for all); False, with
        nothing kept, when one failed inside it and the others must not share its fate."""
        _batch_read.gateways = {}
        try:
            with generation_scope(), batched():
                try:
                    together = _set_based(batch)
                except (DatabaseError, Clash):
                    raise
                except Exception as exc:  # a message it could not take: each on its own
                    log.exception("set-based receiving failed; receiving one by one")
                    raise _Replay from exc
                if not together:
                    for job in batch:
                        try:
                            job.result = job.fn()
                        except Exception as exc:
                            if connection.needs_rollback or isinstance(exc, DatabaseError):
                                raise _Replay from exc
                            job.error = exc  # refused before writing anything (401, 400, 403)
        except (_Replay, DatabaseError, Clash) as exc:
            for job in batch:
                job.result, job.error = None, None
            if isinstance(exc, DatabaseError) or isinstance(exc.__cause__, DatabaseError):
                connection.close()
            return False
        finally:
            _batch_read.gateways = None
        return True


class _Replay(Exception):
    """A job failed inside the shared transaction: run each job again on its own."""


def _set_based(batch: list[Job]) -> bool:
    """Whether the batch was received set-based (``inbound_batch``): every job an inbound
    webhook's whose messages, parsed, are all plain answers of one conversation. When not,
    nothing is written and each job's ``fn`` receives it as before (parsing again: parsing
    writes nothing). A job whose parsing is refused (401, 400, 403) keeps its error."""
    if any(job.parse is None for job in batch) or queues_inbound():
        return False
    parsed: list[tuple[Job, Parsed]] = []
    for job in batch:
        assert job.parse is not None
        try:
            parsed.append((job, job.parse()))
        except CasereachError:
            return False  # its own answer, given by the single path
    items = [(gw, m) for _, (gw, _, messages) in parsed for m in messages]
    results = receive_together(items)
    if results is None:
        return False
    at = 0
    for job, (_, gateway, messages) in parsed:
        job.result = (gateway, results[at : at + len(messages)])
        at += len(messages)
    return True


_worker = SqliteWorker()
os.register_at_fork(after_in_child=_worker.after_fork)


def on_db_thread(fn: Callable[[], T], job: Job | None = None) -> T:
    """``fn()`` on the SQLite worker thread, or here when that cannot help: on PostgreSQL, or
    inside a transaction (whose uncommitted rows another connection would not see)."""
    if not bulk.one_writer_database() or connection.in_atomic_block or _worker.is_current():
        return fn()
    return _worker.run(fn, job)
