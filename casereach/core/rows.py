"""The raw-row layer: rows of a model written and read without the ORM's per-row cost.

Driven by the model's own fields, so no module spells a column list or a value adapter again:

- ``Table`` (``table(model)``): the insertable columns of a model, the model's defaults and,
  per column that needs one, how a Python value becomes a parameter (``adapter``: datetimes,
  JSON, booleans), decided once per table;
- ``Draft``: a row to write as a plain attribute bag (subclass it with ``model = …``), written
  in batch by ``insert`` — one statement set per batch, auto ids returned in row order,
  optionally ``ON CONFLICT … DO NOTHING``;
- ``insert_instance``: one model instance, with the values ``save(force_insert=True)`` would
  write (the hot inbound webhook);
- ``insert_rows``: rows built by ``Table.pack``/``Table.builder`` (a hot path's positional
  values, named once), one batch INSERT, optionally ``ON CONFLICT … DO NOTHING``;
- ``update``: one ``executemany`` of ``UPDATE t SET a = %s, … WHERE key = %s`` built from the
  fields named, the values read off objects by attribute and adapted like ``Table``'s;
- ``decoder`` (``Decoder``): raw SQL rows decoded to Python values as the ORM loads them (its
  converters per column), without model instances; ``RawRows``: model instances from them.

The hot paths build ORM queries more slowly than the database runs them; the statements
themselves go through ``core.bulk``. The SQLite/PostgreSQL differences of both modules live
here and in ``core.bulk`` only (see ADR 0002).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, models

from casereach.core import bulk
from casereach.core.rows_read import Decoder as Decoder
from casereach.core.rows_read import RawRows as RawRows
from casereach.core.rows_read import decoder as decoder

M = TypeVar("M", bound=models.Model)

# -- value adapters --------------------------------------------------------------------------

# How a value becomes a parameter, per field, decided once per table: values of str and int
# columns pass as they are (what the field's get_db_prep_save returns for them); datetimes go
# through bulk.adapt_datetime (UTC values: the ORM's result without its per-value overhead),
# JSON through bulk.adapt_json, booleans as they are when they are bools; anything else (and a
# value of an unexpected type) through the field's get_db_prep_save. None stays None.
_STR_FIELDS = (models.CharField, models.TextField, models.SlugField)
_INT_FIELDS = (
    models.IntegerField,
    models.BigIntegerField,
    models.PositiveIntegerField,
    models.AutoField,
    models.BigAutoField,
)
_FAST_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool}

Adapter = Callable[[Any], Any]


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


def adapter(f: models.Field[Any, Any]) -> Adapter | None:
    """The function that makes a value of ``f`` a parameter; None when values pass as they
    are (str and int columns)."""
    kind = value_kind(f)
    prep = f.get_db_prep_save
    if kind in ("str", "int"):
        return None
    if kind == "datetime":
        fast, known = bulk.adapt_datetime, bulk.adapted_already

        def adapt_datetime(value: Any) -> Any:
            hit = known(value)  # an equal instant: the same parameter
            if hit is not None:
                return hit
            if value is None:
                return None
            if value.__class__ is dt.datetime and value.tzinfo is dt.UTC:
                return fast(value)
            return prep(value, connection)

        return adapt_datetime
    if kind == "json":
        as_json = bulk.adapt_json
        return lambda value: None if value is None else as_json(value)
    if kind == "bool":
        return lambda value: (
            value if value is True or value is False or value is None else prep(value, connection)
        )
    return lambda value: None if value is None else prep(value, connection)


def _picker(positions: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``operator.itemgetter`` that always returns a tuple (one position included)."""
    if len(positions) == 1:
        (only,) = positions
        return lambda source: (source[only],)
    return operator.itemgetter(*positions)


# ``Table.row``'s plan for one set of keys: the row picker, the values picker, the adapters.
_RowPlan = tuple[
    Callable[[Any], tuple[Any, ...]],
    Callable[[Any], tuple[Any, ...]],
    list[tuple[int, Adapter]],
]


class Table:
    """A model's insertable columns (the auto primary key left out), defaults and adapters.

    Rows are built without a per-value type test: the values are picked in column order by
    ``operator.itemgetter`` and only the columns that need it (datetimes, JSON, booleans,
    the rest of the ORM's kinds) go through their adapter, decided once per table."""

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
        self.attnames: list[str] = [f.attname for f in fields]
        self.defaults: dict[str, Any] = {
            f.attname: (None if f.primary_key else f.get_default()) for f in fields
        }
        self._default_row = tuple(self.defaults[a] for a in self.attnames)
        self._pick = _picker(self.attnames)
        self.adapters: list[tuple[int, Adapter]] = [
            (i, fn) for i, f in enumerate(fields) if (fn := adapter(f)) is not None
        ]
        self._plans: dict[tuple[str, ...], _RowPlan] = {}
        self._adapted_defaults: tuple[Any, ...]

    def row(self, values: Mapping[str, Any]) -> list[Any]:
        """``values`` (attname → value, the defaults for those missing; other keys ignored)
        as parameters in ``columns`` order."""
        keys = tuple(values)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plans[keys] = self._plan(keys)
        pick, own, adapters = plan
        row = list(pick(own(values) + self._adapted_defaults))
        for i, fn in adapters:
            row[i] = fn(row[i])
        return row

    def _plan(self, keys: tuple[str, ...]) -> _RowPlan:
        """How ``row`` builds the row of a mapping with these keys (in this order): the
        known ones picked by one ``itemgetter``, the defaults (adapted once) for the
        others, and adapters only for the values given."""
        if not hasattr(self, "_adapted_defaults"):
            defaults = list(self._default_row)
            for i, fn in self.adapters:
                defaults[i] = fn(defaults[i])
            self._adapted_defaults = tuple(defaults)
        given = [k for k in keys if k in self.defaults]
        n = len(given)
        positions = [given.index(a) if a in given else n + j for j, a in enumerate(self.attnames)]
        own = _picker(given) if given else (lambda values: ())
        adapters = [(i, fn) for i, fn in self.adapters if self.attnames[i] in given]
        return _picker(positions), own, adapters

    def pack(self, values: Sequence[Any]) -> list[Any]:
        """A row of values in ``columns`` order as parameters."""
        if len(values) != len(self.columns):
            raise ValueError(f"{self.name}: {len(values)} values for {len(self.columns)} columns")
        row = list(values)
        for i, fn in self.adapters:
            row[i] = fn(row[i])
        return row

    def builder(self, *attnames: str) -> Callable[..., list[Any]]:
        """A function of the values of ``attnames`` (in that order) that returns the row's
        parameters in ``columns`` order, the defaults for the other columns: a hot path
        names its fields once instead of spelling every column of the table."""
        unknown = set(attnames) - set(self.attnames)
        if unknown or len(set(attnames)) != len(attnames):
            raise ValueError(f"{self.name}: unknown or repeated fields {sorted(unknown)}")
        n = len(attnames)
        pick = _picker(
            [attnames.index(a) if a in attnames else n + j for j, a in enumerate(self.attnames)]
        )
        defaults, adapters = self._default_row, self.adapters

        def build(*values: Any) -> list[Any]:
            row = list(pick(values + defaults))
            for i, fn in adapters:
                row[i] = fn(row[i])
            return row

        return build


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

    if TYPE_CHECKING:  # any attribute may be set (at run time: the plain instance dict)

        def __setattr__(self, name: str, value: Any) -> None: ...

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
        ids = _pg_unnest_returning_ids(t, rows) if bulk.is_postgres() else None
        if len(rows) == 1:
            ids = [_insert_one(t, rows[0])]
        elif ids is None:
            ids = bulk.insert_rows_returning_ids(t.name, t.columns, rows)
        for d, new_id in zip(drafts, ids, strict=True):
            d.pk = new_id
    elif skip_conflicts:
        bulk.upsert(t.name, t.columns, rows, conflict=skip_conflicts, update=())
    elif len(rows) == 1:  # one statement (PostgreSQL's COPY path takes four)
        execute(_one_sql(t.model, False), rows[0])
    else:
        bulk.insert(t.name, t.columns, rows)


def _insert_one(t: Table, row: Sequence[Any]) -> Any:
    """One row with an auto id, in one statement (a single send's event and sub-event): the
    id from ``lastrowid`` (SQLite) or ``RETURNING`` (PostgreSQL)."""
    returning = bulk.is_postgres()
    sql = _one_sql(t.model, returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, row)
        if returning:
            found = cursor.fetchone()
            return found[0]
        return cursor.lastrowid


@functools.cache
def _one_sql(model: type[models.Model], returning: bool) -> str:
    t = table(model)
    marks = ", ".join(["%s"] * len(t.columns))
    sql = f"INSERT INTO {t.name} ({', '.join(t.columns)}) VALUES ({marks})"
    return sql + f" RETURNING {model._meta.pk.column}" if returning else sql


def _array_item(value: Any) -> str | None:
    """One element of a PostgreSQL array literal; None for a value of another type."""
    cls = value.__class__
    if cls is str:
        text: str = value
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "NULL"
    if cls is bool:
        return "t" if value else "f"
    if cls is int:
        return str(value)
    if cls is dt.datetime and value.tzinfo is not None:
        stamp: dt.datetime = value
        return '"' + stamp.isoformat(" ") + '"'
    return None


def _pg_unnest_returning_ids(t: Table, rows: Sequence[Sequence[Any]]) -> list[Any] | None:
    """PostgreSQL, more than one row: ``INSERT … SELECT … FROM unnest(arrays) WITH
    ORDINALITY ORDER BY ordinality RETURNING id`` — one statement whose parameters are one
    array literal per column (built by joins), instead of a VALUES list of rows times columns
    parameters that the client-side binding parses and quotes one by one (about 60 µs a row
    for the message log's tables). None (the caller's multi-row VALUES) for one row or a
    value of a type the literal does not take."""
    if len(rows) < 2:
        return None
    arrays = []
    for column in zip(*rows, strict=True):
        items = [_array_item(v) for v in column]
        if None in items:
            return None
        arrays.append("{" + ",".join(items) + "}")  # type: ignore[arg-type]
    sql = _unnest_sql(t.model, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return [r[0] for r in cursor.fetchall()]


@functools.cache
def _unnest_sql(model: type[models.Model], vendor: str) -> str:
    t = table(model)
    casts = ", ".join(f"%s::{f.db_type(connection)}[]" for f in t.fields)
    names = ", ".join(f"u{i}" for i in range(len(t.fields)))
    cols = ", ".join(t.columns)
    pk = model._meta.pk.column
    return (
        f"INSERT INTO {t.name} ({cols}) SELECT {names} FROM unnest({casts}) WITH ORDINALITY "
        f"AS u({names}, _ord) ORDER BY _ord RETURNING {pk}"
    )


def insert_rows(
    model: type[models.Model], built: Sequence[Sequence[Any]], *, skip_conflicts: Sequence[str] = ()
) -> None:
    """Rows already built for ``model`` (``Table.pack``/``builder``: parameters in ``columns``
    order) in one batch INSERT, optionally ``ON CONFLICT (skip_conflicts) DO NOTHING``; no ids
    are returned (the hot path that writes them has no use for them)."""
    t = table(model)
    if skip_conflicts:
        bulk.upsert(t.name, t.columns, built, conflict=skip_conflicts, update=())
    else:
        bulk.insert(t.name, t.columns, built)


class _Update:
    """``UPDATE t SET a = %s, … WHERE key = %s`` for one model and one set of fields: the
    values read off each object by attribute (``operator.attrgetter``), adapted per column
    as ``Table`` adapts them."""

    def __init__(self, model: type[models.Model], fields: tuple[str, ...], key: str) -> None:
        meta = model._meta
        by_name = {f.attname: f for f in meta.concrete_fields}
        unknown = sorted({*fields, key} - set(by_name))
        if unknown or not fields:
            raise ValueError(f"{model.__name__}: unknown or no fields {unknown}")
        sets = ", ".join(f"{by_name[a].column} = %s" for a in fields)
        self.sql = f"UPDATE {meta.db_table} SET {sets} WHERE {by_name[key].column} = %s"
        self.get = operator.attrgetter(*fields, key)  # two names at least: a tuple
        self.adapters = [
            (i, fn) for i, a in enumerate([*fields, key]) if (fn := adapter(by_name[a])) is not None
        ]

    def row(self, obj: Any) -> list[Any]:
        row = list(self.get(obj))
        for i, fn in self.adapters:
            row[i] = fn(row[i])
        return row


@functools.cache
def _update_plan(model: type[models.Model], fields: tuple[str, ...], key: str) -> _Update:
    return _Update(model, fields, key)


def update(
    model: type[models.Model], objs: Iterable[Any], *, fields: Sequence[str], key: str = "id"
) -> None:
    """Write ``fields`` (attnames) of each object in ``objs`` (anything with those
    attributes: model instances, drafts, row objects) to the row whose ``key`` equals the
    object's: one ``executemany`` of ``UPDATE t SET a = %s, … WHERE key = %s``."""
    plan = _update_plan(model, tuple(fields), key)
    bulk.execute_many(plan.sql, [plan.row(obj) for obj in objs])


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


def insert_instances(objs: Sequence[models.Model], on_conflict: str = "") -> int:
    """``insert_instance`` of ``objs`` (one model, keys set) in one statement; rows written."""
    suffix = f" ON CONFLICT {on_conflict} DO NOTHING" if on_conflict else ""
    head, marks = _insert_plan(type(objs[0]), True, "", connection.vendor)[0].split(" VALUES ")
    plan = _insert_plan(type(objs[0]), True, "", connection.vendor)[2]
    values = [v for obj in objs for v in _instance_values(obj, plan)]
    with connection.cursor() as cursor:
        cursor.execute(f"{head} VALUES {', '.join([marks] * len(objs))}{suffix}", values)
        written = int(cursor.rowcount)
    for obj in objs:
        obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS
    return written


def _instance_values(obj: models.Model, plan: list[_Prep]) -> list[Any]:
    values = []
    for attname, f, kind in plan:
        value = getattr(obj, attname)
        if kind == "datetime" and isinstance(value, dt.datetime) and value.tzinfo is dt.UTC:
            value = bulk.adapt_datetime(value)
        elif (value is not None or kind == "orm") and type(value) is not _FAST_TYPES.get(kind):
            value = f.get_db_prep_save(f.pre_save(obj, True), connection)
        values.append(value)
    return values


def insert_instance(obj: models.Model, on_conflict: str = "") -> bool:
    """INSERT ``obj`` with the values ``save(force_insert=True)`` would write (no signals: the
    models written this way have none); sets an auto primary key. ``on_conflict``: a conflict
    target (``"(col, …) WHERE …"``) whose clash skips the row: then False."""
    with_pk = obj.pk is not None
    suffix = f" ON CONFLICT {on_conflict} DO NOTHING" if on_conflict else ""
    sql, returning, plan = _insert_plan(type(obj), with_pk, suffix, connection.vendor)
    values = _instance_values(obj, plan)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if returning:
            row = cursor.fetchone()
            if row is None:
                return False
            obj.pk = row[0]
        elif cursor.rowcount == 0:
            return False
        elif not with_pk:
            obj.pk = cursor.lastrowid
    obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS
    return True


# -- raw reads: in ``core.rows_read`` (re-exported here) ------------------------------------------


def execute(sql: str, params: Sequence[Any]) -> None:
    """One statement (SQL from our own code)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def fetch_all(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Every row of one query (SQL from our own code), undecoded (``Decoder`` decodes)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()]


def fetch_one(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None
