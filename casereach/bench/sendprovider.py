"""A counting local SMS provider for ``casereach bench send``: a lean asyncio HTTP/1.1 server
(a Protocol, no streams), several processes on one port (SO_REUSEPORT), that answers every
request ``200 {"id": …}`` — at once or after ``--latency-ms`` (it holds any number of requests
meanwhile) — and counts each message by the marker ``pbm<i>e`` its text carries.

The counts live in a file every process maps (``mmap``): per process a header (requests,
requests without a valid marker, first and last request as CLOCK_MONOTONIC nanoseconds) and
one byte per message index (how often it arrived, up to 255). The bench reads the same file
while the provider runs: no control requests compete with the measured ones.

Run: ``python -m casereach.bench.sendprovider --port N --file F --slots S [--workers W]
[--latency-ms L]``; ``CountingProvider`` starts, reads and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HEADER = struct.Struct("<qqqq")  # requests, unmatched, first_ns, last_ns
MARKER = b"pbm"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
    b'Connection: keep-alive\r\n\r\n{"id":"p-00001"}'
)
SAMPLE = 10  # indexes named in a report


def region_size(slots: int) -> int:
    """Bytes of one process's region: the header, then the counts padded to 8 bytes."""
    return HEADER.size + (slots + 7) // 8 * 8


def marker_index(request: bytes) -> int | None:
    """The ``i`` of the first ``pbm<i>e`` in a request, or None."""
    at = request.find(MARKER)
    if at < 0:
        return None
    end = request.find(b"e", at + 3)
    digits = request[at + 3 : end]
    return int(digits) if end > at + 3 and digits.isdigit() else None


class _Counts:
    """One process's region of the shared file."""

    def __init__(self, mm: mmap.mmap, base: int, slots: int) -> None:
        self.mm, self.base, self.slots = mm, base, slots
        self.requests = self.unmatched = self.first = self.last = 0

    def count(self, request: bytes) -> None:
        index = marker_index(request)
        if index is not None and 0 <= index < self.slots:
            at = self.base + HEADER.size + index
            seen = self.mm[at]
            if seen < 255:
                self.mm[at] = seen + 1
        else:
            self.unmatched += 1
        self.requests += 1
        self.last = time.monotonic_ns()
        if not self.first:
            self.first = self.last
        HEADER.pack_into(self.mm, self.base, self.requests, self.unmatched, self.first, self.last)


class _Server(asyncio.Protocol):
    def __init__(self, counts: _Counts, latency_s: float) -> None:
        self.counts, self.latency_s = counts, latency_s
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else end].strip() or b"0")
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            request, self.buffer = self.buffer[:total], self.buffer[total:]
            self.counts.count(request)
            if self.latency_s:
                asyncio.get_running_loop().call_later(self.latency_s, self._reply)
            else:
                self._reply()

    def _reply(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)


def _worker(port: int, path: str, slots: int, worker: int, latency_s: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        counts = _Counts(mm, worker * region_size(slots), slots)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: _Server(counts, latency_s), sock=sock)
            stop = asyncio.Event()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            async with server:
                await stop.wait()

        asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True, help="the shared counts file (made by the bench)")
    parser.add_argument("--slots", type=int, required=True, help="message indexes counted")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    procs = [
        multiprocessing.Process(
            target=_worker, args=(args.port, args.file, args.slots, w, args.latency_ms / 1000)
        )
        for w in range(args.workers)
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


# --- the bench's side ------------------------------------------------------------------------


@dataclass
class Totals:
    """What the provider has seen so far (timestamps: CLOCK_MONOTONIC ns, 0 when none)."""

    requests: int = 0
    unmatched: int = 0
    first_ns: int = 0
    last_ns: int = 0


@dataclass
class Tally(Totals):
    """Totals with the per-message check for messages 0..expected-1."""

    expected: int = 0
    unique: int = 0
    duplicates: int = 0
    missing: int = 0
    missing_sample: list[int] = field(default_factory=list)
    duplicate_sample: list[int] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        return (
            self.requests == self.expected == self.unique
            and not self.duplicates
            and not self.unmatched
        )

    def problem(self) -> str:
        """'' when every message arrived exactly once, else what went wrong."""
        if self.exactly_once:
            return ""
        return (
            f"not exactly once: {self.requests:,} requests for {self.expected:,} messages, "
            f"{self.unique:,} unique, {self.duplicates:,} duplicates "
            f"(e.g. {self.duplicate_sample}), {self.missing:,} missing "
            f"(e.g. {self.missing_sample}), {self.unmatched:,} without a valid marker"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "requests": self.requests,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "unmatched": self.unmatched,
            "exactly_once": self.exactly_once,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingProvider:
    """The provider in a subprocess, counting messages 0..slots-1 into ``root/name.counts``."""

    def __init__(
        self, root: Path, name: str, slots: int, *, latency_ms: float = 0.0, workers: int = 2
    ) -> None:
        self.slots, self.workers = slots, workers
        self.port = free_port()
        self.path = root / f"{name}.counts"
        self.path.write_bytes(b"\0" * (region_size(slots) * workers))
        self.file = self.path.open("rb")
        self.mm = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "casereach.bench.sendprovider",
                f"--port={self.port}",
                f"--file={self.path}",
                f"--slots={slots}",
                f"--workers={workers}",
                f"--latency-ms={latency_ms}",
            ]
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the counting provider did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/send"

    def totals(self) -> Totals:
        out = Totals()
        for w in range(self.workers):
            requests, unmatched, first, last = HEADER.unpack_from(
                self.mm, w * region_size(self.slots)
            )
            out.requests += requests
            out.unmatched += unmatched
            if first and (not out.first_ns or first < out.first_ns):
                out.first_ns = first
            out.last_ns = max(out.last_ns, last)
        return out

    def tally(self, expected: int) -> Tally:
        """The totals and the per-message check of indexes 0..expected-1."""
        totals = self.totals()
        counts = bytearray(expected)
        for w in range(self.workers):
            start = w * region_size(self.slots) + HEADER.size
            region = self.mm[start : start + expected]
            if not any(counts):
                counts[:] = region
                continue
            for i, seen in enumerate(region):
                if seen:
                    counts[i] = min(255, counts[i] + seen)
        tally = Tally(**vars(totals), expected=expected)
        tally.unique = expected - counts.count(0)
        tally.missing = expected - tally.unique
        tally.duplicates = sum(c - 1 for c in counts if c > 1)
        tally.missing_sample = [i for i, c in enumerate(counts) if not c][:SAMPLE]
        tally.duplicate_sample = [i for i, c in enumerate(counts) if c > 1][:SAMPLE]
        return tally

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.mm.closed:
            self.mm.close()
        self.file.close()


if __name__ == "__main__":
    main()
