"""Group commit of single sends: concurrent ``POST …/send`` requests of one process are
recorded by one ``sending.send_each`` (one lock, one statement set, one commit).

A leader/follower combiner: a caller queues its request; the first caller finding no
leader becomes it and records everything queued at that moment, per project, then hands
the lead to the first request queued meanwhile (a leader never serves others for longer
than one round). Each caller gets exactly its own result or its own error:

- a request that is bad input without the database (texts, recipient) never joins a group
  (the caller sends it alone and gets its own 400), and one naming a wrong gateway or
  contact gets its own error while the others are recorded;
- a database failure fails that group's callers, each with the error (a 5xx);
- every caller returns only after its group committed: an acknowledged send survives
  ``kill -9``.

Inside a transaction the caller's own (a test, a management command) there is no group: the
send runs there, on the caller's connection.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection

from casereach.core.errors import CasereachError
from casereach.messaging.sending import Sent, bad_input, do_send_one, send_each
from casereach.messaging.sending_request import SendRequest
from casereach.projects.models import Project

# ``CASEREACH_SEND_GROUP_COMMIT=0`` sends each request in its own transaction.
ENABLED = os.environ.get("CASEREACH_SEND_GROUP_COMMIT", "1") != "0"


@dataclass
class _Waiter:
    project: Project
    req: SendRequest
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead the next round, not with a result
    result: Sent | None = None
    error: BaseException | None = None


class Combiner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._leading = False

    def send(self, project: Project, req: SendRequest) -> Sent:
        me = _Waiter(project, req)
        with self._lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            me.done.wait()
            if me.lead:
                me.done.clear()
                lead = True
        if lead:
            self._round()
        if me.error is not None:
            raise me.error
        assert me.result is not None
        return me.result

    def _round(self) -> None:
        """Record everything queued now, then pass the lead on (or give it up)."""
        with self._lock:
            group, self._queue = self._queue, []
        by_project: dict[int, list[_Waiter]] = {}
        for w in group:
            by_project.setdefault(w.project.pk, []).append(w)
        for waiters in by_project.values():
            _record(waiters)
        with self._lock:
            if self._queue:
                nxt = self._queue[0]
                nxt.lead = True
                nxt.done.set()
            else:
                self._leading = False
        for w in group:
            w.done.set()


def _record(waiters: Sequence[_Waiter]) -> None:
    try:
        results = send_each(waiters[0].project, [w.req for w in waiters])
    except Exception as exc:  # the database failed: every caller of the group gets it
        for w in waiters:
            w.error = exc
        return
    for w, got in zip(waiters, results, strict=True):
        if isinstance(got, CasereachError):
            w.error = got
        else:
            w.result = got


_COMBINER = Combiner()


def send_single(project: Project, req: SendRequest) -> Sent:
    """One send, recorded with the concurrent ones of this process (see the module)."""
    if not ENABLED or connection.in_atomic_block or bad_input(project, req):
        return do_send_one(project, req)
    return _COMBINER.send(project, req)
