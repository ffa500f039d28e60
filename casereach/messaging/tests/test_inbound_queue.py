"""The scale-out path of inbound SMS: with a kick registered, the webhook only stores what it
accepted; a worker's ``handle_queued`` then handles each message exactly as the request would
have, once, and removes it from the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from casereach.messaging.inbound_queue import handle_queued, register_inbound_kick
from casereach.messaging.models import InboundQueue, Message, OptOut
from casereach.messaging.tests import test_inbound
from casereach.messaging.tests.test_inbound import NUMBER, case, path_of
from casereach.testing.world import Api

gw = test_inbound.gw  # the inbound tests' routed test gateway


@pytest.fixture
def kicks() -> Iterator[list[int]]:
    sent: list[int] = []
    register_inbound_kick(lambda: sent.append(1))
    try:
        yield sent
    finally:
        register_inbound_kick(None)


def post(gw: dict[str, Any], text: str, **extra: str) -> Any:
    form = {"from": NUMBER, "to": "5550000", "text": text, **extra}
    return Client().post(path_of(gw["inbound_url"]), form, HTTP_ACCEPT="application/json")


def test_the_webhook_queues_and_a_worker_handles_it_once(
    api: Api, gw: dict[str, Any], kicks: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    cid = case(api, phone=NUMBER, verified="yes")
    with django_capture_on_commit_callbacks(execute=True):
        r = post(gw, "STOP", id="prov-q1")
    assert 200 == r.status_code
    # Stored for a worker, nothing handled yet, one kick after the commit.
    assert (1, 0, [1]) == (
        InboundQueue.objects.count(),
        Message.objects.filter(direction="in").count(),
        kicks,
    )
    assert 1 == handle_queued()
    inbound = Message.objects.get(direction="in")
    assert (cid, "opt_out", 0) == (
        inbound.contact_id,
        inbound.inbound_action,
        InboundQueue.objects.count(),
    )
    assert OptOut.objects.get(phone_number=NUMBER).opted_out
    assert 0 == handle_queued()


def test_a_redelivery_queued_twice_is_handled_once(
    api: Api, gw: dict[str, Any], kicks: list[int]
) -> None:
    case(api, phone=NUMBER, verified="yes")
    for _ in range(2):
        assert 200 == post(gw, "HELP", id="prov-q2").status_code
    assert 2 == handle_queued()
    assert 1 == Message.objects.filter(direction="in").count()
    assert 1 == Message.objects.filter(direction="out").count()  # one HELP reply


def test_without_a_kick_the_request_handles_it(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER, verified="yes")
    assert 200 == post(gw, "STOP").status_code
    assert (0, 1) == (
        InboundQueue.objects.count(),
        Message.objects.filter(direction="in").count(),
    )


def test_a_message_whose_handling_fails_is_retried_then_left_aside(
    api: Api, gw: dict[str, Any], kicks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from casereach.messaging import inbound_queue

    case(api, phone=NUMBER, verified="yes")
    assert 200 == post(gw, "STOP", id="prov-bad").status_code
    assert 200 == post(gw, "HELP", id="prov-good").status_code
    real = inbound_queue.do_receive

    def broken_for_stop(gw_obj: Any, message: Any) -> Any:
        if message.text == "STOP":
            raise RuntimeError("handler bug")
        return real(gw_obj, message)

    monkeypatch.setattr(inbound_queue, "do_receive", broken_for_stop)
    assert 1 == handle_queued()  # the HELP behind it is not held up
    dead = InboundQueue.objects.get()
    assert (inbound_queue.MAX_INBOUND_ATTEMPTS, "RuntimeError: handler bug") == (
        dead.attempts,
        dead.last_error,
    )
    assert ["help"] == [m.inbound_action for m in Message.objects.filter(direction="in")]
    assert 0 == handle_queued()
