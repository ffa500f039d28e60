"""Cases that CommCare HQ pushes in: data forwarding (one case's whole state per POST) and
form submissions (every case block of a form). The only writer of ``FormReceipt``,
``ForwardedVersion`` and ``LastForwarded``; cases themselves are written by ``cases.actions``,
in the same transaction, so the contact sync and the alert hooks run as for every other case
write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from django.db import connection, transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.caseblock import Forwarded, Submission
from casereach.cases.models import Case, FormReceipt, ForwardedVersion, LastForwarded
from casereach.cases.writeback import (
    ForwardedContext,
    forwarded_context,
    map_forwarded_ids,
    overlay_forwarded,
)
from casereach.core import bulk, rows
from casereach.core.errors import BadRequest, CasereachError
from casereach.core.groupcommit import Combiner
from casereach.core.timeutil import now
from casereach.projects.actions import lock_project
from casereach.projects.models import Project

Outcome = Literal["applied", "unchanged", "stale", "echo"]

# ``CASEREACH_FORWARD_GROUP_COMMIT=0`` applies each forwarding POST in its own transaction.
GROUP_COMMIT = os.environ.get("CASEREACH_FORWARD_GROUP_COMMIT", "1") != "0"
# How long a group may wait for the POSTs of the previous group to come back (milliseconds).
GATHER_S = float(os.environ.get("CASEREACH_FORWARD_GATHER_MS", "2")) / 1000
VERSION_TABLE = ForwardedVersion._meta.db_table
CASE_TABLE = Case._meta.db_table
LAST_TABLE = LastForwarded._meta.db_table
_VERSION_VIEW = rows.decoder(ForwardedVersion, "case_id", "server_modified_on")


def do_receive_forwarded_case(project: Project, forwarded: Forwarded) -> Outcome:
    """Apply one forwarded case state, unless HQ already sent this one or a newer one
    (``server_modified``): "stale" then, and nothing is written. BadRequest (nothing written)
    when the state cannot be applied. "echo": HQ sending back our own write-back, which
    changed nothing here (``writeback.overlay_forwarded``)."""
    got = receive_forwarded_many(project, [forwarded])[0]
    if isinstance(got, BaseException):
        raise got
    return got


def receive_forwarded(project: Project, forwarded: Forwarded) -> Outcome:
    """``do_receive_forwarded_case``, committed together with the forwarding POSTs this
    process receives at the same moment (``core.groupcommit``): the answer comes after the
    commit, and a bad state fails only its own POST."""
    if not GROUP_COMMIT or connection.in_atomic_block:
        return do_receive_forwarded_case(project, forwarded)
    return _COMBINER.submit(project, forwarded)


def receive_forwarded_many(
    project: Project, items: Sequence[Forwarded]
) -> list[Outcome | CasereachError]:
    """Apply forwarded states in arrival order, in one transaction under the project lock,
    with a fixed number of statements per round (a round holds each case at most once; a
    case sent twice goes to the next round, so its stale guard sees the first). Per item its
    outcome, or its BadRequest (that item wrote nothing; the others are written)."""
    out: list[Outcome | CasereachError | None] = [None] * len(items)
    with bulk.process_writer_turn(), transaction.atomic():
        locked = lock_project(project.pk)  # serialises the guard's reads with the writes
        changes = [f.change for f in items]
        context = forwarded_context(locked, changes, [f.server_modified for f in items])
        map_forwarded_ids(locked, changes, context)
        pending = list(range(len(items)))
        while pending:
            this_round: list[int] = []
            later: list[int] = []
            seen: set[str | None] = set()
            for i in pending:
                case_id = items[i].change.case_id
                (later if case_id in seen else this_round).append(i)
                seen.add(case_id)
            _apply_round(locked, items, this_round, out, context)
            pending = later
        last = [i for i in range(len(items)) if not isinstance(out[i], CasereachError)]
        if last:
            outcome = out[last[-1]]
            assert isinstance(outcome, str)
            _record_last(locked, items[last[-1]].change.case_id or "", outcome)
    return [o for o in out if o is not None]


def _apply_round(
    project: Project,
    items: Sequence[Forwarded],
    indexes: Sequence[int],
    out: list[Outcome | CasereachError | None],
    context: ForwardedContext,
) -> None:
    changes = [items[i].change for i in indexes]
    stamps = [items[i].server_modified for i in indexes]
    echoes = overlay_forwarded(changes, stamps, context)
    ids = [c.case_id for c in changes if c.case_id]
    in_ids, params = bulk.in_sql("v.case_id", sorted(ids))
    # The project is checked here, not in SQL: SQLite would then walk the project's cases.
    seen = {
        case_id: stamp
        for case_id, stamp, owner in _VERSION_VIEW.all(
            rows.fetch_all(
                f"SELECT v.case_id, v.server_modified_on, c.project_id FROM {VERSION_TABLE} v "
                f"JOIN {CASE_TABLE} c ON c.case_id = v.case_id WHERE {in_ids}",
                params,
            )
        )
        if owner == project.pk
    }
    fresh: list[int] = []  # positions in ``indexes`` to apply
    for pos, (change, stamp) in enumerate(zip(changes, stamps, strict=True)):
        last = seen.get(change.case_id or "")
        if stamp is not None and last is not None and stamp <= last:
            out[indexes[pos]] = "stale"
        else:
            fresh.append(pos)
    if not fresh:
        return
    applying = [changes[pos] for pos in fresh]
    for row, change in enumerate(applying, start=1):
        change.row = row
    result = do_apply_case_changes(project, applying, partial=True)
    versions = []
    for pos, change in zip(fresh, applying, strict=True):
        if change.row in result.errors:
            out[indexes[pos]] = BadRequest(result.errors[change.row])
            continue
        if change.case_id in result.changed:
            out[indexes[pos]] = "applied"
        else:
            out[indexes[pos]] = "echo" if echoes[pos] else "unchanged"
        if stamps[pos] is not None:
            versions.append((change.case_id, bulk.adapt_datetime(stamps[pos])))
    bulk.upsert(
        VERSION_TABLE,
        ("case_id", "server_modified_on"),
        versions,
        conflict=("case_id",),
        update=("server_modified_on",),
    )


def _record(project: Project, items: Sequence[Forwarded]) -> list[Outcome | CasereachError]:
    return receive_forwarded_many(project, items)


_COMBINER: Combiner[Project, Forwarded, Outcome] = Combiner(
    _record, key=lambda p: p.pk, gather_s=GATHER_S
)


def _record_last(project: Project, case_id: str, outcome: Outcome) -> None:
    """Remember this POST as the project's last forwarded case (under the project lock)."""
    bulk.upsert(
        LAST_TABLE,
        ("project_id", "case_id", "received_on", "outcome"),
        [(project.pk, case_id, bulk.adapt_datetime(now()), outcome)],
        conflict=("project_id",),
        update=("case_id", "received_on", "outcome"),
    )


@dataclass
class FormOutcome:
    duplicate: bool
    cases: int  # case blocks in the form
    written: int  # cases it changed


def do_receive_form(project: Project, submission: Submission) -> FormOutcome:
    """Apply every case block of a form, all or none (BadRequest naming the block that
    cannot be applied, nothing written). A form whose ``instanceID`` was processed before
    changes nothing and is a duplicate."""
    with transaction.atomic():
        lock_project(project.pk)  # a repeated form racing its first copy waits for it
        instance_id = submission.instance_id
        if (
            instance_id is not None
            and FormReceipt.objects.filter(project_id=project.pk, instance_id=instance_id).exists()
        ):
            return FormOutcome(True, len(submission.changes), 0)
        written = 0
        if submission.changes:
            written = do_apply_case_changes(project, submission.changes).written
        if instance_id is not None:
            FormReceipt.objects.create(
                project_id=project.pk,
                instance_id=instance_id,
                received_on=now(),
                case_count=len(submission.changes),
            )
    return FormOutcome(False, len(submission.changes), written)
