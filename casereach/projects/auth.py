"""API authentication: ``Authorization: ApiKey <username>:<key>`` (any case), scoped to one
project, plus logged-in web users (session) for the UI; and the one place where every
operation's required role is checked.

The system administrator (a Django superuser: their browser session, or an API key they
own, whichever project it was made for) is a principal of its own: only they may call the
operations declared with ``requires_system_admin`` (``/api/admin/v1/…``); no project role,
not even admin, grants them.

The ``Authorization`` schemes (ApiKey, Basic, Bearer, Digest) are read by
``projects.credentials``.

Failures: no or bad credentials → 401 with a Digest challenge; a key or user of another project → 403; a role too
weak for the operation → 403 naming the role; an unsafe request signed in by session without
its CSRF token → 403; too many requests with one key, or too many bad keys from one client
address → 429 with ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponseForbidden
from django.middleware.csrf import CsrfViewMiddleware
from ninja.decorators import decorate_view
from ninja.security import APIKeyHeader
from ninja.utils import contribute_operation_callback

from casereach.core.errors import CasereachError
from casereach.projects import digest
from casereach.projects.models import Project, Role
from casereach.projects.queries import member_role, project_named


class Unauthorized(CasereachError):
    """401, with a fresh HTTP Digest challenge for the ``WWW-Authenticate`` header (so a
    client in Digest mode, as commcare-export by default, answers it)."""

    status = 401

    def __init__(self, message: str, detail: Any = None, *, stale: bool = False) -> None:
        super().__init__(message, detail)
        self.challenge = digest.challenge(stale=stale)


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
    memberships), and their role in the URL's project (None when the URL names none)."""

    username: str
    project_id: int | None
    key_id: int | None = None
    user_id: int | None = None
    role: Role | None = None
    system_admin: bool = False


class SystemRole(Enum):
    """What an operation outside every project needs: the system administrator (a Django
    superuser). Not a project role: ``Role.ADMIN`` of any project does not grant it."""

    SYSTEM_ADMIN = "system administrator"


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


F = TypeVar("F", bound=Callable[..., Any])
_ROLE_ATTR = "casereach_required_role"
_PROJECT_ATTR = "casereach_project"


def requires(role: Role | SystemRole) -> Callable[[F], F]:
    """Declare the role an API operation needs; put it under the ``@router`` decorator::

        @router.api_operation(["PUT"], "/a/{project}/api/messaging/v1/settings")
        @requires(Role.ADMIN)
        def put_settings(request, project: str): ...

    ``ApiKeyAuth`` checks it, before the body is read, for every caller. An operation that
    declares nothing needs admin (fail closed); a test checks that every one declares."""

    def mark(run: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            setattr(request, _ROLE_ATTR, role)
            return run(request, *args, **kwargs)

        return wrapped

    def document(operation: Any) -> None:
        operation.openapi_extra = {**(operation.openapi_extra or {}), "x-required-role": role.value}

    def decorator(fn: F) -> F:
        fn.required_role = role  # type: ignore[attr-defined]  # read by the role table test
        contribute_operation_callback(fn, document)
        return decorate_view(mark)(fn)

    return decorator


def requires_system_admin() -> Callable[[F], F]:
    """Declare an operation of the system administrator's (global gateways and routes)."""
    return requires(SystemRole.SYSTEM_ADMIN)


def required_role(request: HttpRequest) -> Role:
    role = getattr(request, _ROLE_ATTR, None)
    return role if isinstance(role, Role) else Role.ADMIN


def client_address(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind a reverse proxy the last value of the
    header ``CASEREACH_CLIENT_IP_HEADER`` names (the one the proxy appended). Logins and bad
    API keys are throttled per this address."""
    header = getattr(settings, "CASEREACH_CLIENT_IP_HEADER", "")
    if header:
        value = request.headers.get(header, "")
        last = _ip(value.split(",")[-1])
        if last is not None:
            return last
    # Always an address: django-axes stores it in an IP column (PostgreSQL's inet refuses
    # anything else), so a missing or malformed value becomes the unspecified address.
    return _ip(str(request.META.get("REMOTE_ADDR") or "")) or "0.0.0.0"  # noqa: S104


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        return None


class _KeyFailures:
    """Bad API keys per client address in a sliding window; past the limit the address gets
    429 for further bad keys until its oldest failure leaves the window."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.lock = threading.Lock()
        self.state: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self.state.get(address, []) if now - t < self.window]
        if times:
            self.state[address] = times
        else:
            self.state.pop(address, None)
        return times

    def wait(self, address: str) -> float:
        """0 when the address may try a key, else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            times = self._recent(address, now)
            if len(times) < self.limit:
                return 0.0
            return self.window - (now - times[-self.limit])

    def fail(self, address: str) -> None:
        now = time.monotonic()
        with self.lock:
            times = self._recent(address, now)
            times.append(now)
            self.state[address] = times[-self.limit :]
            if len(self.state) > 100_000:  # bounded memory under a spray of addresses
                self.state.pop(next(iter(self.state)))


def _key_failure_limits() -> tuple[int, float]:
    def number(name: str, default: float) -> float:
        try:
            return max(1.0, float(os.environ.get(name, "") or default))
        except ValueError:
            return default

    return int(number("CASEREACH_API_KEY_FAILURES", 100)), number(
        "CASEREACH_API_KEY_FAILURE_WINDOW", 60
    )


KEY_FAILURES = _KeyFailures(*_key_failure_limits())


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, keeping the reason it refused."""

    reason = ""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponseForbidden:
        self.reason = reason
        return HttpResponseForbidden()


def _no_view(request: HttpRequest) -> HttpResponseForbidden:
    raise AssertionError("never called: the CSRF check only inspects the request")


def check_csrf(request: HttpRequest) -> None:
    """An unsafe request signed in by a browser session must carry the CSRF token (the
    ``X-CSRFToken`` header, as Django expects); API keys need none."""
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    check = _CsrfCheck(lambda r: HttpResponseForbidden())
    request.csrf_processing_done = False  # type: ignore[attr-defined]  # force the check
    check.process_request(request)
    if check.process_view(request, _no_view, (), {}) is not None:
        raise Forbidden(
            f"CSRF check failed ({check.reason}): a request signed in by the browser session "
            "must send the X-CSRFToken header; API clients use an API key",
            {"reason": check.reason},
        )


class ApiKeyAuth(APIKeyHeader):
    """Documented in OpenAPI as the ``Authorization`` header; the schemes are
    ``projects.credentials``'s."""

    param_name = "Authorization"
    openapi_description = (
        "ApiKey <username>:<key> (scheme matched case-insensitively); Basic (username with "
        "an API key or the web password); Bearer <key>; or HTTP Digest (realm casereach, "
        "qop auth, MD5 or SHA-256) with an API key or the web password"
    )

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        if key:
            from casereach.projects.credentials import principal_from

            principal = principal_from(request, key)
        else:
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated:
                raise Unauthorized(
                    "authentication required: send 'Authorization: ApiKey <username>:<key>', "
                    "Basic or Digest credentials"
                )
            check_csrf(request)
            principal = Principal(username=user.get_username(), project_id=None, user_id=user.pk)
        return _with_role(request, principal)


def url_project(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    name = match.kwargs.get("project") if match is not None else None
    return name if isinstance(name, str) else None


def _system_admin(principal: Principal) -> Principal:
    """The principal as the system administrator: an active superuser signed in, or owning
    the API key (403 naming what it takes otherwise)."""
    users = get_user_model().objects.filter(is_active=True, is_superuser=True)
    if principal.key_id is not None:
        allowed = users.filter(**{get_user_model().USERNAME_FIELD: principal.username}).exists()
        who = "this API key's owner is not"
    else:
        allowed = principal.user_id is not None and users.filter(pk=principal.user_id).exists()
        who = "you are not"
    if not allowed:
        raise Forbidden(
            f"this operation needs the system administrator (a superuser); {who} one",
            {"required_role": SystemRole.SYSTEM_ADMIN.value},
        )
    return dataclasses.replace(principal, system_admin=True)


def _with_role(request: HttpRequest, principal: Principal) -> Principal:
    """The principal with its role in the URL's project, if that role allows the operation
    (403 naming the role otherwise); for a system administrator's operation, the principal
    as the system administrator."""
    if getattr(request, _ROLE_ATTR, None) is SystemRole.SYSTEM_ADMIN:
        return _system_admin(principal)
    name = url_project(request)
    if name is None:
        return principal
    project, role = _membership(principal, name)
    needed = required_role(request)
    if not role.allows(needed):
        who = "this API key's owner" if principal.key_id is not None else "you"
        raise Forbidden(
            f"this operation needs the {needed.value} role; {who} "
            f"{'is' if principal.key_id is not None else 'are'} {role.value} in {project.name}",
            {"required_role": needed.value, "role": role.value},
        )
    setattr(request, _PROJECT_ATTR, project)
    return dataclasses.replace(principal, role=role)


def _membership(principal: Principal, project_name: str) -> tuple[Project, Role]:
    """The URL's project and the caller's role in it (403 otherwise, also for unknown names,
    so a key never learns which other projects exist)."""
    project = project_named(project_name)
    if principal.key_id is not None:
        if project is None or project.pk != principal.project_id:
            raise Forbidden("this API key is not valid for this project")
        role = member_role(project, username=principal.username)
        if role is None:
            raise Forbidden(
                f"this API key's owner {principal.username!r} is not a member of {project.name}"
            )
        return project, role
    role = (
        member_role(project, user_id=principal.user_id)
        if project is not None and principal.user_id is not None
        else None
    )
    if project is None or role is None:
        raise Forbidden("you are not a member of this project")
    return project, role


def principal_of(request: HttpRequest) -> Principal:
    auth: Any = getattr(request, "auth", None)
    if not isinstance(auth, Principal):
        raise Unauthorized("authentication required")
    return auth


def project_for(request: HttpRequest, project_name: str) -> Project:
    """The URL's project if the caller may use it (403 otherwise, also for unknown names,
    so a key never learns which other projects exist). Authentication has checked the role."""
    principal = principal_of(request)
    checked = getattr(request, _PROJECT_ATTR, None)
    if isinstance(checked, Project) and checked.name == project_name:
        return checked
    return _membership(principal, project_name)[0]
