"""Parameter templates of the ``http`` gateway: six placeholders and brace escapes, nothing else.

Deliberately not ``str.format``: no attribute access, no indexing, no format specs, so a
template typed into the UI can only ever produce plain text. ``{{`` and ``}}`` are literal
braces; any other brace, or an unknown name, is refused when the config is saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS: tuple[str, ...] = ("to", "to_plus", "to_national", "from", "text", "message_id")

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Placeholder:
    name: str


Part = str | Placeholder


def parse(template: str) -> list[Part]:
    """Split ``template`` into literal text and placeholders.

    Raises:
        ValueError: an unknown placeholder or an unpaired brace, with a message naming it.
    """
    parts: list[Part] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[pos : match.start()])
        pos = match.end()
        piece = match.group(0)
        if piece == "{{":
            literal.append("{")
        elif piece == "}}":
            literal.append("}")
        elif match.group(1) is not None:
            name = match.group(1)
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise ValueError(
                    f"unknown placeholder {{{name}}} in {template!r}; use one of {known} "
                    "(write {{ and }} for literal braces)"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Placeholder(name))
        else:
            raise ValueError(
                f"unpaired {piece!r} in {template!r}; write {piece * 2!r} for a literal brace"
            )
    literal.append(template[pos:])
    if any(literal):
        parts.append("".join(literal))
    return parts


def placeholders(template: str) -> set[str]:
    """The placeholder names ``template`` uses (raises ValueError like ``parse``)."""
    return {part.name for part in parse(template) if isinstance(part, Placeholder)}


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each placeholder replaced by its value from ``values``."""
    return "".join(
        values[part.name] if isinstance(part, Placeholder) else part for part in parse(template)
    )
