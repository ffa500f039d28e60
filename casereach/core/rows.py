"""The raw-row layer: rows of a model written and read without the ORM's per-row cost.

Driven by the model's own fields, so no module spells a column list or a value adapter again:

- ``Table`` (``table(model)``): the insertable columns of a model, the model's defaults and,
  per column, how a Python value becomes a parameter (``adapt``: datetimes, JSON, booleans);
- ``Draft``: a row to write as a plain attribute bag (subclass it with ``model = …``), written
  in batch by ``insert`` — one statement set per batch, auto ids returned in row order,
  optionally ``ON CONFLICT … DO NOTHING``;
- ``insert_instance``: one model instance, with the values ``save(force_insert=True)`` would
  write (the hot inbound webhook);
- ``RawRows``: model instances decoded from raw SQL rows (the ORM's converters applied).

The hot paths build ORM queries more slowly than the database runs them; the statements
themselves go through ``core.bulk``. The SQLite/PostgreSQL differences of both modules live
here and in ``core.bulk`` only (see ADR 0002).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from casereach.core import bulk

M = TypeVar("M", bound=models.Model)

# -- value adapters --------------------------------------------------------------------------

# How a value becomes a parameter, per field: "str", "int", "bool" (values of that exact type
# pass as they are: what the field's get_db_prep_save returns for them), "datetime" (UTC
# values through bulk.adapt_datetime, the ORM's result without its per-value overhead),
# "json" (bulk.adapt_json) or "orm" (get_db_prep_save itself; also for any value of an
# unexpected type).
_STR_FIELDS = (models.CharField, models.TextField, models.SlugField)
_INT_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.PositiveIntegerField,
    models.AutoField,
    models.BigAutoField,
)
_FAST_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool}


def value_kind(f: models.Field[Any, Any]) -> str:
    """Plain field classes only: a subclass may prepare its values its own way."""
    if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
        return "orm"  # pre_save sets the value
    if f.is_relation:
        target = getattr(f, "target_field", None)
        if type(target) in _INT_FIELDS:
            return "int"
        return "str" if type(target) in _STR_FIELDS else "orm"
    if type(f) is models.BooleanField:
        return "bool"
    if type(f) in _INT_FIELDS:
        return "int"
    if type(f) in _STR_FIELDS:
        return "str"
    if type(f) is models.DateTimeField:
        return "datetime"
    if type(f) is models.JSONField and f.encoder is None:
        return "json"
    return "orm"


def adapt(f: models.Field[Any, Any], kind: str, value: Any) -> Any:
    """``value`` of field ``f`` (of ``value_kind`` ``kind``) as a query parameter."""
    if value is None:
        return None
    if kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is dt.UTC:
        return bulk.adapt_datetime(value)
    if kind == "json":
        return bulk.adapt_json(value)
    if type(value) is _FAST_TYPES.get(kind):
        return value
    return f.get_db_prep_save(value, connection)


class Table:
    """A model's insertable columns (the auto primary key left out), defaults and adapters."""

    def __init__(self, model: type[models.Model]) -> None:
        meta = model._meta
        fields = list(meta.local_concrete_fields)
        self.model = model
        self.name: str = meta.db_table
        self.auto_id = isinstance(meta.pk, models.AutoField)  # also Big/SmallAutoField
        if self.auto_id:
            fields = [f for f in fields if f is not meta.pk]
        self.fields = fields
        self.columns: list[str] = [str(f.column) for f in fields]
        self.defaults: dict[str, Any] = {
            f.attname: (None if f.primary_key else f.get_default()) for f in fields
        }
        self.layout: list[tuple[str, Any]] = [(f.attname, self.defaults[f.attname]) for f in fields]
        self.kinds = [value_kind(f) for f in fields]
        # The columns whose values need more than passing on (datetimes, JSON, the rest).
        self.adapted = [
            (i, f, k) for i, (f, k) in enumerate(zip(fields, self.kinds, strict=True)) if k != "str"
        ]

    def row(self, values: dict[str, Any]) -> list[Any]:
        """``values`` (attname → value, the defaults for those missing) as parameters in
        ``columns`` order."""
        get = values.get
        row = [get(n, d) for n, d in self.layout]
        for i, f, kind in self.adapted:
            value = row[i]
            if value is not None and type(value) is not _FAST_TYPES.get(kind):
                row[i] = adapt(f, kind, value)
        return row


@functools.cache
def table(model: type[models.Model]) -> Table:
    return Table(model)


# -- batch inserts -----------------------------------------------------------------------------


class Draft:
    """A row to write, without the cost of a model instance (hot paths build several per
    recipient). Attribute names are the model's; unset ones read as the model's defaults."""

    model: ClassVar[type[models.Model]]
    _table: ClassVar[Table]

    def __init_subclass__(cls) -> None:
        if "model" in cls.__dict__:
            cls._table = table(cls.model)

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for a name never set
        try:
            return self._table.defaults[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def row(self) -> list[Any]:
        return self._table.row(self.__dict__)


def insert(drafts: Sequence[Draft], *, skip_conflicts: Sequence[str] = ()) -> None:
    """Write ``drafts`` (all of one class) in one batch; with an auto id each gets its ``pk``.

    ``skip_conflicts``: the unique columns of an ``ON CONFLICT (…) DO NOTHING`` (tables whose
    key the drafts carry only: skipped rows return no id to match)."""
    if not drafts:
        return
    t = drafts[0]._table
    rows = [d.row() for d in drafts]
    if t.auto_id:
        if skip_conflicts:
            raise ValueError(f"{t.name}: ON CONFLICT DO NOTHING with auto ids")
        ids = bulk.insert_rows_returning_ids(t.name, t.columns, rows)
        for d, new_id in zip(drafts, ids, strict=True):
            d.pk = new_id
    elif skip_conflicts:
        bulk.upsert(t.name, t.columns, rows, conflict=skip_conflicts, update=())
    else:
        bulk.insert(t.name, t.columns, rows)


# -- one instance ------------------------------------------------------------------------------

_Prep = tuple[str, Any, str]  # (attname, field, kind)


@functools.cache
def _insert_plan(
    model: type[models.Model], with_pk: bool, suffix: str, vendor: str
) -> tuple[str, bool, list[_Prep]]:
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if with_pk or f is not meta.pk]
    names = ", ".join(f'"{f.column}"' for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    # SQLite gives the new id as lastrowid; PostgreSQL needs RETURNING.
    returning = not with_pk and vendor == "postgresql"
    sql = f'INSERT INTO "{meta.db_table}" ({names}) VALUES ({marks}){suffix}'
    if returning:
        sql += f' RETURNING "{meta.pk.column}"'
    return sql, returning, [(f.attname, f, value_kind(f)) for f in fields]


def insert_instance(obj: models.Model, on_conflict: str = "") -> bool:
    """INSERT ``obj`` with the values ``save(force_insert=True)`` would write (no signals: the
    models written this way have none); sets an auto primary key. ``on_conflict``: a conflict
    target (``"(col, …) WHERE …"``) whose clash skips the row: then False."""
    with_pk = obj.pk is not None
    suffix = f" ON CONFLICT {on_conflict} DO NOTHING" if on_conflict else ""
    sql, returning, plan = _insert_plan(type(obj), with_pk, suffix, connection.vendor)
    values = []
    for attname, f, kind in plan:
        value = getattr(obj, attname)
        if value is None and kind != "orm":
            pass
        elif kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is dt.UTC:
            value = bulk.adapt_datetime(value)
        elif type(value) is not _FAST_TYPES.get(kind):
            value = f.get_db_prep_save(f.pre_save(obj, True), connection)
        values.append(value)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            row = cursor.fetchone()
            if row is None:
                return False
            obj.pk = row[0]
        else:
            if cursor.rowcount == 0:
                return False
            if not with_pk:
                obj.pk = cursor.lastrowid
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
    return True


# -- raw reads ---------------------------------------------------------------------------------


class RawRows(Generic[M]):
    """``model`` instances from raw SQL rows holding ``attnames`` (all concrete fields when
    none are named; the others are deferred and load on first access, as with ``only()``)."""

    def __init__(self, model: type[M], *attnames: str) -> None:
        wanted = set(attnames)
        fields = [f for f in model._meta.concrete_fields if not wanted or f.attname in wanted]
        if wanted and len(fields) != len(wanted):
            raise ValueError(f"unknown fields of {model.__name__}: {sorted(wanted)}")
        self.model = model
        self.fields = fields
        self.attnames = [f.attname for f in fields]
        self._local = threading.local()

    def columns(self, alias: str) -> str:
        """The select list, in the order ``build`` takes the values."""
        return ", ".join(f'{alias}."{f.column}"' for f in self.fields)

    def _converters(self) -> list[tuple[int, list[tuple[Any, Any]]]]:
        """The ORM's converters per column, for this thread's connection."""
        conn = connections[DEFAULT_DB_ALIAS]
        local = self._local
        if getattr(local, "conn", None) is not conn:
            table_name = self.model._meta.db_table
            convs = []
            for i, f in enumerate(self.fields):
                col = f.get_col(table_name)
                funcs = conn.ops.get_db_converters(col) + col.get_db_converters(conn)
                if funcs:
                    convs.append((i, [(func, col) for func in funcs]))
            local.conn, local.convs = conn, convs
        converters: list[tuple[int, list[tuple[Any, Any]]]] = local.convs
        return converters

    def build(self, values: Sequence[Any]) -> M:
        row = list(values)
        conn = connections[DEFAULT_DB_ALIAS]
        for i, funcs in self._converters():
            for func, col in funcs:
                row[i] = func(row[i], col, conn)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, row)


def execute(sql: str, params: Sequence[Any]) -> None:
    """One statement (SQL from our own code)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None
