"""``casereach bench send``: how fast casereach accepts messages (a single send, a batch send)
and gets them to a provider (a drain inside ``serve``, a provider answering in 300 ms, end to
end), against real ``casereach serve`` subprocesses, each phase on a fresh database (embedded
SQLite by default; ``--database postgres://…`` makes and drops its own databases there).

Phases (``--only`` picks some):

- ``accept`` (``serve --no-workers``): ``GET /healthz`` and single ``POST …/send`` from
  ``--clients`` keep-alive connections (closed loop, min(N, 5,000) requests each), then N
  messages through ``POST …/send-batch`` (1,000 a request, 4 connections);
- ``drain``: N messages queued under ``serve --no-workers`` (by send-batch, or by single sends
  while send-batch is not served), then ``serve`` with its dispatcher on the same database,
  sending to the counting provider: N ÷ (provider's last request - its first);
- ``latency300``: the same with a provider answering after 300 ms, the gateway limited to
  2,000/s with ``max_in_flight`` 1,000 (when its config takes that key);
- ``e2e``: ``serve`` with its dispatcher while 4 connections send N by send-batch: N ÷
  (provider's last request - the first send).

Every message carries the marker ``pbm<i>e``; the provider (``casereach.bench.sendprovider``)
counts each index, so every phase that sends checks every message arrived exactly once, and
``/metrics``' outbox counts. While it waits, the bench asks the message log every second for
failed or postponed messages and fails at once naming their error codes and counts; when the
provider sees nothing new for ``stall_s`` it fails naming what is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casereach.bench.httpload import closed_loop, get
from casereach.bench.send_report import load_peer, peer_ratios, print_table, targets
from casereach.bench.sendload import Requests, Sent, batches, post_all, refusals, singles
from casereach.bench.sendprovider import CountingProvider, Tally
from casereach.bench.sendserver import API, DAILY_LIMIT, Instance
from casereach.bench.workspace import BenchError, Workspace, machine_info, postgres_base_url

PHASES = ("accept", "drain", "latency300", "e2e")
SINGLE_MAX = 5_000  # healthz and single-send requests in the accept phase, at most
WARMUP = 100
BATCH_CLIENTS = 4
LATENCY_MS = 300.0
LATENCY_RATE = 2_000.0
LATENCY_IN_FLIGHT = 1_000
CHECK_EVERY_S = 1.0
SETTLE_S = 1.0  # after the last expected request, so that late duplicates show
OUTBOX_WAIT_S = 15.0  # for the last completions to be recorded after the provider has all


@dataclass
class Options:
    n: int
    clients: int
    stall_s: float
    daily_limit: int
    results: dict[str, Any] = field(default_factory=dict)
    template: Instance | None = None  # a set-up database to copy (SQLite)

    def instance(self, ws: Workspace, name: str) -> Instance:
        """A fresh database for phase ``name``, and its (not yet started) server."""
        if ws.vendor != "sqlite":
            return Instance(ws, name)
        if self.template is None:
            self.template = Instance(ws, "template")
        return Instance(ws, name, self.template)

    def note(self, text: str) -> None:
        self.results.setdefault("notes", []).append(text)


def _rate(count: int, nanoseconds: int) -> float:
    return round(count / (nanoseconds / 1e9), 1) if nanoseconds > 0 else 0.0


def _say(ws: Workspace, text: str) -> None:
    ws.console.print(f"[{time.strftime('%H:%M:%S')}] {text}")


# --- sending ---------------------------------------------------------------------------------


def batch_served(inst: Instance) -> bool:
    """Whether the server has ``send-batch`` (an empty batch stores nothing either way)."""
    resp = inst.client.post(f"{API}/send-batch", json={"messages": []})
    return resp.status_code not in (404, 405)


def queue(inst: Instance, opts: Options, indexes: range, what: str) -> tuple[Requests, Sent]:
    """Send messages ``indexes`` (send-batch when served, else single sends); fails naming
    any message that was not queued."""
    if batch_served(inst):
        requests, clients = batches(indexes, inst.auth), BATCH_CLIENTS
    else:
        requests, clients = singles(indexes, inst.auth), opts.clients
    sent = asyncio.run(post_all(inst.port, requests, clients))
    problem = refusals(what, requests, sent)
    if problem:
        raise BenchError(problem + _trouble(inst))
    return requests, sent


def _trouble(inst: Instance) -> str:
    trouble = inst.trouble()
    return f" (message log: {trouble})" if trouble else ""


def _check_outbox(
    inst: Instance, what: str, expected: dict[str, int], wait_s: float = 0.0
) -> dict[str, int]:
    """``/metrics``' outbox must show ``expected``; after a drain the last completions may
    still be on their way, so it is asked again for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        outbox = {k: v for k, v in inst.outbox().items() if v}
        if outbox == expected:
            return outbox
        if time.monotonic() >= deadline:
            raise BenchError(
                f"{what}: /metrics outbox {outbox}, expected {expected}{_trouble(inst)}"
            )
        time.sleep(0.2)


def watch(
    inst: Instance,
    provider: CountingProvider,
    n: int,
    what: str,
    opts: Options,
    alive: Any = None,
) -> Tally:
    """Wait until the provider has seen ``n`` requests, then check each message arrived
    exactly once. Fails at once when a message is failed or put off, when serve dies (or
    ``alive()`` raises), or when nothing new reaches the provider for ``stall_s``."""
    last, changed = -1, time.monotonic()
    next_check = changed + CHECK_EVERY_S
    while True:
        totals = provider.totals()
        now = time.monotonic()
        if totals.requests != last:
            last, changed = totals.requests, now
        if totals.requests >= n:
            break
        if now >= next_check:
            inst.check_alive()
            if alive is not None:
                alive()
            trouble = inst.trouble()
            if trouble:
                raise BenchError(
                    f"{what}: {trouble}; the provider has {totals.requests:,} of {n:,}"
                )
            next_check = now + CHECK_EVERY_S
        if now - changed > opts.stall_s:
            tally = provider.tally(n)
            raise BenchError(
                f"{what}: the provider got {totals.requests:,} of {n:,} requests and nothing "
                f"new for {opts.stall_s:.0f} s: {tally.missing:,} missing (e.g. "
                f"{tally.missing_sample}); /metrics outbox {inst.outbox()}{_trouble(inst)}"
            )
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    tally = provider.tally(n)
    if tally.problem():
        raise BenchError(f"{what}: {tally.problem()}{_trouble(inst)}")
    return tally


# --- the phases ------------------------------------------------------------------------------


def phase_accept(ws: Workspace, opts: Options) -> None:
    r, n = opts.results, opts.n
    count = min(n, SINGLE_MAX)
    inst = opts.instance(ws, "accept")
    try:
        inst.serve(workers=False)
        inst.configure("http://127.0.0.1:9/send", daily_limit=opts.daily_limit)
        asyncio.run(closed_loop(inst.port, lambda i: get("/healthz"), WARMUP, opts.clients))
        queue(inst, opts, range(n, n + WARMUP), "accept warm-up (single sends)")
        _say(ws, f"accept: {count:,} GET /healthz, {opts.clients} connections")
        health = asyncio.run(closed_loop(inst.port, lambda i: get("/healthz"), count, opts.clients))
        if health.failures():
            raise BenchError(f"accept: GET /healthz: {health.failures()}")
        r["healthz_requests"] = count
        r["healthz_per_s"] = round(health.rate, 1)
        _say(ws, f"accept: {count:,} POST …/send, {opts.clients} connections")
        single = singles(range(count), inst.auth)
        sent = asyncio.run(post_all(inst.port, single, opts.clients))
        if problem := refusals("accept: single sends", single, sent):
            raise BenchError(problem + _trouble(inst))
        r["send_single_requests"] = count
        r["send_single_per_s"] = _rate(count, sent.end_ns - sent.start_ns)
        r["single_healthz_ratio"] = round(r["send_single_per_s"] / r["healthz_per_s"], 3)
        queued = WARMUP + count
        if batch_served(inst):
            base = n + WARMUP
            queue(inst, opts, range(base, base + WARMUP), "accept warm-up (a batch)")
            _say(ws, f"accept: {n:,} messages by POST …/send-batch, {BATCH_CLIENTS} connections")
            batch = batches(range(n), inst.auth)
            sent = asyncio.run(post_all(inst.port, batch, BATCH_CLIENTS))
            if problem := refusals("accept: batch sends", batch, sent):
                raise BenchError(problem + _trouble(inst))
            r["send_batch_messages"] = n
            r["send_batch_requests"] = len(batch.raw)
            r["send_batch_clients"] = BATCH_CLIENTS
            r["send_batch_per_s"] = _rate(n, sent.end_ns - sent.start_ns)
            queued += WARMUP + n
        else:
            r["send_batch_per_s"] = None
            opts.note("POST …/send-batch is not served: the batch figures are missing")
        r["accept_outbox"] = _check_outbox(inst, "accept", {"queued": queued})
    finally:
        inst.close()


def _queue_then_drain(
    ws: Workspace,
    opts: Options,
    name: str,
    *,
    latency_ms: float = 0.0,
    rate: float | None = None,
    in_flight: int | None = None,
) -> dict[str, Any]:
    """N queued under ``serve --no-workers``, then drained by ``serve``: the figures."""
    n = opts.n
    out: dict[str, Any] = {}
    provider = CountingProvider(ws.root, name, n, latency_ms=latency_ms)
    inst = opts.instance(ws, name)
    try:
        inst.serve(workers=False)
        out["max_in_flight_taken"] = inst.configure(
            provider.url,
            rate_limit_per_s=rate,
            max_in_flight=in_flight,
            daily_limit=opts.daily_limit,
        )
        _say(ws, f"{name}: queueing {n:,} under serve --no-workers")
        requests, sent = queue(inst, opts, range(n), f"{name}: queueing")
        out["queued_by"] = "send-batch" if requests.batch else "send"
        out["queue_per_s"] = _rate(n, sent.end_ns - sent.start_ns)
        out["outbox_before"] = _check_outbox(inst, f"{name} before the drain", {"queued": n})
        if provider.totals().requests:
            raise BenchError(f"{name}: the provider got requests from serve --no-workers")
        inst.stop()
        _say(ws, f"{name}: serve (with its dispatcher) drains them")
        started = inst.serve(workers=True)
        tally = watch(inst, provider, n, name, opts)
        out["outbox_after"] = _check_outbox(
            inst, f"{name} after the drain", {"sent": n}, OUTBOX_WAIT_S
        )
    finally:
        inst.close()
        provider.stop()
    out["msgs_per_s"] = _rate(n, tally.last_ns - tally.first_ns)
    out["incl_startup_msgs_per_s"] = _rate(n, tally.last_ns - started)
    out["startup_to_first_send_s"] = round((tally.first_ns - started) / 1e9, 3)
    out["check"] = tally.as_json()
    return out


def phase_drain(ws: Workspace, opts: Options) -> None:
    out = _queue_then_drain(ws, opts, "drain")
    r = opts.results
    r["serve_drain_msgs_per_s"] = out.pop("msgs_per_s")
    r["serve_drain_incl_startup_msgs_per_s"] = out.pop("incl_startup_msgs_per_s")
    out.pop("max_in_flight_taken")
    r.update({f"drain_{k}": v for k, v in out.items()})


def phase_latency300(ws: Workspace, opts: Options) -> None:
    out = _queue_then_drain(
        ws,
        opts,
        "latency300",
        latency_ms=LATENCY_MS,
        rate=LATENCY_RATE,
        in_flight=LATENCY_IN_FLIGHT,
    )
    r = opts.results
    r["latency300_msgs_per_s"] = out.pop("msgs_per_s")
    r["latency300_rate_limit_per_s"] = LATENCY_RATE
    taken = out.pop("max_in_flight_taken")
    r["latency300_max_in_flight"] = LATENCY_IN_FLIGHT if taken else None
    if not taken:
        opts.note(
            "latency300: the http gateway's config does not take max_in_flight; the gateway "
            "runs with the dispatcher's default in-flight calls"
        )
    r.update({f"latency300_{k}": v for k, v in out.items()})


def phase_e2e(ws: Workspace, opts: Options) -> None:
    n, r = opts.n, opts.results
    provider = CountingProvider(ws.root, "e2e", n)
    inst = opts.instance(ws, "e2e")
    done: dict[str, Any] = {}
    thread: threading.Thread | None = None
    try:
        inst.serve(workers=True)
        inst.configure(provider.url, daily_limit=opts.daily_limit)
        if batch_served(inst):
            requests, clients = batches(range(n), inst.auth), BATCH_CLIENTS
        else:
            requests, clients = singles(range(n), inst.auth), opts.clients
            opts.note("e2e: send-batch is not served: single sends instead")

        def send() -> None:
            try:
                done["sent"] = asyncio.run(post_all(inst.port, requests, clients))
            except BaseException as exc:  # reported by alive()
                done["error"] = exc

        def alive() -> None:
            if "error" in done:
                raise BenchError(f"e2e: the senders stopped: {done['error']!r}")
            if "sent" in done and (problem := refusals("e2e: sending", requests, done["sent"])):
                raise BenchError(problem)

        _say(ws, f"e2e: {n:,} messages sent while serve dispatches")
        thread = threading.Thread(target=send, name="bench-send-e2e")
        thread.start()
        tally = watch(inst, provider, n, "e2e", opts, alive=alive)
        thread.join()
        alive()
        r["e2e_outbox"] = _check_outbox(inst, "e2e", {"sent": n}, OUTBOX_WAIT_S)
    finally:
        inst.close()  # first: a sender still running then stops at once
        if thread is not None:
            thread.join(timeout=60)
        provider.stop()
    sent: Sent = done["sent"]
    r["e2e_sent_by"] = "send-batch" if requests.batch else "send"
    r["e2e_accept_per_s"] = _rate(n, sent.end_ns - sent.start_ns)
    r["e2e_batch_msgs_per_s"] = _rate(n, tally.last_ns - sent.start_ns)
    r["e2e_check"] = tally.as_json()


RUNNERS = {
    "accept": phase_accept,
    "drain": phase_drain,
    "latency300": phase_latency300,
    "e2e": phase_e2e,
}


def _phases(only: str | None) -> list[str]:
    if not only:
        return list(PHASES)
    chosen = [p.strip() for p in only.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PHASES]
    if unknown or not chosen:
        raise ValueError(f"--only takes phases among {', '.join(PHASES)} (got {only!r})")
    return [p for p in PHASES if p in chosen]


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_send_suite(
    *,
    n: int = 20_000,
    clients: int = 8,
    database: str | None = None,
    only: str | None = None,
    json_out: Path | None = None,
    peer_json: Path | None = None,
    stall_s: float = 60.0,
    daily_limit: int = DAILY_LIMIT,
) -> dict[str, Any]:
    """``casereach bench send``: measure, print the table, optionally write JSON; raises
    ValueError (after printing and writing) when any check failed."""
    if n < 1 or clients < 1:
        raise ValueError("--n and --clients must be at least 1")
    phases = _phases(only)
    peer = load_peer(peer_json) if peer_json is not None else None
    base_url = database or postgres_base_url()
    if base_url and not base_url.startswith(("postgres://", "postgresql://")):
        raise ValueError("--database takes a postgres:// URL (the default is embedded SQLite)")
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-send-")), base_url)
    machine = machine_info(ws.vendor)
    opts = Options(n, clients, stall_s, daily_limit)
    opts.results.update(
        {
            "database": ws.vendor,
            "messages": n,
            "clients": clients,
            "phases": phases,
            "load_average_before": _load(),
            "problems": [],
        }
    )
    try:
        for phase in phases:
            try:
                RUNNERS[phase](ws, opts)
            except BenchError as exc:
                opts.results["problems"].append(str(exc))
                break
    finally:
        if opts.template is not None:
            opts.template.close()
        ws.cleanup()
    results = opts.results
    results["load_average_after"] = _load()
    if peer is not None:
        results.update(peer_ratios(results, peer))
        if peer["n"] != n:
            opts.note(f"the peer run sent {peer['n']} messages a phase, this one {n:,}")
    document = {
        "suite": "send",
        "results": results,
        "targets": targets(ws.vendor, peer),
        "machine": machine,
    }
    if peer is not None:
        document["peer"] = peer
    print_table(document)
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        ws.console.print(f"results written to {json_out}")
    if results["problems"]:
        raise ValueError("bench send: " + "; ".join(results["problems"]))
    return document
