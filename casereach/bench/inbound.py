"""``casereach bench inbound``: inbound SMS per second through a real ``casereach serve``,
beside the floor — the same server answering ``GET /healthz`` to the same load generator — and
the latency of an open-loop run at a fixed offered rate (SPEC 9).

Set-up, on a fresh database (SQLite in a temporary directory, as the other suites): ``casereach
init``, the bench project and an API key, then ``casereach serve`` in a subprocess; through
its API an ``http`` gateway and 1,000 cases, each holding a verified number for two-way SMS.
There are no keywords and no default response, so every message takes the path "a two-way
holder matched, no keyword": stored, attributed to its contact, nothing sent back.

The load generator is a bare asyncio HTTP/1.1 client on keep-alive connections (no library
between it and the socket). Its own ceiling is measured against a minimal asyncio server
(``casereach.bench.fastprovider``) and reported, so a reader can see it is not the bottleneck.

- closed loop: ``--requests`` form POSTs to ``/gateways/http/{inbound_key}/inbound`` from 16
  connections, each sending its next request when the last one is answered → requests/s,
  p50/p99;
- floor: ``GET /healthz`` (Django + one ``SELECT 1``) the same way → requests/s;
- open loop: 200 requests/s for 10 s, each sent at its scheduled time whatever happened to the
  previous ones (a connection is opened when none is idle, up to 64 — below waitress's limit of
  100 — then requests wait for one); latency counts from the scheduled
  time, so a server that falls behind is not hidden by a generator that waits for it.

At the end every inbound request must have been answered 200 and the message log must hold
exactly as many inbound messages as were sent, all attributed to a contact; otherwise the run
fails (after printing what it measured).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from rich.console import Console
from rich.table import Table

from casereach.bench.fastprovider import Provider
from casereach.bench.httpload import (
    LoadRun,
    closed_loop,
    form_post,
    get,
    open_loop,
)
from casereach.bench.workspace import (
    API_USER,
    PROJECT,
    BenchError,
    Target,
    Workspace,
    machine_info,
    postgres_base_url,
    serving,
)

CASES = 1_000
BULK_SIZE = 100
CONCURRENCY = 16
OPEN_RATE = 200.0  # requests/s offered in the open-loop run
OPEN_SECONDS = 10.0
WARMUP = 200  # requests of each kind before any clock starts
SENDER_TO = "5550000"

TARGETS = {"inbound_floor_ratio": 0.4, "p99_ms_at_200rps": 100.0}
MAXIMUM_TARGETS = frozenset({"p99_ms_at_200rps"})


def phone_number(i: int) -> str:
    """Bench case ``i``'s number (E.164 digits, unique for i < 10,000,000)."""
    return f"25471{i:07d}"


# --- set-up through the API ------------------------------------------------------------------


def _call(client: httpx.Client, method: str, url: str, *, expect: int = 200, **kwargs: Any) -> Any:
    """One API call (429 waited out); its JSON, or BenchError naming the step."""
    while True:
        resp = client.request(method, url, **kwargs)
        if resp.status_code != 429:
            break
        time.sleep(float(resp.headers.get("Retry-After", "1")))
    if resp.status_code != expect:
        raise BenchError(f"{method} {url} answered {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def set_up(client: httpx.Client) -> str:
    """The gateway and the cases; returns the inbound webhook's path."""
    api = f"/a/{PROJECT}/api"
    gateway = _call(
        client,
        "POST",
        f"{api}/messaging/v1/gateways",
        expect=201,
        json={
            "name": "BENCH",
            "type": "http",
            # Never called: nothing is sent back on the measured path.
            "config": {
                "url": "http://127.0.0.1:9/send",
                "params": {"to": "{to}", "text": "{text}"},
            },
        },
    )
    inbound_url = gateway.get("inbound_url")
    if not isinstance(inbound_url, str):
        raise BenchError(f"the gateway reply has no inbound_url: {str(gateway)[:300]}")
    for start in range(0, CASES, BULK_SIZE):
        items = [
            {
                "create": True,
                "case_type": "patient",
                "case_name": f"Bench Person {i}",
                "owner_id": "bench-owner",
                "external_id": f"bench-in-{i:06d}",
                "properties": {
                    "contact_phone_number": phone_number(i),
                    "contact_phone_number_is_verified": "yes",
                },
            }
            for i in range(start, min(CASES, start + BULK_SIZE))
        ]
        _call(client, "POST", f"{api}/case/v2/", json=items)
    holders = _call(
        client, "GET", f"{api}/messaging/v1/phone-numbers", params={"status": "two_way", "limit": 1}
    )
    two_way = holders["meta"]["total_count"]
    if two_way != CASES:
        raise BenchError(f"{two_way} of {CASES} bench numbers are two-way holders after set-up")
    return urlparse(inbound_url).path


def verify(client: httpx.Client) -> tuple[int, int]:
    """(inbound messages stored, how many of them are attributed to no contact)."""
    url = f"/a/{PROJECT}/api/messaging/v1/messages"
    stored = unmatched = offset = 0
    while True:
        page = _call(
            client, "GET", url, params={"direction": "in", "limit": 1000, "offset": offset}
        )
        stored = int(page["meta"]["total_count"])
        unmatched += sum(1 for m in page["objects"] if not m.get("contact_id"))
        offset += len(page["objects"])
        if not page["objects"] or offset >= stored:
            return stored, unmatched


# --- the suite -------------------------------------------------------------------------------


def measure(ws: Workspace, requests: int) -> dict[str, Any]:
    target = ws.fresh("inbound")
    key = ws.cli(target, "apikey", "create", "--project", PROJECT, "--username", API_USER)
    key = key.strip().splitlines()[-1].strip()
    headers = {"Authorization": f"ApiKey {API_USER}:{key}"}
    results: dict[str, Any] = {
        "database": ws.vendor,
        "cases": CASES,
        "requests": requests,
        "concurrency": CONCURRENCY,
    }
    # The generator's own ceiling, before the server starts (they would share the CPUs).
    ceiling = _generator_ceiling(ws, requests)
    results["generator_req_per_s"] = round(ceiling.rate, 1)
    runs = _server_runs(ws, target, headers, requests)
    results.update(_figures(runs, ceiling))
    results["problems"] = _problems(runs)
    return results


@dataclass
class _Runs:
    """The load runs against the server, and what the message log holds after them."""

    warm: LoadRun
    floor: LoadRun
    closed: LoadRun
    opened: LoadRun
    stored: int
    unmatched: int

    @property
    def sent(self) -> int:
        return self.warm.sent + self.closed.sent + self.opened.sent


def _generator_ceiling(ws: Workspace, requests: int) -> LoadRun:
    ws.console.print(f"generator ceiling: {requests:,} POSTs to a minimal asyncio server")
    provider = Provider()
    try:
        return asyncio.run(
            closed_loop(
                provider.port,
                lambda i: form_post(
                    "/send", {"from": phone_number(i % CASES), "to": SENDER_TO, "text": "x"}
                ),
                requests,
                CONCURRENCY,
            )
        )
    finally:
        provider.stop()


def _server_runs(ws: Workspace, target: Target, headers: dict[str, str], requests: int) -> _Runs:
    say = ws.console.print
    with (
        serving(ws, target) as base,
        httpx.Client(base_url=base, headers=headers, timeout=120) as client,
    ):
        port = int(urlparse(base).port or 0)
        say(f"set-up: http gateway, {CASES:,} cases with verified numbers (API)")
        path = set_up(client)
        counter = iter(range(10**9))

        def inbound(i: int) -> bytes:
            n = next(counter)
            return form_post(
                path,
                {
                    "from": phone_number(n % CASES),
                    "to": SENDER_TO,
                    "text": f"hello {n}",
                    "id": f"bench-{n:09d}",
                },
            )

        def healthz(i: int) -> bytes:
            return get("/healthz")

        say(f"warm-up: {WARMUP} inbound, {WARMUP} healthz")
        warm = asyncio.run(closed_loop(port, inbound, WARMUP, CONCURRENCY))
        asyncio.run(closed_loop(port, healthz, WARMUP, CONCURRENCY))

        say(f"floor: {requests:,} GET /healthz, {CONCURRENCY} connections")
        floor = asyncio.run(closed_loop(port, healthz, requests, CONCURRENCY))
        say(f"inbound: {requests:,} POSTs, {CONCURRENCY} connections (closed loop)")
        closed = asyncio.run(closed_loop(port, inbound, requests, CONCURRENCY))
        say(f"inbound: {OPEN_RATE:,.0f} requests/s for {OPEN_SECONDS:.0f} s (open loop)")
        opened = asyncio.run(open_loop(port, inbound, OPEN_RATE, OPEN_SECONDS, CONCURRENCY))

        say("verifying the message log")
        stored, unmatched = verify(client)
    return _Runs(warm, floor, closed, opened, stored, unmatched)


def _figures(runs: _Runs, ceiling: LoadRun) -> dict[str, Any]:
    closed, floor, opened = runs.closed, runs.floor, runs.opened
    return {
        "inbound_req_per_s": round(closed.rate, 1),
        "inbound_p50_ms": closed.percentile_ms(50),
        "inbound_p99_ms": closed.percentile_ms(99),
        "floor_req_per_s": round(floor.rate, 1),
        "floor_p50_ms": floor.percentile_ms(50),
        "floor_p99_ms": floor.percentile_ms(99),
        "inbound_floor_ratio": round(closed.rate / floor.rate, 3) if floor.rate else 0.0,
        "generator_floor_ratio": round(ceiling.rate / floor.rate, 2) if floor.rate else 0.0,
        "open_loop_rate": OPEN_RATE,
        "open_loop_seconds": OPEN_SECONDS,
        "open_loop_requests": opened.sent,
        "open_loop_achieved_req_per_s": round(opened.ok / opened.seconds, 1),
        "p50_ms_at_200rps": opened.percentile_ms(50),
        "p99_ms_at_200rps": opened.percentile_ms(99),
        "max_ms_at_200rps": opened.percentile_ms(100),
        "open_loop_connections": opened.connections,
        "open_loop_generator_max_lag_ms": round(opened.max_lag_s * 1000, 2),
        "inbound_sent": runs.sent,
        "inbound_ok": runs.warm.ok + closed.ok + opened.ok,
        "inbound_stored": runs.stored,
        "inbound_unmatched": runs.unmatched,
        "floor_ok": floor.ok,
    }


def _problems(runs: _Runs) -> list[str]:
    problems = []
    for name, run in (
        ("warm-up", runs.warm),
        ("closed loop", runs.closed),
        ("open loop", runs.opened),
    ):
        if run.failures():
            problems.append(f"inbound {name}: {run.failures()}")
    if runs.floor.failures():
        problems.append(f"healthz: {runs.floor.failures()}")
    if runs.stored != runs.sent:
        problems.append(f"{runs.stored:,} inbound messages stored for {runs.sent:,} sent")
    if runs.unmatched:
        problems.append(f"{runs.unmatched:,} inbound messages matched no contact")
    return problems


def passed(name: str, value: float | None, target: float) -> bool:
    if value is None:
        return False
    return value < target if name in MAXIMUM_TARGETS else value >= target


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f}"


def print_table(results: dict[str, Any], console: Console) -> None:
    table = Table(
        title=(
            f"casereach bench inbound: {results['requests']:,} inbound SMS, "
            f"{results['cases']:,} two-way contacts, {results['database']}"
        )
    )
    for column in ("measurement", "req/s", "p50 ms", "p99 ms", "target", "result"):
        table.add_column(column, justify="left" if column == "measurement" else "right")

    def verdict(key: str) -> str:
        ok = passed(key, results[key], TARGETS[key])
        return "[green]pass[/green]" if ok else "[red]FAIL[/red]"

    conc = results["concurrency"]
    table.add_row(
        f"inbound POST, closed loop ({conc} conns)",
        f"{results['inbound_req_per_s']:,.0f}",
        _fmt(results["inbound_p50_ms"]),
        _fmt(results["inbound_p99_ms"]),
        "",
        "",
    )
    table.add_row(
        f"floor: GET /healthz ({conc} conns)",
        f"{results['floor_req_per_s']:,.0f}",
        _fmt(results["floor_p50_ms"]),
        _fmt(results["floor_p99_ms"]),
        "",
        "",
    )
    table.add_row(
        "inbound ÷ floor",
        f"{results['inbound_floor_ratio']:.2f}",
        "",
        "",
        f"≥ {TARGETS['inbound_floor_ratio']:.2f}",
        verdict("inbound_floor_ratio"),
    )
    table.add_row(
        f"inbound POST, open loop at {results['open_loop_rate']:,.0f}/s",
        f"{results['open_loop_achieved_req_per_s']:,.0f}",
        _fmt(results["p50_ms_at_200rps"]),
        _fmt(results["p99_ms_at_200rps"]),
        f"p99 < {TARGETS['p99_ms_at_200rps']:.0f} ms",
        verdict("p99_ms_at_200rps"),
    )
    table.add_row(
        "generator ceiling (minimal asyncio server)",
        f"{results['generator_req_per_s']:,.0f}",
        "",
        "",
        "",
        "",
    )
    stored_ok = results["inbound_stored"] == results["inbound_sent"]
    table.add_row(
        "inbound messages stored / sent",
        f"{results['inbound_stored']:,} / {results['inbound_sent']:,}",
        "",
        "",
        "equal",
        "[green]pass[/green]" if stored_ok else "[red]FAIL[/red]",
    )
    console.print(table)


def run_inbound_suite(*, requests: int, json_out: Path | None) -> dict[str, Any]:
    """``casereach bench inbound``: measure, print a table, optionally write JSON; raises
    ValueError (after printing) when a request failed or a message went missing."""
    if requests < 1:
        raise ValueError("--requests must be at least 1")
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-")), postgres_base_url())
    machine = machine_info(ws.vendor)
    try:
        results = measure(ws, requests)
    except BenchError as exc:
        raise ValueError(f"bench inbound: {exc}") from None
    finally:
        ws.cleanup()
    document = {"suite": "inbound", "results": results, "targets": TARGETS, "machine": machine}
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    print_table(results, console)
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        Console(stderr=True).print(f"results written to {json_out}")
    if results["problems"]:
        raise ValueError("bench inbound: " + "; ".join(results["problems"]))
    return document
