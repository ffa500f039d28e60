"""``/metrics`` in the Prometheus text format, from a few aggregate queries.

The figures name every project's gateways, so ``access`` guards them: with
``CASEREACH_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``; without
it only a client on this machine (a loopback address, not relayed by a proxy) may read them.

The database is the record, so the figures are the same whichever process answers the
scrape: outbox depth per status, due messages and schedule instances, gateway calls per
gateway and outcome with a latency histogram, and lease reclaims (calls whose worker died).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Sequence
from typing import Any

from django.db import connection

from casereach.alerts.models import ScheduleInstance
from casereach.core import bulk
from casereach.core.timeutil import now
from casereach.messaging.inbound_queue import MAX_INBOUND_ATTEMPTS
from casereach.messaging.models import InboundQueue, Message, SendAttempt

METRICS_TOKEN_ENV = "CASEREACH_METRICS_TOKEN"  # noqa: S105 (a variable name)
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LEASE_DETAIL = "lease expired%"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return list(cursor.fetchall())


def access(meta: dict[str, Any]) -> tuple[int, str] | None:
    """Why a scrape with these WSGI ``meta`` values is refused, as (status, message), or None.

    Raises nothing: a malformed header is a refusal like any other.
    """
    token = os.environ.get(METRICS_TOKEN_ENV, "").strip()
    if token:
        scheme, _, given = str(meta.get("HTTP_AUTHORIZATION", "")).partition(" ")
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode()):
            return None
        return 401, f"metrics need Authorization: Bearer <{METRICS_TOKEN_ENV}>"
    try:
        loopback = ipaddress.ip_address(str(meta.get("REMOTE_ADDR", ""))).is_loopback
    except ValueError:
        loopback = False
    if loopback and not any(meta.get(h) for h in _PROXY_HEADERS):
        return None
    return 403, (
        f"metrics are served to this machine only; set {METRICS_TOKEN_ENV} to scrape from "
        "elsewhere (Authorization: Bearer <token>)"
    )


def _gauge(name: str, help_text: str, value: object) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]


def _outbox(at: object) -> list[str]:
    msg = Message._meta.db_table
    inst = ScheduleInstance._meta.db_table
    out = [
        "# HELP casereach_outbox_messages Outbound messages by status.",
        "# TYPE casereach_outbox_messages gauge",
    ]
    for status, count in _rows(
        f"SELECT status, COUNT(*) FROM {msg} WHERE direction = 'out' GROUP BY status"
    ):
        out.append(f'casereach_outbox_messages{{status="{_label(str(status))}"}} {count}')
    (due,) = _rows(
        f"SELECT COUNT(*) FROM {msg} WHERE status = 'queued' AND next_attempt_at <= %s", [at]
    )[0]
    out += _gauge("casereach_outbox_due", "Queued messages whose send time has come.", due)
    (expired,) = _rows(
        f"SELECT COUNT(*) FROM {msg} WHERE status = 'sending' AND lease_until < %s", [at]
    )[0]
    out += _gauge(
        "casereach_outbox_expired_leases", "Messages whose dispatcher lease expired.", expired
    )
    (instances,) = _rows(
        f"SELECT COUNT(*) FROM {inst} WHERE active = %s AND next_due <= %s", [True, at]
    )[0]
    out += _gauge("casereach_schedule_due", "Active schedule instances that are due.", instances)
    queued, dead = _rows(
        "SELECT COUNT(*) - COUNT(CASE WHEN attempts >= %s THEN 1 END), "
        f"COUNT(CASE WHEN attempts >= %s THEN 1 END) FROM {InboundQueue._meta.db_table}",
        [MAX_INBOUND_ATTEMPTS, MAX_INBOUND_ATTEMPTS],
    )[0]
    out += _gauge(
        "casereach_inbound_queued", "Inbound SMS accepted and waiting for a worker.", queued
    )
    out += _gauge(
        "casereach_inbound_dead", "Inbound SMS whose handling failed every attempt.", dead
    )
    return out


def _gateway_calls() -> list[str]:
    att = SendAttempt._meta.db_table
    buckets = ", ".join(f"SUM(CASE WHEN duration_ms <= {b} THEN 1 ELSE 0 END)" for b in BUCKETS_MS)
    rows = _rows(
        f"SELECT gateway_name, outcome, COUNT(*), COALESCE(SUM(duration_ms), 0), {buckets}, "
        f"SUM(CASE WHEN detail LIKE %s THEN 1 ELSE 0 END) "
        f"FROM {att} GROUP BY gateway_name, outcome ORDER BY gateway_name, outcome",
        [LEASE_DETAIL],
    )
    out = [
        "# HELP casereach_gateway_sends_total Gateway calls by gateway and outcome.",
        "# TYPE casereach_gateway_sends_total counter",
    ]
    for gw, outcome, count, *_ in rows:
        out.append(
            f'casereach_gateway_sends_total{{gateway="{_label(str(gw))}",'
            f'outcome="{_label(str(outcome))}"}} {count}'
        )
    out += [
        "# HELP casereach_gateway_send_duration_seconds Gateway call latency.",
        "# TYPE casereach_gateway_send_duration_seconds histogram",
    ]
    for gw, outcome, count, total_ms, *rest in rows:
        labels = f'gateway="{_label(str(gw))}",outcome="{_label(str(outcome))}"'
        for b, n in zip(BUCKETS_MS, rest[: len(BUCKETS_MS)], strict=True):
            out.append(
                f'casereach_gateway_send_duration_seconds_bucket{{{labels},le="{b / 1000:g}"}} '
                f"{int(n or 0)}"
            )
        out.append(f'casereach_gateway_send_duration_seconds_bucket{{{labels},le="+Inf"}} {count}')
        out.append(
            f"casereach_gateway_send_duration_seconds_sum{{{labels}}} {int(total_ms or 0) / 1000:g}"
        )
        out.append(f"casereach_gateway_send_duration_seconds_count{{{labels}}} {count}")
    reclaims = sum(int(r[-1] or 0) for r in rows)
    out += [
        "# HELP casereach_lease_reclaims_total Messages re-queued after their lease expired.",
        "# TYPE casereach_lease_reclaims_total counter",
        f"casereach_lease_reclaims_total {reclaims}",
    ]
    return out


def render() -> str:
    out = _outbox(bulk.adapt_datetime(now())) + _gateway_calls()
    return "\n".join(out) + "\n"
