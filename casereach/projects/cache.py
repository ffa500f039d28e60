"""Per-process caches of what every API request looks up, correct across processes.

An API request used to look up its key, the URL's project, the key owner's membership, the
project's gateways and the global routes: four to six ORM queries before any work. These
caches keep those rows in memory, each entry stamped with the *configuration generation* it
was read under: one number in one row (``ConfigGeneration``, id 1) that every writer of keys,
memberships, projects, gateways, shares and routes bumps in the same transaction as its
change (``projects.actions.bump_generation``). A request reads the number once, by primary
key, and an entry made under another number is read again. So a revoked key gets 401, a new
role or route applies, on the very next request, in every process (scale-out replicas
included), for the price of one indexed SELECT instead of the joins.

Outside a request (CLI, background loops) every look-up reads the number afresh; inside one,
it is read once (``request_started`` opens the scope, ``request_finished`` closes it, a bump
in this thread forgets it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from django.core.signals import request_finished, request_started
from django.db import connection

from casereach.projects.models import ConfigGeneration

_SQL = f"SELECT value FROM {ConfigGeneration._meta.db_table} WHERE id = 1"
_local = threading.local()


def read_generation() -> int | None:
    """The configuration generation in the database (None when its row is missing: then
    nothing is cached)."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL)
        row = cursor.fetchone()
    return int(row[0]) if row is not None else None


def generation() -> int | None:
    """The generation, read once per request (every time outside a request)."""
    if not getattr(_local, "scope", False):
        return read_generation()
    value: int | None = getattr(_local, "value", None)
    if value is None:
        value = _local.value = read_generation()
    return value


def forget_generation() -> None:
    """This thread read the generation before its own change: read it again next time."""
    _local.value = None


def _open_scope(**kwargs: Any) -> None:
    _local.scope, _local.value = True, None


def _close_scope(**kwargs: Any) -> None:
    _local.scope, _local.value = False, None


@contextlib.contextmanager
def generation_scope() -> Iterator[None]:
    """The generation read once inside, as in a request: for work done outside one (the
    SQLite inbound worker's batch, in one write transaction)."""
    _open_scope()
    try:
        yield
    finally:
        _close_scope()


request_started.connect(_open_scope, dispatch_uid="casereach.projects.cache.open")
request_finished.connect(_close_scope, dispatch_uid="casereach.projects.cache.close")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class GenerationCache(Generic[K, V]):
    """A dict of values read under a generation; ``get`` loads a missing or outdated one.
    ``keep`` decides which values are kept (e.g. not a failed look-up, so a spray of bad keys
    cannot fill memory); past ``size`` entries the cache starts afresh."""

    def __init__(self, size: int = 10_000, keep: Callable[[V], bool] = lambda v: True) -> None:
        self.size = size
        self.keep = keep
        self.data: dict[K, tuple[int, V]] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        current = generation()
        hit = self.data.get(key)
        if hit is not None and current is not None and hit[0] == current:
            return hit[1]
        value = load()
        if current is not None and self.keep(value):
            if len(self.data) >= self.size:
                self.data = {}
            self.data[key] = (current, value)
        return value

    def clear(self) -> None:
        self.data = {}
