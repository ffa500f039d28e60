"""API authentication: ``Authorization: ApiKey <username>:<key>`` (any case), scoped to one
project, plus logged-in web users (session) for the UI.

Failures: no or bad credentials → 401; a key or user of another project → 403; too many
requests → 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from ninja.security import APIKeyHeader

from casereach.core.errors import CasereachError
from casereach.projects.models import Membership, Project
from casereach.projects.queries import find_api_key


class Unauthorized(CasereachError):
    status = 401


class Forbidden(CasereachError):
    status = 403


class Throttled(CasereachError):
    status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many requests; retry later")
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a username, the project their key is scoped to (None = web user with
    memberships), and whether they may administer it."""

    username: str
    project_id: int | None
    key_id: int | None = None
    user_id: int | None = None


def parse_authorization(header: str) -> tuple[str, str] | None:
    scheme, _, data = header.strip().partition(" ")
    if scheme.lower() != "apikey" or ":" not in data:
        return None
    username, _, key = data.strip().partition(":")
    if not username or not key:
        return None
    return username, key


class _Bucket:
    """A token bucket per API key (requests per second, with a burst)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.lock = threading.Lock()
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self.state[key] = (tokens - 1, now)
                return 0.0
            self.state[key] = (tokens, now)
            return (1 - tokens) / self.rate


def _rate() -> tuple[float, float]:
    raw = os.environ.get("CASEREACH_API_RATE", "100")
    try:
        rate = max(0.1, float(raw))
    except ValueError:
        rate = 100.0
    return rate, max(1.0, rate * 2)


BUCKET = _Bucket(*_rate())


class ApiKeyAuth(APIKeyHeader):
    """Documented in OpenAPI as the ``Authorization`` header."""

    param_name = "Authorization"
    openapi_description = "ApiKey <username>:<key> (scheme matched case-insensitively)"

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        if key:
            parsed = parse_authorization(key)
            if parsed is None:
                raise Unauthorized("Authorization must be 'ApiKey <username>:<key>'")
            found = find_api_key(*parsed)
            if found is None:
                raise Unauthorized("invalid API key")
            wait = BUCKET.take(found.key_hash)
            if wait > 0:
                raise Throttled(wait)
            return Principal(username=found.username, project_id=found.project_id, key_id=found.pk)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return Principal(username=user.get_username(), project_id=None, user_id=user.pk)
        raise Unauthorized("authentication required: send 'Authorization: ApiKey <username>:<key>'")


def principal_of(request: HttpRequest) -> Principal:
    auth: Any = getattr(request, "auth", None)
    if not isinstance(auth, Principal):
        raise Unauthorized("authentication required")
    return auth


def project_for(request: HttpRequest, project_name: str) -> Project:
    """The URL's project if the caller may use it (403 otherwise, also for unknown names,
    so a key never learns which other projects exist)."""
    principal = principal_of(request)
    project = Project.objects.filter(name=project_name).first()
    if principal.key_id is not None:
        if project is None or project.pk != principal.project_id:
            raise Forbidden("this API key is not valid for this project")
        return project
    if (
        project is None
        or principal.user_id is None
        or not Membership.objects.filter(user_id=principal.user_id, project=project).exists()
    ):
        raise Forbidden("you are not a member of this project")
    return project
