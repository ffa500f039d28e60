"""Group commit of single sends (``messaging.sending_group``): concurrent callers share one
recording, and each gets exactly its own result or its own error."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from casereach.core.errors import BadRequest, CasereachError
from casereach.messaging import sending_group
from casereach.messaging.sending_request import SendRequest

CALLERS = 24


class _Project:
    def __init__(self, pk: int) -> None:
        self.pk = pk


def _run(monkeypatch: pytest.MonkeyPatch, record: Any) -> tuple[list[Any], list[list[str]]]:
    """``CALLERS`` threads send at once through a fresh combiner whose recording is
    ``record(numbers)``; each thread's outcome, and the groups recorded."""
    groups: list[list[str]] = []
    gate = threading.Barrier(CALLERS)

    def send_each(project: Any, reqs: Sequence[SendRequest]) -> list[Any]:
        numbers = [r.phone_number or "" for r in reqs]
        groups.append(numbers)
        return record(project, numbers)

    monkeypatch.setattr(sending_group, "send_each", send_each)
    combiner = sending_group.Combiner()
    out: list[Any] = [None] * CALLERS

    def caller(n: int) -> None:
        gate.wait()
        try:
            out[n] = combiner.send(_Project(n % 2), SendRequest(phone_number=f"n{n}"))  # type: ignore[arg-type]
        except Exception as exc:
            out[n] = exc

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out, groups


def test_each_caller_gets_its_own_result_and_every_send_is_recorded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, groups = _run(monkeypatch, lambda project, numbers: [(project.pk, n) for n in numbers])

    assert [(n % 2, f"n{n}") for n in range(CALLERS)] == out
    recorded = [n for g in groups for n in g]
    assert sorted(f"n{n}" for n in range(CALLERS)) == sorted(recorded)


def test_a_bad_send_fails_only_its_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def record(project: Any, numbers: list[str]) -> list[Any]:
        return [BadRequest(f"bad {n}") if n == "n5" else n for n in numbers]

    out, _ = _run(monkeypatch, record)

    assert "bad n5" == out[5].message
    assert [f"n{n}" for n in range(CALLERS) if n != 5] == [o for n, o in enumerate(out) if n != 5]


def test_a_database_failure_fails_each_caller_of_its_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def record(project: Any, numbers: list[str]) -> list[Any]:
        if "n7" in numbers:
            raise RuntimeError("disk I/O error")
        return numbers

    out, groups = _run(monkeypatch, record)

    failed = {n for g in groups if "n7" in g for n in g}
    assert failed == {f"n{n}" for n, o in enumerate(out) if isinstance(o, RuntimeError)}
    assert all(o == f"n{n}" for n, o in enumerate(out) if f"n{n}" not in failed)
    assert not any(isinstance(o, CasereachError) for o in out)
