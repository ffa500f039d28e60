"""The answer engine: one reply to one question → the value to store, or why it is refused.

Pure (no Django, no database) and total: :func:`parse` never raises on any text. What is
accepted, per type (docs/surveys.md repeats this for users):

``text``
    Any reply, trimmed; blank only when optional. A ``constraints.regex`` must match the whole
    (trimmed) reply. At most :data:`MAX_TEXT` characters.
``integer``
    An optional sign and 1-18 digits, spaces around allowed: ``12``, `` 12 ``, ``-3``,
    ``+4``. Stored as ``str(int)`` (``007`` → ``7``). No thousands separators.
``decimal``
    As integer, plus a fraction of 1-12 digits after ``.`` *or* ``,`` (``12.5``, ``12,5``:
    phones in many locales type a comma). ``1,234.5`` is refused (ambiguous). Stored in plain
    notation without trailing zeros (``12.50`` → ``12.5``, ``-0`` → ``0``).
``date``
    ``YYYY-MM-DD`` (also ``YYYY/MM/DD``), or day first: ``D/M/YYYY``, ``D-M-YYYY``,
    ``D.M.YYYY`` (one or two digits for day and month, four for the year). Never month first;
    no two-digit years. Stored as ``YYYY-MM-DD``.
``single_select``
    The choice's number as shown (``2``, also ``2.`` or ``2)``), or its label in any of the
    survey's languages, compared case- and accent-insensitively (:func:`fold`). Stored: the
    choice's ``value``.
``multi_select``
    Numbers or labels separated by commas, semicolons or spaces (``1 3``, ``1,3``,
    ``yes; not sure``); a label may contain spaces when separated by commas. Repeats count
    once. Stored: the values in choice order, separated by one space (CommCare's form).
``phone``
    A number as contacts normalise it (``contacts.rules.check_phone``, strictly): with the
    country code (``+254 712 345 678``, ``254712345678``) or national with the project's
    default country (``0712 345678``). Stored as digits with the country code, no ``+``.

An optional question answered with a blank reply gets ``Answer("", "")``: nothing is written.
Constraints ``min``/``max`` are inclusive.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from casereach.contacts.rules import ProjectRules, check_phone
from casereach.surveys.spec import Question
from casereach.surveys.textcheck import fold

MAX_TEXT = 1000
_INT = re.compile(r"^[+-]?\d{1,18}$")
_DEC = re.compile(r"^([+-]?\d{1,18})(?:[.,](\d{1,12}))?$")
_ISO = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
_DMY = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})$")
_CHOICE_NUMBER = re.compile(r"^\(?(\d{1,3})[.)]?$")
_SEPARATORS = re.compile(r"[,;]")


@dataclass(frozen=True)
class Answer:
    """An accepted reply: ``value`` as written to the case property, ``display`` as shown
    back to people (``{answer.<id>}``, the transcript)."""

    value: str
    display: str


@dataclass(frozen=True)
class Invalid:
    """A refused reply; ``reason`` says why, in English, for transcripts and logs (the
    contact gets the question's retry prompt)."""

    reason: str


Result = Answer | Invalid


def pick_text(texts: Mapping[str, str], language: str) -> str:
    """The text in ``language``; else the first non-blank one (in the map's order, which is
    the project's language order for a survey saved through the API); else ``""``."""
    text = texts.get(language, "")
    if text.strip():
        return text
    return next((t for t in texts.values() if t.strip()), "")


def parse(
    question: Question, text: str, language: str, *, default_country: str | None = None
) -> Result:
    """``text`` (one SMS reply) as the answer to ``question``. ``language`` is the
    contact's: labels in it are tried first. ``default_country`` is the project's, for
    national phone numbers. Never raises."""
    reply = " ".join(text.split())
    if len(reply) > MAX_TEXT:
        return Invalid(f"the reply is longer than {MAX_TEXT} characters")
    if not reply:
        if question.constraints.required:
            return Invalid("an answer is required")
        return Answer("", "")
    kind = question.type
    if kind == "text":
        return _text(question, reply)
    if kind == "integer":
        return _integer(question, reply)
    if kind == "decimal":
        return _decimal(question, reply)
    if kind == "date":
        return _date(question, reply)
    if kind == "phone":
        return _phone(reply, default_country)
    if kind == "single_select":
        return _single(question, reply, language)
    return _multi(question, reply, language)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _text(q: Question, reply: str) -> Result:
    pattern = q.constraints.regex
    if pattern:
        compiled = _regex(pattern)
        if compiled is None or compiled.fullmatch(reply) is None:
            return Invalid("the reply does not have the expected form")
    return Answer(reply, reply)


def _bound(value: str | int | float | None) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _in_range(q: Question, number: Decimal) -> Invalid | None:
    low, high = _bound(q.constraints.min), _bound(q.constraints.max)
    if low is not None and number < low:
        return Invalid(f"the number must be at least {_plain(low)}")
    if high is not None and number > high:
        return Invalid(f"the number must be at most {_plain(high)}")
    return None


def _plain(number: Decimal) -> str:
    """Plain notation without trailing zeros; zero is ``0``."""
    if number == 0:
        return "0"
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _integer(q: Question, reply: str) -> Result:
    if not _INT.match(reply):
        return Invalid("the reply is not a whole number")
    number = Decimal(reply)
    return _in_range(q, number) or Answer(str(int(number)), str(int(number)))


def _decimal(q: Question, reply: str) -> Result:
    m = _DEC.match(reply)
    if m is None:
        return Invalid("the reply is not a number")
    number = Decimal(f"{m.group(1)}.{m.group(2) or '0'}")
    value = _plain(number)
    return _in_range(q, number) or Answer(value, value)


def _to_date(reply: str) -> dt.date | None:
    m = _ISO.match(reply)
    parts: tuple[str, str, str] | None = None
    if m is not None:
        parts = (m.group(1), m.group(2), m.group(3))
    else:
        m = _DMY.match(reply)
        if m is not None:
            parts = (m.group(4), m.group(3), m.group(1))
    if parts is None:
        return None
    try:
        return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def _date(q: Question, reply: str) -> Result:
    day = _to_date(reply)
    if day is None:
        return Invalid("the reply is not a date (use e.g. 2026-03-31 or 31/3/2026)")
    for bound, below in ((q.constraints.min, True), (q.constraints.max, False)):
        if isinstance(bound, str):
            try:
                limit = dt.date.fromisoformat(bound)
            except ValueError:
                continue
            if (day < limit) if below else (day > limit):
                word = "on or after" if below else "on or before"
                return Invalid(f"the date must be {word} {limit.isoformat()}")
    return Answer(day.isoformat(), day.isoformat())


def _phone(reply: str, default_country: str | None) -> Result:
    rules = ProjectRules(
        project_id=0, strict_phone_validation=True, default_country=default_country
    )
    checked = check_phone(reply, rules)
    if checked.number is None:
        return Invalid(f"the reply is not a phone number ({checked.reason})")
    return Answer(checked.number, "+" + checked.number)


def _label(q: Question, index: int, language: str) -> str:
    return pick_text(q.choices[index].label, language)


def _choice_index(q: Question, token: str, language: str) -> int | None:
    """The choice ``token`` names (by number or label), or ``None``."""
    m = _CHOICE_NUMBER.match(token)
    if m is not None:
        n = int(m.group(1))
        return n - 1 if 1 <= n <= len(q.choices) else None
    key = fold(token)
    if not key:
        return None
    for lang_first in (True, False):
        for i, choice in enumerate(q.choices):
            for lang, label in choice.label.items():
                if (lang == language) == lang_first and fold(label) == key:
                    return i
    return None


def _single(q: Question, reply: str, language: str) -> Result:
    index = _choice_index(q, reply, language)
    if index is None:
        return Invalid(f"the reply is not one of the {len(q.choices)} choices")
    return Answer(q.choices[index].value, _label(q, index, language))


def _multi(q: Question, reply: str, language: str) -> Result:
    chosen: set[int] = set()
    for part in _SEPARATORS.split(reply):
        if not part.strip():
            continue
        whole = _choice_index(q, part.strip(), language)
        if whole is not None:
            chosen.add(whole)
            continue
        for word in part.split():
            index = _choice_index(q, word, language)
            if index is None:
                return Invalid(f"{word[:40]!r} is not one of the {len(q.choices)} choices")
            chosen.add(index)
    if not chosen:
        return Invalid("the reply names no choice")
    order = sorted(chosen)
    value = " ".join(q.choices[i].value for i in order)
    return Answer(value, ", ".join(_label(q, i, language) for i in order))
