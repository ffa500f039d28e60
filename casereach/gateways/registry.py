"""Gateway types by slug. Adding a type = its folder under ``types/`` + one line here."""

from __future__ import annotations

import importlib
from functools import cache

from casereach.gateways.base import Gateway

GATEWAY_TYPES: tuple[str, ...] = (
    "test",
    "http",
    "twilio",
    "africastalking",
    "smpp",
    "email",
    "whatsapp_cloud",
    "turn",
)


@cache
def gateway_class(slug: str) -> type[Gateway]:
    """The Gateway subclass for ``slug`` (KeyError for an unknown type)."""
    if slug not in GATEWAY_TYPES:
        raise KeyError(slug)
    module = importlib.import_module(f"casereach.gateways.types.{slug}.gateway")
    cls: type[Gateway] = module.GATEWAY
    if cls.slug != slug:
        raise RuntimeError(f"gateway folder {slug} declares slug {cls.slug}")
    return cls


def available_types() -> list[type[Gateway]]:
    return [gateway_class(slug) for slug in GATEWAY_TYPES]
