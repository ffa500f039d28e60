"""The ``Authorization`` schemes of the API (``auth.ApiKeyAuth`` calls ``principal_from``):

- ``ApiKey <username>:<key>`` (any case);
- ``Basic base64(<username>:<password>)``: the password is one of the user's API keys or
  their web password;
- ``Bearer <key>`` (a key alone names its owner), or ``Bearer <username>:<key>``;
- ``Digest`` (RFC 7616, ``qop="auth"``, MD5 or SHA-256) with an API key or the web password
  as the password (``projects.digest``).

Every failed credential counts toward the bad-credential limit per client address
(``auth.KEY_FAILURES``); failed passwords (Basic, Digest) also count toward the web login's
lockout (django-axes, per username and per address), which also applies to the API: past
either limit, 429 with ``Retry-After``. A valid API key is never refused for others'
failures (192 random bits cannot be guessed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
import urllib.parse
from typing import NoReturn

from django.conf import settings
from django.contrib.auth import authenticate, user_login_failed
from django.http import HttpRequest

from casereach.projects import auth, digest
from casereach.projects.actions import do_use_nonce
from casereach.projects.models import ApiKey
from casereach.projects.queries import digest_secrets, find_api_key

SCHEMES = "'ApiKey <username>:<key>', 'Basic …', 'Bearer <key>' or 'Digest …'"


def principal_from(request: HttpRequest, header: str) -> auth.Principal:
    """The caller named by an ``Authorization`` header (401, or 429, otherwise)."""
    scheme, _, data = header.strip().partition(" ")
    scheme, data = scheme.lower(), data.strip()
    if scheme == "apikey":
        username, sep, key = data.partition(":")
        if not (username and sep and key):
            _refuse(request, "Authorization must be 'ApiKey <username>:<key>'")
        return _key(request, find_api_key(username, key))
    if scheme == "bearer":
        username, sep, key = data.rpartition(":")
        if not key:
            _refuse(request, "Authorization must be 'Bearer <key>'")
        return _key(request, find_api_key(username if sep else None, key), "invalid token")
    if scheme == "basic":
        return _basic(request, data)
    if scheme == "digest":
        return _digest(request, data)
    _refuse(request, f"Authorization must be {SCHEMES}")


def _refuse(request: HttpRequest, message: str, *, username: str | None = None) -> NoReturn:
    """Count a failed credential from the request's address (and, for a password, against
    ``username`` in the login lockout) and refuse it: 401, or 429 past a limit."""
    address = auth.client_address(request)
    wait = auth.KEY_FAILURES.wait(address)
    if wait > 0:
        raise auth.Throttled(wait)
    auth.KEY_FAILURES.fail(address)
    if username is not None:
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
        _check_lockout(request, username)
    raise auth.Unauthorized(message)


def _check_lockout(request: HttpRequest, username: str) -> None:
    """429 when the web login is locked for ``username`` or this address (django-axes)."""
    from axes.handlers.proxy import AxesProxyHandler
    from axes.helpers import get_cool_off

    locked = bool(getattr(request, "axes_locked_out", False)) or AxesProxyHandler.is_locked(
        request, {"username": username}
    )
    # The API answers for itself: axes' middleware must not replace the answer with its page.
    request.axes_locked_out = False  # type: ignore[attr-defined]
    if locked:
        cool_off = get_cool_off(request)
        raise auth.Throttled(cool_off.total_seconds() if cool_off else 60)


def _key(
    request: HttpRequest, found: ApiKey | None, message: str = "invalid API key"
) -> auth.Principal:
    if found is None:
        _refuse(request, message)
    wait = auth.BUCKET.take(found.key_hash)
    if wait > 0:
        raise auth.Throttled(wait)
    return auth.Principal(username=found.username, project_id=found.project_id, key_id=found.pk)


def _user(username: str, user_id: int) -> auth.Principal:
    wait = auth.BUCKET.take(f"user:{user_id}")
    if wait > 0:
        raise auth.Throttled(wait)
    return auth.Principal(username=username, project_id=None, user_id=user_id)


def _basic(request: HttpRequest, data: str) -> auth.Principal:
    try:
        pair = base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        pair = ""
    username, sep, password = pair.partition(":")
    if not (username and sep and password):
        _refuse(request, "Authorization must be 'Basic base64(<username>:<password>)'")
    found = find_api_key(username, password)
    if found is not None:
        return _key(request, found)
    _check_lockout(request, username)
    wait = auth.KEY_FAILURES.wait(auth.client_address(request))
    if wait > 0:
        raise auth.Throttled(wait)
    user_id = _PASSWORDS.check(request, username, password)
    if user_id is None:
        _refuse(request, "invalid username or password")
    return _user(username, user_id)


class _PasswordCache:
    """Passwords verified lately (for ``TTL_S``): PBKDF2 is slow on purpose, and an
    integration sending Basic with a password on every request should not pay it each time.
    An entry names the stored hash too, so a changed password is checked afresh."""

    TTL_S = 300.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, tuple[int, float]] = {}

    def check(self, request: HttpRequest, username: str, password: str) -> int | None:
        """The user's id when ``password`` is theirs (through django-axes and the
        configured backends, so failures count toward the login lockout), else None."""
        from django.contrib.auth import get_user_model

        stored = (
            get_user_model()
            .objects.filter(username=username, is_active=True)
            .values_list("password", flat=True)
            .first()
        )
        token = hmac.new(
            settings.SECRET_KEY.encode(),
            "\0".join((username, password, stored or "")).encode("utf-8", "surrogatepass"),
            hashlib.sha256,
        ).hexdigest()
        now = time.monotonic()
        with self.lock:
            hit = self.seen.get(token)
        if stored and hit is not None and now - hit[1] < self.TTL_S:
            return hit[0]
        user = authenticate(request, username=username, password=password)
        if user is None or not user.is_active:
            return None
        with self.lock:
            if len(self.seen) > 10_000:
                self.seen.clear()
            self.seen[token] = (int(user.pk), now)
        return int(user.pk)


_PASSWORDS = _PasswordCache()


def _same_uri(request: HttpRequest, uri: str) -> bool:
    path, _, query = uri.partition("?")
    if "://" in path:  # an absolute URI (RFC 7616 allows it)
        path = urllib.parse.urlsplit(path).path
    return urllib.parse.unquote(path) == request.path and query == request.META.get(
        "QUERY_STRING", ""
    )


def _digest(request: HttpRequest, data: str) -> auth.Principal:
    answer = digest.parse(data)
    if answer is None:
        _refuse(request, "malformed Digest authorization (qop=auth, MD5 or SHA-256)")
    if not _same_uri(request, answer.uri):
        _refuse(request, "the Digest uri is not this request's")
    age = digest.nonce_age(answer.nonce)
    if age is None:
        _refuse(request, "unknown Digest nonce")
    method = request.method or "GET"
    match = next(
        (
            s
            for s in digest_secrets(answer.username, auth.url_project(request))
            if digest.matches(answer, method, s.secret)
        ),
        None,
    )
    if match is None:
        _refuse(request, "invalid username or password", username=answer.username)
    if age > digest.NONCE_LIFETIME_S:
        raise auth.Unauthorized("the Digest nonce expired", stale=True)
    if not do_use_nonce(answer.nonce, answer.nc):
        raise auth.Unauthorized("the Digest nonce count was used before (a replay)")
    if match.key is not None:
        return _key(request, match.key)
    assert match.user_id is not None
    _check_lockout(request, answer.username)
    return _user(answer.username, match.user_id)
