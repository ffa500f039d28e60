"""A mobile worker with several numbers: SMS go to the worker's two-way number when there is
one, otherwise to the first (CommCare), for direct sends, alerts and the profile alike."""

from __future__ import annotations

from typing import Any

import pytest

from casereach.alerts.scheduler import run_until_idle
from casereach.messaging.models import Message
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
USERS = "/a/{project}/api/v0.5/user/"
FIRST, SECOND = "254700000001", "254700000002"


@pytest.fixture
def worker(api: Api) -> str:
    assert 201 == api.post(M + "gateways", {"name": "TEST", "type": "test"}).status
    assert 200 == api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    r = api.post(
        USERS, {"username": "nia", "password": "s3cret-pass", "phone_numbers": [FIRST, SECOND]}
    )
    assert 201 == r.status, r.body
    wid: str = r.body["id"]
    return wid


def sent_to(api: Api, wid: str) -> str:
    r = api.post(M + "send", {"contact_id": wid, "content": {"sms": {"en": "Hi"}}})
    assert 202 == r.status, r.body
    number: str = Message.objects.get(id=r.body["messages"][0]["id"]).phone_number
    return number


def broadcast_to(api: Api, wid: str) -> str:
    body: dict[str, Any] = {
        "name": f"to {wid}",
        "kind": "broadcast",
        "active": True,
        "content": {"sms": {"en": "Hi"}},
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "worker", "id": wid}],
    }
    Message.objects.all().delete()
    assert 201 == api.post(M + "alerts", body).status
    assert 1 == run_until_idle()
    return Message.objects.get().phone_number


def test_sends_go_to_the_first_number_without_a_two_way_one(api: Api, worker: str) -> None:
    assert FIRST == sent_to(api, worker)
    assert FIRST == broadcast_to(api, worker)
    assert FIRST == api.get(M + f"contacts/{worker}").body["phone"]["number"]


def test_sends_go_to_the_two_way_number(api: Api, worker: str) -> None:
    r = api.put(USERS + f"{worker}/", {"verified_numbers": [SECOND]})
    assert 200 == r.status, r.body
    assert SECOND == sent_to(api, worker)
    assert SECOND == broadcast_to(api, worker)
    phone = api.get(M + f"contacts/{worker}").body["phone"]
    assert (SECOND, "two_way") == (phone["number"], phone["status"])
