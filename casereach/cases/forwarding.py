"""Cases that CommCare HQ pushes in: data forwarding (one case's whole state per POST) and
form submissions (every case block of a form). The only writer of ``FormReceipt``,
``ForwardedVersion`` and ``LastForwarded``; cases themselves are written by ``cases.actions``,
in the same transaction, so the contact sync and the alert hooks run as for every other case
write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.db import transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.caseblock import Forwarded, Submission
from casereach.cases.models import FormReceipt, ForwardedVersion, LastForwarded
from casereach.cases.writeback import prepare_forwarded
from casereach.core.timeutil import now
from casereach.projects.actions import lock_project
from casereach.projects.models import Project

Outcome = Literal["applied", "unchanged", "stale", "echo"]


def do_receive_forwarded_case(project: Project, forwarded: Forwarded) -> Outcome:
    """Apply one forwarded case state, unless HQ already sent this one or a newer one
    (``server_modified``): "stale" then, and nothing is written. BadRequest (nothing written)
    when the state cannot be applied. "echo": HQ sending back our own write-back, which
    changed nothing here (``writeback.prepare_forwarded``)."""
    change = forwarded.change
    assert change.case_id is not None
    stamp = forwarded.server_modified
    outcome: Outcome
    with transaction.atomic():
        lock_project(project.pk)  # serialises the guard's read with the write below
        echo = prepare_forwarded(project, change, stamp)
        seen = None
        if stamp is not None:
            seen = (
                ForwardedVersion.objects.filter(case_id=change.case_id, case__project_id=project.pk)
                .values_list("server_modified_on", flat=True)
                .first()
            )
        if seen is not None and stamp is not None and stamp <= seen:
            outcome = "stale"
        else:
            result = do_apply_case_changes(project, [change], single=True)
            if stamp is not None:
                if seen is None:
                    ForwardedVersion.objects.create(
                        case_id=change.case_id, server_modified_on=stamp
                    )
                else:
                    ForwardedVersion.objects.filter(case_id=change.case_id).update(
                        server_modified_on=stamp
                    )
            outcome = "applied" if result.written else ("echo" if echo else "unchanged")
        _record_last(project, change.case_id, outcome)
    return outcome


def _record_last(project: Project, case_id: str, outcome: Outcome) -> None:
    """Remember this POST as the project's last forwarded case (under the project lock)."""
    values = {"case_id": case_id, "received_on": now(), "outcome": outcome}
    if not LastForwarded.objects.filter(project_id=project.pk).update(**values):
        LastForwarded.objects.create(project_id=project.pk, **values)


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
