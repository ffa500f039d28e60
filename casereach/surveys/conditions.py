"""A question's ``show_if``: a small declarative condition on earlier answers and case
properties (pure: no Django, no database).

The alert criteria (``alerts.criteria``) read only case properties and have no ordering
comparisons, so surveys use this grammar instead. A condition is a JSON object, one of::

    {"ref": "answer.<question id>", "op": "eq", "value": "yes"}
    {"ref": "case.<property>", "op": "in", "value": ["a", "b"]}
    {"all": [<condition>, ...]}          every one holds (an empty list holds)
    {"any": [<condition>, ...]}          at least one holds (an empty list does not)

``op`` is ``eq``, ``ne``, ``in``, ``gt`` or ``lt``. ``value`` is a string or a number (a list
of them for ``in``). Values compare as text, except ``gt``/``lt``, which compare numbers when
both sides are numbers and ISO dates (YYYY-MM-DD) when both are dates, and are false
otherwise. An answer the contact has not given (skipped, hidden, blank) or a case property
that is not set is *missing*: ``eq``, ``in``, ``gt`` and ``lt`` are false and ``ne`` is true.
For a ``multi_select`` answer (selected values separated by spaces, as CommCare stores
them) ``eq X`` means X is one of the selected values, ``ne X`` that it is not, and ``in``
that any selected value is in the list.

Nesting is at most :data:`MAX_DEPTH` deep with at most :data:`MAX_LEAVES` comparisons.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

Op = Literal["eq", "ne", "in", "gt", "lt"]
OPS: tuple[Op, ...] = ("eq", "ne", "in", "gt", "lt")
MAX_DEPTH = 5
MAX_LEAVES = 50
MAX_IN_VALUES = 100
_REF = re.compile(r"^(answer|case)\.([A-Za-z_][A-Za-z0-9_\-]{0,63})$")
_NUMBER = re.compile(r"^-?\d{1,30}(\.\d{1,30})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ConditionError(ValueError):
    """A condition that cannot be saved; ``path`` locates it inside the condition."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Compare:
    """One comparison: ``scope`` is ``answer`` or ``case``, ``name`` the id or property."""

    scope: Literal["answer", "case"]
    name: str
    op: Op
    values: tuple[str, ...]  # one for every op but ``in``
    path: str  # where it was written, for error messages


@dataclass(frozen=True)
class Group:
    match: Literal["all", "any"]
    items: tuple[Condition, ...]


Condition = Compare | Group


def _scalar(value: object, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConditionError(path, "must be a string or a number")
    return value if isinstance(value, str) else str(value)


def parse_condition(data: object, path: str = "show_if") -> Condition:
    """``data`` (decoded JSON) as a condition; raises :class:`ConditionError` naming the path."""
    leaves = [0]
    return _parse(data, path, 1, leaves)


def _parse(data: object, path: str, depth: int, leaves: list[int]) -> Condition:
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"conditions nest at most {MAX_DEPTH} deep")
    if not isinstance(data, dict):
        raise ConditionError(path, 'must be an object: {"ref", "op", "value"}, "all" or "any"')
    keys = set(data)
    for match in ("all", "any"):
        if match in keys:
            if keys != {match}:
                raise ConditionError(path, f'"{match}" takes no other keys')
            items = data[match]
            if not isinstance(items, list):
                raise ConditionError(f"{path}.{match}", "must be a list of conditions")
            parsed = tuple(
                _parse(item, f"{path}.{match}[{i}]", depth + 1, leaves)
                for i, item in enumerate(items)
            )
            return Group("all" if match == "all" else "any", parsed)
    unknown = keys - {"ref", "op", "value"}
    if unknown:
        raise ConditionError(path, f"unknown key(s) {', '.join(sorted(unknown))}")
    leaves[0] += 1
    if leaves[0] > MAX_LEAVES:
        raise ConditionError(path, f"at most {MAX_LEAVES} comparisons in one condition")
    ref = data.get("ref")
    m = _REF.match(ref) if isinstance(ref, str) else None
    if m is None:
        raise ConditionError(f"{path}.ref", "must be answer.<question id> or case.<property>")
    op = data.get("op")
    if op not in OPS:
        raise ConditionError(f"{path}.op", f"must be one of {', '.join(OPS)}")
    if "value" not in data:
        raise ConditionError(f"{path}.value", "is required")
    raw = data["value"]
    if op == "in":
        if not isinstance(raw, list) or not raw or len(raw) > MAX_IN_VALUES:
            raise ConditionError(f"{path}.value", f"in needs a list of 1 to {MAX_IN_VALUES} values")
        values = tuple(_scalar(v, f"{path}.value[{i}]") for i, v in enumerate(raw))
    else:
        values = (_scalar(raw, f"{path}.value"),)
    scope: Literal["answer", "case"] = "answer" if m.group(1) == "answer" else "case"
    return Compare(scope, m.group(2), op, values, path)


def compares(condition: Condition) -> Iterator[Compare]:
    """Every comparison of ``condition``, in the order written."""
    if isinstance(condition, Compare):
        yield condition
        return
    for item in condition.items:
        yield from compares(item)


def _ordered(value: str) -> Decimal | dt.date | None:
    text = value.strip()
    if _NUMBER.match(text):
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
            return None
    if _ISO_DATE.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    return None


def _less(left: str, right: str) -> bool | None:
    a, b = _ordered(left), _ordered(right)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a < b
    if isinstance(a, dt.date) and isinstance(b, dt.date):
        return a < b
    return None


def _holds(c: Compare, value: str | None, multi: bool) -> bool:
    if value is None or not value.strip():
        return c.op == "ne"
    if c.op in ("gt", "lt"):
        left, right = (c.values[0], value) if c.op == "gt" else (value, c.values[0])
        return bool(_less(left, right))
    held = value.split() if multi else [value]
    if c.op == "eq":
        return c.values[0] in held
    if c.op == "ne":
        return c.values[0] not in held
    return any(v in c.values for v in held)  # in


def evaluate(
    condition: Condition,
    answers: Mapping[str, str],
    case_properties: Mapping[str, str],
    multi: frozenset[str] = frozenset(),
) -> bool:
    """Whether ``condition`` holds. ``answers`` maps question ids to stored values (only
    the questions answered); ``multi`` names the multi_select questions."""
    if isinstance(condition, Group):
        results = (evaluate(i, answers, case_properties, multi) for i in condition.items)
        return all(results) if condition.match == "all" else any(results)
    if condition.scope == "answer":
        return _holds(condition, answers.get(condition.name), condition.name in multi)
    return _holds(condition, case_properties.get(condition.name), False)
