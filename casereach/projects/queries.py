"""Read helpers for projects and API keys."""

from __future__ import annotations

import copy
import hmac
from dataclasses import dataclass
from datetime import datetime

from casereach.core.errors import NotFound
from casereach.projects.actions import hash_key
from casereach.projects.cache import GenerationCache
from casereach.projects.models import ApiKey, Membership, PasswordDigest, Project, Role

# What every API request looks up, cached per process under the configuration generation
# (projects.cache): failed look-ups are not kept (a spray of bad keys cannot fill memory).
_KEYS: GenerationCache[str, ApiKey | None] = GenerationCache(keep=lambda v: v is not None)
_PROJECTS: GenerationCache[str, Project | None] = GenerationCache(keep=lambda v: v is not None)
_ROLES: GenerationCache[tuple[int, str | int], Role | None] = GenerationCache(
    keep=lambda v: v is not None
)


def get_project_by_name(name: str) -> Project:
    try:
        return Project.objects.get(name=name)
    except Project.DoesNotExist:
        raise NotFound(f"Project '{name}' not found") from None


def find_api_key(username: str | None, key: str) -> ApiKey | None:
    """The active key matching ``username:key``, or None; with no ``username``, the active
    key ``key`` whoever owns it (a key alone names its owner: ``Bearer <key>``)."""
    digest = hash_key(key)
    found = _KEYS.get(
        digest,
        lambda: (
            ApiKey.objects.filter(key_hash=digest, is_active=True).select_related("project").first()
        ),
    )
    if found is not None and username is None:
        return copy.copy(found)
    # Bytes: compare_digest refuses str holding anything but ASCII (a TypeError, once a 500
    # for ``ApiKey uä:<key>``); surrogatepass so no header text can make the encoding fail.
    if found is None or not hmac.compare_digest(
        found.username.encode("utf-8", "surrogatepass"),
        (username or "").encode("utf-8", "surrogatepass"),
    ):
        return None
    return copy.copy(found)


def project_named(name: str) -> Project | None:
    """The project of this name (None when there is none), from the request cache: a copy
    of its own for each caller, settings included, so no caller changes another's."""
    found = _PROJECTS.get(name, lambda: Project.objects.filter(name=name).first())
    if found is None:
        return None
    mine = copy.copy(found)
    mine.settings = copy.deepcopy(found.settings)
    return mine


def member_role(
    project: Project, *, username: str | None = None, user_id: int | None = None
) -> Role | None:
    """The role of the user named ``username`` (an API key's owner) or with id ``user_id``
    (a signed-in web user) in ``project``; None when not a member."""

    def load() -> Role | None:
        members = Membership.objects.filter(project=project)
        if username is not None:
            members = members.filter(user__username=username)
        else:
            members = members.filter(user_id=user_id or 0)
        role = members.values_list("role", flat=True).first()
        return Role(role) if role is not None else None

    who: str | int = f"name:{username}" if username is not None else int(user_id or 0)
    return _ROLES.get((project.pk, who), load)


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


@dataclass(frozen=True)
class DigestSecret:
    """One secret a Digest answer from ``username`` may have been made with: an API key of
    theirs (``key``) or their password (``user_id``)."""

    secret: str
    key: ApiKey | None = None
    user_id: int | None = None


def digest_secrets(username: str, project_name: str | None) -> list[DigestSecret]:
    """The Digest secrets of ``username``: their active keys (the URL project's first), then
    their password's (active users with a usable password only)."""
    keys = sorted(
        ApiKey.objects.filter(username=username, is_active=True)
        .exclude(digest_secret="")
        .select_related("project"),
        key=lambda k: (k.project.name != project_name, k.pk),
    )
    out = [DigestSecret(k.digest_secret, key=k) for k in keys]
    password = (
        PasswordDigest.objects.filter(user__username=username, user__is_active=True)
        .values_list("secret", "user_id", "user__password")
        .first()
    )
    if password is not None and not password[2].startswith("!"):  # "!": unusable
        out.append(DigestSecret(password[0], user_id=password[1]))
    return out
