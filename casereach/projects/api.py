"""HTTP API of the projects app.

Intentionally empty: the settings endpoints (``/a/{project}/api/messaging/v1/settings``) live
in casereach.cases.api_settings, because a settings change re-derives contacts and
casereach.projects may not import the apps above it.
"""

from __future__ import annotations

from ninja import Router

router = Router()
