"""Changing a project's settings, and re-deriving what depends on them.

A change to a setting that contact derivation depends on (time zone, languages, phone
validation, default country) must re-derive the project's contacts. Those live in apps above
projects (cases, workers), which projects may not import, so each registers its re-derivation
here from its ``AppConfig.ready`` (``register_settings_resync``): the resync is wired as soon as
Django is set up, whichever entry point (API, web, CLI, worker) makes the change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from casereach.core.errors import BadRequest
from casereach.projects.actions import do_update_settings
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

# Settings that contact derivation depends on (contacts.actions.project_rules).
CONTACT_SETTINGS = ("time_zone", "languages", "strict_phone_validation", "default_country")

Resync = Callable[[Project], int]
_RESYNC: dict[str, Resync] = {}


def register_settings_resync(name: str, resync: Resync) -> None:
    """Add a contact source to re-derive after a contact-affecting settings change
    (idempotent per ``name``; called from the owning app's ``AppConfig.ready``)."""
    _RESYNC[name] = resync


def settings_resyncs() -> dict[str, Resync]:
    """The registered re-derivations, by name, in registration (INSTALLED_APPS) order."""
    return dict(_RESYNC)


def do_change_settings(project: Project, changes: dict[str, Any]) -> tuple[ProjectSettings, int]:
    """Validate and save ``changes`` (partial or full), then re-derive the project's contacts
    when a setting they depend on changed. Returns (new settings, contacts re-derived)."""
    unknown = sorted(set(changes) - set(ProjectSettings.model_fields))
    if unknown:
        raise BadRequest(
            f"unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            {"unknown": unknown, "known": sorted(ProjectSettings.model_fields)},
        )
    before = effective_settings(project.settings)
    after = do_update_settings(project, changes)
    resynced = 0
    if any(getattr(before, k) != getattr(after, k) for k in CONTACT_SETTINGS):
        for resync in _RESYNC.values():
            resynced += resync(project)
    return after, resynced
