"""Each project's cost this month, for its monthly budget (ADR 0013): summed in the database,
kept for a few seconds, and kept up to date with what this dispatcher sends meanwhile (as
``daily`` keeps the daily count). A warning is logged once per project and month (per
dispatcher process) when the month reaches 80% of the budget."""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

from casereach.billing.queries import to_micros
from casereach.messaging.costs import BUDGET_WARNING, month_cost_micros, month_start
from casereach.messaging.dispatch.jobs import SEND, Job
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

log = logging.getLogger(__name__)

COST_TTL_S = 5.0

# (project, start of its month) already warned about, in this process.
_WARNED: set[tuple[int, dt.datetime]] = set()


class MonthlyCosts:
    def __init__(self) -> None:
        # project → (start of its month, when summed, micros spent, budget in micros)
        self._spent: dict[int, tuple[dt.datetime, float, int, int]] = {}
        self._names: dict[int, tuple[str, ProjectSettings]] = {}

    def budget(
        self, project: Project, s: ProjectSettings, at: dt.datetime
    ) -> tuple[int, int] | None:
        """(micros spent this month, budget in micros), or None without a budget."""
        if s.monthly_budget is None:
            self._spent.pop(project.pk, None)
            return None
        limit = to_micros(s.monthly_budget)
        start = month_start(s, at)
        cached = self._spent.get(project.pk)
        mono = time.monotonic()
        if cached is not None and cached[0] == start and mono - cached[1] < COST_TTL_S:
            spent = cached[2]
        else:
            spent = month_cost_micros(project, s, at)
        self._spent[project.pk] = (start, mono, spent, limit)
        self._names[project.pk] = (project.name, s)
        self._warn(project.pk)
        return spent, limit

    def prepared(self, jobs: list[Job]) -> None:
        """What a batch is about to send counts toward the kept sums from now on."""
        for j in jobs:
            pk = j.project_id
            if j.action == SEND and pk is not None and pk in self._spent:
                start, summed, spent, limit = self._spent[pk]
                cost = j.row.get("estimated_cost_micros") or 0
                self._spent[pk] = (start, summed, spent + cost, limit)
        for pk in {j.project_id for j in jobs if j.project_id in self._spent}:
            if pk is not None:
                self._warn(pk)

    def _warn(self, pk: int) -> None:
        """Log once per project and month when its cost reaches 80% of the budget."""
        start, _, spent, limit = self._spent[pk]
        if spent < int(limit * BUDGET_WARNING) or (pk, start) in _WARNED:
            return
        _WARNED.add((pk, start))
        name, s = self._names[pk]
        log.warning(
            "project %s: this month's message cost %s %s is %s%% of its budget %s",
            name,
            Decimal(spent) / 1_000_000,
            s.currency,
            (Decimal(spent) * 100 / limit).quantize(Decimal(1)) if limit else 100,
            s.monthly_budget,
        )
