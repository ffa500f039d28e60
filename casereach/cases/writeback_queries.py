"""Reads of the write-back outbox (``cases.writeback``): the per-case and per-status list the
API and the Connect page show, a case's writes not yet at HQ (the contact page), and the
backlog counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from casereach.cases.models import CommCareWrite
from casereach.core.errors import BadRequest
from casereach.projects.models import Project

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000
UNFINISHED_STATUSES = (CommCareWrite.FAILED, CommCareWrite.QUEUED, CommCareWrite.SENDING)


@dataclass
class WritePage:
    objects: list[dict[str, Any]]
    total: int


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def serialize_write(w: CommCareWrite) -> dict[str, Any]:
    return {
        "id": w.pk,
        "case_id": w.case_id,
        "op": w.op,
        "status": w.status,
        "attempts": w.attempts,
        "unknown_outcomes": w.unknown_outcomes,
        "last_error": w.last_error,
        "last_status": w.last_status,
        "body": w.body,
        "hq_case_id": w.hq_case_id or None,
        "hq_form_id": w.hq_form_id or None,
        "hq_modified_on": _iso(w.hq_modified_on),
        "created_on": _iso(w.created_on),
        "updated_on": _iso(w.updated_on),
        "sent_on": _iso(w.sent_on),
        "next_attempt_at": _iso(w.next_attempt_at),
    }


def list_writes(
    project: Project,
    *,
    case_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> WritePage:
    """The project's writes, newest first, optionally of one case and/or one status."""
    if status is not None and status not in CommCareWrite.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(CommCareWrite.STATUSES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1 to {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"offset must be 0 to {MAX_OFFSET}")
    qs = CommCareWrite.objects.filter(project=project)
    if case_id:
        qs = qs.filter(case_id=case_id)
    if status:
        qs = qs.filter(status=status)
    total = qs.count()
    rows = list(qs.order_by("-id")[offset : offset + limit])
    return WritePage([serialize_write(w) for w in rows], total)


def unfinished_writes(project: Project, case_id: str, limit: int = 50) -> WritePage:
    """The case's writes not yet at HQ (failed, queued, being sent), oldest first: the order
    they go in (a failed one holds the later ones)."""
    qs = CommCareWrite.objects.filter(
        project=project, case_id=case_id, status__in=UNFINISHED_STATUSES
    )
    rows = list(qs.order_by("id")[:limit])
    return WritePage([serialize_write(w) for w in rows], qs.count())


def case_of_write(project: Project, write_id: int) -> str | None:
    """Our id of the case a write of ``project`` belongs to (None: no such write here)."""
    return (
        CommCareWrite.objects.filter(project=project, pk=write_id)
        .values_list("case_id", flat=True)
        .first()
    )


def backlog(project: Project) -> dict[str, int]:
    """How many writes are in each status (every status named, 0 when none)."""
    counts = {s: 0 for s in CommCareWrite.STATUSES}
    for row in (
        CommCareWrite.objects.filter(project=project).values("status").annotate(n=Count("id"))
    ):
        counts[row["status"]] = row["n"]
    return counts
