"""Mobile workers through the CommCare-compatible user API (tests only)."""

from __future__ import annotations

from typing import Any

from casereach.testing.world import Api

USERS = "/a/{project}/api/v0.5/user/"


def worker_body(username: str = "amina", **fields: Any) -> dict[str, Any]:
    return {"username": username, "password": "s3cret-pass", **fields}


def create_worker(api: Api, username: str = "amina", **fields: Any) -> dict[str, Any]:
    """A mobile worker; the user object the API answered with."""
    r = api.post(USERS, worker_body(username, **fields))
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body
