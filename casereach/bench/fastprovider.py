"""A fast local SMS provider for the dispatch benchmark: a minimal asyncio HTTP/1.1 server,
several processes on one port (SO_REUSEPORT), answering every POST with a JSON message id.

With ``--meta`` (``Provider(meta=True)``) every reply is shaped as Meta's WhatsApp Cloud API
answers a send (``messages[0].id``, plus a top-level ``id`` that the ``http`` type reads), so the
``whatsapp_cloud`` type and the ``http`` type can be measured against the same provider.

Run: ``python -m casereach.bench.fastprovider --port N --workers 2 [--delay-ms 300] [--meta]``. It
counts requests per process and prints the totals on SIGTERM. From Python, ``Provider(workers=2,
delay_ms=300)`` starts it on a free port (``.url``, ``.port``) and ``.stop()`` returns the
number of requests it answered.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
    b'Connection: keep-alive\r\n\r\n{"id":"p-00001"}'
)
_META_BODY = (
    b'{"messaging_product":"whatsapp","contacts":[{"input":"254700000000",'
    b'"wa_id":"254700000000"}],"messages":[{"id":"wamid.p-00001"}],"id":"p-00001"}'
)
META_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_META_BODY)}\r\nConnection: keep-alive\r\n\r\n".encode()
    + _META_BODY
)


async def _handle(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    counter: list[int],
    latency_s: float = 0.0,
    slow_every: int = 0,
    slow_s: float = 0.0,
    response: bytes = RESPONSE,
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip() or b"0")
            if length:
                await reader.readexactly(length)
            counter[0] += 1
            if slow_every and counter[0] % slow_every == 0:
                await asyncio.sleep(slow_s)  # now and then a reply takes long (a slow tail)
            elif latency_s:
                await asyncio.sleep(latency_s)  # a provider that answers slowly
            writer.write(response)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _worker(
    port: int,
    latency_s: float = 0.0,
    slow_every: int = 0,
    slow_s: float = 0.0,
    response: bytes = RESPONSE,
) -> None:
    counter = [0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, counter, latency_s, slow_every, slow_s, response),
            sock=sock,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())
    sys.stdout.write(f"{counter[0]}\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Provider:
    """The provider in its own processes on a free port: every reply after ``delay_ms``;
    with ``slow_every`` N, every Nth reply after ``slow_ms`` instead (a slow tail)."""

    def __init__(
        self,
        workers: int = 2,
        delay_ms: float = 0.0,
        slow_every: int = 0,
        slow_ms: float = 0.0,
        *,
        meta: bool = False,
    ) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "casereach.bench.fastprovider",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--delay-ms",
                str(delay_ms),
                "--slow-every",
                str(slow_every),
                "--slow-ms",
                str(slow_ms),
                *(["--meta"] if meta else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    self.proc.communicate()
                    raise RuntimeError("the benchmark provider did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/send"

    def stop(self) -> int:
        """Stop it; returns how many requests it answered."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return sum(int(x) for x in out.split() if x.isdigit())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--delay-ms",
        "--latency-ms",
        dest="latency_ms",
        type=float,
        default=0.0,
        help="how long every reply waits (a slow provider)",
    )
    parser.add_argument("--slow-every", type=int, default=0, help="every Nth reply is slow")
    parser.add_argument("--slow-ms", type=float, default=0.0, help="how slow that reply is")
    parser.add_argument(
        "--meta", action="store_true", help="answer as Meta's WhatsApp Cloud API answers a send"
    )
    args = parser.parse_args()
    response = META_RESPONSE if args.meta else RESPONSE
    procs = [
        multiprocessing.Process(
            target=_worker,
            args=(
                args.port,
                args.latency_ms / 1000,
                args.slow_every,
                args.slow_ms / 1000,
                response,
            ),
        )
        for _ in range(args.workers)
    ]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        for p in procs:
            if p.pid:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
