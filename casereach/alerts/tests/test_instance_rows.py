"""New schedule instances are written as built rows (``evaluation.instance_row``, through
``core.rows``' builder: no model object on activation's hot path): the fields it names, the
model's defaults for the others, adapted as every other row of the table is."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from casereach.alerts.evaluation import Plan, instance_row
from casereach.alerts.models import ScheduleInstance
from casereach.core import rows


def test_an_instance_row_is_the_table_row_of_its_fields() -> None:
    at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    plan = Plan(at - dt.timedelta(days=1), "2026-02-28", "09:00", "r1", "")
    alert: Any = SimpleNamespace(pk=7, version=2, project_id=3)
    due = at + dt.timedelta(hours=1)
    expected = {
        "alert_id": 7,
        "alert_version": 2,
        "project_id": 3,
        "recipient_key": "k1",
        "case_id": None,
        "contact_id": "k1",
        "time_zone": "Africa/Nairobi",
        "start": plan.start,
        "next_due": due,
        "active": True,
        "start_value": "2026-02-28",
        "time_value": "09:00",
        "reset_value": "r1",
        "created_on": at,
        "updated_on": at,
    }
    table = rows.table(ScheduleInstance)
    assert table.row(expected) == instance_row(alert, "k1", None, "Africa/Nairobi", plan, due, at)
    done = instance_row(alert, "k1", "k1", "UTC", plan, None, at)
    assert (None, False, 0, 0) == tuple(
        done[table.columns.index(c)] for c in ("next_due", "active", "period", "event")
    )
