"""Group commit: concurrent requests of one process, each wanting its own small write, are
recorded together in one transaction (one lock, one statement set, one commit) by a
``record(project, items)`` function that answers each item with its result or its error.

A leader/follower combiner: a caller queues its item; the first caller finding no leader
becomes it and records everything queued at that moment, per project, then hands the lead to
the first caller queued meanwhile (a leader never serves others for longer than one round).
Each caller gets exactly its own outcome:

- ``record`` answers an item with an exception instance: that caller raises it, and the
  others of the group keep their results;
- ``record`` itself raises (the database failed): every caller of that group raises it;
- every caller returns only after its group's ``record`` returned, i.e. after its commit:
  an acknowledged write survives ``kill -9``.

Users: single sends (``messaging.sending_group``) and the Data Forwarding receiver
(``cases.forwarding``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")  # what a group shares: the project
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiter(Generic[P, Item, Result]):
    project: P
    item: Item
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to lead the next round, not with a result
    result: Result | None = None
    error: BaseException | None = None


class Combiner(Generic[P, Item, Result]):
    def __init__(
        self,
        record: Callable[[P, Sequence[Item]], Sequence[Result | BaseException]],
        key: Callable[[P], object],
        gather_s: float = 0.0,
    ) -> None:
        """``record`` writes one group of items of one project (``key``: which one).
        ``gather_s``: how long a new leader may wait for the group to grow back to the size
        of the previous one (see ``_gather``); 0 records at once."""
        self._record_items = record
        self._key = key
        self._gather_s = gather_s
        self._last_size = 0
        self._lock = threading.Lock()
        self._grown = threading.Condition(self._lock)
        self._queue: list[_Waiter[P, Item, Result]] = []
        self._leading = False

    def submit(self, project: P, item: Item) -> Result:
        me: _Waiter[P, Item, Result] = _Waiter(project, item)
        with self._lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
            self._grown.notify()
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
            self._gather()
            group, self._queue = self._queue, []
            self._last_size = len(group)
        by_project: dict[object, list[_Waiter[P, Item, Result]]] = {}
        for w in group:
            by_project.setdefault(self._key(w.project), []).append(w)
        for waiters in by_project.values():
            self._record(waiters)
        with self._lock:
            if self._queue:
                nxt = self._queue[0]
                nxt.lead = True
                nxt.done.set()
            else:
                self._leading = False
        for w in group:
            w.done.set()

    def _gather(self) -> None:
        """Under the lock: wait (at most ``gather_s``) until as many callers are queued as the
        previous group had. Under a steady load the callers of one group come back together,
        but one by one: without this the first back would be recorded alone, paying a whole
        transaction's fixed cost for one item, while the others queue behind it."""
        if self._gather_s <= 0 or len(self._queue) >= self._last_size:
            return
        deadline = time.monotonic() + self._gather_s
        while len(self._queue) < self._last_size:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._grown.wait(left)

    def _record(self, waiters: Sequence[_Waiter[P, Item, Result]]) -> None:
        try:
            results = self._record_items(waiters[0].project, [w.item for w in waiters])
        except Exception as exc:  # the database failed: every caller of the group gets it
            for w in waiters:
                w.error = exc
            return
        for w, got in zip(waiters, results, strict=True):
            if isinstance(got, BaseException):
                w.error = got
            else:
                w.result = got
