"""Two-way ownership under concurrent writers: never two holders (SPEC 3.2.5).

PostgreSQL: 20 processes, each in its own project, verify the same number at once.
SQLite: 20 threads do the same (one process can hold SQLite's write lock at a time anyway).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.models import PhoneEntry
from casereach.projects.models import Project
from casereach.testing.world import make_project

NUMBER = "254711000999"
WRITERS = 20


def _verify_in(project_name: str, barrier: Callable[[], object]) -> None:
    project = Project.objects.get(name=project_name)
    barrier()
    do_apply_case_changes(
        project,
        [
            CaseChange(
                op="create",
                case_type="patient",
                case_name=f"writer in {project_name}",
                owner_id="o",
                properties={
                    "contact_phone_number": NUMBER,
                    "contact_phone_number_is_verified": "1",
                },
            )
        ],
    )


def _process_main(project_name: str, barrier: object) -> None:
    connections.close_all()  # never share the parent's socket
    try:
        _verify_in(project_name, barrier.wait)  # type: ignore[attr-defined]
    finally:
        connections.close_all()


def _holders() -> list[PhoneEntry]:
    return list(PhoneEntry.objects.filter(number=NUMBER, holder=True))


@pytest.mark.django_db(transaction=True)
def test_concurrent_verifications_leave_exactly_one_holder() -> None:
    names = [f"p{i}" for i in range(WRITERS)]
    for name in names:
        make_project(name=name)
    if connection.vendor == "postgresql":
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(WRITERS)
        connections.close_all()
        procs = [ctx.Process(target=_process_main, args=(n, barrier)) for n in names]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [0] * WRITERS == [p.exitcode for p in procs]
    else:
        tbarrier = threading.Barrier(WRITERS)
        errors: list[BaseException] = []

        def run(name: str) -> None:
            try:
                _verify_in(name, tbarrier.wait)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert [] == errors
    entries = list(PhoneEntry.objects.filter(number=NUMBER).order_by("requested_on", "id"))
    assert WRITERS == len(entries)
    holders = _holders()
    assert 1 == len(holders)
    assert entries[0].pk == holders[0].pk  # the earliest registrant holds it


@pytest.mark.django_db(transaction=True)
def test_release_passes_to_earliest_remaining_requester_at_once() -> None:
    project = make_project(name="solo")
    ids = []
    for name in ("first", "second", "third"):
        result = do_apply_case_changes(
            project,
            [
                CaseChange(
                    op="create",
                    case_type="patient",
                    case_name=name,
                    owner_id="o",
                    properties={
                        "contact_phone_number": NUMBER,
                        "contact_phone_number_is_verified": "1",
                    },
                )
            ],
        )
        state = result.cases[0]
        assert state is not None
        ids.append(state.case_id)
    assert [ids[0]] == [h.contact_id for h in _holders()]
    do_apply_case_changes(project, [CaseChange(op="update", case_id=ids[0], close=True)])
    assert [ids[1]] == [h.contact_id for h in _holders()]
    do_apply_case_changes(
        project,
        [
            CaseChange(
                op="update", case_id=ids[1], properties={"contact_phone_number_is_verified": "0"}
            )
        ],
    )
    assert [ids[2]] == [h.contact_id for h in _holders()]
