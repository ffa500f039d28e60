"""The raw-row layer's read side (``core.rows`` re-exports it): raw SQL rows decoded to Python
values as the ORM loads them (``Decoder``), and model instances built from them (``RawRows``)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import signals
from django.db.models.base import ModelState

M = TypeVar("M", bound=models.Model)
Adapter = Callable[[Any], Any]


class Decoder:
    """Raw SQL rows holding ``attnames`` (in that order; all concrete fields, in model
    order, when none are named) decoded to Python values as the ORM loads them (its
    converters applied per column: SQLite's text/naive datetimes made aware, JSON parsed,
    0/1 made booleans), without building model instances. ``columns(alias)`` is the select
    list in that order; calling the decoder decodes one row, ``all`` a batch."""

    def __init__(self, model: type[models.Model], *attnames: str) -> None:
        concrete = model._meta.concrete_fields
        by_name = {f.attname: f for f in concrete}
        unknown = sorted(set(attnames) - set(by_name))
        if unknown:
            raise ValueError(f"unknown fields of {model.__name__}: {unknown}")
        self.model = model
        self.fields = [by_name[a] for a in attnames] if attnames else list(concrete)
        self.attnames = [f.attname for f in self.fields]
        self._local = threading.local()

    def columns(self, alias: str = "") -> str:
        """The select list, in the order the decoder takes the values."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(f'{prefix}"{f.column}"' for f in self.fields)

    def converters(self) -> list[tuple[int, Adapter]]:
        """Per column that needs one, the ORM's converters as one function, for this
        thread's connection."""
        conn = connections[DEFAULT_DB_ALIAS]
        local = self._local
        if getattr(local, "conn", None) is not conn:
            table_name = self.model._meta.db_table
            convs = []
            for i, f in enumerate(self.fields):
                col = f.get_col(table_name)
                funcs = conn.ops.get_db_converters(col) + col.get_db_converters(conn)
                if funcs:
                    convs.append((i, _converter(funcs, col, conn)))
            local.conn, local.convs = conn, convs
        converters: list[tuple[int, Adapter]] = local.convs
        return converters

    def __call__(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return self.all((row,))[0]

    def all(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        convs = self.converters()
        out = []
        for row in rows:
            values = list(row)
            for i, fn in convs:
                values[i] = fn(values[i])
            out.append(tuple(values))
        return out


def _converter(funcs: Sequence[Any], col: Any, conn: Any) -> Adapter:
    """The converters of one column (``func(value, expression, connection)``) as one
    function of the value, the common ones by a fast equivalent (``_fast``)."""
    calls: list[Adapter] = [_fast(func, col, conn) for func in funcs]
    if len(calls) == 1:
        return calls[0]

    def convert(value: Any) -> Any:
        for call in calls:
            value = call(value)
        return value

    return convert


def _fast(func: Any, col: Any, conn: Any) -> Adapter:
    """``func`` bound to its column, or — for the converters every raw read meets — a
    function that gives the same result for the usual value without their per-value
    look-ups and falls back to ``func`` for any other: SQLite's datetimes (naive UTC from
    the driver, with a UTC connection), SQLite's booleans (bools from the driver) and plain
    JSON fields (text; ``"{}"`` needs no parser)."""
    name = getattr(func, "__name__", "")
    field = col.output_field
    if name == "convert_datetimefield_value" and conn.vendor == "sqlite":
        if settings.USE_TZ and conn.timezone is dt.UTC:

            def naive_utc(value: Any) -> Any:
                if value.__class__ is dt.datetime and value.tzinfo is None:
                    return value.replace(tzinfo=dt.UTC)
                return func(value, col, conn)

            return naive_utc
    elif name == "convert_booleanfield_value" and conn.vendor == "sqlite":
        return lambda value: value if value is True or value is False else func(value, col, conn)
    elif type(field) is models.JSONField and field.decoder is None and name == "from_db_value":
        loads, invalid = json.loads, json.JSONDecodeError

        def load_json(value: Any) -> Any:
            if value.__class__ is not str:
                return func(value, col, conn)
            if value == "{}":
                return {}
            try:
                return loads(value)
            except invalid:
                return value

        return load_json
    return lambda value: func(value, col, conn)


def decoder(model: type[models.Model], *attnames: str) -> Decoder:
    return Decoder(model, *attnames)


class RawRows(Generic[M]):
    """``model`` instances from raw SQL rows holding ``attnames`` (all concrete fields when
    none are named; the others are deferred and load on first access, as with ``only()``)."""

    def __init__(self, model: type[M], *attnames: str) -> None:
        wanted = set(attnames)
        fields = [f.attname for f in model._meta.concrete_fields if f.attname in wanted]
        if len(fields) != len(wanted):
            raise ValueError(f"unknown fields of {model.__name__}: {sorted(wanted)}")
        self.model = model
        # ``from_db`` takes the values in model order.
        self._decode = Decoder(model, *fields)
        self.fields = self._decode.fields
        self.attnames = self._decode.attnames
        self._plain = _plain_model(model)

    def columns(self, alias: str) -> str:
        """The select list, in the order ``build`` takes the values."""
        return self._decode.columns(alias)

    def build(self, values: Sequence[Any]) -> M:
        decoded = self._decode(values)
        if not self._plain:
            return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, list(decoded))
        # What ``from_db`` builds, without ``Model.__init__``'s per-field walk (most of a hot
        # read's time): the values in the instance's dict, the state of a loaded row.
        obj: M = self.model.__new__(self.model)
        obj.__dict__.update(zip(self.attnames, decoded, strict=True))
        state = obj._state = ModelState()
        state.adding, state.db = False, DEFAULT_DB_ALIAS
        return obj


def _plain_model(model: type[models.Model]) -> bool:
    """Whether ``from_db`` of ``model`` only fills the instance's dict: Django's own
    ``__init__`` and ``from_db``, and nothing listening to its init signals."""
    return (
        model.__init__ is models.Model.__init__
        and model.from_db.__func__ is models.Model.from_db.__func__  # type: ignore[attr-defined]
        and not signals.pre_init.has_listeners(model)
        and not signals.post_init.has_listeners(model)
    )
