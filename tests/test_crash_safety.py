"""kill -9 in the middle of dispatching: nothing lost, no idempotency key delivered twice
except for messages whose outcome was recorded as unknown (SPEC 4.3, 8, 10). kill -9 during
batch sends: every batch answered 202 is stored whole, and none is stored in part.

Everything is real: a `casereach serve` process on a SQLite file, an `http` gateway, and a
local HTTP server playing the provider that counts requests per Idempotency-Key and answers
slowly so that the kill lands mid-dispatch.
"""

from __future__ import annotations

import collections
import itertools
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.scaleout.harness import CountingProvider
from tests.serve_process import Serve, cli, close_pipes, project_with_test_gateway, serve_env

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


@pytest.mark.slow
def test_kill_9_mid_dispatch_loses_nothing_and_sends_once(tmp_path: Path) -> None:
    provider = CountingProvider(delay_s=0.02)
    db = tmp_path / "crash.sqlite3"
    env = serve_env(
        db, PROVIDER_URL=provider.url, MESSAGES=str(MESSAGES), CASEREACH_LEASE_SECONDS="10"
    )
    try:
        cli(env, "init")
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=300)
        assert {"queued": MESSAGES} == _statuses(db)
        start = Serve(env).start

        first = start()
        deadline = time.monotonic() + 120
        while provider.total() < MESSAGES // 4:
            assert first.poll() is None, first.stderr.read() if first.stderr else b""
            assert time.monotonic() < deadline, "the dispatcher never got going"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        close_pipes(first)
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
            close_pipes(second)
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


BATCH = 100


def _batches(db: Path) -> dict[str, int]:
    """Messages stored per batch (the batch is the text's first word)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute("SELECT substr(text, 1, instr(text, ' ') - 1) FROM messaging_message")
        return dict(collections.Counter(r[0] for r in rows))
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_during_batch_sends_keeps_every_acknowledged_batch_whole(tmp_path: Path) -> None:
    db = tmp_path / "batch.sqlite3"
    env = serve_env(db)
    auth = project_with_test_gateway(env)
    serve = Serve(env)
    url, start = serve.url, serve.start

    acked: dict[str, list[str]] = {}
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": auth}) as http:
            for n in itertools.count():
                if stop.is_set():
                    return
                tag = f"w{worker}b{n}"
                items = [
                    {"phone_number": f"2547{worker}{n:04d}{i:03d}", "text": f"{tag} message {i}"}
                    for i in range(BATCH)
                ]
                try:
                    r = http.post(url + "/a/crash/api/messaging/v1/send-batch",
                                  json={"messages": items})  # fmt: skip
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code != 202:
                    return
                acked[tag] = [o["messages"][0]["id"] for o in r.json()["objects"]]

    first = start()
    try:
        serve.wait_healthy(first)
        clients = [threading.Thread(target=client, args=(w,)) for w in range(3)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 10:
            assert time.monotonic() < deadline, "no batch was acknowledged"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        stop.set()
        for t in clients:
            t.join(60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
        close_pipes(first)

    second = start()  # the database opens after the crash, and the server serves again
    try:
        serve.wait_healthy(second)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
        close_pipes(second)
    stored = _batches(db)
    assert {tag: BATCH for tag in acked} == {tag: stored.get(tag, 0) for tag in acked}
    assert set() == {tag for tag, n in stored.items() if n != BATCH}, "a half-stored batch"
    con = sqlite3.connect(db, timeout=30)
    try:
        ids = {r[0] for r in con.execute("SELECT id FROM messaging_message")}
    finally:
        con.close()
    assert set() == {i for ids_ in acked.values() for i in ids_} - ids
    print(f"acknowledged {len(acked)} batches, stored {len(stored)}")


@pytest.mark.slow
def test_kill_9_during_grouped_single_sends_keeps_every_acknowledged_send(
    tmp_path: Path,
) -> None:
    # Concurrent single sends are recorded in groups (one commit for several callers): a
    # 202 is only answered after its group committed.
    db = tmp_path / "single.sqlite3"
    env = serve_env(db, CASEREACH_API_RATE="100000")
    auth = project_with_test_gateway(env)
    serve = Serve(env)
    url = serve.url

    def start() -> subprocess.Popen[bytes]:
        return serve.start(CASEREACH_DISPATCH_PAUSE="1")

    acked: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": auth}) as http:
            for n in itertools.count():
                if stop.is_set():
                    return
                body = {"phone_number": f"2547{worker:02d}{n:06d}", "text": f"w{worker} {n}"}
                try:
                    r = http.post(url + "/a/crash/api/messaging/v1/send", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code != 202:
                    return
                acked.append(r.json()["messages"][0]["id"])

    first = start()
    try:
        serve.wait_healthy(first)
        clients = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 100:
            assert time.monotonic() < deadline, "too few sends were acknowledged"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        stop.set()
        for t in clients:
            t.join(60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
        close_pipes(first)

    con = sqlite3.connect(db, timeout=30)
    try:
        ids = {r[0] for r in con.execute("SELECT id FROM messaging_message")}
    finally:
        con.close()
    assert set() == set(acked) - ids
    print(f"acknowledged {len(acked)} single sends, stored {len(ids)}")
