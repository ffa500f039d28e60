"""Deciding each claimed message before its gateway call: send, fail with a code, or
postpone. Pure: everything it reads is in its arguments (``PresendContext`` filled with what
the checks need), so it runs, and is tested, without a database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from casereach.messaging.dispatch.jobs import SEND, Job
from casereach.messaging.presend import PresendContext, check


def prepare(
    rows: Sequence[dict[str, Any]],
    ctx: PresendContext,
    at: dt.datetime,
    sent_today: Mapping[int | None, int],
    budgets: Mapping[int | None, tuple[int, int] | None] | None = None,
) -> list[Job]:
    """One job per claimed row, in order: the checks of SPEC 4.3 (``presend.check``, the
    function the dry run and upcoming sends run too), with each project's daily limit
    counted from ``sent_today`` (messages it sent since its local midnight) plus what this
    batch sends before the row. The gateways' rates and circuits are decided afterwards
    (``breaker.throttle``). ``budgets``: each project's (cost this month, monthly budget) in
    micros, None without one; what the batch sends before a row counts (its estimate)."""
    counts: dict[int | None, int] = {None: 0, **sent_today}
    spent = {pk: b[0] for pk, b in (budgets or {}).items() if b is not None}
    limits = {pk: b[1] for pk, b in (budgets or {}).items() if b is not None}
    jobs: list[Job] = []
    for row in rows:
        project_id = row["project_id"]
        limit = ctx.settings[project_id].daily_limit
        over = project_id in limits and spent[project_id] >= limits[project_id]
        verdict = check(
            ctx, row, at, limit_reached=counts[project_id] >= limit, budget_reached=over
        )
        jobs.append(
            Job(
                row,
                action=verdict.action,
                error_code=verdict.error_code,
                until=verdict.until,
                cfg=verdict.gateway,
                sender=verdict.sender,
                gateway_source=verdict.gateway_source,
                payload=verdict.payload,
            )
        )
        if verdict.action == SEND:
            counts[project_id] += 1
            if project_id in spent:
                spent[project_id] += row.get("estimated_cost_micros") or 0
    return jobs
