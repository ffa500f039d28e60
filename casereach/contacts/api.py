"""HTTP API of the contacts app."""

from __future__ import annotations

from ninja import Router

router = Router()
