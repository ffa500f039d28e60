"""kill -9 of ``serve`` during CommCare write-back: no change lost, a change repeated only
when its call's outcome was unknown, never an older change after a newer one for the same
case (issue 19, item 4).

Real processes: a ``casereach serve`` on a SQLite file, and the fake HQ's Case API
(``casereach.testing.commcare_hq.CaseApi``) on a local port, answering slowly so that the kill
lands mid-write. 200 changes in CI; ``CASEREACH_WRITEBACK_CRASH_CHANGES=2000`` for the
issue's size.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casereach.testing.commcare_hq import CaseApi, FakeHq, HqCase
from tests.serve_process import Serve, cli, serve_env

CHANGES = int(os.environ.get("CASEREACH_WRITEBACK_CRASH_CHANGES", "200"))
CASES = max(CHANGES // 20, 1)

SETUP = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.projects.actions import do_create_project, do_update_settings
p = do_create_project("crash")
do_update_settings(p, {"commcare": {"url": os.environ["HQ_URL"], "domain": "crash",
    "username": "hq-user@example.org", "api_key": "hq-key"}})
p.refresh_from_db()
cases, changes = int(os.environ["CASES"]), int(os.environ["CHANGES"])
do_apply_case_changes(p, [CaseChange(op="upsert_id", case_id=f"c{i}", case_type="mother",
    case_name=f"m{i}", owner_id="o") for i in range(cases)])
for k in range(changes):  # change k of case k % cases: seq rises per case
    do_apply_case_changes(p, [CaseChange(op="update", case_id=f"c{k % cases}",
        properties={"seq": str(k)})], single=True, write_back=True)
"""


def _statuses(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return dict(con.execute("SELECT status, COUNT(*) FROM cases_commcarewrite GROUP BY status"))
    finally:
        con.close()


def _unknown(db: Path) -> set[tuple[str, str]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(
            "SELECT case_id, body FROM cases_commcarewrite WHERE unknown_outcomes > 0"
        ).fetchall()
    finally:
        con.close()
    import json

    return {(cid, json.loads(body)["properties"]["seq"]) for cid, body in rows}


@pytest.mark.slow
def test_kill_9_mid_writeback_loses_nothing_and_keeps_each_case_in_order(
    tmp_path: Path,
) -> None:
    hq = FakeHq("crash", lambda path, body, headers: 200, real_clock=True)
    for i in range(CASES):
        hq.save(HqCase(f"c{i}", "mother", f"m{i}", "o"))
    hq.queue.clear()
    api = CaseApi(hq, username="hq-user@example.org", api_key="hq-key", delay_s=0.01)
    db = tmp_path / "crash.sqlite3"
    env = serve_env(
        db,
        HQ_URL=api.url,
        CASES=str(CASES),
        CHANGES=str(CHANGES),
        CASEREACH_COMMCARE_TIMEOUT_S="2",
    )
    serve = Serve(env, quiet=True)
    start = serve.start
    try:
        cli(env, "init")
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=600)
        assert {"queued": CHANGES} == _statuses(db)
        first = start()
        deadline = time.monotonic() + 120
        while len(api.received) < CHANGES // 4:
            assert first.poll() is None, "serve stopped"
            assert time.monotonic() < deadline, "write-back never got going"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        killed_at = len(api.received)
        assert killed_at < CHANGES, "killed too late to prove anything"
        second = start()
        deadline = time.monotonic() + 600
        while set(_statuses(db)) != {"sent"}:
            assert second.poll() is None, "serve stopped"
            assert time.monotonic() < deadline, f"not drained: {_statuses(db)}"
            time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    finally:
        serve.close()
        api.close()

    applied = [(r.case_id, r.body["properties"]["seq"]) for r in api.received if r.applied]
    expected = {(f"c{k % CASES}", str(k)) for k in range(CHANGES)}
    assert expected == set(applied), "a change never reached HQ"
    repeated = {key for key, n in collections.Counter(applied).items() if n > 1}
    assert set() == repeated - _unknown(db), "a change was repeated without an unknown outcome"
    per_case: dict[str | None, list[int]] = collections.defaultdict(list)
    for case_id, seq in applied:
        per_case[case_id].append(int(seq))
    for case_id, seqs in per_case.items():
        assert seqs == sorted(seqs), f"{case_id}: an older change after a newer one: {seqs}"
    for i in range(CASES):
        last = max(k for k in range(CHANGES) if k % CASES == i)
        assert str(last) == hq.cases[f"c{i}"].properties["seq"]
    print(f"killed after {killed_at} requests; repeated {len(repeated)}; changes {CHANGES}")
