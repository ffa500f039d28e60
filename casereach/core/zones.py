"""IANA time-zone names matched case-insensitively and returned canonically (SPEC 3.4)."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def _by_lower() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def canonical_zone(name: str | None) -> str | None:
    """The canonical IANA name for ``name`` (any case, surrounding blanks ignored), or None."""
    if not name:
        return None
    return _by_lower().get(name.strip().lower())
