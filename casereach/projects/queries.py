"""Read helpers for projects and API keys."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from casereach.core.errors import NotFound
from casereach.projects.actions import hash_key
from casereach.projects.models import ApiKey, Membership, Project


def get_project_by_name(name: str) -> Project:
    try:
        return Project.objects.get(name=name)
    except Project.DoesNotExist:
        raise NotFound(f"Project '{name}' not found") from None


def find_api_key(username: str, key: str) -> ApiKey | None:
    """The active key matching ``username:key``, or None."""
    digest = hash_key(key)
    found = ApiKey.objects.filter(key_hash=digest, is_active=True).select_related("project").first()
    # Bytes: compare_digest refuses str holding anything but ASCII (a TypeError, once a 500
    # for ``ApiKey uä:<key>``); surrogatepass so no header text can make the encoding fail.
    if found is None or not hmac.compare_digest(
        found.username.encode("utf-8", "surrogatepass"), username.encode("utf-8", "surrogatepass")
    ):
        return None
    return found


@dataclass(frozen=True)
class ApiKeyRow:
    prefix: str
    username: str
    role: str | None  # the owner's role in the project; None when no longer a member
    state: str  # active | revoked
    created_on: datetime
    revoked_on: datetime | None


def list_api_keys(project: Project, *, username: str | None = None) -> list[ApiKeyRow]:
    """The project's keys, oldest first (never the key or its digest)."""
    keys = ApiKey.objects.filter(project=project).order_by("created_on", "pk")
    if username is not None:
        keys = keys.filter(username=username)
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    return [
        ApiKeyRow(
            prefix=k.prefix,
            username=k.username,
            role=roles.get(k.username),
            state="active" if k.is_active else "revoked",
            created_on=k.created_on,
            revoked_on=k.revoked_on,
        )
        for k in keys
    ]
