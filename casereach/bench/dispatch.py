"""``casereach bench dispatch``: messages/s from queued messages to a fast local ``http``
gateway server, beside the floor — a bare asyncio HTTP/1.1 client sending the same requests
to the same server — and the peak RSS while draining a large outbox (SPEC 9).

The provider is ``casereach.bench.fastprovider`` (several processes on one port, so it is not
the bottleneck). Each measurement of ours runs in a subprocess on a fresh SQLite file.

It also runs the WhatsApp run (``dispatch_whatsapp``: a ``whatsapp_cloud`` gateway beside the
``http`` type, same provider) on up to ``WHATSAPP_MESSAGES`` messages; ``--whatsapp`` runs it
alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from casereach.bench.dispatch_whatsapp import run_whatsapp, whatsapp_rows
from casereach.bench.fastprovider import Provider
from casereach.bench.outcomes import BenchStalled, check

CONCURRENCY = 16
WHATSAPP_MESSAGES = 20_000  # the WhatsApp run's size in the full suite (four runs of it)
HTTPX_SAMPLE = 10_000  # requests sent through httpx's async client for comparison


async def _floor_httpx(url: str, count: int, concurrency: int) -> float:
    """The same requests through httpx's async client (what the dispatcher used before its
    lean client), for comparison."""
    import httpx

    remaining = iter(range(count))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            for i in remaining:
                r = await client.post(
                    url,
                    json={"to": f"2547{i:08d}", "text": f"reminder {i}"},
                    headers={"Idempotency-Key": str(i)},
                )
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return count / (time.perf_counter() - start)


async def _floor(port: int, count: int, concurrency: int) -> float:
    """A bare keep-alive HTTP/1.1 client: the same JSON POSTs, nothing else."""
    remaining = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in remaining:
                body = json.dumps({"to": f"2547{i:08d}", "text": f"reminder {i}"}).encode()
                writer.write(
                    b"POST /send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + f"Idempotency-Key: {i}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:].strip())
                await reader.readexactly(length)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return count / (time.perf_counter() - start)


async def _gateway_path(url: str, count: int, concurrency: int) -> float:
    """The dispatcher's gateway work alone, with no database: the ``http`` gateway as the
    benchmark configures it, building each request, sending it through the lean client,
    judging the reply and masking the exchange for the log. No dispatcher, however its
    database work is arranged, can beat this in one process."""
    from casereach.gateways.base import Exchange, OutgoingMessage
    from casereach.gateways.types.http.gateway import HttpGateway
    from casereach.gateways.wire import WirePool

    gateway = HttpGateway(
        {
            "url": url,
            "method": "POST",
            "encoding": "json",
            "params": {"to": "{to}", "text": "{text}"},
            "provider_id_path": "id",
        }
    )
    pool = WirePool(max_idle_per_origin=concurrency)
    remaining = iter(range(count))
    exchanges: list[Exchange] = []

    async def worker() -> None:
        for i in remaining:
            message = OutgoingMessage(
                message_id=f"{i:032x}",
                channel="sms",
                text=f"reminder {i}",
                to=f"2547{i:08d}",
                segments=1,
                encoding="GSM",
            )
            await gateway.send_async(message, pool, exchanges.append)
            if len(exchanges) > 1000:
                exchanges.clear()

    try:
        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return count / (time.perf_counter() - start)
    finally:
        pool.close()
        gateway.close()


WORKER = r"""
import json, os, resource, sys, time
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
p = do_create_project("bench")
# The default daily limit (50,000) would postpone the rest of a larger outbox by an hour.
daily_limit = os.environ.get("BENCH_DAILY_LIMIT")  # the tests set one, to be hit
p.settings = {**p.settings, "daily_limit": int(daily_limit or max(count, 50000))}
p.save()
config = {"url": os.environ["BENCH_URL"], "method": "POST", "encoding": "json",
          "params": {"to": "{to}", "text": "{text}"}, "provider_id_path": "id"}
if os.environ.get("BENCH_MAX_IN_FLIGHT"):
    config["max_in_flight"] = int(os.environ["BENCH_MAX_IN_FLIGHT"])
rate = float(os.environ["BENCH_RATE"]) if os.environ.get("BENCH_RATE") else None
gw = do_create_gateway(p, {"name": "FAST", "type": "http", "config": config,
                           "rate_limit_per_s": rate})
do_set_routes(p, {"default_gateway": "FAST", "prefixes": []}, {"fast"})
t = now()
chunk = 20000
for start in range(0, count, chunk):
    Message.objects.bulk_create([
        Message(project=p, phone_number=f"2547{i:08d}", text=f"reminder {i}", segments=1,
                encoding="GSM", created_on=t, updated_on=t, next_attempt_at=t,
                gateway_name="FAST", gateway_id=gw.pk)
        for i in range(start, min(count, start + chunk))
    ], batch_size=5000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
d = Dispatcher(batch_size=int(os.environ.get("BENCH_BATCH", "500")),
               concurrency=int(os.environ["BENCH_CONCURRENCY"]))
start = time.perf_counter()
if os.environ.get("BENCH_MODE") == "batches":  # run_once, as each Celery task runs it
    sent = d.drain(max_seconds=7200)
else:  # what serve runs
    sent = d.stream(until_idle=True, max_seconds=7200)
elapsed = time.perf_counter() - start
d.close()
left = Message.objects.exclude(status="sent").count()
from django.db import connection
from casereach.bench.outcomes import STUCK_SQL
with connection.cursor() as cursor:
    cursor.execute(STUCK_SQL)
    stuck = [list(r) for r in cursor.fetchall()]
print(json.dumps({"claimed": sent, "sent": count - left, "seconds": elapsed, "not_sent": left,
                  "stuck": stuck,
                  "rss_before_mb": before / 1024,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _dispatch_run(  # long: the environment of the measuring subprocess, then its checks
    url: str,
    count: int,
    *,
    mode: str = "stream",
    batch: int = 500,
    max_in_flight: int | None = None,
    rate_limit_per_s: float | None = None,
    daily_limit: int | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="casereach-bench-") as tmp:
        env = {
            **os.environ,
            "CASEREACH_DATABASE_URL": str(Path(tmp) / "bench.sqlite3"),
            "BENCH_URL": url,
            "BENCH_MESSAGES": str(count),
            "BENCH_CONCURRENCY": str(CONCURRENCY),
            "BENCH_MODE": mode,
            "BENCH_BATCH": str(batch),
            "BENCH_MAX_IN_FLIGHT": str(max_in_flight or ""),
            "BENCH_RATE": str(rate_limit_per_s or ""),
            "BENCH_DAILY_LIMIT": str(daily_limit or ""),
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
            raise RuntimeError(f"dispatch benchmark failed: {out.stderr.strip()[-500:]}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        check(result["stuck"], "dispatch")
        if result["not_sent"]:
            raise BenchStalled(f"bench dispatch: {result['not_sent']:,} messages were not sent")
        return result


def run_dispatch(messages: int, drain_rows: int, latency_ms: float = 0.0) -> dict[str, Any]:
    """Measure; returns the ``results`` map of the JSON report."""
    provider = Provider(delay_ms=latency_ms)
    try:
        # The floor runs before and after ours and counts as their mean: on a shared machine
        # it moved by half between two runs a minute apart, far more than ours did.
        floor_before = asyncio.run(_floor(provider.port, messages, CONCURRENCY))
        # httpx is no longer on the dispatch path (it runs under 1,000 requests/s): a sample
        # is enough to show what the lean client saves.
        floor_httpx = asyncio.run(
            _floor_httpx(provider.url, min(messages, HTTPX_SAMPLE), CONCURRENCY)
        )
        gateway_path = asyncio.run(_gateway_path(provider.url, messages, CONCURRENCY))
        ours = _dispatch_run(provider.url, messages)
        floor_after = asyncio.run(_floor(provider.port, messages, CONCURRENCY))
        floor = (floor_before + floor_after) / 2
        rate = ours["sent"] / ours["seconds"] if ours["seconds"] else 0.0
        results: dict[str, Any] = {
            "messages": messages,
            "dispatch_msgs_per_s": round(rate, 1),
            "floor_msgs_per_s": round(floor, 1),
            "floor_runs_msgs_per_s": [round(floor_before, 1), round(floor_after, 1)],
            "dispatch_floor_ratio": round(rate / floor, 3) if floor else None,
            "floor_httpx_async_msgs_per_s": round(floor_httpx, 1),
            "dispatch_httpx_floor_ratio": round(rate / floor_httpx, 3) if floor_httpx else None,
            "dispatch_not_sent": ours["not_sent"],
            # The gateway work alone (no database) against the same floor: the best ratio a
            # one-process dispatcher could reach.
            "gateway_path_msgs_per_s": round(gateway_path, 1),
            "gateway_path_floor_ratio": round(gateway_path / floor, 3) if floor else None,
        }
        results.update(_slow_tail(messages))
        results.update(run_whatsapp(min(messages, WHATSAPP_MESSAGES)))
        if drain_rows:
            drained = _dispatch_run(provider.url, drain_rows)
            results["drain_rows"] = drain_rows
            results["drain_1m_peak_rss_mb"] = round(drained["peak_rss_mb"], 1)
            results["drain_msgs_per_s"] = round(drained["sent"] / drained["seconds"], 1)
        return results
    finally:
        provider.stop()


def _slow_tail(messages: int) -> dict[str, Any]:
    """A provider answering in 20 ms, every hundredth reply in 2 s: ``serve``'s streaming
    dispatcher against sending batch by batch (``run_once``, 200 a batch, as the scale-out
    tasks do), on a few thousand messages."""
    count = max(1, min(messages, SLOW_TAIL_MESSAGES))
    provider = Provider(delay_ms=20.0, slow_every=100, slow_ms=2000.0)
    try:
        stream = _dispatch_run(provider.url, count, mode="stream", batch=200)
        batches = _dispatch_run(provider.url, count, mode="batches", batch=200)
    finally:
        provider.stop()
    return {
        "slow_tail_messages": count,
        "slow_tail_stream_msgs_per_s": round(stream["sent"] / stream["seconds"], 1),
        "slow_tail_batches_msgs_per_s": round(batches["sent"] / batches["seconds"], 1),
    }


def run_latency(
    messages: int,
    *,
    delay_ms: float = 300.0,
    rate_limit_per_s: float | None = 2000.0,
    max_in_flight: int | None = None,
) -> dict[str, Any]:
    """Latency hiding: ``messages`` queued for a provider answering in ``delay_ms``, the
    gateway with ``max_in_flight`` (its type's default when None) and ``rate_limit_per_s``,
    drained by the embedded dispatcher (``stream``, as serve). The ceiling is the smaller of
    window / latency and the rate limit."""
    from casereach.gateways.types.http.config import HttpConfig

    window = max_in_flight or int(HttpConfig.model_fields["max_in_flight"].default)
    provider = Provider(delay_ms=delay_ms)
    try:
        run = _dispatch_run(
            provider.url,
            messages,
            batch=500,
            max_in_flight=max_in_flight,
            rate_limit_per_s=rate_limit_per_s,
        )
    finally:
        answered = provider.stop()
    ceiling = window / (delay_ms / 1000) if delay_ms else float("inf")
    if rate_limit_per_s:
        ceiling = min(ceiling, rate_limit_per_s)
    return {
        "latency_messages": messages,
        "latency_ms": delay_ms,
        "latency_max_in_flight": window,
        "latency_rate_limit_per_s": rate_limit_per_s,
        "latency_msgs_per_s": round(run["sent"] / run["seconds"], 1) if run["seconds"] else 0.0,
        "latency_ceiling_msgs_per_s": round(ceiling, 1),
        "latency_provider_requests": answered,
    }


SLOW_TAIL_MESSAGES = 3000
TARGETS = {
    "dispatch_msgs_per_s": 1500.0,
    "dispatch_floor_ratio": 0.5,
    "whatsapp_http_ratio": 0.8,
}


def run_latency_suite(
    *,
    messages: int,
    latency_ms: float,
    max_in_flight: int | None,
    rate_limit_per_s: float | None,
    json_out: Path | None,
) -> dict[str, Any]:
    """``casereach bench dispatch --gateway-latency-ms N``: latency hiding alone."""
    from rich.console import Console
    from rich.table import Table

    results = run_latency(
        messages,
        delay_ms=latency_ms,
        rate_limit_per_s=rate_limit_per_s,
        max_in_flight=max_in_flight,
    )
    if results["latency_provider_requests"] != messages:
        raise BenchStalled(
            f"bench dispatch: the provider answered {results['latency_provider_requests']:,} "
            f"requests for {messages:,} messages"
        )
    rate = results["latency_rate_limit_per_s"]
    table = Table(
        title=f"dispatch: {messages:,} messages, provider answering in {latency_ms:g} ms, "
        f"max_in_flight {results['latency_max_in_flight']}, "
        f"rate limit {f'{rate:,.0f}/s' if rate else 'none'}"
    )
    for column in ("measurement", "value"):
        table.add_column(column)
    table.add_row("our dispatcher, embedded (msgs/s)", f"{results['latency_msgs_per_s']:,.0f}")
    table.add_row(
        "ceiling: min(max_in_flight / latency, rate limit) (msgs/s)",
        f"{results['latency_ceiling_msgs_per_s']:,.0f}",
    )
    Console().print(table)
    document = {"suite": "dispatch-latency", "results": results}
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def run_dispatch_suite(
    *,
    messages: int,
    drain_rows: int,
    json_out: Path | None,
    latency_ms: float = 0.0,
    max_in_flight: int | None = None,
    rate_limit_per_s: float | None = None,
) -> dict[str, Any]:
    """``casereach bench dispatch``: measure, print a table, optionally write JSON. With a
    gateway latency, the latency-hiding measurement alone (``run_latency_suite``)."""
    from rich.console import Console
    from rich.table import Table

    if messages < 1:
        raise ValueError("--cases must be at least 1")
    if latency_ms or max_in_flight or rate_limit_per_s:
        return run_latency_suite(
            messages=messages,
            latency_ms=latency_ms,
            max_in_flight=max_in_flight,
            rate_limit_per_s=rate_limit_per_s,
            json_out=json_out,
        )
    results = run_dispatch(messages, drain_rows, latency_ms)
    table = Table(title=f"dispatch: {messages:,} queued messages → local http gateway")
    for column in ("measurement", "value", "target"):
        table.add_column(column)
    table.add_row("our dispatcher (msgs/s)", f"{results['dispatch_msgs_per_s']:,.0f}", "≥ 1,500")
    before, after = results["floor_runs_msgs_per_s"]
    table.add_row(
        "floor: bare asyncio client (msgs/s)",
        f"{results['floor_msgs_per_s']:,.0f} (before {before:,.0f}, after {after:,.0f})",
        "",
    )
    table.add_row("ratio to floor", f"{results['dispatch_floor_ratio']}", "≥ 0.5")
    table.add_row("messages left unsent", f"{results['dispatch_not_sent']:,}", "0")
    table.add_row(
        "gateway work alone, no database (msgs/s)",
        f"{results['gateway_path_msgs_per_s']:,.0f}",
        "",
    )
    table.add_row("its ratio to floor", f"{results['gateway_path_floor_ratio']}", "")
    table.add_row(
        "httpx async client (msgs/s)", f"{results['floor_httpx_async_msgs_per_s']:,.0f}", ""
    )
    table.add_row("ratio to httpx async", f"{results['dispatch_httpx_floor_ratio']}", "")
    table.add_row(
        f"slow tail (1 reply in 100 takes 2 s), {results['slow_tail_messages']:,} msgs: "
        "streaming, as serve (msgs/s)",
        f"{results['slow_tail_stream_msgs_per_s']:,.0f}",
        "",
    )
    table.add_row(
        "slow tail: batch by batch, as each Celery task (msgs/s)",
        f"{results['slow_tail_batches_msgs_per_s']:,.0f}",
        "",
    )
    for row in whatsapp_rows(results):
        table.add_row(*row)
    if "drain_1m_peak_rss_mb" in results:
        table.add_row(
            f"peak RSS draining {results['drain_rows']:,} (MB)",
            f"{results['drain_1m_peak_rss_mb']:,.0f}",
            "bounded",
        )
    Console().print(table)
    document = {"suite": "dispatch", "results": results, "targets": TARGETS}
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
    return document
