"""The per-gateway token bucket lives in the database (GatewayState, locked per claim), so
any number of dispatchers — threads, processes, Celery workers — share one rate. A fake
clock drives several dispatchers taking turns over a backlog larger than a batch."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def test_two_dispatchers_share_one_rate_and_drain_a_backlog(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    OUTBOX.clear()
    assert (
        201 == api.post(M + "gateways", {"name": "T", "type": "test", "rate_limit_per_s": 2}).status
    )
    assert 200 == api.put(M + "routes", {"default_gateway": "T", "prefixes": []}).status
    for i in range(30):
        assert 202 == api.post(M + "send", {"phone_number": f"2547120{i:05d}", "text": "x"}).status
    start = now() + dt.timedelta(seconds=1)
    clock: dict[str, Any] = {"at": start}
    monkeypatch.setattr(Dispatcher, "clock", lambda self: clock["at"])
    dispatchers = [Dispatcher(batch_size=8, concurrency=1) for _ in range(2)]
    sent_at: Counter[int] = Counter()
    try:
        for step in range(200):  # 0.25 s steps: 50 simulated seconds at most
            before = len(OUTBOX)
            dispatchers[step % 2].run_once()
            second = int((clock["at"] - start).total_seconds())
            sent_at[second] += len(OUTBOX) - before
            if len(OUTBOX) == 30:
                break
            clock["at"] += dt.timedelta(seconds=0.25)
    finally:
        for d in dispatchers:
            d.close()
    assert 30 == len(OUTBOX)
    assert {"sent": 30} == dict(Counter(Message.objects.values_list("status", flat=True)))
    # A bucket of 2 tokens refilled at 2/s: never more than 2 + 2 in any simulated second,
    # and the whole backlog within (30 - 2) / 2 = 14 s plus a little rounding.
    assert max(sent_at.values()) <= 4, sent_at
    assert max(sent_at) <= 16, sent_at
