"""The only writers of mobile workers; each change re-derives the worker's contact in the
same transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction

from casereach.contacts.actions import do_sync_contacts, project_rules
from casereach.contacts.rules import ContactSource, normalize_digits
from casereach.core import bulk
from casereach.core.errors import BadRequest, Conflict
from casereach.core.timeutil import now
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.workers.models import MobileWorker

RESYNC_CHUNK = 900

WRITABLE = frozenset(
    {
        "username",
        "password",
        "first_name",
        "last_name",
        "email",
        "phone_numbers",
        "default_phone_number",
        "groups",
        "user_data",
        "language",
        "time_zone",
        "verified_numbers",
        "is_active",
        "primary_location",
        "locations",
        "require_account_confirmation",
        "send_confirmation_email_now",
        "role",
        "connect_username",
    }
)
IGNORED = frozenset(
    {
        "primary_location",
        "locations",
        "require_account_confirmation",
        "send_confirmation_email_now",
        "role",
        "connect_username",
    }
)


def full_username(project: Project, username: str) -> str:
    """CommCare's mobile-worker login form: ``name@<project>.commcarehq.org``."""
    domain = f"{project.name}.commcarehq.org"
    name, at, given_domain = username.lower().partition("@")
    if at and given_domain != domain:
        raise BadRequest(f"mobile worker usernames must end with @{domain}")
    return f"{name}@{domain}"


def strip_plus(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest(f"'{field}' must contain phone numbers as strings")
    text = str(value).strip()
    return text[1:] if text.startswith("+") else text


def _str_or_none(data: dict[str, Any], key: str, limit: int = 150) -> str | None:
    value = data[key]
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be a string")
    if len(value) > limit:
        raise BadRequest(f"'{key}' must be at most {limit} characters")
    return value


def _apply(worker: MobileWorker, data: dict[str, Any], *, creating: bool) -> None:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    for key in data:
        if key not in WRITABLE:
            raise BadRequest(f"Attempted to update unknown or non-editable field '{key}'")
    if creating:
        username = data.get("username")
        if not isinstance(username, str) or not username.strip():
            raise BadRequest("'username' is required")
        if "#" in username:  # reserved: retired workers are renamed "<username>#retired-<id>"
            raise BadRequest("'username' may not contain '#'")
        worker.username = full_username(worker.project, username.strip())
        if len(worker.username) > 255:
            raise BadRequest("'username' is too long")
    if "password" in data and data["password"] is not None:
        if not isinstance(data["password"], str) or not data["password"]:
            raise BadRequest("'password' must be a non-empty string")
        worker.password = make_password(data["password"])
    for key in ("first_name", "last_name"):
        if key in data:
            setattr(worker, key, _str_or_none(data, key))
    if "email" in data:
        worker.email = (_str_or_none(data, "email", 320) or "").strip().lower()
    if "language" in data:
        worker.language = (_str_or_none(data, "language", 32) or "").strip()
    if "time_zone" in data:
        worker.time_zone = (_str_or_none(data, "time_zone", 100) or "").strip()
    if "phone_numbers" in data:
        numbers = data["phone_numbers"]
        if not isinstance(numbers, list):
            raise BadRequest("'phone_numbers' must be a list")
        cleaned: list[str] = []
        for n in numbers:
            value = strip_plus(n, "phone_numbers")
            if value and value not in cleaned:
                cleaned.append(value)
        worker.phone_numbers = cleaned
    if data.get("default_phone_number") not in (None, ""):
        default = strip_plus(data["default_phone_number"], "default_phone_number")
        rest = [n for n in worker.phone_numbers if n != default]
        worker.phone_numbers = [default, *rest]
    if "verified_numbers" in data:
        verified = data["verified_numbers"]
        if not isinstance(verified, list):
            raise BadRequest("'verified_numbers' must be a list")
        worker.verified_numbers = [strip_plus(n, "verified_numbers") for n in verified]
    if "groups" in data:
        groups = data["groups"]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BadRequest("'groups' must be a list of group ids")
        worker.groups = groups
    if "user_data" in data:
        user_data = data["user_data"]
        if not isinstance(user_data, dict):
            raise BadRequest("'user_data' must be an object")
        worker.user_data = {**worker.user_data, **user_data}
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            raise BadRequest("'is_active' must be a boolean")
        worker.is_active = data["is_active"]


def worker_source(worker: MobileWorker) -> ContactSource:
    verified = {normalize_digits(n) for n in worker.verified_numbers}
    name = " ".join(p for p in (worker.first_name, worker.last_name) if p) or worker.username
    return ContactSource(
        contact_id=worker.id,
        contact_type="worker",
        project_id=worker.project_id,
        name=name,
        active=worker.is_active,
        modified=worker.modified_on,
        phones=[(n, normalize_digits(n) in verified) for n in worker.phone_numbers]
        or [(None, False)],
        email=worker.email,
        time_zone=worker.time_zone,
        language=worker.language,
        gateway=str(worker.user_data.get("contact_backend_id", "") or ""),
    )


def _save_and_sync(project: Project, workers: Sequence[MobileWorker]) -> None:
    rules = {project.pk: project_rules(project)}
    for w in workers:
        w.modified_on = now()
        w.save()
    do_sync_contacts([worker_source(w) for w in workers], rules)


def do_create_worker(project: Project, data: dict[str, Any]) -> MobileWorker:
    with transaction.atomic():
        locked = lock_project(project.pk)
        worker = MobileWorker(project=locked)
        _apply(worker, data, creating=True)
        if not worker.password:
            raise BadRequest("'password' is required")
        if MobileWorker.objects.filter(project=locked, username=worker.username).exists():
            raise Conflict(f"a mobile worker named '{worker.username}' already exists")
        _save_and_sync(locked, [worker])
    return worker


def do_update_worker(worker: MobileWorker, data: dict[str, Any]) -> MobileWorker:
    with transaction.atomic():
        locked = lock_project(worker.project_id)
        worker.refresh_from_db()  # read under the lock: no lost update from a stale copy
        worker.project = locked
        _apply(worker, {k: v for k, v in data.items() if k != "username"}, creating=False)
        _save_and_sync(locked, [worker])
    return worker


def do_set_worker_active(worker: MobileWorker, active: bool) -> MobileWorker:
    """Deactivating releases the worker's two-way numbers (SPEC 3.2.3)."""
    with transaction.atomic():
        locked = lock_project(worker.project_id)
        worker.refresh_from_db()  # read under the lock: no lost update from a stale copy
        worker.project = locked
        worker.is_active = active
        _save_and_sync(locked, [worker])
    return worker


def do_retire_worker(worker: MobileWorker) -> None:
    """Retire (CommCare's DELETE): the worker stops being a contact and frees its numbers."""
    with transaction.atomic():
        do_set_worker_active(worker, False)
        MobileWorker.objects.filter(pk=worker.pk).update(
            username=f"{worker.username[:200]}#retired-{worker.pk[:8]}"
        )


def do_resync_project_workers(project: Project) -> int:
    """Re-derive the contacts of every worker of ``project`` (after a settings change such as
    the project time zone), set-based, in batches under the project lock.

    The version guard is forced with ``modified=now()`` because the workers themselves did
    not change; the project lock keeps a concurrent worker write from being overwritten by
    the older copy read here.
    """
    ids = list(
        MobileWorker.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    )
    count = 0
    for chunk in bulk.chunks(ids, RESYNC_CHUNK):
        with transaction.atomic():
            locked = lock_project(project.pk)
            rules = {locked.pk: project_rules(locked)}
            stamp = now()
            workers = list(MobileWorker.objects.filter(pk__in=chunk))
            do_sync_contacts(
                [dataclasses.replace(worker_source(w), modified=stamp) for w in workers], rules
            )
            count += len(workers)
    return count


def do_add_verified_number(worker_id: str, number: str) -> None:
    """Record ``number`` (digits, no ``+``) among the worker's verified numbers, once."""
    worker = MobileWorker.objects.filter(id=worker_id).first()
    if worker is None:
        return
    known = {n.removeprefix("+") for n in worker.verified_numbers}
    if number not in known:
        worker.verified_numbers = [*worker.verified_numbers, number]
        worker.save(update_fields=["verified_numbers"])
