"""Checks on a survey's texts (maps language → template) and the folding rule used to
compare what people type with labels (pure: no database)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

from casereach.alerts.templates import TemplateError, validate_template

ANSWER_PREFIX = "answer."


def fold(text: str) -> str:
    """``text`` for comparing: NFKD without combining marks, case-folded, with runs of
    whitespace as one space and none at the ends (so "  Ndiyo " and "NDIYÓ" compare equal)."""
    if text.isascii():  # NFKD leaves ASCII as it is and no ASCII character is combining
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def check_texts(
    texts: Mapping[str, str],
    where: str,
    languages: Sequence[str],
    *,
    answer_ids: set[str] | None,
) -> list[str]:
    """The problems of one text map, each as ``where[lang]: message``.

    Every project language needs a non-blank text and no other language is allowed. Each
    text must be a valid alert template (``alerts.templates``), where ``{answer.<id>}`` may
    name a question in ``answer_ids`` (``None``: answers cannot be shown here); any other
    placeholder the alert grammar does not know is refused rather than rendered ``(?)``.
    """
    out: list[str] = []
    for lang in languages:
        text = texts.get(lang)
        if text is None:
            out.append(f"{where}[{lang}]: missing (every project language needs a text)")
        elif not text.strip():
            out.append(f"{where}[{lang}]: is blank")
    for lang, text in texts.items():
        if lang not in languages:
            out.append(
                f"{where}[{lang}]: {lang!r} is not one of the project's languages "
                f"({', '.join(languages)})"
            )
            continue
        try:
            placeholders = validate_template(text)
        except TemplateError as exc:
            out.append(f"{where}[{lang}]: {exc.message}")
            continue
        for p in placeholders:
            if p.scope != "unknown":
                continue
            if not p.name.startswith(ANSWER_PREFIX):
                out.append(
                    f"{where}[{lang}]: unknown placeholder {p.text}: {p.hint}; "
                    "or {answer.<question id>} for an earlier answer"
                )
            elif answer_ids is None:
                out.append(f"{where}[{lang}]: {p.text}: answers cannot be shown here")
            elif p.name[len(ANSWER_PREFIX) :] not in answer_ids:
                out.append(
                    f"{where}[{lang}]: {p.text} does not name an earlier question "
                    "(a text may show the answers to questions before it)"
                )
    return out
