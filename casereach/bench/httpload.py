"""A bare asyncio HTTP/1.1 load generator on keep-alive connections (no library between it
and the socket): a closed loop (each connection sends its next request when the last one is
answered) and an open loop (requests sent at their scheduled time, latency counted from it)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from casereach.bench.workspace import BenchError

# Below waitress's default connection limit (100): past it the server stops accepting, and
# connections a client keeps open would never be freed for the ones waiting.
OPEN_MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 30.0


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


async def open_loop(
    port: int, build: Build, rate: float, seconds: float, connections: int
) -> LoadRun:
    """``rate`` requests/s for ``seconds``, each sent at its scheduled time; latency from
    that time. ``connections`` are open before the clock starts; a request finding none idle
    opens one (up to a cap, then waits)."""
    count = max(1, round(rate * seconds))
    run = LoadRun()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    run.connections = connections

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
