"""HTTP API of the workers app."""

from __future__ import annotations

from ninja import Router

router = Router()
