"""The requests ``casereach bench send`` makes, and the closed loop that sends them: prebuilt
raw HTTP/1.1 POSTs (a single send, or a batch of up to 1,000), sent from C keep-alive
connections, each waiting for its reply; every reply is kept and checked afterwards (nothing
is parsed while the clock runs)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from casereach.bench.httpload import Connection
from casereach.bench.sendserver import API

TEXT = "Reminder pbm{i}e: your clinic visit is tomorrow"  # as the peer bench: pbm<i>e marks i
BATCH = 1000  # items per send-batch request, the most the endpoint takes
SAMPLE = 3  # distinct problems quoted


def item(i: int) -> dict[str, str]:
    """Message ``i``: its own number, its marker in the text."""
    return {"phone_number": f"+2547{i:08d}", "text": TEXT.format(i=i)}


def json_post(path: str, body: bytes, auth: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class Requests:
    """Prebuilt requests and how many messages each carries."""

    raw: list[bytes]
    sizes: list[int]
    batch: bool

    @property
    def messages(self) -> int:
        return sum(self.sizes)


def singles(indexes: Sequence[int], auth: str) -> Requests:
    path = f"{API}/send"
    raw = [json_post(path, json.dumps(item(i)).encode(), auth) for i in indexes]
    return Requests(raw, [1] * len(raw), batch=False)


def batches(indexes: Sequence[int], auth: str, size: int = BATCH) -> Requests:
    path = f"{API}/send-batch"
    raw, sizes = [], []
    for start in range(0, len(indexes), size):
        chunk = indexes[start : start + size]
        body = json.dumps({"messages": [item(i) for i in chunk]}).encode()
        raw.append(json_post(path, body, auth))
        sizes.append(len(chunk))
    return Requests(raw, sizes, batch=True)


@dataclass
class Sent:
    """What one closed loop saw: each request's reply (None when the request failed),
    CLOCK_MONOTONIC ns at the first request and after the last reply."""

    replies: list[tuple[int, bytes] | None]
    start_ns: int = 0
    end_ns: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


async def post_all(port: int, requests: Requests, concurrency: int) -> Sent:
    """Every request once, from ``concurrency`` keep-alive connections (a closed loop)."""
    sent = Sent([None] * len(requests.raw))
    remaining = iter(range(len(requests.raw)))
    conns = [
        await Connection.open(port) for _ in range(max(1, min(concurrency, len(requests.raw))))
    ]

    async def worker(conn: Connection) -> None:
        for i in remaining:
            try:
                sent.replies[i] = await conn.request(requests.raw[i])
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                sent.errors[type(exc).__name__] += 1
                conn.close()
                try:
                    conn = await Connection.open(port)
                except OSError:
                    sent.errors["ConnectionRefused"] += 1
                    return
        conn.close()

    sent.start_ns = time.monotonic_ns()
    await asyncio.gather(*(worker(c) for c in conns))
    sent.end_ns = time.monotonic_ns()
    return sent


def outcomes(requests: Requests, sent: Sent) -> Counter[str]:
    """Each message's outcome from the replies: 'queued' when accepted and queued, else
    what happened to it ('HTTP 500 …', 'failed ERROR_CODE', 'no reply (OSError)')."""
    out: Counter[str] = Counter()
    for size, reply in zip(requests.sizes, sent.replies, strict=True):
        if reply is None:
            out["no reply"] += size
            continue
        status, body = reply
        if status != 202:
            out[f"HTTP {status}: {body[:160].decode(errors='replace')}"] += size
            continue
        data = json.loads(body)
        events = data["objects"] if requests.batch else [data]
        if len(events) != size:
            out[f"{len(events)} objects in a reply for {size} messages"] += size
            continue
        for event in events:
            for m in event["messages"]:
                key = (
                    "queued"
                    if m["status"] == "queued" and not m["error_code"]
                    else (f"{m['status']} {m['error_code']}")
                )
                out[key] += 1
    return out


def refusals(what: str, requests: Requests, sent: Sent) -> str:
    """'' when every message was accepted and queued; else which were not, and why."""
    seen = outcomes(requests, sent)
    bad = {k: n for k, n in seen.items() if k != "queued"}
    if not bad and seen["queued"] == requests.messages:
        return ""
    detail = ", ".join(f"{n:,} x {k}" for k, n in sorted(bad.items(), key=lambda kv: -kv[1]))
    errors = ", ".join(f"{n} x {e}" for e, n in sent.errors.items())
    return (
        f"{what}: {seen['queued']:,} of {requests.messages:,} messages queued; "
        f"{detail}{'; connection errors: ' + errors if errors else ''}"
    )
