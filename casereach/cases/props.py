"""Conditions on case properties that never turn a property name into an ORM lookup.

``Q(**{f"properties__{name}": v})`` would read ``a__contains`` as a lookup; these helpers
build the key expression explicitly, so any name is only ever a JSON key.
"""

from __future__ import annotations

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Regex,
)

_COMPARE = {
    "=": Exact,
    "<": LessThan,
    "<=": LessThanOrEqual,
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
}


def prop(name: str) -> KeyTextTransform:
    return KeyTextTransform(name, "properties")


def prop_equals(name: str, value: str) -> Q:
    """Exact match; an empty value matches both "not set" and "set to empty"."""
    if value == "":
        return Q(Exact(prop(name), "")) | Q(IsNull(prop(name), True))
    return Q(Exact(prop(name), value))


def prop_not_equals(name: str, value: str) -> Q:
    """Not equal; a property that is not set counts as not equal to any non-empty value."""
    if value == "":
        return ~prop_equals(name, "")
    return ~Q(Exact(prop(name), value)) | Q(IsNull(prop(name), True))


def prop_compare(name: str, op: str, value: str) -> Q:
    if op == "=":
        return prop_equals(name, value)
    if op == "!=":
        return prop_not_equals(name, value)
    return Q(_COMPARE[op](prop(name), value))


def prop_regex(name: str, pattern: str) -> Q:
    return Q(Regex(prop(name), pattern))
