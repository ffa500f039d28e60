"""``casereach bench dispatch`` in the scale-out mode, and ``casereach bench all``.

With ``CASEREACH_BROKER_URL`` set and ``CASEREACH_DATABASE_URL`` naming PostgreSQL, the
dispatch benchmark runs the real thing: a fresh temporary database on that server, N
``casereach worker`` processes, one ``casereach beat``, and the fast local provider
(optionally answering after ``--gateway-latency-ms``). Throughput is messages over the span
between the first and the last ``sent_on`` the workers recorded, so process start-up is not
counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from casereach.bench.dispatch import _dispatch_run, _floor
from casereach.bench.fastprovider import Provider
from casereach.bench.outcomes import STUCK_SQL, check

WORKER_CONCURRENCY = 4
FLOOR_CONNECTIONS = 64  # as many calls in flight as one worker can have

SETUP = r"""
import os
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from casereach.core.timeutil import now
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.messaging.models import Message
from casereach.projects.actions import do_create_project
count = int(os.environ["BENCH_MESSAGES"])
p = do_create_project("bench")
# The default daily limit (50,000) would postpone the rest of a larger outbox by an hour.
p.settings = {**p.settings, "daily_limit": max(count, 50000)}
p.save()
gw = do_create_gateway(p, {"name": "FAST", "type": "http", "config": {
    "url": os.environ["BENCH_URL"], "method": "POST", "encoding": "json",
    "params": {"to": "{to}", "text": "{text}"}, "provider_id_path": "id"}})
do_set_routes(p, {"default_gateway": "FAST", "prefixes": []}, {"fast"})
t = now()
for start in range(0, count, 20000):
    Message.objects.bulk_create([
        Message(project=p, phone_number=f"2547{i:08d}", text=f"reminder {i}", segments=1,
                encoding="GSM", created_on=t, updated_on=t, next_attempt_at=t,
                gateway_name="FAST", gateway_id=gw.pk)
        for i in range(start, min(count, start + 20000))
    ], batch_size=5000)
"""


def mode_of_environment() -> str:
    from casereach.scaleout import config

    db = os.environ.get("CASEREACH_DATABASE_URL", "")
    engine = "postgresql" if db.startswith(("postgres://", "postgresql://")) else "sqlite"
    return f"scale-out ({engine})" if config.broker_mode() else f"embedded ({engine})"


def _require_cluster_env() -> tuple[str, str]:
    from casereach.scaleout import config

    db = os.environ.get("CASEREACH_DATABASE_URL", "")
    broker = config.broker_url()
    if not broker or not db.startswith(("postgres://", "postgresql://")):
        raise ValueError(
            "--workers needs the scale-out mode: set CASEREACH_BROKER_URL (redis:// or amqp://) "
            "and CASEREACH_DATABASE_URL=postgres://…"
        )
    return db, broker


def _psql(admin: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(statement)  # our own fixed statements


def run_dispatch_cluster(messages: int, workers: int, latency_ms: float) -> dict[str, Any]:
    """N Celery workers draining ``messages`` queued messages; msgs/s over the send span."""
    db, broker = _require_cluster_env()
    base = db.rsplit("/", 1)[0]
    name = f"casereach_bench_{uuid.uuid4().hex[:8]}"
    admin = f"{base}/postgres"
    _psql(admin, f"CREATE DATABASE {name}")
    url = f"{base}/{name}"
    provider = Provider(delay_ms=latency_ms)
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="casereach-bench-logs-"))
    env = {
        **os.environ,
        "CASEREACH_DATABASE_URL": url,
        "CASEREACH_BROKER_URL": broker,
        "CASEREACH_KICK_SECONDS": "0.25",
        "BENCH_URL": provider.url,
        "BENCH_MESSAGES": str(messages),
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "casereach", "init"], env=env, check=True, capture_output=True
        )
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, timeout=3600)

        def start(tag: str, *args: str) -> None:
            out = (logs / f"{tag}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "casereach", *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )

        for i in range(workers):
            start(
                f"worker-{i}",
                "worker",
                "--queues",
                "dispatch",
                "--concurrency",
                str(WORKER_CONCURRENCY),
                "--loglevel",
                "INFO",
            )
        _wait_for_workers(logs, workers)
        start("beat", "beat")
        row, not_sent = _wait_drained(url)
        span = (row[2] - row[1]).total_seconds() if row[1] and row[2] else 0.0
        return {
            "messages": messages,
            "workers": workers,
            "seconds": round(span, 3),
            "msgs_per_s": round(messages / span, 1) if span else None,
            "not_sent": not_sent[0] if not_sent else None,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        provider.stop()
        _psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _wait_for_workers(logs: Path, workers: int) -> None:
    """Until every worker's log says it is ready (at most two minutes)."""
    deadline = time.monotonic() + 120
    while (
        sum(
            (logs / f"worker-{i}.log").read_text(errors="replace").count(" ready.")
            for i in range(workers)
        )
        < workers
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark workers did not start (logs in {logs})")
        time.sleep(0.2)


def _wait_drained(url: str) -> tuple[Any, Any]:
    """Until no message is queued or sending (at most four hours): (the row of the last count
    with the first and last sent_on, the count of messages not sent)."""
    import psycopg

    deadline = time.monotonic() + 4 * 3600
    with psycopg.connect(url, autocommit=True) as con:
        while True:
            row = con.execute(
                "SELECT COUNT(*) FILTER (WHERE status IN ('queued', 'sending')), "
                "MIN(sent_on), MAX(sent_on) FROM messaging_message"
            ).fetchone()
            assert row is not None
            if row[0] == 0:
                break
            check(con.execute(STUCK_SQL).fetchall(), "dispatch")
            if time.monotonic() > deadline:
                raise RuntimeError("the benchmark did not finish")
            time.sleep(0.25)
        not_sent = con.execute(
            "SELECT COUNT(*) FROM messaging_message WHERE status <> 'sent'"
        ).fetchone()
        check(con.execute(STUCK_SQL).fetchall(), "dispatch")
    return row, not_sent


def run_dispatch_scaleout_suite(
    *, messages: int, workers: int, latency_ms: float, json_out: Path | None
) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    result = run_dispatch_cluster(messages, workers, latency_ms)
    table = Table(
        title=f"dispatch, scale-out: {messages:,} messages, {workers} worker(s), gateway {latency_ms:g} ms"
    )
    table.add_column("measurement")
    table.add_column("value")
    table.add_row("msgs/s", f"{result['msgs_per_s']:,.0f}")
    table.add_row("not sent", str(result["not_sent"]))
    Console().print(table)
    document = {
        "suite": "dispatch",
        "mode": "scale-out",
        "workers": workers,
        "gateway_latency_ms": latency_ms,
        "results": result,
    }
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def run_all(*, messages: int, latency_ms: float, json_out: Path | None) -> dict[str, Any]:
    """Dispatch in every mode side by side: embedded SQLite, PostgreSQL + 1 and + 2 Celery
    workers, and the floor, with ratios (SPEC 9; issue 7)."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    _require_cluster_env()
    say = Console(stderr=True).print
    provider = Provider(delay_ms=latency_ms)
    try:
        say("floor: bare asyncio client")
        floor = asyncio.run(_floor(provider.port, messages, FLOOR_CONNECTIONS))
        say("embedded SQLite")
        embedded = _dispatch_run(provider.url, messages)
    finally:
        provider.stop()
    embedded_rate = embedded["sent"] / embedded["seconds"]
    say("PostgreSQL + 1 worker")
    one = run_dispatch_cluster(messages, 1, latency_ms)
    say("PostgreSQL + 2 workers")
    two = run_dispatch_cluster(messages, 2, latency_ms)
    rows = [
        ("embedded SQLite (serve)", embedded_rate),
        ("PostgreSQL + 1 Celery worker", float(one["msgs_per_s"] or 0)),
        ("PostgreSQL + 2 Celery workers", float(two["msgs_per_s"] or 0)),
        (f"floor: bare asyncio client, {FLOOR_CONNECTIONS} connections", floor),
    ]
    table = Table(
        title=f"dispatch: {messages:,} messages to a local http gateway answering in {latency_ms:g} ms"
    )
    for column in ("mode", "msgs/s", "ratio to floor", "ratio to 1 worker"):
        table.add_column(column)
    base = rows[1][1]
    for label, rate in rows:
        table.add_row(
            label,
            f"{rate:,.0f}",
            f"{rate / floor:.2f}" if floor else "",
            f"{rate / base:.2f}" if base else "",
        )
    Console().print(table)
    document = {
        "suite": "all",
        "mode": "embedded + scale-out",
        "workers": [0, 1, 2],
        "gateway_latency_ms": latency_ms,
        "results": {
            "messages": messages,
            "embedded_sqlite_msgs_per_s": round(embedded_rate, 1),
            "pg_1_worker_msgs_per_s": one["msgs_per_s"],
            "pg_2_workers_msgs_per_s": two["msgs_per_s"],
            "floor_msgs_per_s": round(floor, 1),
            "two_to_one_worker_ratio": round(float(two["msgs_per_s"] or 0) / base, 3)
            if base
            else None,
        },
        "targets": {"two_to_one_worker_ratio": 1.3},
    }
    document["suites"] = run_other_suites(messages)
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
    return document


# (suite, label, result key, floor key or None) for the combined table of ``bench all``.
SUITE_ROWS = (
    ("ingest", "import-cases (cases/s)", "import_cases_per_s", "floor_cases_per_s"),
    ("ingest", "bulk Case API (cases/s)", "bulk_api_cases_per_s", "floor_cases_per_s"),
    ("alerts", "alert activation (cases/s)", "activation_cases_per_s", "floor_instances_per_s"),
    ("alerts", "due scan (instances/s)", "due_scan_instances_per_s", "floor_instances_per_s"),
    ("inbound", "inbound webhook (req/s)", "inbound_req_per_s", "floor_req_per_s"),
    ("inbound", "inbound p99 at 200 req/s (ms)", "p99_ms_at_200rps", None),
)


def run_other_suites(cases: int) -> dict[str, Any]:
    """Ingest, alerts and inbound on the embedded SQLite default and on the PostgreSQL server
    of ``CASEREACH_DATABASE_URL`` (Celery workers take no part in them), each suite in its own
    ``casereach bench`` process; prints one table and returns the figures per mode."""
    import os
    import tempfile

    from rich.console import Console
    from rich.table import Table

    say = Console(stderr=True).print
    pg_url = os.environ.get("CASEREACH_DATABASE_URL", "")
    figures: dict[str, dict[str, Any]] = {"sqlite": {}, "postgresql": {}}
    out_dir = Path(tempfile.mkdtemp(prefix="casereach-bench-all-"))
    for suite in ("ingest", "alerts", "inbound"):
        for mode in ("sqlite", "postgresql"):
            env = {k: v for k, v in os.environ.items() if k != "CASEREACH_BROKER_URL"}
            env.pop("CASEREACH_DATABASE_URL", None)
            if mode == "postgresql":
                env["CASEREACH_DATABASE_URL"] = pg_url
            out = out_dir / f"{suite}-{mode}.json"
            size = ["--requests", "5000"] if suite == "inbound" else ["--cases", str(cases)]
            argv = [sys.executable, "-m", "casereach", "bench", suite, *size, "--json", str(out)]
            if suite == "ingest":
                argv += ["--rss-rows", "0"]
            say(f"{suite} on {mode}")
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if out.exists():
                figures[mode][suite] = json.loads(out.read_text())["results"]
            if proc.returncode != 0:
                detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
                say(f"[red]{suite} on {mode} failed: {detail[-1] if detail else '?'}[/red]")
    table = Table(title="every other suite, embedded SQLite and PostgreSQL (no workers)")
    for column in ("measurement", "SQLite", "ratio", "PostgreSQL", "ratio", "floor (sqlite3)"):
        table.add_column(column, justify="left" if column == "measurement" else "right")

    def cell(mode: str, suite: str, key: str | None) -> float | None:
        value = figures[mode].get(suite, {}).get(key) if key else None
        return float(value) if isinstance(value, int | float) else None

    for suite, label, key, floor_key in SUITE_ROWS:
        lite, pg = cell("sqlite", suite, key), cell("postgresql", suite, key)
        floor = cell("sqlite", suite, floor_key)
        pg_floor = cell("postgresql", suite, floor_key)
        table.add_row(
            label,
            f"{lite:,.1f}" if lite is not None else "—",
            f"{lite / floor:.2f}" if lite is not None and floor else "",
            f"{pg:,.1f}" if pg is not None else "—",
            f"{pg / pg_floor:.2f}" if pg is not None and pg_floor else "",
            f"{floor:,.0f}" if floor else "",
        )
    Console().print(table)
    return figures
