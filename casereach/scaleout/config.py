"""Which runtime mode the environment selects, and the Celery settings for the scale-out one."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BROKER_ENV = "CASEREACH_BROKER_URL"
# Several installations (or test runs) may share one broker: each names its queues, and on
# Redis all its keys, with its own prefix, so that none takes another's work.
PREFIX_ENV = "CASEREACH_QUEUE_PREFIX"
DEFAULT_PREFIX = "casereach."
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*\.")
# Short names for ``casereach worker --queues`` → the broker's queue names.
QUEUES = ("dispatch", "schedule", "bulk")
KICK_INTERVAL_S = float(os.environ.get("CASEREACH_KICK_SECONDS", "1.0"))
REAP_INTERVAL_S = 15.0
PRICE_INTERVAL_S = 30.0  # asking providers for prices of final messages (Twilio)
# How long one dispatch or scheduler task keeps claiming batches before it hands its slot
# back (other queues' tasks wait behind it at most this long).
TASK_BUDGET_S = float(os.environ.get("CASEREACH_TASK_BUDGET_SECONDS", "4.0"))


def whatsapp_sync_interval_s() -> float:
    """Seconds between beat's WhatsApp template syncs: CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS
    (6 by default), as the ``serve`` loop reads it (``messaging.whatsapp_templates``)."""
    raw = os.environ.get("CASEREACH_WHATSAPP_TEMPLATE_SYNC_HOURS", "").strip()
    try:
        hours = float(raw) if raw else 6.0
    except ValueError:
        hours = 6.0
    return max(hours, 0.01) * 3600


def broker_url() -> str:
    return os.environ.get(BROKER_ENV, "").strip()


def broker_mode() -> bool:
    """True when background work runs in Celery workers rather than inside ``serve``."""
    return bool(broker_url())


def check_broker_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
        raise ValueError(f"{BROKER_ENV} must start with redis:// or amqp:// (got {scheme}://)")
    queue_prefix()  # a bad prefix stops the process here, with its own message


def masked(url: str) -> str:
    """The broker URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def queue_prefix() -> str:
    """This installation's queue prefix: ``casereach.`` unless CASEREACH_QUEUE_PREFIX says."""
    raw = os.environ.get(PREFIX_ENV, "").strip()
    if not raw:
        return DEFAULT_PREFIX
    if len(raw) > 64 or not _PREFIX.fullmatch(raw):
        raise ValueError(
            f"{PREFIX_ENV} must be lower-case letters, digits, '-', '_' and dots, ending in a "
            f"dot, at most 64 characters (got {raw!r})"
        )
    return raw


def queue_name(short: str) -> str:
    prefix = queue_prefix()
    return short if short.startswith(prefix) else prefix + short


def short_name(queue: str) -> str:
    """``dispatch`` for this installation's ``<prefix>dispatch``; other names unchanged."""
    return queue.removeprefix(queue_prefix())


def transport_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": 3600}
    prefix = queue_prefix()
    # Redis keeps the unacknowledged set and the bindings under fixed key names: a prefix of
    # its own keeps two installations on one Redis database apart. The default prefix keeps
    # the keys an existing deployment already has.
    if urlsplit(url).scheme in ("redis", "rediss") and prefix != DEFAULT_PREFIX:
        options["global_keyprefix"] = prefix
    return options


def _kick(task: str) -> dict[str, Any]:
    """A beat entry that asks for ``task`` every kick interval (expired if not taken)."""
    return {
        "task": task,
        "schedule": KICK_INTERVAL_S,
        "options": {"expires": KICK_INTERVAL_S * 3},
    }


def celery_settings(url: str) -> dict[str, Any]:
    check_broker_url(url)
    return {
        "broker_url": url,
        # No result backend: tasks return nothing worth keeping; the database is the record.
        "task_ignore_result": True,
        "result_backend": None,
        # Kicks are acknowledged early: a kick lost with a killed worker costs nothing (the
        # next one comes within a second, and the reaper re-claims the rows it had leased).
        "task_acks_late": False,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": queue_name("dispatch"),
        "task_routes": {
            "casereach.dispatch": {"queue": queue_name("dispatch")},
            "casereach.reap_leases": {"queue": queue_name("dispatch")},
            "casereach.handle_inbound": {"queue": queue_name("dispatch")},
            "casereach.commcare_writeback": {"queue": queue_name("schedule")},
            "casereach.fetch_prices": {"queue": queue_name("schedule")},
            "casereach.fire_due": {"queue": queue_name("schedule")},
            "casereach.survey_timers": {"queue": queue_name("schedule")},
            "casereach.alert_reply_timers": {"queue": queue_name("schedule")},
            "casereach.chain_timeouts": {"queue": queue_name("schedule")},
            "casereach.whatsapp_template_sync": {"queue": queue_name("schedule")},
            "casereach.reevaluate_alert": {"queue": queue_name("bulk")},
            "casereach.import_cases": {"queue": queue_name("bulk")},
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a broker outage is waited out, forever
        "broker_transport_options": transport_options(url),
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            **{
                name.replace("_", "-"): _kick(f"casereach.{name}")
                for name in (
                    "dispatch",
                    "fire_due",
                    "survey_timers",
                    "alert_reply_timers",
                    "chain_timeouts",
                    "handle_inbound",
                    "commcare_writeback",
                )
            },
            "fetch-prices": {
                "task": "casereach.fetch_prices",
                "schedule": PRICE_INTERVAL_S,
                "options": {"expires": PRICE_INTERVAL_S * 2},
            },
            "reap-leases": {
                "task": "casereach.reap_leases",
                "schedule": REAP_INTERVAL_S,
                "options": {"expires": REAP_INTERVAL_S * 2},
            },
            "whatsapp-template-sync": {
                "task": "casereach.whatsapp_template_sync",
                "schedule": whatsapp_sync_interval_s(),
                "options": {"expires": 3600},
            },
        },
    }
