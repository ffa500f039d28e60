"""HTTP API of the projects app."""

from __future__ import annotations

from ninja import Router

router = Router()
