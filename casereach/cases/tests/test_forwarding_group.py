"""Forwarding POSTs that arrive together are applied together (``cases.forwarding``, group
commit): each still gets exactly the outcome it would get alone, in arrival order."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from django.db import connection

from casereach.cases import forwarding
from casereach.cases.caseblock import Forwarded, forwarded_json, forwarded_xml
from casereach.cases.forwarding import receive_forwarded, receive_forwarded_many
from casereach.cases.models import Case, ForwardedVersion, LastForwarded
from casereach.cases.queries import get_case
from casereach.core.errors import BadRequest
from casereach.core.groupcommit import Combiner
from casereach.projects.actions import do_create_project
from casereach.projects.models import Project
from casereach.testing.commcare_hq import HqCase, case_json, case_xml

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def state(case_id: str, minute: int, name: str = "Amina", fmt: str = "json") -> Forwarded:
    """Case ``case_id`` as HQ forwards it at ``T0 + minute``."""
    when = T0 + dt.timedelta(minutes=minute)
    case = HqCase(
        case_id=case_id,
        case_type="mother",
        case_name=name,
        owner_id="owner-1",
        properties={"visit": str(minute)},
        date_modified=when,
        server_modified_on=when,
    )
    if fmt == "xml":
        forwarded = forwarded_xml(case_xml(case), user="hq")
        forwarded.server_modified = when
        return forwarded
    return forwarded_json(case_json(case, "demo"), user="hq")


def bad(case_id: str) -> Forwarded:
    """A state that parses but cannot be applied: a new case without a type or a name."""
    forwarded = state(case_id, 0)
    forwarded.change.case_type = None
    forwarded.change.case_name = None
    return forwarded


@pytest.fixture
def project(db: Any) -> Project:
    return do_create_project("group")


def test_each_state_of_a_group_gets_the_outcome_it_would_get_alone(project: Project) -> None:
    got = receive_forwarded_many(
        project,
        [
            state("a", 2, "A two"),
            state("a", 1, "A one"),  # older than the one before it: stale
            bad("b"),
            state("c", 5, fmt="xml"),
            state("a", 3, "A three"),
            state("c", 5, fmt="xml"),  # the same state again: stale
        ],
    )

    assert ["applied", "stale", "error", "applied", "applied", "stale"] == [
        "error" if isinstance(g, BadRequest) else g for g in got
    ]
    assert "A three" == get_case(project, "a").case_name
    assert not Case.objects.filter(pk="b").exists()
    assert {"a": T0 + dt.timedelta(minutes=3), "c": T0 + dt.timedelta(minutes=5)} == dict(
        ForwardedVersion.objects.values_list("case_id", "server_modified_on")
    )
    last = LastForwarded.objects.get(project_id=project.pk)
    assert ("c", "stale") == (last.case_id, last.outcome)


def test_a_group_of_only_bad_states_writes_nothing(project: Project) -> None:
    got = receive_forwarded_many(project, [bad("x"), bad("y")])

    assert [True, True] == [isinstance(g, BadRequest) for g in got]
    assert 0 == Case.objects.count()
    assert not LastForwarded.objects.filter(project_id=project.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_are_each_applied_once_with_their_own_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve threads post at once (through the process's combiner): every good state is
    applied, every repeat is stale, the bad ones fail alone."""
    sizes: list[int] = []

    def record(project: Project, items: Sequence[Forwarded]) -> list[Any]:
        sizes.append(len(items))
        return receive_forwarded_many(project, items)

    monkeypatch.setattr(forwarding, "_COMBINER", Combiner(record, key=lambda p: p.pk))
    project = do_create_project("concurrent")
    callers = 12
    gate = threading.Barrier(callers)
    out: list[Any] = [None] * callers

    def caller(n: int) -> None:
        gate.wait()
        try:
            for k in range(5):
                item = bad(f"bad-{n}") if n % 6 == 5 and k == 2 else state(f"t{n}", k)
                out[n] = (out[n] or []) + [receive_forwarded(project, item)]
                again = state(f"t{n}", k)
                out[n].append(receive_forwarded(project, again))
        except BaseException as exc:
            out[n] = (out[n] or []) + [exc]
        finally:
            connection.close()

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    for n in range(callers):
        if n % 6 == 5:
            assert isinstance(out[n][-1], BadRequest), out[n]
            assert ["applied", "stale"] * 2 == out[n][:-1]
        else:
            assert ["applied", "stale"] * 5 == out[n]
    assert max(sizes) > 1, sizes  # some POSTs were applied together
    expected = {f"t{n}": "4" if n % 6 != 5 else "1" for n in range(callers)}
    assert expected == {
        c.case_id: c.properties["visit"] for c in Case.objects.filter(project=project)
    }
