"""Choosing the text for a recipient's language (SPEC 3.5)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from casereach.core.text import is_text

log = logging.getLogger(__name__)


def pick_translation(
    texts: Mapping[str, str],
    contact_language: str | None,
    *,
    project_languages: list[str],
    fallback: str,
    alert_default: str | None = None,
) -> tuple[str | None, str]:
    """(text, language used) or (None, "") when nothing applies.

    Order: contact language → the alert's default language → project default language →
    untranslated text ("*"), stopping where ``fallback`` (none|alert|project|untranslated)
    says. Empty or blank translations count as missing.
    """
    chain: list[str] = []
    if contact_language:
        chain.append(contact_language)
    if fallback in ("alert", "project", "untranslated") and alert_default:
        chain.append(alert_default)
    if fallback in ("project", "untranslated") and project_languages:
        chain.append(project_languages[0])
    if fallback == "untranslated":
        chain.append("*")
    for lang in chain:
        text = texts.get(lang)
        if text is None:
            continue
        if not isinstance(text, str) or not is_text(text):
            log.warning("stored %r text skipped: not valid UTF-8 text", lang)
            continue
        if text.strip():
            return text, lang
    return None, ""
