"""``casereach bench dispatch``'s WhatsApp run: the same number of queued messages through a
``whatsapp_cloud`` gateway and through the SMS ``http`` type, one after the other, to the same
local fast provider (``fastprovider`` with ``meta=True``: every reply shaped as Meta's answer to
a send, so both types read a message id from it), each drained by the embedded dispatcher in a
subprocess on a fresh SQLite file.

The WhatsApp messages are free text inside the 24-hour window: each number has an inbound
message an hour old, so the dispatcher's window read (one grouped query per batch) is part of
what is measured. The same inbound rows are written for the ``http`` run (which never reads
them), so both outboxes are the same size. Target: ``whatsapp_per_s / http_per_s ≥ 0.8``.

On a shared machine one run can be much slower than the next for reasons of its own, so the
runs go in the order http, whatsapp, whatsapp, http (a drift in the machine's load weighs on
both alike) and each figure is the mean of its two runs; the single runs are reported too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from casereach.bench.fastprovider import Provider
from casereach.bench.outcomes import BenchStalled, check

CONCURRENCY = 16
TARGET_RATIO = 0.8
ORDER = ("http", "whatsapp_cloud", "whatsapp_cloud", "http")

WORKER = r"""
import datetime as dt, json, os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from casereach.core.timeutil import now
from casereach.gateways.actions import do_create_gateway, do_set_routes
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message
from casereach.projects.actions import do_create_project
count = int(os.environ["BENCH_MESSAGES"])
kind = os.environ["BENCH_KIND"]
base = os.environ["BENCH_BASE_URL"]
p = do_create_project("bench")
p.settings = {**p.settings, "daily_limit": max(count, 50000)}
p.save()
if kind == "whatsapp_cloud":
    config = {"phone_number_id": "106540352242922", "access_token": "EAAbenchtoken0123",
              "app_secret": "bench-app-secret", "verify_token": "bench-verify-token",
              "base_url": base}
    channel = "whatsapp"
else:
    config = {"url": base + "/send", "method": "POST", "encoding": "json",
              "params": {"to": "{to}", "text": "{text}"}, "provider_id_path": "id"}
    channel = "sms"
gw = do_create_gateway(p, {"name": "FAST", "type": kind, "config": config})
if channel == "sms":
    do_set_routes(p, {"default_gateway": "FAST", "prefixes": []}, {"fast"})
t = now()
wrote = t - dt.timedelta(hours=1)  # each number's last inbound message: its window is open
chunk = 20000
for start in range(0, count, chunk):
    numbers = [f"2547{i:08d}" for i in range(start, min(count, start + chunk))]
    Message.objects.bulk_create([
        Message(project=p, direction="in", channel=channel, phone_number=n, text="hello",
                status="received", gateway_name="FAST", gateway_id=gw.pk,
                gateway_source="inbound", created_on=wrote, updated_on=wrote)
        for n in numbers
    ], batch_size=5000)
    Message.objects.bulk_create([
        Message(project=p, channel=channel, phone_number=n, text=f"reminder {n}",
                segments=1, encoding="GSM" if channel == "sms" else "", created_on=t,
                updated_on=t, next_attempt_at=t, gateway_name="FAST", gateway_id=gw.pk)
        for n in numbers
    ], batch_size=5000)
d = Dispatcher(batch_size=500, concurrency=int(os.environ["BENCH_CONCURRENCY"]))
start = time.perf_counter()
sent = d.stream(until_idle=True, max_seconds=7200)
elapsed = time.perf_counter() - start
d.close()
left = Message.objects.filter(direction="out").exclude(status="sent").count()
errors = list(Message.objects.filter(direction="out", status="failed")
              .values_list("error_code", flat=True).distinct()[:5])
from django.db import connection
from casereach.bench.outcomes import STUCK_SQL
with connection.cursor() as cursor:
    cursor.execute(STUCK_SQL)
    stuck = [list(r) for r in cursor.fetchall()]
print(json.dumps({"claimed": sent, "sent": count - left, "seconds": elapsed,
                  "not_sent": left, "errors": errors, "stuck": stuck}))
"""


def _run(kind: str, base_url: str, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="casereach-bench-wa-") as tmp:
        env = {
            **os.environ,
            "CASEREACH_DATABASE_URL": str(Path(tmp) / "bench.sqlite3"),
            "BENCH_KIND": kind,
            "BENCH_BASE_URL": base_url,
            "BENCH_MESSAGES": str(count),
            "BENCH_CONCURRENCY": str(CONCURRENCY),
        }
        out = subprocess.run(
            [sys.executable, "-c", WORKER],
            env=env,
            capture_output=True,
            text=True,
            timeout=4 * 3600,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"whatsapp dispatch benchmark failed: {out.stderr.strip()[-500:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        check(result["stuck"], f"dispatch ({kind})")
        if result["not_sent"]:
            raise BenchStalled(
                f"bench dispatch ({kind}): {result['not_sent']:,} messages were not sent "
                f"(errors: {', '.join(e or '?' for e in result['errors']) or 'none'})"
            )
        return result


def run_whatsapp(messages: int) -> dict[str, Any]:
    """The WhatsApp run (see module): ``whatsapp_per_s``, ``http_per_s``, their ratio, and
    how many requests the provider answered (4 x ``messages``: two runs of each type)."""
    if messages < 1:
        raise ValueError("--cases must be at least 1")
    provider = Provider(meta=True)
    base = f"http://127.0.0.1:{provider.port}"
    rates: dict[str, list[float]] = {"http": [], "whatsapp_cloud": []}
    try:
        for kind in ORDER:
            run = _run(kind, base, messages)
            rates[kind].append(run["sent"] / run["seconds"] if run["seconds"] else 0.0)
    finally:
        answered = provider.stop()
    http = sum(rates["http"]) / len(rates["http"])
    whatsapp = sum(rates["whatsapp_cloud"]) / len(rates["whatsapp_cloud"])
    return {
        "whatsapp_messages": messages,
        "whatsapp_per_s": round(whatsapp, 1),
        "http_per_s": round(http, 1),
        "whatsapp_http_ratio": round(whatsapp / http, 3) if http else None,
        "whatsapp_runs_per_s": [round(r, 1) for r in rates["whatsapp_cloud"]],
        "http_runs_per_s": [round(r, 1) for r in rates["http"]],
        "whatsapp_provider_requests": answered,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def whatsapp_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The WhatsApp run's rows of the dispatch table: (measurement, value, target)."""
    n = results["whatsapp_messages"]
    return [
        (
            f"WhatsApp run, {n:,} msgs: whatsapp_cloud, mean of 2 runs (msgs/s)",
            _rate(results["whatsapp_per_s"], results["whatsapp_runs_per_s"]),
            "",
        ),
        (
            "WhatsApp run: SMS http type, same provider (msgs/s)",
            _rate(results["http_per_s"], results["http_runs_per_s"]),
            "",
        ),
        ("ratio whatsapp / http", f"{results['whatsapp_http_ratio']}", f"≥ {TARGET_RATIO}"),
    ]


def _rate(mean: float, runs: list[float]) -> str:
    return f"{mean:,.0f} ({', '.join(f'{r:,.0f}' for r in runs)})"


def run_whatsapp_suite(*, messages: int, json_out: Path | None) -> dict[str, Any]:
    """``casereach bench dispatch --whatsapp``: the WhatsApp run alone."""
    from rich.console import Console
    from rich.table import Table

    results = run_whatsapp(messages)
    table = Table(
        title=f"dispatch: {messages:,} queued messages each → whatsapp_cloud and http, "
        "same local provider"
    )
    for column in ("measurement", "value", "target"):
        table.add_column(column)
    for row in whatsapp_rows(results):
        table.add_row(*row)
    load = results["load_average"]
    table.add_row("load average at the end (1, 5, 15 min)", ", ".join(map(str, load)), "")
    Console().print(table)
    document = {
        "suite": "dispatch-whatsapp",
        "results": results,
        "targets": {"whatsapp_http_ratio": TARGET_RATIO},
    }
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
    return document
