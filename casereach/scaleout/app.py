"""The Celery application and its tasks.

Every task is a claim request or an id: ``dispatch`` and ``fire_due`` claim due rows with
leases and act through the embedded mode's own code (``Dispatcher.run_once``,
``scheduler.fire_due``); ``reap_leases`` puts rows whose lease expired back in the queue;
``reevaluate_alert`` and ``import_cases`` take an alert id or a file path on shared storage.
A duplicate, redelivered or lost task can delay work but never repeat it: the claim in the
database decides who acts.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from casereach.scaleout import config

log = logging.getLogger(__name__)

_local = threading.local()


@functools.cache
def get_app() -> Any:
    """The Celery app for ``CASEREACH_BROKER_URL`` (Django is set up first)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
    import django
    from celery import Celery

    django.setup()
    url = config.broker_url()
    if not url:
        raise RuntimeError(f"{config.BROKER_ENV} is not set: there is no broker to use")
    app = Celery("casereach")
    app.conf.update(config.celery_settings(url))
    for name, fn in TASKS.items():
        app.task(name=name, bind=False)(fn)
    return app


def _dispatcher() -> Any:
    """One dispatcher per worker thread (its HTTP clients and gateway objects are reused)."""
    from casereach.messaging.dispatch import Dispatcher, dispatch_sizes

    d = getattr(_local, "dispatcher", None)
    if d is None:
        batch, threads = dispatch_sizes()
        d = _local.dispatcher = Dispatcher(batch_size=batch, concurrency=threads)
    return d


def _loop(step: Callable[[], int], budget_s: float) -> int:
    """Run ``step`` until it finds nothing to do or the budget is spent."""
    from django.db import close_old_connections

    total = 0
    deadline = time.monotonic() + budget_s
    close_old_connections()
    try:
        while True:
            done = step()
            total += done
            if done == 0 or time.monotonic() >= deadline:
                return total
    finally:
        close_old_connections()


def dispatch(budget_s: float | None = None) -> int:
    """Claim and send batches of due messages (``FOR UPDATE SKIP LOCKED``)."""
    d = _dispatcher()
    return _loop(d.run_once, config.TASK_BUDGET_S if budget_s is None else budget_s)


def fire_due(budget_s: float | None = None) -> int:
    """Fire due schedule instances; the unique firing key makes a second firing impossible."""
    from casereach.alerts.scheduler import fire_due as step

    return _loop(step, config.TASK_BUDGET_S if budget_s is None else budget_s)


def survey_timers(budget_s: float | None = None) -> int:
    """Fire due survey-session timers (re-ask, expiry, reply deadline); each is claimed by a
    guarded update, so a duplicate task fires nothing twice."""
    from casereach.surveys.sessions import run_due_sessions

    return _loop(run_due_sessions, config.TASK_BUDGET_S if budget_s is None else budget_s)


def alert_reply_timers(budget_s: float | None = None) -> int:
    """Settle due alert reply waits (no reply: the alert's action); each is claimed by a
    guarded update, so a duplicate task runs no action twice."""
    from casereach.alerts.replywait import run_due_waits

    return _loop(run_due_waits, config.TASK_BUDGET_S if budget_s is None else budget_s)


def chain_timeouts(budget_s: float | None = None) -> int:
    """Move fallback chains on from attempts with no delivery report in time; each attempt
    is claimed by a guarded update, so a duplicate task moves no chain twice."""
    from casereach.messaging.chains import move_on_waiting

    return _loop(move_on_waiting, config.TASK_BUDGET_S if budget_s is None else budget_s)


def handle_inbound(budget_s: float | None = None) -> int:
    """Handle inbound SMS the webhooks queued (claimed ``FOR UPDATE SKIP LOCKED``); their
    replies go out with the next dispatch, kicked at once."""
    from casereach.messaging.inbound_queue import handle_queued

    handled = _loop(handle_queued, config.TASK_BUDGET_S if budget_s is None else budget_s)
    if handled:
        send("casereach.dispatch", expires=config.KICK_INTERVAL_S * 3)
    return handled


def reap_leases() -> int:
    """Re-queue messages whose lease expired (their dispatcher died mid-send)."""
    from django.db import close_old_connections

    from casereach.core.timeutil import now
    from casereach.messaging import log as message_log

    close_old_connections()
    try:
        return len(message_log.reap(now()))
    finally:
        close_old_connections()


def _writeback_sender() -> Any:
    """One CommCare write-back sender per thread, on the outbound network policy's client."""
    from casereach.cases.writeback_send import WriteBackSender
    from casereach.gateways.netpolicy import make_client

    sender = getattr(_local, "writeback", None)
    if sender is None:
        sender = _local.writeback = WriteBackSender(make_client)
    return sender


def write_back_once() -> int:
    """One write-back step: reap, claim, call HQ, record (``serve``'s loop runs it)."""
    done: int = _writeback_sender().run_once()
    return done


def commcare_writeback(budget_s: float | None = None) -> int:
    """Write casereach's own case changes back to CommCare HQ (claimed with leases, one
    at a time per case, in order)."""
    return _loop(write_back_once, config.TASK_BUDGET_S if budget_s is None else budget_s)


def fetch_prices(budget_s: float | None = None) -> int:
    """Ask providers for the prices of final messages now due (Twilio), a batch at a time."""
    from casereach.messaging.costs import fetch_due_prices

    return _loop(fetch_due_prices, config.TASK_BUDGET_S if budget_s is None else budget_s)


def reevaluate_alert(alert_id: int) -> str:
    """Evaluate a (re)activated alert over every candidate recipient, in batches."""
    from casereach.alerts.actions import evaluate_alert
    from casereach.alerts.models import Alert

    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return "gone"
    return str(evaluate_alert(alert).eval_state)


def import_cases(path: str, project_id: int, case_type: str | None = None) -> dict[str, int]:
    """Import a CSV/XLSX file that every worker can read (shared storage); set-based."""
    from pathlib import Path

    from casereach.cases.importer import import_cases as run
    from casereach.projects.models import Project

    project = Project.objects.get(pk=project_id)
    report = run(project, Path(path), case_type=case_type)
    return {"rows": report.rows_read, "written": report.written, "failed": report.rows_failed}


def whatsapp_template_sync() -> int:
    """Sync every active WhatsApp gateway's templates from its provider (beat: every
    CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS, 6 by default)."""
    from casereach.messaging.whatsapp_templates import sync_all

    return len(sync_all())


TASKS: dict[str, Callable[..., Any]] = {
    "casereach.dispatch": dispatch,
    "casereach.fire_due": fire_due,
    "casereach.survey_timers": survey_timers,
    "casereach.alert_reply_timers": alert_reply_timers,
    "casereach.chain_timeouts": chain_timeouts,
    "casereach.reap_leases": reap_leases,
    "casereach.handle_inbound": handle_inbound,
    "casereach.commcare_writeback": commcare_writeback,
    "casereach.fetch_prices": fetch_prices,
    "casereach.reevaluate_alert": reevaluate_alert,
    "casereach.import_cases": import_cases,
    "casereach.whatsapp_template_sync": whatsapp_template_sync,
}


def send(name: str, *args: Any, **options: Any) -> None:
    """Publish one task by name (``expires`` and other Celery options as keywords)."""
    get_app().send_task(name, args=args, **options)
