"""Projects (tenants), their settings, API keys and web-user memberships."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Project(models.Model):
    """A tenant. Everything else belongs to exactly one project."""

    name = models.SlugField(max_length=100, unique=True)
    # Validated by projects.settings_schema.ProjectSettings; stored whole so new settings
    # need no migration.
    settings = models.JSONField(default=dict)
    # The last indexed_on handed out in this project: case writes take the next microsecond
    # after it, so indexed_on is strictly increasing per project (commcare-export pages on it).
    last_indexed_on = models.DateTimeField(null=True, blank=True)
    created_on = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def time_zone(self) -> str:
        value: Any = self.settings.get("time_zone") or "UTC"
        return str(value)

    @property
    def languages(self) -> list[str]:
        value = self.settings.get("languages") or ["en"]
        return [str(v) for v in value]


class ApiKey(models.Model):
    """An API key scoped to one project; only its SHA-256 digest is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    username = models.CharField(max_length=150)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    is_active = models.BooleanField(default=True)
    created_on = models.DateTimeField(auto_now_add=True)
    revoked_on = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    # The key's HTTP Digest secrets (HA1 over the key as password), encrypted (core.crypto);
    # "" for keys made before Digest (they work with every other scheme).
    digest_secret = models.TextField(blank=True, default="", db_default="")

    class Meta:
        indexes = [models.Index(fields=["username", "project"])]


class Role(models.TextChoices):
    """A member's role in a project (SPEC 2), weakest first: each role may do everything the
    ones before it may."""

    VIEWER = "viewer"  # reads
    MEMBER = "member"  # reads everything, sends, runs alerts and keywords, writes cases
    ADMIN = "admin"  # settings, gateways, routes, keys, users, opt-outs

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        """Whether this role may do what ``required`` may."""
        return self.rank >= required.rank


class Membership(models.Model):
    """A user's role in a project; API keys act with their owner's membership."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique")
        ]


class ConfigGeneration(models.Model):
    """One row (id 1): a number every writer of what the per-process request caches hold
    (API keys, memberships, projects and their settings, gateways, shares, global routes)
    bumps in the same transaction as its change. Each request reads it once, by primary key;
    a cache entry made under another number is thrown away (projects.cache)."""

    value = models.BigIntegerField(default=0)


class PasswordDigest(models.Model):
    """A web user's HTTP Digest secrets (HA1 = H(username:realm:password), MD5 and SHA-256),
    encrypted with the key derived from SECRET_KEY (core.crypto); written whenever the
    user's password is set (projects.digest, decisions/0011)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="password_digest"
    )
    secret = models.TextField()
    updated_on = models.DateTimeField(auto_now=True)


class DigestNonce(models.Model):
    """A Digest nonce seen in use and the highest nonce count (``nc``) accepted with it: a
    request must bring a higher one, so no request is replayed (in any process)."""

    nonce = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField()
    expires_on = models.DateTimeField(db_index=True)
