"""Read helpers for projects and API keys."""

from __future__ import annotations

import hmac

from casereach.core.errors import NotFound
from casereach.projects.actions import hash_key
from casereach.projects.models import ApiKey, Project


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
