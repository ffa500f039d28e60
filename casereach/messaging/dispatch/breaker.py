"""Per-gateway admission, shared by every dispatcher through the gateway's state rows: the
circuit breaker, the segment-weighted token bucket (``rate_limit_per_s``) and CommCare's
per-minute limit (``rate_limit_per_minute``).

The decisions (``admit_bucket``, ``admit_minute``, ``count_failures``) are pure functions of
the rows ``gateways.state`` reads; ``throttle`` and ``record_outcomes`` wrap them in the
transaction that locks, reads and writes those rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping

from django.db import transaction

from casereach.gateways import state as gates
from casereach.gateways.models import GatewayConfig, GatewayState, RateWindow
from casereach.messaging.dispatch.jobs import Job

CIRCUIT_THRESHOLD = 5  # retryable failures in a row that open a gateway's circuit
CIRCUIT_BASE_S = 30  # how long it rests the first time (doubling each further failure)
CIRCUIT_MAX_S = 300
MINUTE = dt.timedelta(minutes=1)


def resting_until(state: GatewayState, at: dt.datetime) -> dt.datetime | None:
    """When the gateway's open circuit closes again; None when it is closed at ``at``."""
    if state.open_until is not None and state.open_until > at:
        return state.open_until
    return None


def admit_bucket(rate: float, state: GatewayState, jobs: list[Job], at: dt.datetime) -> None:
    """The token bucket: refill ``state`` to ``at``, take each job's segments while tokens
    last, postpone the rest to when the bucket will have refilled for them."""
    elapsed = (at - state.refilled_on).total_seconds() if state.refilled_on else 0
    capacity = max(rate, 1.0)
    tokens = min(capacity, state.tokens + max(0.0, elapsed) * rate)
    # Postponed messages queue behind each other (spread over their future slots) but take
    # no tokens: when they come back they pay then. Taking tokens for them as well made every
    # re-claim push the whole backlog further out, and a backlog larger than a batch never
    # drained.
    ahead = 0.0
    for j in jobs:
        cost = j.segments
        if not ahead and tokens >= cost:
            tokens -= cost
        else:
            ahead += cost
            j.postpone(at + dt.timedelta(seconds=(ahead - max(tokens, 0.0)) / rate))
    state.tokens, state.refilled_on = tokens, at


def minute_sender(cfg: GatewayConfig, job: Job) -> str:
    """Whose minute a job counts in: its sender number's when the gateway limits per sender."""
    return job.sender if cfg.rate_limit_per_sender else ""


def admit_minute(
    cfg: GatewayConfig, jobs: list[Job], windows: dict[str, RateWindow], at: dt.datetime
) -> tuple[list[Job], list[RateWindow]]:
    """CommCare's per-minute limit: the first ``rate_limit_per_minute`` segments of a minute
    go at once (a burst), the rest are postponed to the minutes after, in order. The minute
    starts at its first send. ``windows`` holds the current windows by sender (missing ones
    are started here). Returns the jobs that may still send and the windows to store."""
    limit = cfg.rate_limit_per_minute or 0
    by_sender: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        by_sender[minute_sender(cfg, j)].append(j)
    allowed: list[Job] = []
    touched: list[RateWindow] = []
    for sender, group in by_sender.items():
        window = windows.get(sender)
        if window is None:
            window = windows[sender] = gates.new_window(cfg.pk, sender, at)
        elif at >= window.started_on + MINUTE:
            window.started_on, window.sent = at, 0
        ahead = 0
        for j in group:
            cost = min(limit, j.segments)
            if not ahead and window.sent + cost <= limit:
                window.sent += cost
                allowed.append(j)
            else:
                ahead += cost
                minutes = -(-(ahead - max(0, limit - window.sent)) // limit)  # ceiling
                j.postpone(window.started_on + MINUTE * max(1, minutes))
        touched.append(window)
    return allowed, touched


def throttle(jobs: list[Job], at: dt.datetime) -> None:
    """The circuit breaker, the per-minute windows and the token bucket of each gateway of a
    batch's sendable jobs, under the lock of the gateways' state rows."""
    by_gateway: dict[int, list[Job]] = defaultdict(list)
    for j in jobs:
        assert j.cfg is not None
        by_gateway[j.cfg.pk].append(j)
    if not by_gateway:
        return
    with transaction.atomic():
        states = gates.lock_states(by_gateway)
        for gateway_id, group in by_gateway.items():
            cfg = group[0].cfg
            assert cfg is not None
            state = states.get(gateway_id) or gates.new_state(
                gateway_id, cfg.rate_limit_per_s or 0, at
            )
            until = resting_until(state, at)
            if until is not None:  # the circuit is open: the whole group waits, no write
                for j in group:
                    j.postpone(until)
                continue
            if cfg.rate_limit_per_minute:
                senders = dict.fromkeys(minute_sender(cfg, j) for j in group)
                windows = gates.lock_windows(cfg.pk, senders)
                group, touched = admit_minute(cfg, group, windows, at)
                for window in touched:
                    gates.save_window(window)
            if cfg.rate_limit_per_s:
                admit_bucket(cfg.rate_limit_per_s, state, group, at)
            gates.save_state(state)


def count_failures(state: GatewayState, failures: int, at: dt.datetime) -> None:
    """Retryable failures in a row: from CIRCUIT_THRESHOLD on the gateway rests (30 s,
    doubling with each further failure, at most 5 min)."""
    state.consecutive_failures += failures
    if state.consecutive_failures >= CIRCUIT_THRESHOLD:
        extra = state.consecutive_failures - CIRCUIT_THRESHOLD
        seconds = min(CIRCUIT_MAX_S, CIRCUIT_BASE_S * (2 ** min(extra, 10)))
        state.open_until = at + dt.timedelta(seconds=seconds)


def record_outcomes(outcomes: Mapping[int, tuple[int, int]], at: dt.datetime) -> None:
    """After a batch, per gateway (successes, retryable failures): any success closes its
    circuit; otherwise the failures count toward opening it. In the caller's transaction."""
    for gateway_id, (successes, failures) in outcomes.items():
        if successes > 0:
            gates.close_circuit(gateway_id)
            continue
        state = gates.lock_circuit(gateway_id, at)
        count_failures(state, failures, at)
        gates.save_circuit(state)
