"""UPDATE statements generated from a named row type, so a column is named once.

A set-based writer (the dispatcher's outcomes) updates many rows with one ``executemany``:
its statement's placeholders and each row's parameter tuple must agree, position by position.
``RowUpdate`` derives both from the fields of one row type (a dataclass or a NamedTuple),
checked against the model's columns when the module is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.db import models


def update_sql(
    table: str,
    set_fields: Sequence[str],
    where_fields: Sequence[str],
    *,
    exprs: Mapping[str, str] | None = None,
    fixed: Sequence[str] = (),
    condition: str = "",
) -> str:
    """``UPDATE table SET f = %s, …, <fixed> WHERE w = %s AND … [AND condition]``: one
    placeholder per field, ``set_fields`` then ``where_fields`` in order (``exprs[f]``: the
    value's expression instead of ``%s``, with exactly one ``%s`` in it)."""
    exprs = exprs or {}
    for f, e in exprs.items():
        if f not in set_fields or e.count("%s") != 1:
            raise ValueError(f"the expression of {f} needs one %s and a set field: {e!r}")
    sets = [f"{f} = {exprs.get(f, '%s')}" for f in set_fields] + list(fixed)
    where = [f"{w} = %s" for w in where_fields] + ([condition] if condition else [])
    return f"UPDATE {table} SET {', '.join(sets)} WHERE {' AND '.join(where)}"


def field_names(row_type: type) -> tuple[str, ...]:
    """The fields of a dataclass or NamedTuple type, in declaration order."""
    if dataclasses.is_dataclass(row_type):
        return tuple(f.name for f in dataclasses.fields(row_type))
    names = getattr(row_type, "_fields", None)
    if names is None:
        raise TypeError(f"{row_type.__name__} is neither a dataclass nor a NamedTuple")
    return tuple(names)


class RowUpdate:
    """One UPDATE of ``model``'s table per row of ``row_type``: the row's ``key`` fields in
    the WHERE clause, its other fields set, then the ``shared`` columns (one value for every
    row of a call, e.g. the batch's time stamps), the ``fixed`` assignments and the extra
    ``condition``. ``adapt[f]`` turns a row's value of ``f`` into a parameter."""

    def __init__(
        self,
        model: type[models.Model],
        row_type: type,
        *,
        key: Sequence[str],
        shared: Sequence[str] = (),
        exprs: Mapping[str, str] | None = None,
        fixed: Sequence[str] = (),
        condition: str = "",
        adapt: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        names = field_names(row_type)
        missing = [k for k in key if k not in names]
        if missing:
            raise ValueError(f"{row_type.__name__} has no key field {missing}")
        self.set_fields = tuple(n for n in names if n not in key) + tuple(shared)
        self.where_fields = tuple(key)
        self.placeholders = self.set_fields + self.where_fields
        columns = {f.column for f in model._meta.concrete_fields}
        unknown = [f for f in self.placeholders if f not in columns]
        if unknown:
            raise ValueError(f"{model.__name__} has no column {unknown}")
        self.shared = frozenset(shared)
        self.adapt = dict(adapt or {})
        self.sql = update_sql(
            model._meta.db_table,
            self.set_fields,
            self.where_fields,
            exprs=exprs,
            fixed=fixed,
            condition=condition,
        )

    def params(self, rows: Iterable[Any], **shared: Any) -> list[tuple[Any, ...]]:
        """Each row's parameters, in ``placeholders`` order: its own fields, and the
        ``shared`` columns' values given here."""
        if set(shared) != self.shared:
            raise ValueError(f"the shared columns are {sorted(self.shared)}")
        adapt = self.adapt
        return [
            tuple(
                shared[f]
                if f in shared
                else adapt[f](getattr(row, f))
                if f in adapt
                else getattr(row, f)
                for f in self.placeholders
            )
            for row in rows
        ]
