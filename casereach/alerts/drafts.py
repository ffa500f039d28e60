"""Rows to write without the cost of a model instance (the due scan builds several per
recipient)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.db.models import Model

from casereach.alerts.models import Firing
from casereach.core import bulk
from casereach.core.ids import time_ordered_id
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent


class Draft:
    """A row to write, without the cost of a model instance (the due scan builds several per
    recipient). Attribute names are the model's; ``row()`` lays them out as its columns, with
    the model's defaults for the ones never set."""

    model: ClassVar[type[Model]]
    _columns: ClassVar[list[str]]
    _layout: ClassVar[list[tuple[str, Any]]]  # (attname, default) in column order
    _stamp_at: ClassVar[list[int]]  # positions of the datetime columns
    _defaults: ClassVar[dict[str, Any]]
    _auto_id: ClassVar[bool]

    def __init_subclass__(cls) -> None:
        fields = list(cls.model._meta.concrete_fields)
        cls._auto_id = fields[0].get_internal_type() in ("AutoField", "BigAutoField")
        if cls._auto_id:
            fields = fields[1:]
        cls._columns = [str(f.column) for f in fields]
        cls._defaults = {f.attname: (None if f.primary_key else f.get_default()) for f in fields}
        cls._layout = [(f.attname, cls._defaults[f.attname]) for f in fields]
        cls._stamp_at = [
            i for i, f in enumerate(fields) if f.get_internal_type() == "DateTimeField"
        ]

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only reached for a name never set
        try:
            return self._defaults[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def row(self) -> list[Any]:
        get = self.__dict__.get
        row = [get(n, d) for n, d in self._layout]
        adapt = bulk.adapt_datetime
        for i in self._stamp_at:
            row[i] = adapt(row[i])
        return row

    @classmethod
    def insert(cls, drafts: Sequence[Draft]) -> None:
        """One batch write; with an auto id, each draft gets its ``pk`` back."""
        if not drafts:
            return
        table = cls.model._meta.db_table
        rows = [d.row() for d in drafts]
        if not cls._auto_id:
            bulk.insert(table, cls._columns, rows)
            return
        ids = bulk.insert_rows_returning_ids(table, cls._columns, rows)
        for d, new_id in zip(drafts, ids, strict=True):
            d.pk = new_id


def new_message_id() -> str:
    """A message id, time-ordered as every message's (``core.ids``)."""
    return time_ordered_id()


class MessageDraft(Draft):
    model = Message

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)
        if values.get("id") is None:
            self.__dict__["id"] = new_message_id()


class EventDraft(Draft):
    model = MessagingEvent


class SubEventDraft(Draft):
    model = MessagingSubEvent


class FiringDraft(Draft):
    model = Firing
