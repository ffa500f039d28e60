"""What ``casereach doctor`` and ``/healthz`` check, each answer in plain words."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from casereach.scaleout import config

MAX_SKEW_S = 2.0
# Messages due for longer than this while workers are alive: nobody is kicking them.
STALE_DUE_S = 60.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # shown, but does not fail doctor


def database() -> Check:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error: the database is not usable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check("database", False, f"cannot reach the database: {first}")
    settings = connection.settings_dict
    where = settings["NAME"]
    if connection.vendor == "postgresql":
        where = f"{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    return Check("database", True, f"{connection.vendor} at {where} answers")


def migrations() -> Check:
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # unreadable migration table: treat as not migrated
        return Check("migrations", False, f"cannot read the migration state: {exc}")
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:3])
        more = f" and {len(plan) - 3} more" if len(plan) > 3 else ""
        return Check(
            "migrations",
            False,
            f"{len(plan)} migration(s) not applied ({names}{more}): run 'casereach init'",
        )
    return Check("migrations", True, "all applied")


def clock_skew() -> Check:
    if connection.vendor != "postgresql":
        return Check("clock", True, "SQLite uses this machine's clock")
    try:
        before = time.time()
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
            row = cursor.fetchone()
        after = time.time()
    except Exception as exc:  # reported by the database check already
        return Check("clock", False, f"cannot read the database clock: {exc}")
    skew = float(row[0]) - (before + after) / 2
    if abs(skew) > MAX_SKEW_S:
        side = "ahead of" if skew > 0 else "behind"
        return Check(
            "clock",
            False,
            f"the database clock is {abs(skew):.1f} s {side} this machine's: leases and due "
            "times go wrong; synchronise both with NTP",
        )
    return Check("clock", True, f"database and local clocks agree within {abs(skew):.2f} s")


def broker(timeout_s: float = 3.0) -> Check:
    url = config.broker_url()
    if not url:
        return Check("broker", True, "not configured: background work runs inside 'serve'")
    try:
        config.check_broker_url(url)
    except ValueError as exc:
        return Check("broker", False, str(exc))
    import kombu.connection

    connection_class: Any = kombu.connection.Connection
    try:
        with connection_class(url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # any transport error: unreachable
        return Check(
            "broker", False, f"cannot reach the broker at {config.masked(url)}: {exc}".strip()
        )
    return Check("broker", True, f"{config.masked(url)} answers")


def workers(timeout_s: float = 3.0) -> Check:
    if not config.broker_url():
        return Check("workers", True, "embedded mode: 'serve' runs the background loops")
    from casereach.scaleout.app import get_app

    app = get_app()
    inspect = app.control.inspect(timeout=timeout_s)
    try:
        replies: dict[str, Any] = inspect.active_queues() or {}
    except Exception as exc:  # the broker went away between checks
        return Check("workers", False, f"cannot ask workers: {exc}")
    # Workers of other installations sharing the broker answer too: count only ours.
    ours = {config.queue_name(n) for n in config.QUEUES}
    replies = {w: qs for w, qs in replies.items() if any(q["name"] in ours for q in qs)}
    if not replies:
        return Check(
            "workers",
            False,
            f"no worker consumes this installation's queues ({config.queue_prefix()}*): "
            "start 'casereach worker' (nothing is sent until one runs)",
        )
    consumed = {q["name"] for qs in replies.values() for q in qs}
    missing = [q for q in sorted(ours) if q not in consumed]
    if missing:
        return Check(
            "workers",
            False,
            f"{len(replies)} worker(s) alive, but none consumes {', '.join(missing)}: "
            "start one with --queues covering it",
        )
    return Check("workers", True, f"{len(replies)} worker(s) alive: {', '.join(sorted(replies))}")


def backlog() -> Check:
    """Messages long overdue mean nothing kicks the dispatch (beat down) or workers stalled."""
    from casereach.core.timeutil import now
    from casereach.messaging.models import Message

    try:
        oldest = (
            Message.objects.filter(status="queued", next_attempt_at__isnull=False)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
    except Exception as exc:  # reported by the database check already
        return Check("backlog", False, f"cannot read the outbox: {exc}")
    if oldest is None:
        return Check("backlog", True, "no message waiting")
    late = (now() - oldest).total_seconds()
    if late > STALE_DUE_S:
        hint = (
            "is 'casereach beat' running?"
            if config.broker_mode()
            else "is 'casereach serve' (without --no-workers) running?"
        )
        return Check(
            "backlog",
            False,
            f"the oldest queued message has been due for {dt.timedelta(seconds=int(late))}: "
            + hint,
            warning=True,
        )
    return Check("backlog", True, "queued messages are being picked up")


def doctor() -> list[Check]:
    checks = [database()]
    if checks[0].ok:
        checks += [migrations(), clock_skew()]
    b = broker()
    checks.append(b)
    if b.ok:
        checks.append(workers())
    if checks[0].ok and checks[1].ok:
        checks.append(backlog())
    return checks
