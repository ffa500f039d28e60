"""Refusing regular expressions that can take exponential time (a criterion's ``regex``).

Python's own regex parser: the parse tree is walked to refuse patterns that can backtrack
exponentially. Imported by name because it is private (``sre_parse`` is its deprecated alias).
"""

from __future__ import annotations

import importlib
from typing import Any

_re_parser: Any = importlib.import_module("re._parser")
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
REGEX_NESTED = (
    "regex: nested repetition like (a+)+ can take exponential time; rewrite it without a "
    "repeat inside a repeat (a fixed count such as {4} inside is fine)"
)
REGEX_ALTERNATION = (
    "regex: a repeated alternation with a repeat in one of its branches, like (a|b+)*, can "
    "take exponential time; rewrite it without a repeat inside the repeated group"
)
REGEX_BACKREF = (
    "regex: a backreference (\\1, (?P=name), (?(1)...)) inside a repeat can take exponential "
    "time; rewrite it without one"
)


def _op(op: Any) -> str:
    return str(getattr(op, "name", op))


def _has_repeat(items: Any) -> bool:
    """Whether the parsed pattern ``items`` contains, at any depth, a repeat of more than one."""
    stack = [items]
    while stack:
        for op, av in stack.pop():
            name = _op(op)
            if name in _REPEATS:
                if av[1] > 1:
                    return True
                stack.append(av[2])
            else:
                stack.extend(_children(name, av))
    return False


def _children(name: str, av: Any) -> list[Any]:
    """The sub-patterns of one parse-tree node that is not a repeat."""
    if name == "SUBPATTERN":
        return [av[3]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "BRANCH":
        return list(av[1])
    if name == "GROUPREF_EXISTS":
        return [part for part in av[1:] if part is not None]
    return []


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` (a valid regex) may take exponential time, or ``None``.

    Deterministic and conservative, on Python's parse tree. Inside a repeat that can match
    its body more than once (``+``, ``*``, ``{2,}``, ``{3}``...) there must be no:

    * repeat of a variable count above one (``(a+)+``, ``(a*)*``, ``(\\d{1,3}\\.){3}``); a
      fixed count such as ``(\\d{2}-)+`` is fine, it matches one way only;
    * alternation with a repeat in a branch (``(a|b+)*``, ``(x|\\d{2})+``);
    * backreference or group condition (``(a)\\1*``, ``((a)\\2)+``, ``((?(1)a|b))+``).

    Alternations of plain strings such as ``(a|aa)+`` are not detected.
    """
    stack: list[tuple[Any, bool]] = [(_re_parser.parse(pattern), False)]
    while stack:
        items, repeated = stack.pop()
        for op, av in items:
            name = _op(op)
            if name in _REPEATS:
                low, high, body = av
                many = high > 1
                if repeated and many and low != high:
                    return REGEX_NESTED
                stack.append((body, repeated or many))
                continue
            if repeated and name in ("GROUPREF", "GROUPREF_EXISTS"):
                return REGEX_BACKREF
            if repeated and name == "BRANCH" and any(_has_repeat(alt) for alt in av[1]):
                return REGEX_ALTERNATION
            stack.extend((child, repeated) for child in _children(name, av))
    return None
