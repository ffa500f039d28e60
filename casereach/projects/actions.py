"""The only writers of projects, settings, API keys and web users."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from pydantic import ValidationError

from casereach.core.errors import BadRequest, Conflict
from casereach.projects.models import ApiKey, Membership, Project
from casereach.projects.settings_schema import ProjectSettings

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


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
        return Project.objects.create(
            name=name, settings=validated.model_dump(mode="json", exclude_defaults=True)
        )


def do_update_settings(project: Project, changes: dict[str, Any]) -> ProjectSettings:
    """Merge ``changes`` into the project's settings; refuses the whole change on any error."""
    merged = {**project.settings, **changes}
    try:
        validated = ProjectSettings.model_validate(merged)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc
    with transaction.atomic():
        project.settings = validated.model_dump(mode="json")
        project.save(update_fields=["settings"])
    return validated


def do_create_api_key(project: Project, username: str) -> str:
    """Create a key for ``username`` on ``project``; returns the key, which is never stored."""
    if not username or ":" in username or len(username) > 150:
        raise BadRequest("username must be 1-150 characters without ':'")
    key = secrets.token_hex(24)
    ApiKey.objects.create(
        project=project, username=username, key_hash=hash_key(key), prefix=key[:8]
    )
    return key


def do_create_web_user(project: Project, username: str, password: str, *, admin: bool) -> None:
    """Create (or update the password of) a web user and give it access to ``project``."""
    if not username or len(username) > 150:
        raise BadRequest("username must be 1-150 characters")
    if len(password) < 8:
        raise BadRequest("password must be at least 8 characters")
    user_model = get_user_model()
    with transaction.atomic():
        user, _ = user_model.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        membership, _ = Membership.objects.get_or_create(user=user, project=project)
        if admin and not membership.is_admin:
            membership.is_admin = True
            membership.save(update_fields=["is_admin"])


def lock_project(project_id: int) -> Project:
    """Lock the project row for this transaction (case writes are serialised per project)."""
    return Project.objects.select_for_update().get(pk=project_id)
