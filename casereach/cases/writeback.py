"""Write-back to CommCare HQ: the outbox of case changes casereach itself made (a structured
SMS, a self-registration), sent to the project's HQ through Case API v2
(reference/commcare-api.md 2.3). The only writer of ``CommCareWrite`` and
``CommCareCaseLink``; ``writeback_send`` does the HTTP calls and records outcomes here.

- **Which changes.** Only those ``do_apply_case_changes(write_back=True)`` makes: keywords and
  self-registration. Changes that came from HQ (forwarding, form receiver) are never written
  back, nor are Case API writes by an integration (it wrote them; it can write HQ too), nor
  deletes (only the Case API deletes a case).
- **What a write carries.** A create: the whole new state, indices included. An update: what
  the change set (built-ins, properties, indices added or removed, a close). Index targets
  are our case ids, mapped to HQ's at claim time; a write whose target case is still waiting
  for its own create at HQ waits for it. A **reopen** is a write of its own (``op`` reopen):
  Case API v2 has no way to reopen a case (2.3), so the sender asks HQ for the case and
  records the write ``sent`` when HQ has it open, otherwise ``failed`` with an error saying
  to reopen it in HQ and press Retry.
- **Durable.** A change is queued in the transaction that makes it: committed together, or
  neither.
- **In order, one at a time per case.** Only a case's oldest unfinished write (lowest id not
  ``sent``) can be claimed; a ``failed`` one holds the later ones back until it is retried.
- **Unknown outcomes.** A call that timed out or lost its connection after sending, or whose
  lease expired (the process died mid-call), is queued again as the same request before the
  case's next change. A create is retried as the idempotent ``PUT /ext/<our case id>/``
  (creates carry our case id as ``external_id`` when the case has none), never a second POST.
- **No echo.** HQ forwards our own write back. ``map_forwarded_ids`` maps HQ's id of a case
  we created to ours; ``overlay_forwarded`` lays our writes HQ had not yet applied at that
  state over it (so an echo never reverts a newer local change), and says whether it is the
  echo of one of our writes (HQ's ``server_modified_on`` equals the one HQ answered our
  write with). Both are set-based: one group of forwarded cases, a fixed number of reads. Forwarded changes
  are not written back, so nothing loops.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from casereach.cases.changes import CaseChange, IndexSpec
from casereach.cases.models import Case, CommCareCaseLink, CommCareWrite
from casereach.cases.state import CaseState
from casereach.core import bulk, rows
from casereach.core.errors import Conflict, NotFound
from casereach.core.timeutil import now
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings

TABLE = CommCareWrite._meta.db_table
QUEUED, SENDING, SENT, FAILED = (
    CommCareWrite.QUEUED,
    CommCareWrite.SENDING,
    CommCareWrite.SENT,
    CommCareWrite.FAILED,
)
UNFINISHED = (QUEUED, SENDING, FAILED)

# -- queueing ------------------------------------------------------------------------------------


def create_body(state: CaseState) -> dict[str, Any]:
    """A new case, as Case API v2 creates it (HQ makes its own id; ours rides along as
    ``external_id`` when the case has none, so a retried create can be an upsert)."""
    body: dict[str, Any] = {
        "case_type": state.case_type,
        "case_name": state.case_name,
        "owner_id": state.owner_id or "",
        "external_id": state.external_id or state.case_id,
        "properties": dict(state.properties),
    }
    if state.indices:
        body["indices"] = {name: dict(idx) for name, idx in state.indices.items()}
    if state.closed:
        body["close"] = True
    return body


def update_body(change: CaseChange, state: CaseState) -> dict[str, Any]:
    """What ``change`` set, as a Case API v2 update (properties merge at HQ)."""
    body: dict[str, Any] = {}
    for key in ("case_type", "case_name", "owner_id", "external_id"):
        value = getattr(change, key)
        if value is not None:
            body[key] = value
    if change.properties:
        body["properties"] = dict(change.properties)
    indices = {
        name: dict(state.indices[name]) if name in state.indices else {"case_id": ""}
        for name in change.indices
    }
    if indices:  # set ones as resolved (our ids); removed ones as HQ removes them: no id
        body["indices"] = indices
    if change.close and state.closed:
        body["close"] = True
    return body


def enqueue_writes(
    project: Project, changes: Sequence[CaseChange], states: Sequence[CaseState | None]
) -> int:
    """Queue the changes that changed a case (``states``: each change's case, taken before
    the write reset ``is_new``/``dirty``; pairs of (change, state) in order). Called by
    ``cases.actions`` in the writing transaction; nothing is queued while the project has no
    CommCare connection configured. Returns the number queued."""
    cc = effective_settings(project.settings).commcare
    if not (cc.url and cc.domain):
        return 0
    stamp = now()
    rows: list[CommCareWrite] = []
    created: set[str] = set()
    for change, state in zip(changes, states, strict=True):
        if state is None:
            continue
        if state.is_new:
            if state.case_id in created:
                continue  # the create body already holds the whole new state
            created.add(state.case_id)
            op, body = "create", create_body(state)
        else:
            ops = [("update", update_body(change, state))]
            if change.reopen and state.reopened and not state.closed:
                ops.append(("reopen", {"reopen": True}))
            for op, body in ops:
                if body:
                    rows.append(_row(project, state.case_id, op, body, stamp))
            continue
        rows.append(_row(project, state.case_id, op, body, stamp))
    CommCareWrite.objects.bulk_create(rows)
    return len(rows)


def _row(
    project: Project, case_id: str, op: str, body: dict[str, Any], stamp: dt.datetime
) -> CommCareWrite:
    return CommCareWrite(
        project_id=project.pk,
        case_id=case_id,
        op=op,
        body=body,
        next_attempt_at=stamp,
        created_on=stamp,
        updated_on=stamp,
    )


# -- claiming, reaping, completing ----------------------------------------------------------------

CLAIM_COLUMNS = ("id", "project_id", "case_id", "op", "body", "attempts", "unknown_outcomes")


def _claim_statement() -> str:
    """Due queued writes that are their case's oldest unfinished one → ``sending``.
    Parameters: at, limit, lease_until, token, at."""
    pick = (
        f"SELECT w.id FROM {TABLE} w WHERE w.status = '{QUEUED}' AND w.next_attempt_at <= %s "
        f"AND NOT EXISTS (SELECT 1 FROM {TABLE} o WHERE o.project_id = w.project_id "
        f"AND o.case_id = w.case_id AND o.id < w.id "
        f"AND o.status IN ('{QUEUED}', '{SENDING}', '{FAILED}')) "
        f"ORDER BY w.id LIMIT %s"
    )
    cols = ", ".join(CLAIM_COLUMNS)
    if bulk.has_row_locks():
        return (
            f"WITH picked AS MATERIALIZED ({bulk.for_update(pick, skip_locked=True)}) "
            f"UPDATE {TABLE} AS m SET status = '{SENDING}', lease_until = %s, "
            f"lease_token = %s, attempts = m.attempts + 1, updated_on = %s FROM picked "
            f"WHERE m.id = picked.id RETURNING {', '.join('m.' + c for c in CLAIM_COLUMNS)}"
        )
    return (
        f"WITH picked AS ({pick}) UPDATE {TABLE} SET status = '{SENDING}', lease_until = %s, "
        f"lease_token = %s, attempts = attempts + 1, updated_on = %s "
        f"WHERE id IN (SELECT id FROM picked) AND status = '{QUEUED}' RETURNING {cols}"
    )


@dataclass
class Claimed:
    id: int
    project_id: int
    case_id: str
    op: str
    body: dict[str, Any]
    attempts: int  # counting this one
    unknown_outcomes: int
    hq_case_id: str = ""  # where it goes: HQ's id of the case (links resolved at claim)
    waits_for: str = ""  # a case its indices name whose create HQ has not answered yet


def claim(limit: int, lease_until: dt.datetime, token: str, at: dt.datetime) -> list[Claimed]:
    """Lease up to ``limit`` due writes (at most one per case), oldest first."""
    stamp = bulk.adapt_datetime(at)
    params = [stamp, limit, bulk.adapt_datetime(lease_until), token, stamp]
    with transaction.atomic(), connection.cursor() as cursor:  # writes: cases.CommCareWrite
        cursor.execute(_claim_statement(), params)
        rows = [dict(zip(CLAIM_COLUMNS, r, strict=True)) for r in cursor.fetchall()]
    for row in rows:
        if isinstance(row["body"], str):  # SQLite returns the JSON text
            row["body"] = json.loads(row["body"])
    claimed = sorted((Claimed(**row) for row in rows), key=lambda c: c.id)
    targets = {t for c in claimed for t in _index_targets(c.body).values()}
    links = dict(
        CommCareCaseLink.objects.filter(
            bulk.is_in("case_id", sorted({c.case_id for c in claimed} | targets))
        ).values_list("case_id", "hq_case_id")
    )
    pending = _unanswered_creates(targets - set(links))
    for c in claimed:
        c.hq_case_id = links.get(c.case_id, "" if c.op == "create" else c.case_id)
        for name, target in _index_targets(c.body).items():
            if target in pending:
                c.waits_for = target
            idx = c.body["indices"][name]
            c.body["indices"][name] = {**idx, "case_id": links.get(target, target)}
    return claimed


def _index_targets(body: dict[str, Any]) -> dict[str, str]:
    """{index name: our id of the case it names} of a write body (removals left out)."""
    indices = body.get("indices")
    if not isinstance(indices, dict):
        return {}
    return {
        name: idx["case_id"]
        for name, idx in indices.items()
        if isinstance(idx, dict) and isinstance(idx.get("case_id"), str) and idx["case_id"]
    }


def _unanswered_creates(case_ids: set[str]) -> dict[str, int]:
    """{case id: id of its create write} for those cases whose create HQ has not answered."""
    if not case_ids:
        return {}
    return dict(
        CommCareWrite.objects.filter(
            bulk.is_in("case_id", sorted(case_ids)), op="create", status__in=UNFINISHED
        ).values_list("case_id", "id")
    )


LEASE_EXPIRED = "lease expired during the call to HQ; outcome unknown, the same request is retried"


def reap(at: dt.datetime) -> int:
    """Writes whose lease expired (the sender died mid-call) back to ``queued``, due now, as
    an unknown outcome: the same request goes again before the case's next change."""
    return CommCareWrite.objects.filter(status=SENDING, lease_until__lt=at).update(
        status=QUEUED,
        lease_until=None,
        lease_token=None,
        next_attempt_at=at,
        unknown_outcomes=F("unknown_outcomes") + 1,
        last_error=LEASE_EXPIRED,
        updated_on=at,
    )


@dataclass
class Outcome:
    """How one leased write ended: ``status`` sent, queued (retry at ``retry_at``) or failed."""

    write: Claimed
    token: str
    status: str
    error: str = ""
    http_status: int | None = None
    unknown: bool = False
    retry_at: dt.datetime | None = None
    hq_case_id: str = ""
    hq_form_id: str = ""
    hq_modified_on: dt.datetime | None = None


def complete(outcomes: Sequence[Outcome], at: dt.datetime) -> None:
    """Record outcomes, each only while its lease still holds (a reaped write is not
    touched); a create that succeeded links our case to HQ's id, in the same transaction."""
    with transaction.atomic():
        for o in outcomes:
            fields: dict[str, Any] = {
                "status": o.status,
                "lease_until": None,
                "lease_token": None,
                "last_error": o.error,
                "last_status": o.http_status,
                "updated_on": at,
            }
            if o.unknown:
                fields["unknown_outcomes"] = F("unknown_outcomes") + 1
            if o.status == QUEUED:
                fields["next_attempt_at"] = o.retry_at or at
            if o.status == SENT:
                fields.update(
                    sent_on=at,
                    hq_case_id=o.hq_case_id,
                    hq_form_id=o.hq_form_id,
                    hq_modified_on=o.hq_modified_on,
                    next_attempt_at=None,
                )
            done = CommCareWrite.objects.filter(
                pk=o.write.id, lease_token=o.token, status=SENDING
            ).update(**fields)
            if done and o.status == SENT and o.write.op == "create" and o.hq_case_id:
                link_case(o.write.project_id, o.write.case_id, o.hq_case_id)


def link_case(project_id: int, case_id: str, hq_case_id: str) -> None:
    if hq_case_id == case_id or not Case.objects.filter(pk=case_id).exists():
        return
    CommCareCaseLink.objects.update_or_create(
        case_id=case_id, defaults={"project_id": project_id, "hq_case_id": hq_case_id}
    )


def do_retry_write(project: Project, write_id: int) -> CommCareWrite:
    """A failed (or waiting) write is queued again, due now; the case's later writes follow
    it. Conflict for one that was sent or is being sent."""
    with transaction.atomic():
        write = (
            CommCareWrite.objects.select_for_update().filter(project=project, pk=write_id).first()
        )
        if write is None:
            raise NotFound(f"write-back {write_id} not found")
        if write.status not in (FAILED, QUEUED):
            raise Conflict(
                f"write-back {write_id} is {write.status}: only a failed or queued "
                "one can be retried"
            )
        stamp = now()
        write.status, write.next_attempt_at, write.updated_on = QUEUED, stamp, stamp
        write.save(update_fields=["status", "next_attempt_at", "updated_on"])
    return write


# -- what HQ forwards back -----------------------------------------------------------------------


_LINK_TABLE = CommCareCaseLink._meta.db_table
_WRITE_VIEW = rows.decoder(CommCareWrite, "case_id", "op", "status", "hq_modified_on", "body")


@dataclass
class ForwardedContext:
    """What the write-back outbox knows about a group of forwarded cases: HQ's ids of cases
    we created (→ ours), and our writes of those cases (oldest first)."""

    links: dict[str, str]
    writes: dict[str, list[tuple[str, str, dt.datetime | None, dict[str, Any]]]]


def forwarded_context(
    project: Project,
    changes: Sequence[CaseChange],
    stamps: Sequence[dt.datetime | None] = (),
) -> ForwardedContext:
    """Two raw reads for the whole group, taken before ``map_forwarded_ids`` (``stamps``: the
    states' HQ modification times; this runs for every forwarding POST, and a project that
    never wrote back gets two empty answers)."""
    hq_ids = sorted({c.case_id for c in changes if c.case_id})
    if not hq_ids:
        return ForwardedContext({}, {})
    # The cases' own ids and those their indices name (a parent we created has HQ's id there).
    targets = {spec.case_id for c in changes for spec in c.indices.values() if spec.case_id}
    in_hq, hq_params = bulk.in_sql("hq_case_id", sorted(set(hq_ids) | targets))
    links: dict[str, str] = dict(
        rows.fetch_all(
            f"SELECT hq_case_id, case_id FROM {_LINK_TABLE} WHERE project_id = %s AND {in_hq}",
            [project.pk, *hq_params],
        )
    )
    wanted = set(hq_ids) | {links[i] for i in hq_ids if i in links}
    wanted |= {c.external_id for c in changes if c.external_id}
    in_case, case_params = bulk.in_sql("case_id", sorted(wanted))
    params: list[Any] = [project.pk, *case_params]
    recent = ""
    if stamps and all(s is not None for s in stamps):
        # A write HQ had applied before the oldest state of the group matters no more
        # (creates still do: they name the cases whose echo may precede HQ's answer).
        recent = f" AND (status <> '{SENT}' OR op = 'create' OR hq_modified_on >= %s)"
        params.append(bulk.adapt_datetime(min(s for s in stamps if s is not None)))
    found = rows.fetch_all(
        f"SELECT {_WRITE_VIEW.columns()} FROM {TABLE} WHERE project_id = %s AND {in_case}"
        f"{recent} ORDER BY id",
        params,
    )
    writes: dict[str, list[tuple[str, str, dt.datetime | None, dict[str, Any]]]] = {}
    for case_id, op, status, modified, body in _WRITE_VIEW.all(found):
        writes.setdefault(case_id, []).append((op, status, modified, body))
    return ForwardedContext(links, writes)


def map_forwarded_ids(
    project: Project, changes: Sequence[CaseChange], context: ForwardedContext
) -> None:
    """Forwarded states of cases we created and wrote back carry HQ's id, as do indices
    naming them: give them ours (called by ``cases.forwarding`` under the project lock). The echo of a create may
    arrive before HQ's answer to it was recorded: a state whose ``external_id`` is a case we
    queued a create for, under an id we do not have, is that case, and the link is recorded
    now."""
    links = context.links
    maybe = {
        c.case_id: c.external_id
        for c in changes
        if c.case_id
        and c.case_id not in links
        and c.external_id
        and c.external_id != c.case_id
        and any(w[0] == "create" for w in context.writes.get(c.external_id, ()))
    }
    if maybe:
        known = set(
            Case.objects.filter(bulk.is_in("case_id", sorted(maybe))).values_list(
                "case_id", flat=True
            )
        )
        for hq_id, local in maybe.items():
            if hq_id not in known:
                assert hq_id is not None and local is not None
                link_case(project.pk, local, hq_id)
                links[hq_id] = local
    for c in changes:
        if c.case_id in links:
            c.case_id = links[c.case_id]
        for spec in c.indices.values():
            if spec.case_id in links:
                spec.case_id = links[spec.case_id]


def overlay_forwarded(
    changes: Sequence[CaseChange],
    stamps: Sequence[dt.datetime | None],
    context: ForwardedContext,
) -> list[bool]:
    """Lay over each forwarded state (our ids: ``map_forwarded_ids`` ran) the writes of ours
    HQ had not applied at its ``stamps`` (HQ's ``server_modified_on``; None: all of them), so
    an echo never reverts a newer local change. Per change: whether it is the echo of one of
    our writes (HQ answered that write with this very ``server_modified_on``)."""
    echoes: list[bool] = []
    for change, stamp in zip(changes, stamps, strict=True):
        echo = False
        for _op, status, modified, body in context.writes.get(change.case_id or "", ()):
            if stamp is None:
                _overlay(change, body)
                continue
            if status in UNFINISHED or (
                status == SENT and modified is not None and modified > stamp
            ):
                _overlay(change, body)
            if status == SENT and modified == stamp:
                echo = True
        echoes.append(echo)
    return echoes


def _overlay(change: CaseChange, body: dict[str, Any]) -> None:
    for key in ("case_type", "case_name", "owner_id"):
        if isinstance(body.get(key), str):
            setattr(change, key, body[key])
    props = body.get("properties")
    if isinstance(props, dict):
        change.properties = {**change.properties, **props}
    if body.get("close"):
        change.close, change.reopen = True, False
    if body.get("reopen"):  # a reopen HQ has not seen: the echo must not close it again
        change.close, change.reopen = False, True
    indices = body.get("indices")
    if isinstance(indices, dict):  # ours, as the write holds them (our case ids)
        for name, idx in indices.items():
            if not isinstance(idx, dict):
                continue
            if not idx.get("case_id"):
                change.indices[name] = IndexSpec()
            else:
                change.indices[name] = IndexSpec(
                    case_id=str(idx["case_id"]),
                    case_type=str(idx.get("case_type", "")),
                    relationship=str(idx.get("relationship", "child")),
                    may_dangle=True,
                )
