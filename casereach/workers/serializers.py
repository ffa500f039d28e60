"""A mobile worker as CommCare's user API shows it: the response schemas (OpenAPI) and the
function that makes the object."""

from __future__ import annotations

from typing import Any

from ninja import Schema

from casereach.workers.models import MobileWorker


class UserOut(Schema):
    """A mobile worker as CommCare's user API shows it, plus casereach's own fields."""

    type: str
    id: str
    username: str
    first_name: str | None
    last_name: str | None
    email: str
    default_phone_number: str | None
    phone_numbers: list[str]
    groups: list[str]
    primary_location: str | None
    locations: list[str]
    user_data: dict[str, Any]
    eulas: str
    resource_uri: str
    language: str
    time_zone: str
    is_active: bool
    verified_numbers: list[str]


class UserListMeta(Schema):
    limit: int
    next: str | None
    offset: int
    previous: str | None
    total_count: int


class UserListOut(Schema):
    meta: UserListMeta
    objects: list[UserOut]


class UserApiError(Schema):
    error: str
    detail: Any = None


def user_uri(project_name: str, worker_id: str | None = None) -> str:
    base = f"/a/{project_name}/api/v0.5/user/"
    return f"{base}{worker_id}/" if worker_id else base


def serialize_worker(worker: MobileWorker, project_name: str) -> dict[str, Any]:
    phones = [str(n) for n in worker.phone_numbers]
    user_data: dict[str, Any] = dict(worker.user_data or {})
    user_data.update(
        {
            "commcare_project": project_name,
            "commcare_location_id": None,
            "commcare_location_ids": [],
            "commcare_primary_case_sharing_id": None,
            "commcare_profile": "",
        }
    )
    return {
        "type": "user",
        "id": worker.pk,
        "username": worker.username,
        "first_name": worker.first_name,
        "last_name": worker.last_name,
        "email": worker.email,
        "default_phone_number": phones[0] if phones else None,
        "phone_numbers": phones,
        "groups": list(worker.groups),
        "primary_location": None,
        "locations": [],
        "user_data": user_data,
        "eulas": "[]",
        "resource_uri": user_uri(project_name, worker.pk),
        "language": worker.language,
        "time_zone": worker.time_zone,
        "is_active": worker.is_active,
        "verified_numbers": list(worker.verified_numbers),
    }
