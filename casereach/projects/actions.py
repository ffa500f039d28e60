"""The only writers of projects, settings, API keys and web users."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pydantic import ValidationError

from casereach.core import bulk, rows
from casereach.core.errors import BadRequest, Conflict, NotFound
from casereach.core.timeutil import ONE_MICROSECOND, now
from casereach.projects import digest
from casereach.projects.cache import forget_generation
from casereach.projects.models import (
    ApiKey,
    ConfigGeneration,
    DigestNonce,
    Membership,
    PasswordDigest,
    Project,
    Role,
)
from casereach.projects.settings_schema import STORE_CONTEXT, ProjectSettings, merge_settings

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def bump_generation() -> None:
    """Tell every process's request caches (projects.cache) that keys, memberships, projects,
    gateways, shares or routes changed: call it inside the writer's transaction, after the
    change. A random number, not a counter, so no value ever comes back (a rolled-back bump
    would otherwise hand a counter's next value to different rows)."""
    value = secrets.randbits(62)
    if not ConfigGeneration.objects.filter(pk=1).update(value=value):
        ConfigGeneration.objects.update_or_create(pk=1, defaults={"value": value})
    forget_generation()


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def do_create_project(
    name: str, *, time_zone: str | None = None, languages: list[str] | None = None
) -> Project:
    """Create a project; the name is its URL slug (lower-case letters, digits, dashes)."""
    if not _NAME.match(name):
        raise BadRequest(
            f"invalid project name {name!r}: use lower-case letters, digits and dashes"
        )
    raw: dict[str, Any] = {}
    if time_zone:
        raw["time_zone"] = time_zone
    if languages:
        raw["languages"] = languages
    try:
        validated = ProjectSettings.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc
    with transaction.atomic():
        if Project.objects.filter(name=name).exists():
            raise Conflict(f"project {name!r} already exists")
        project = Project.objects.create(
            name=name, settings=validated.model_dump(mode="json", exclude_defaults=True)
        )
        bump_generation()
    return project


def do_update_settings(project: Project, changes: dict[str, Any]) -> ProjectSettings:
    """Merge ``changes`` into the project's settings; refuses the whole change on any error."""
    merged = merge_settings(project.settings, changes)  # keeps write-only secrets
    try:
        validated = ProjectSettings.model_validate(merged)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc
    with transaction.atomic():
        project.settings = validated.model_dump(mode="json", context=STORE_CONTEXT)
        project.save(update_fields=["settings"])
        bump_generation()
    return validated


def parse_role(value: str) -> Role:
    """``admin``, ``member`` or ``viewer`` (400 otherwise)."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise BadRequest(
            f"unknown role {value!r}: use {', '.join(r.value for r in Role)}"
        ) from None


def _member(project: Project, username: str, role: Role | None, *, default: Role) -> Membership:
    """``username``'s membership in ``project``, created (with an unusable password for a new
    user) when missing; ``role`` changes an existing member's role."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model(username=username)
        user.set_unusable_password()
        user.save()
    membership, created = Membership.objects.get_or_create(
        user=user, project=project, defaults={"role": role or default}
    )
    if not created and role is not None and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    bump_generation()
    return membership


def do_create_api_key(project: Project, username: str, *, role: Role | None = None) -> str:
    """Create a key for ``username`` on ``project``; returns the key, which is never stored.

    The key acts with its owner's role in the project. An owner who is not yet a member
    becomes one with ``role`` (default admin: the system administrator creates the first
    key of a project); for an existing member ``role`` must be omitted or equal their role
    (roles change with ``do_set_role``)."""
    if not username or ":" in username or len(username) > 150:
        raise BadRequest("username must be 1-150 characters without ':'")
    key = secrets.token_hex(24)
    with transaction.atomic():
        existing = Membership.objects.filter(project=project, user__username=username).first()
        if existing is not None and role is not None and existing.role != role:
            raise Conflict(
                f"{username} is already {existing.role} in {project.name}; change roles with "
                "'casereach user role'"
            )
        _member(project, username, None, default=role or Role.ADMIN)
        ApiKey.objects.create(
            project=project,
            username=username,
            key_hash=hash_key(key),
            prefix=key[:8],
            digest_secret=digest.seal(username, key),
        )
    return key


def do_revoke_other_api_keys(project: Project, username: str, *, keep: str) -> int:
    """Deactivate every active key of ``username`` on ``project`` except ``keep`` (a key in
    clear); returns how many were revoked (the demo does this when it makes a new key)."""
    with transaction.atomic():
        keys = ApiKey.objects.filter(project=project, username=username, is_active=True)
        revoked = keys.exclude(key_hash=hash_key(keep)).update(
            is_active=False, revoked_on=timezone.now()
        )
        bump_generation()
    return revoked


def do_revoke_api_keys(
    project: Project, *, prefix: str | None = None, username: str | None = None
) -> list[ApiKey]:
    """Deactivate the project's active keys with this ``prefix`` (exactly one) or of this
    ``username`` (all); revoked keys get 401 from then on. Returns the revoked keys."""
    if (prefix is None) == (username is None):
        raise BadRequest("name the key by its prefix, or name its owner's username")
    with transaction.atomic():
        keys = ApiKey.objects.select_for_update().filter(project=project, is_active=True)
        if prefix is not None:
            keys = keys.filter(prefix=prefix.strip())
        else:
            keys = keys.filter(username=username)
        found = list(keys.order_by("pk"))
        if not found:
            what = f"prefix {prefix!r}" if prefix is not None else f"username {username!r}"
            raise NotFound(f"no active API key with {what} in project {project.name}")
        if prefix is not None and len(found) > 1:
            raise Conflict(f"{len(found)} keys have prefix {prefix!r}; revoke by --username")
        now = timezone.now()
        ApiKey.objects.filter(pk__in=[k.pk for k in found]).update(is_active=False, revoked_on=now)
        bump_generation()
    for k in found:
        k.is_active, k.revoked_on = False, now
    return found


def do_set_role(project: Project, username: str, role: Role) -> Membership:
    """Change a member's role (404 for a user who is not a member of the project)."""
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .filter(project=project, user__username=username)
            .first()
        )
        if membership is None:
            raise NotFound(f"{username!r} is not a member of project {project.name}")
        if membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
            bump_generation()
    return membership


def do_create_web_user(
    project: Project, username: str, password: str, *, role: Role | None = None
) -> Membership:
    """Create (or update the password of) a web user and give it access to ``project``: a new
    member gets ``role`` (default member); ``role`` changes an existing member's role."""
    if not username or len(username) > 150:
        raise BadRequest("username must be 1-150 characters")
    if len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
    user_model = get_user_model()
    with transaction.atomic():
        user, _ = user_model.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        return _member(project, username, role, default=Role.MEMBER)


_LOCK_SQL = f"SELECT * FROM {Project._meta.db_table} WHERE {Project._meta.pk.column} = %s"


def lock_project(project_id: int) -> Project:
    """Lock the project row for this transaction (case writes are serialised per project).
    A raw query: every send and case write runs it, and the ORM's query building cost more
    than the statement."""
    found = list(Project.objects.raw(bulk.for_update(_LOCK_SQL), [project_id]))
    if not found:
        raise Project.DoesNotExist(f"project {project_id} not found")
    return found[0]


_LAST_INDEXED = Project._meta.get_field("last_indexed_on")
_TICK_SQL = f"UPDATE {Project._meta.db_table} SET {_LAST_INDEXED.column} = %s WHERE {Project._meta.pk.column} = %s"


def tick_clock(project: Project, count: int = 1) -> dt.datetime:
    """Take ``count`` stamps of the project's clock (``last_indexed_on``, strictly increasing
    per project: commcare-export pages on it) and return the first; the others follow it a
    microsecond apart. The caller holds the project row lock (``lock_project``); one raw
    UPDATE, and ``project`` is updated in place."""
    current = now()
    last = project.last_indexed_on
    first = max(current, last + ONE_MICROSECOND) if last else current
    stamp = first + ONE_MICROSECOND * (max(count, 1) - 1)
    project.last_indexed_on = stamp
    rows.execute(_TICK_SQL, [_LAST_INDEXED.get_db_prep_save(stamp, connection), project.pk])
    return first


def do_store_password_digest(user: Any, password: str) -> None:
    """Keep ``user``'s HTTP Digest secrets for ``password`` (called whenever a password is
    saved: ``digest.DigestPasswordHook``); an unusable password removes them."""
    if not user.has_usable_password():
        PasswordDigest.objects.filter(user_id=user.pk).delete()
        return
    PasswordDigest.objects.update_or_create(
        user_id=user.pk, defaults={"secret": digest.seal(user.get_username(), password)}
    )


def do_use_nonce(nonce: str, count: int) -> bool:
    """Record a use of a Digest nonce with nonce count ``count``: True when it is higher
    than every count accepted with this nonce before (in any process), else False (a
    replay). Expired nonces' rows are dropped when a new nonce is first used."""
    for _ in range(2):
        if DigestNonce.objects.filter(nonce=nonce, count__lt=count).update(count=count):
            return True
        if DigestNonce.objects.filter(nonce=nonce).exists():
            return False
        expires = timezone.now() + dt.timedelta(seconds=digest.NONCE_LIFETIME_S * 2)
        try:
            with transaction.atomic():
                DigestNonce.objects.filter(expires_on__lt=timezone.now()).delete()
                DigestNonce.objects.create(nonce=nonce, count=count, expires_on=expires)
            return True
        except IntegrityError:
            continue  # another process recorded it first: compare with its count
    return False
