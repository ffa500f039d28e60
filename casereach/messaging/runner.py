"""Embedded background work for ``casereach serve``: the dispatcher in a thread.

The thread runs ``Dispatcher.stream()``, which keeps the gateway calls in flight back to back;
in the scale-out mode a Celery task runs ``Dispatcher.run_once()`` instead (one claimed batch
per task), the same claim, checks and completion, so nothing here is needed there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from django.db import close_old_connections, connection

from casereach.messaging.dispatch import Dispatcher, dispatch_sizes

log = logging.getLogger(__name__)


class BackgroundLoops:
    def __init__(
        self,
        *,
        idle_s: float = 0.5,
        batch_size: int | None = None,
        concurrency: int | None = None,
        extra: Sequence[tuple[str, Callable[[], int]]] = (),
    ) -> None:
        self.idle_s = idle_s
        # Unless given, the sizes come from the environment, as in the scale-out workers.
        env_batch, env_threads = dispatch_sizes()
        self.batch_size = batch_size or env_batch
        self.concurrency = concurrency or env_threads
        # Other loops (the alert scheduler): each step returns how much work it did.
        self.extra = list(extra)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        t = threading.Thread(target=self._dispatch_loop, name="casereach-dispatch", daemon=True)
        t.start()
        self.threads.append(t)
        for name, step in self.extra:
            t = threading.Thread(
                target=self._step_loop, args=(name, step), name=f"casereach-{name}", daemon=True
            )
            t.start()
            self.threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout)

    def _dispatch_loop(self) -> None:
        dispatcher = Dispatcher(batch_size=self.batch_size, concurrency=self.concurrency)
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    dispatcher.stream(stop=self.stopping, idle_s=self.idle_s)
                except Exception:  # keep the loop alive; the error is in the log
                    log.exception("dispatcher failed")
                    self.stopping.wait(5.0)
        finally:
            dispatcher.close()
            connection.close()

    def _step_loop(self, name: str, step: Callable[[], int]) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    done = step()
                except Exception:  # keep the loop alive; the error is in the log
                    log.exception("%s step failed", name)
                    self.stopping.wait(5.0)
                    continue
                if done == 0:
                    self.stopping.wait(self.idle_s)
        finally:
            connection.close()
