"""New schedule instances are written as positional rows (``evaluation.instance_row``: a tuple
costs about a tenth of ``core.rows.Table.row`` on activation's hot path); their column list
must stay the model's insertable columns, in the model's order."""

from __future__ import annotations

from casereach.alerts.evaluation import INSTANCE_COLUMNS
from casereach.alerts.models import ScheduleInstance
from casereach.core import rows


def test_instance_rows_follow_the_model_columns() -> None:
    assert list(INSTANCE_COLUMNS) == rows.table(ScheduleInstance).columns
