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
(``casereach.cli.fastprovider``) and reported, so a reader can see it is not the bottleneck.

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
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx
from rich.console import Console
from rich.table import Table

from casereach.cli.bench import (
    API_USER,
    PROJECT,
    BenchError,
    Workspace,
    machine_info,
    postgres_base_url,
    serving,
)
from casereach.cli.bench_dispatch import Provider

CASES = 1_000
BULK_SIZE = 100
CONCURRENCY = 16
OPEN_RATE = 200.0  # requests/s offered in the open-loop run
OPEN_SECONDS = 10.0
# Below waitress's default connection limit (100): past it the server stops accepting, and
# connections a client keeps open would never be freed for the ones waiting.
OPEN_MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 30.0
WARMUP = 200  # requests of each kind before any clock starts
SENDER_TO = "5550000"

TARGETS = {"inbound_floor_ratio": 0.4, "p99_ms_at_200rps": 100.0}
MAXIMUM_TARGETS = frozenset({"p99_ms_at_200rps"})


def phone_number(i: int) -> str:
    """Bench case ``i``'s number (E.164 digits, unique for i < 10,000,000)."""
    return f"25471{i:07d}"


# --- a bare HTTP/1.1 client ------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, its reply read, nothing else."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` (a whole request); the reply's status and body (TimeoutError after
        REQUEST_TIMEOUT_S)."""
        return await asyncio.wait_for(self._request(raw), REQUEST_TIMEOUT_S)

    async def _request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers from our server
                    return status, body
                body += (await self.reader.readexactly(size + 2))[:-2]
        if length < 0:
            raise BenchError("a reply without Content-Length or chunked encoding")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def form_post(path: str, fields: dict[str, str]) -> bytes:
    body = urlencode(fields).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


@dataclass
class LoadRun:
    """What one load run saw; latencies in seconds."""

    sent: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    max_lag_s: float = 0.0  # open loop: how late the generator itself sent anything

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """Nearest-rank percentile of the answered requests, in milliseconds (2 decimals);
        None when nothing was answered."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
        return round(ordered[rank - 1] * 1000, 2)

    def failures(self) -> str:
        """'' when every request was answered 200, else a summary."""
        parts = [f"{n} x HTTP {s}" for s, n in sorted(self.statuses.items()) if s != 200]
        parts += [f"{n} x {e}" for e, n in sorted(self.errors.items())]
        return ", ".join(parts)


Build = Callable[[int], bytes]


async def closed_loop(port: int, build: Build, count: int, concurrency: int) -> LoadRun:
    """``count`` requests from ``concurrency`` connections, each waiting for its reply."""
    run = LoadRun(connections=concurrency)
    remaining = iter(range(count))
    conns = [await Connection.open(port) for _ in range(concurrency)]

    async def worker(conn: Connection) -> None:
        for i in remaining:
            raw = build(i)
            run.sent += 1
            started = time.perf_counter()
            try:
                status, _ = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                run.errors[type(exc).__name__] += 1
                conn.close()
                conn = await Connection.open(port)
                continue
            run.latencies.append(time.perf_counter() - started)
            run.statuses[status] += 1
        conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    run.seconds = time.perf_counter() - started
    return run


async def open_loop(port: int, build: Build, rate: float, seconds: float) -> LoadRun:
    """``rate`` requests/s for ``seconds``, each sent at its scheduled time; latency from
    that time. A request finding no idle connection opens one (up to a cap, then waits)."""
    count = max(1, round(rate * seconds))
    run = LoadRun()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONCURRENCY):
        idle.put_nowait(await Connection.open(port))
    run.connections = CONCURRENCY

    async def one(i: int, due: float) -> None:
        if idle.empty() and run.connections < OPEN_MAX_CONNECTIONS:
            run.connections += 1
            conn = await Connection.open(port)
        else:
            conn = await idle.get()
        try:
            status, _ = await conn.request(build(i))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            run.errors[type(exc).__name__] += 1
            conn.close()
            idle.put_nowait(await Connection.open(port))  # keep the pool its size
            return
        run.latencies.append(time.perf_counter() - due)
        run.statuses[status] += 1
        idle.put_nowait(conn)

    tasks: list[asyncio.Task[None]] = []
    begin = time.perf_counter() + 0.05
    for k in range(count):
        due = begin + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        run.max_lag_s = max(run.max_lag_s, time.perf_counter() - due)
        run.sent += 1
        tasks.append(asyncio.create_task(one(k, due)))
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - begin
    while not idle.empty():
        idle.get_nowait().close()
    return run


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
    say = ws.console.print
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
    say(f"generator ceiling: {requests:,} POSTs to a minimal asyncio server")
    provider = Provider()
    try:
        ceiling = asyncio.run(
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
    results["generator_req_per_s"] = round(ceiling.rate, 1)

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
        opened = asyncio.run(open_loop(port, inbound, OPEN_RATE, OPEN_SECONDS))

        sent = warm.sent + closed.sent + opened.sent
        say("verifying the message log")
        stored, unmatched = verify(client)

    results["inbound_req_per_s"] = round(closed.rate, 1)
    results["inbound_p50_ms"] = closed.percentile_ms(50)
    results["inbound_p99_ms"] = closed.percentile_ms(99)
    results["floor_req_per_s"] = round(floor.rate, 1)
    results["floor_p50_ms"] = floor.percentile_ms(50)
    results["floor_p99_ms"] = floor.percentile_ms(99)
    results["inbound_floor_ratio"] = round(closed.rate / floor.rate, 3) if floor.rate else 0.0
    results["generator_floor_ratio"] = round(ceiling.rate / floor.rate, 2) if floor.rate else 0.0
    results["open_loop_rate"] = OPEN_RATE
    results["open_loop_seconds"] = OPEN_SECONDS
    results["open_loop_requests"] = opened.sent
    results["open_loop_achieved_req_per_s"] = round(opened.ok / opened.seconds, 1)
    results["p50_ms_at_200rps"] = opened.percentile_ms(50)
    results["p99_ms_at_200rps"] = opened.percentile_ms(99)
    results["max_ms_at_200rps"] = opened.percentile_ms(100)
    results["open_loop_connections"] = opened.connections
    results["open_loop_generator_max_lag_ms"] = round(opened.max_lag_s * 1000, 2)
    results["inbound_sent"] = sent
    results["inbound_ok"] = warm.ok + closed.ok + opened.ok
    results["inbound_stored"] = stored
    results["inbound_unmatched"] = unmatched
    results["floor_ok"] = floor.ok

    problems = []
    for name, run in (("warm-up", warm), ("closed loop", closed), ("open loop", opened)):
        if run.failures():
            problems.append(f"inbound {name}: {run.failures()}")
    if floor.failures():
        problems.append(f"healthz: {floor.failures()}")
    if stored != sent:
        problems.append(f"{stored:,} inbound messages stored for {sent:,} sent")
    if unmatched:
        problems.append(f"{unmatched:,} inbound messages matched no contact")
    results["problems"] = problems
    return results


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
