"""Fault tests in the scale-out mode (SPEC 8, 10): kill -9 a worker, stop the broker for
30 s, restart PostgreSQL, run two beats — nothing lost, no idempotency key delivered twice
except for messages whose outcome was recorded as unknown. Each test prints its counts.

The broker and PostgreSQL that get stopped are private servers started by the test on free
ports, never the machine's shared ones.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scaleout.harness import (
    Cluster,
    CountingProvider,
    PrivatePostgres,
    PrivateRedis,
    broker_url,
    fresh_database,
    sql,
    statuses,
    wait_for,
)

pytestmark = [pytest.mark.scaleout, pytest.mark.slow]
# Short leases so a dead worker's messages come back quickly, and batches small enough that
# a loaded machine finishes one well inside its lease.
FAULT_ENV = {"CASEREACH_LEASE_SECONDS": "15", "CASEREACH_DISPATCH_BATCH": "50"}
IN_FLIGHT = 4 * 50  # a worker's task threads times its batch: what one crash can leave unknown

SETUP = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from casereach.core.timeutil import now
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.messaging.models import Message
from casereach.projects.actions import do_create_project
p = do_create_project("faults")
p.settings = {**p.settings, "retry_delays_minutes": [0, 0]}  # about crashes, not backoff
p.save()
gw = do_create_gateway(p, {"name": "PROVIDER", "type": "http", "config": {
    "url": os.environ["PROVIDER_URL"], "method": "POST", "encoding": "json",
    "params": {"to": "{to}", "text": "{text}", "id": "{message_id}"},
    "provider_id_path": "id", "timeout_s": 10,
    # 16 in flight per task, as before per-gateway windows: a claim stays the batch of 50
    # that IN_FLIGHT counts, and the run outlasts the broker's outage.
    "max_in_flight": 16}})
do_set_routes(p, {"default_gateway": "PROVIDER", "prefixes": []}, {"provider"})
t = now()
count = int(os.environ["MESSAGES"])
Message.objects.bulk_create([
    Message(project=p, phone_number=f"2547{i:08d}", text=f"reminder {i}", segments=1,
            encoding="GSM", created_on=t, updated_on=t, next_attempt_at=t)
    for i in range(count)
], batch_size=2000)
"""


def setup_outbox(cluster: Cluster, provider: CountingProvider, messages: int) -> None:
    cluster.cli("init")
    env = {**cluster.env, "PROVIDER_URL": provider.url, "MESSAGES": str(messages)}
    subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=300)
    assert {"queued": messages} == statuses(cluster.db_url)


def wait_drained(cluster: Cluster, messages: int, timeout: float) -> None:
    def done() -> bool:
        return set(statuses(cluster.db_url)) <= {"sent", "failed"}

    try:
        wait_for(f"{messages} messages to be sent", done, timeout, every=0.5)
    except AssertionError:
        print(statuses(cluster.db_url))
        print(cluster.tail())
        raise


def verdict(cluster: Cluster, provider: CountingProvider, messages: int) -> tuple[int, int, int]:
    """Assert nothing lost and no unexplained duplicate; (unknown, duplicates, requests)."""
    assert {"sent": messages} == statuses(cluster.db_url)
    unknown = {
        r[0]
        for r in sql(cluster.db_url, "SELECT id FROM messaging_message WHERE unknown_outcomes > 0")
    }
    duplicates = {k for k, n in provider.keys.items() if n > 1}
    why = sql(
        cluster.db_url,
        "SELECT outcome, COALESCE(error_code, ''), LEFT(detail, 40), COUNT(*) "
        "FROM messaging_sendattempt WHERE outcome <> 'sent' GROUP BY 1, 2, 3 ORDER BY 4 DESC",
    )
    print("\nattempts other than sent:", why)
    assert messages == len(provider.keys), "a message never reached the provider"
    assert set() == duplicates - unknown, "a key was delivered twice without an unknown outcome"
    # Only what was in flight may come back unknown: per worker, its task threads (4) times a
    # batch (50), for each of the two workers, and for gateway calls cut short.
    assert len(unknown) <= 2 * IN_FLIGHT, (
        f"{len(unknown)} unknown outcomes for a window of {IN_FLIGHT}"
    )
    return len(unknown), len(duplicates), provider.total()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def test_kill_9_one_of_two_workers_mid_dispatch(logs: Path) -> None:
    messages = 5000
    provider = CountingProvider(delay_s=0.01)
    with fresh_database() as db_url:
        cluster = Cluster(db_url, broker_url("redis"), logs, **FAULT_ENV)
        try:
            setup_outbox(cluster, provider, messages)
            cluster.start_worker("worker-1")
            cluster.start_worker("worker-2")
            cluster.start_beat()
            wait_for("a quarter sent", lambda: provider.total() >= messages // 4, 120, every=0.05)
            cluster.kill("worker-1")
            killed_at = provider.total()
            assert killed_at < messages, "killed too late to prove anything"
            wait_drained(cluster, messages, 240)
            unknown, duplicates, requests = verdict(cluster, provider, messages)
            print(
                f"\nkill -9: {messages} messages, worker-1 killed after {killed_at} requests; "
                f"requests {requests}; unknown outcomes {unknown}; keys delivered twice "
                f"{duplicates}; lost 0"
            )
        finally:
            cluster.stop_all()
            provider.close()


def test_broker_stopped_30_s_mid_run(tmp_path: Path, logs: Path) -> None:
    messages = 5000
    provider = CountingProvider(delay_s=0.01)
    redis = PrivateRedis(tmp_path)
    redis.start()
    with fresh_database() as db_url:
        cluster = Cluster(db_url, redis.url, logs, **FAULT_ENV)
        try:
            setup_outbox(cluster, provider, messages)
            cluster.start_worker("worker-1")
            cluster.start_worker("worker-2")
            cluster.start_beat()
            # Early: tasks already running finish their budget (a few seconds) without the
            # broker, and must not finish the whole outbox before it comes back.
            wait_for("an eighth sent", lambda: provider.total() >= messages // 8, 120, every=0.05)
            redis.stop()
            stopped_at = provider.total()
            time.sleep(30)
            during = provider.total() - stopped_at
            assert provider.total() < messages, "the run ended before the broker came back"
            redis.start()
            wait_drained(cluster, messages, 240)
            unknown, duplicates, requests = verdict(cluster, provider, messages)
            alive = [n for n in ("worker-1", "worker-2", "beat") if cluster.procs[n].poll() is None]
            assert ["worker-1", "worker-2", "beat"] == alive
            print(
                f"\nbroker stop: {messages} messages, broker stopped after {stopped_at} requests "
                f"for 30 s ({during} more sent by tasks already running); requests {requests}; "
                f"unknown outcomes {unknown}; keys delivered twice {duplicates}; lost 0"
            )
        finally:
            cluster.stop_all()
            provider.close()
            redis.stop()


def test_postgres_restarted_mid_run(tmp_path: Path, logs: Path) -> None:
    messages = 3000
    provider = CountingProvider(delay_s=0.01)
    pg = PrivatePostgres()
    pg.start()
    try:
        with fresh_database(pg.admin_url) as db_url:
            cluster = Cluster(db_url, broker_url("redis"), logs, **FAULT_ENV)
            try:
                setup_outbox(cluster, provider, messages)
                cluster.start_worker("worker-1")
                cluster.start_worker("worker-2")
                cluster.start_beat()
                wait_for(
                    "a quarter sent", lambda: provider.total() >= messages // 4, 120, every=0.05
                )
                pg.stop()
                stopped_at = provider.total()
                time.sleep(5)
                pg.start()
                wait_drained(cluster, messages, 240)
                unknown, duplicates, requests = verdict(cluster, provider, messages)
                alive = [n for n in ("worker-1", "worker-2") if cluster.procs[n].poll() is None]
                assert ["worker-1", "worker-2"] == alive
                print(
                    f"\nPostgreSQL restart: {messages} messages, restarted after {stopped_at} "
                    f"requests (down 5 s); requests {requests}; unknown outcomes {unknown}; "
                    f"keys delivered twice {duplicates}; lost 0"
                )
            finally:
                cluster.stop_all()
    finally:
        provider.close()
        pg.remove()


ALERT = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from casereach.alerts.actions import do_create_alert, register_evaluation_runner
from casereach.projects.queries import get_project_by_name
register_evaluation_runner(None)  # set-up: the instances exist before any worker runs
p = get_project_by_name("beats")
do_create_alert(p, {
    "name": "Due now", "kind": "conditional", "case_type": "mother",
    "criteria": {"match": "all", "rules": [{"property": "risk", "op": "equal", "value": "high"}]},
    "content": {"sms": {"en": "{case.name}, please come in."}},
    "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
    "recipients": [{"type": "self"}], "active": True})
"""


def test_two_beats_never_fire_an_occurrence_twice(tmp_path: Path, logs: Path) -> None:
    cases = 400
    provider = CountingProvider()
    with fresh_database() as db_url:
        cluster = Cluster(db_url, broker_url("redis"), logs, CASEREACH_KICK_SECONDS="0.2")
        try:
            cluster.cli("init")
            cluster.cli("project", "create", "beats")
            cluster.cli(
                "gateway",
                "add",
                "PROVIDER",
                "--type",
                "http",
                "--project",
                "beats",
                "--default",
                "--config-json",
                json.dumps(
                    {
                        "url": provider.url,
                        "method": "POST",
                        "encoding": "json",
                        "provider_id_path": "id",
                        "params": {"to": "{to}", "text": "{text}", "id": "{message_id}"},
                    }
                ),
            )
            data = tmp_path / "cases.csv"
            with data.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(
                    [
                        "external_id",
                        "case_type",
                        "case_name",
                        "owner_id",
                        "contact_phone_number",
                        "risk",
                    ]
                )
                for i in range(cases):
                    w.writerow(
                        [f"B-{i}", "mother", f"Mother {i}", "clinic", f"2547{i:08d}", "high"]
                    )
            cluster.cli("import-cases", str(data), "--project", "beats")
            subprocess.run([sys.executable, "-c", ALERT], env=cluster.env, check=True, timeout=300)
            due = sql(
                db_url, "SELECT COUNT(*) FROM alerts_scheduleinstance WHERE next_due IS NOT NULL"
            )
            assert [(cases,)] == due
            cluster.start_beat("beat-1")
            cluster.start_beat("beat-2")
            cluster.start_worker("worker-1")
            cluster.start_worker("worker-2")
            wait_for("every case's message", lambda: provider.total() >= cases, 180, every=0.25)
            time.sleep(5)  # the beats keep kicking; nothing more may go out
            firings = sql(db_url, "SELECT COUNT(*), COUNT(DISTINCT key) FROM alerts_firing")
            assert [(cases, cases)] == firings
            assert cases == len(provider.keys) == provider.total()
            texts = sorted(b["to"] for b in provider.bodies)
            assert sorted(f"2547{i:08d}" for i in range(cases)) == texts
            kicks = sum(cluster.log(b).count("casereach.fire_due") for b in ("beat-1", "beat-2"))
            print(
                f"\ntwo beats: {cases} due occurrences, {kicks} fire_due kicks from 2 beats, "
                f"{firings[0][0]} firings, {provider.total()} messages sent, fired twice 0"
            )
        finally:
            cluster.stop_all()
            provider.close()
