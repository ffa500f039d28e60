"""Conditional-alert criteria, evaluated over a batch of cases at once (pure: no database).

CommCare's semantics: ``equal``/``not_equal`` compare strings; ``has_value``/``has_no_value``
count blank as no value; ``regex`` matches from the start (``re.match``); ``days_after N``
matches when today ≥ date + N days; ``days_before N`` when today < date + N days; a date
property must start with ``YYYY-MM-DD``. ``parent/prop`` reads the parent case. A closed or
deleted case never matches.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from casereach.alerts.spec import Criteria, Criterion

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def parse_date(value: str | None) -> dt.date | None:
    """A date property: must start with YYYY-MM-DD (a datetime after it is fine)."""
    if not value:
        return None
    m = _DATE.match(value.strip())
    if m is None:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


# The dates a schedule computes with: far enough either way for any program, and far from
# the ends of Python's calendar, where adding a day offset or converting to UTC overflows.
SCHEDULE_DATES = (dt.date(1900, 1, 1), dt.date(2199, 12, 31))


def parse_schedule_date(value: str | None) -> dt.date | None:
    """A start or stop date read from a case property; one outside SCHEDULE_DATES is not a
    usable date (as an unreadable one: no schedule from it)."""
    day = parse_date(value)
    if day is None or not SCHEDULE_DATES[0] <= day <= SCHEDULE_DATES[1]:
        return None
    return day


@dataclass(frozen=True)
class CaseView:
    """What criteria and schedules read from one case."""

    case_id: str
    case_type: str
    properties: Mapping[str, str]
    name: str = ""
    owner_id: str | None = None
    closed: bool = False
    deleted: bool = False
    parent_id: str | None = None
    parent: CaseView | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        if name.startswith("parent/"):
            return self.parent.get(name[7:]) if self.parent is not None else None
        if name == "case_name" or name == "name":
            return self.name
        if name == "owner_id":
            return self.owner_id
        return self.properties.get(name)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _one(rule: Criterion, case: CaseView, today: dt.date) -> bool:
    value = case.get(rule.property)
    if rule.op == "equal":
        return (value or "") == rule.value
    if rule.op == "not_equal":
        return (value or "") != rule.value
    if rule.op == "has_value":
        return bool(value and value.strip())
    if rule.op == "has_no_value":
        return not (value and value.strip())
    if rule.op == "regex":
        return value is not None and _regex(rule.value or "").match(value) is not None
    date = parse_date(value)
    if date is None:
        return False
    # Compared as a difference: ``date + days`` overflows for dates near 0001 or 9999.
    elapsed = (today - date).days
    if rule.op == "days_after":
        return elapsed >= (rule.days or 0)
    return elapsed < (rule.days or 0)  # days_before


def matches(criteria: Criteria, case: CaseView, today: dt.date) -> bool:
    if case.closed or case.deleted:
        return False
    if not criteria.rules:
        return True
    results = (_one(rule, case, today) for rule in criteria.rules)
    return all(results) if criteria.match == "all" else any(results)


def matching(criteria: Criteria, cases: Sequence[CaseView], today: dt.date) -> list[bool]:
    """One answer per case, in order (the batch form every caller uses)."""
    return [matches(criteria, c, today) for c in cases]


def needs_parent(criteria: Criteria, *names: str | None) -> bool:
    props = [r.property for r in criteria.rules] + [n for n in names if n]
    return any(p.startswith("parent/") for p in props)
