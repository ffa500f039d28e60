"""What messages cost, written: the actual cost a provider reported (or its pricing category
priced from the fee table), and when to ask a provider for its price next."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from casereach.core import bulk
from casereach.core.sqlgen import update_sql
from casereach.messaging.models import Message

_TABLE = Message._meta.db_table
_COST_SQL = update_sql(
    _TABLE, ("actual_cost_micros", "cost_currency", "cost_source", "price_due_at"), ("id",)
)
_DUE_SQL = update_sql(_TABLE, ("price_due_at",), ("id",))


def set_actual_costs(costs: Sequence[tuple[str, int, str, str]]) -> None:
    """``(message id, micros, currency, source)`` each, in one statement set; no price is
    awaited for them any more."""
    bulk.execute_many(  # writes: messaging.Message
        _COST_SQL, [(micros, currency, source, None, pk) for pk, micros, currency, source in costs]
    )


def set_price_due(changes: Sequence[tuple[str, dt.datetime | None]]) -> None:
    """``(message id, when to ask for its price next, or None: no more)`` each."""
    bulk.execute_many(  # writes: messaging.Message
        _DUE_SQL, [(bulk.adapt_datetime(due) if due else None, pk) for pk, due in changes]
    )
