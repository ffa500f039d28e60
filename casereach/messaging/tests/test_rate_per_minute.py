"""CommCare's per-minute rate limits: a burst of the whole minute's allowance at once, the
rest held for the next minute; per sender number on load-balanced gateways when asked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging.models import Message
from casereach.testing.gateways import default_gateway as gateway
from casereach.testing.sending import run_once
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
# pick_sender: of two sender numbers, the first two go through one, the third the other
TO_A, TO_A2, TO_B = "254712345601", "254712345602", "254712345604"


def send(api: Api, to: str) -> str:
    r = api.post(M + "send", {"phone_number": to, "text": "Hi"})
    assert 202 == r.status, r.body
    mid: str = r.body["messages"][0]["id"]
    return mid


def test_ten_per_minute_sends_ten_at_once_and_holds_the_eleventh(api: Api) -> None:
    gateway(api, rate_limit_per_minute=10)
    ids = [send(api, TO_A) for _ in range(11)]
    before = now()
    run_once()
    statuses = [Message.objects.get(id=i).status for i in ids]
    assert 10 == statuses.count("sent")
    [held] = Message.objects.filter(id__in=ids, status="queued")
    assert held.next_attempt_at is not None
    assert held.next_attempt_at >= before + dt.timedelta(seconds=59)
    assert 10 == len(OUTBOX)


def test_the_limit_applies_to_each_sender_number_when_asked(api: Api) -> None:
    gateway(
        api,
        rate_limit_per_minute=1,
        rate_limit_per_sender=True,
        sender_numbers=["254700000100", "254700000200"],
    )
    for to in (TO_A, TO_A2, TO_B):
        send(api, to)
    run_once()
    assert 2 == len(OUTBOX)
    assert 2 == len({o.sender for o in OUTBOX})
    assert 1 == Message.objects.filter(status="queued").count()


def test_without_per_sender_the_limit_is_the_gateways(api: Api) -> None:
    gateway(api, rate_limit_per_minute=1, sender_numbers=["254700000100", "254700000200"])
    for to in (TO_A, TO_A2, TO_B):
        send(api, to)
    run_once()
    assert 1 == len(OUTBOX)


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True])
def test_bad_per_minute_limits_are_400(api: Api, value: Any) -> None:
    r = api.post(M + "gateways", {"name": "T", "type": "test", "rate_limit_per_minute": value})
    assert 400 == r.status
    assert "rate_limit_per_minute" in r.body["error"]


def test_limits_are_shown_and_changed(api: Api) -> None:
    gateway(api, rate_limit_per_minute=10)
    [gw] = [g for g in api.get(M + "gateways").body["objects"] if g["name"] == "TEST"]
    assert (10, False, None) == (
        gw["rate_limit_per_minute"],
        gw["rate_limit_per_sender"],
        gw["rate_limit_per_s"],
    )
    r = api.put(M + f"gateways/{gw['id']}", {"rate_limit_per_sender": True})
    assert 200 == r.status, r.body
    assert True is r.body["rate_limit_per_sender"]
