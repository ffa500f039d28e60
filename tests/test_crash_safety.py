"""kill -9 in the middle of dispatching: nothing lost, no idempotency key delivered twice
except for messages whose outcome was recorded as unknown (SPEC 4.3, 8, 10).

Everything is real: a `casereach serve` process on a SQLite file, an `http` gateway, and a
local HTTP server playing the provider that counts requests per Idempotency-Key and answers
slowly so that the kill lands mid-dispatch.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scaleout.harness import CountingProvider, free_port

MESSAGES = 2000


SETUP = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from casereach.projects.actions import do_create_project
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.messaging.actions import SendRequest, do_send
p = do_create_project("crash")
# A retry after a timeout (a loaded machine) should not wait minutes: this test is about
# crashes, not backoff.
p.settings = {**p.settings, "retry_delays_minutes": [0, 0]}
p.save()
do_create_gateway(p, {"name": "PROVIDER", "type": "http", "config": {
    "url": os.environ["PROVIDER_URL"], "method": "POST", "encoding": "json",
    "params": {"to": "{to}", "text": "{text}", "id": "{message_id}"},
    "provider_id_path": "id", "timeout_s": 10}})
do_set_routes(p, {"default_gateway": "PROVIDER", "prefixes": []}, {"provider"})
p.refresh_from_db()
for i in range(int(os.environ["MESSAGES"])):
    do_send(p, SendRequest(phone_number=f"2547{i:08d}", sms={"*": f"reminder {i}"}))
"""


def _statuses(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return dict(con.execute("SELECT status, COUNT(*) FROM messaging_message GROUP BY status"))
    finally:
        con.close()


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    if proc.stderr is not None:
        proc.stderr.close()


@pytest.mark.slow
def test_kill_9_mid_dispatch_loses_nothing_and_sends_once(tmp_path: Path) -> None:
    provider = CountingProvider(delay_s=0.02)
    db = tmp_path / "crash.sqlite3"
    env = {
        **os.environ,
        "CASEREACH_DATABASE_URL": str(db),
        "PROVIDER_URL": provider.url,
        "MESSAGES": str(MESSAGES),
        "CASEREACH_LEASE_SECONDS": "10",
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "casereach", "init"], env=env, check=True, timeout=120
        )
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=300)
        assert {"queued": MESSAGES} == _statuses(db)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "casereach", "serve", "--port", str(free_port())],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )

        first = start()
        deadline = time.monotonic() + 120
        while provider.total() < MESSAGES // 4:
            assert first.poll() is None, first.stderr.read() if first.stderr else b""
            assert time.monotonic() < deadline, "the dispatcher never got going"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        _close_pipes(first)
        killed_at = provider.total()
        assert killed_at < MESSAGES, "killed too late to prove anything"

        # Leases of the killed process must expire before another dispatcher may re-claim.
        second = start()
        try:
            deadline = time.monotonic() + 400
            while True:
                statuses = _statuses(db)
                if set(statuses) <= {"sent", "failed", "delivered"}:
                    break
                assert time.monotonic() < deadline, f"not drained: {statuses}"
                time.sleep(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
            _close_pipes(second)
        assert {"sent": MESSAGES} == _statuses(db)
        con = sqlite3.connect(db)
        unknown = {
            row[0]
            for row in con.execute("SELECT id FROM messaging_message WHERE unknown_outcomes > 0")
        }
        con.close()
        duplicates = {k for k, n in provider.keys.items() if n > 1}
        assert MESSAGES == len(provider.keys), "a message never reached the provider"
        assert set() == duplicates - unknown, "a key was delivered twice without an unknown outcome"
        print(
            f"killed after {killed_at} requests; unknown outcomes {len(unknown)}; "
            f"keys delivered twice {len(duplicates)}"
        )
    finally:
        provider.close()
