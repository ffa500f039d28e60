"""A mobile worker's profile describes the number SMS go to (issue 16 items 8 and 3): with two
numbers, after the second is made two-way, ``phone.number`` *and* ``phone.raw`` are the
second's; before, both are the first's."""

from __future__ import annotations

from typing import Any

from casereach.testing.world import Api

USERS = "/a/{project}/api/v0.5/user/"
M = "/a/{project}/api/messaging/v1/"


def phone(api: Api, worker_id: str) -> dict[str, Any]:
    r = api.get(M + f"contacts/{worker_id}")
    assert 200 == r.status, r.body
    out: dict[str, Any] = r.body["phone"]
    return out


def test_phone_raw_is_the_number_used(api: Api) -> None:
    body = {
        "username": "amina",
        "password": "s3cret-pass",
        "phone_numbers": ["254700000001", " 254 700 000 002"],
    }
    r = api.post(USERS, body)
    assert 201 == r.status, r.body
    wid = r.body["id"]
    assert ("254700000001", "254700000001") == (phone(api, wid)["number"], phone(api, wid)["raw"])
    second = r.body["phone_numbers"][1]
    r = api.put(USERS + f"{wid}/", {"verified_numbers": [second]})
    assert 200 == r.status, r.body
    shown = phone(api, wid)
    assert ("254700000002", second, "two_way") == (shown["number"], shown["raw"], shown["status"])
