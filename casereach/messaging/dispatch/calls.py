"""The gateway calls of the dispatcher, outside any transaction and without database access.

Naming: ``cfg`` is a configured gateway (``GatewayConfig``, a row), ``gateway`` the object of
its type that sends (``Gateway``). Gateway objects are built once and reused (building one
validates the config and decrypts credentials): session types (``Gateway.persistent``: SMPP)
once per process, the others once per dispatch thread, each with that thread's HTTP client.
Types with a lean-client path (``Gateway.sends_async``: ``http``) are sent from an event loop
this object owns, keep-alive connections living in a ``WirePool`` between batches.

Calls in flight are counted per gateway: up to its ``max_in_flight`` (``window``), for the
thread-pool types also at most the pool's ``concurrency`` threads (CASEREACH_DISPATCH_THREADS,
shared by every such gateway).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import httpx

from casereach.gateways import netpolicy
from casereach.gateways.base import (
    GATEWAY_ERROR,
    MAX_IN_FLIGHT_TOP,
    Exchange,
    Gateway,
    GatewayError,
    OutgoingMessage,
)
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate
from casereach.gateways.registry import available_types, gateway_class
from casereach.gateways.wire import WirePool
from casereach.messaging.dispatch.jobs import Job
from casereach.messaging.whatsapp import outgoing_parts

log = logging.getLogger(__name__)

Key = tuple[int, dt.datetime]  # a config and its version: (pk, updated_on)


@cache
def persistent_types() -> frozenset[str]:
    """The slugs of the gateway types that keep a session (``Gateway.persistent``)."""
    return frozenset(cls.slug for cls in available_types() if cls.persistent)


def _key(cfg: GatewayConfig) -> Key:
    # the datetime itself: formatting it was 4% of the dispatcher's time (a key per call)
    return (cfg.pk, cfg.updated_on)


class GatewayCalls:
    def __init__(self, *, concurrency: int, http: httpx.Client | None = None) -> None:
        self.concurrency = concurrency
        # One client per dispatch thread: a shared client's connection-pool lock was the
        # bottleneck (a third of all samples under 32 threads).
        self._shared_http = http
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dispatch")
        self._persistent: dict[Key, Gateway] = {}
        self._thread_gateways: list[Gateway] = []  # closed with the dispatcher (SMTP sessions)
        # The event loop runs in whichever thread sends, one batch (or stream turn) at a time.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wire: WirePool | None = None
        self._wire_gateways: dict[Key, Gateway | None] = {}
        self.base_url = ""  # CASEREACH_PUBLIC_URL, read once per batch

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    @property
    def wire(self) -> WirePool:
        if self._wire is None:
            # as many idle connections as the largest window can leave behind
            self._wire = WirePool(max_idle_per_origin=MAX_IN_FLIGHT_TOP)
        return self._wire

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for gateway in [*self._persistent.values(), *self._thread_gateways]:
            gateway.close()
        for client in self._clients:
            client.close()
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        if self._loop is not None:
            self._loop.run_until_complete(asyncio.sleep(0))  # let transports finish closing
            self._loop.close()
            self._loop = None

    @property
    def http(self) -> httpx.Client:
        """This thread's HTTP client (keep-alive connections are reused per thread)."""
        if self._shared_http is not None:
            return self._shared_http
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = netpolicy.make_client(
                httpx.Timeout(15.0, connect=5.0),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def sessions(self) -> Iterator[tuple[int, Gateway]]:
        """(config id, gateway) of every session-based gateway built so far."""
        for (cfg_id, _), gateway in list(self._persistent.items()):
            yield cfg_id, gateway

    def gateway(self, cfg: GatewayConfig) -> Gateway:
        """A ready gateway object, rebuilt when the config changes."""
        key = _key(cfg)
        if cfg.type in persistent_types():
            gateway = self._persistent.get(key)
            if gateway is None:
                gateway = self._persistent[key] = instantiate(cfg)
            return gateway
        cached: dict[Key, Gateway] | None = getattr(self._local, "gateways", None)
        if cached is None:
            cached = self._local.gateways = {}
        gateway = cached.get(key)
        if gateway is None:
            for stale in [k for k in cached if k[0] == cfg.pk]:  # the config changed
                del cached[stale]
            gateway = cached[key] = instantiate(cfg, http=self.http)
            with self._clients_lock:
                self._thread_gateways.append(gateway)
        return gateway

    def window(self, cfg: GatewayConfig) -> int:
        """How many of ``cfg``'s calls may be in flight at once: its ``max_in_flight``; for
        types sent from the thread pool at most its ``concurrency`` threads as well."""
        try:
            limit = gateway_class(cfg.type).max_in_flight(cfg.config or {})
        except Exception:  # an unknown type: ``call`` reports it, one at a time will do
            return 1
        if self._shared_http is not None or self.wire_gateway(cfg) is None:
            limit = min(limit, max(self.concurrency, 1))
        return limit

    def send(self, jobs: list[Job]) -> None:
        """Every gateway call of a batch, each gateway's ``window`` calls in flight at once:
        lean-client types on the event loop, the others on the thread pool."""
        self.loop.run_until_complete(self._send_async(jobs))

    def wire_gateway(self, cfg: GatewayConfig | None) -> Gateway | None:
        """The gateway object for ``cfg`` when its type has a lean-client path, else None
        (also when it cannot be built: ``call`` then reports why, as for any type)."""
        if cfg is None or cfg.type in persistent_types():
            return None
        key = _key(cfg)
        if key in self._wire_gateways:
            return self._wire_gateways[key]
        gateway: Gateway | None = None
        try:
            if gateway_class(cfg.type).sends_async:
                gateway = instantiate(cfg)
        except Exception:  # a bad config: the thread path logs and classifies it
            gateway = None
        for stale in [k for k in self._wire_gateways if k[0] == cfg.pk]:  # the config changed
            old = self._wire_gateways.pop(stale)
            if old is not None:
                old.close()
        self._wire_gateways[key] = gateway
        return gateway

    async def _send_async(self, jobs: list[Job]) -> None:
        """Per gateway, ``window`` workers take its jobs one after another, each call the way
        the streaming dispatcher makes it (``call_job``)."""
        loop = asyncio.get_running_loop()
        by_gateway: dict[int, list[Job]] = {}
        for job in jobs:
            assert job.cfg is not None
            by_gateway.setdefault(job.cfg.pk, []).append(job)

        async def worker(pending: Iterator[Job]) -> None:
            for job in pending:
                await self.call_job(loop, job)

        workers = []
        for group in by_gateway.values():
            assert group[0].cfg is not None
            pending = iter(group)
            count = min(self.window(group[0].cfg), len(group))
            workers += [worker(pending) for _ in range(count)]
        await asyncio.gather(*workers)

    async def call_job(self, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        """One gateway call: the lean client for types that have one, else the thread pool."""
        gateway = self.wire_gateway(job.cfg) if self._shared_http is None else None
        if gateway is None:
            await loop.run_in_executor(self.pool, self.call, job)
            return
        await self._call_wire(job, gateway, self.wire)

    async def _call_wire(self, job: Job, gateway: Gateway, pool: WirePool) -> None:
        cfg = job.cfg
        assert cfg is not None

        def record(exchange: Exchange) -> None:
            job.request_log = exchange.request[:4000]
            job.response_log = exchange.response[:4000]

        started = time.monotonic()
        try:
            job.result = await gateway.send_async(self.message(job), pool, record)
        except GatewayError as exc:
            job.error = exc
        except Exception as exc:  # a bug or an unexpected library error: retried, logged
            _unexpected(job, cfg, exc)
        job.duration_ms = int((time.monotonic() - started) * 1000)

    def message(self, job: Job) -> OutgoingMessage:
        cfg = job.cfg
        assert cfg is not None
        row = job.row
        base = self.base_url
        template, interactive = outgoing_parts(job.payload)
        return OutgoingMessage(
            message_id=row["id"],
            channel=row["channel"],
            text=row["text"],
            to=row["phone_number"],
            sender=job.sender,
            segments=row["segments"] or 1,
            encoding=row["encoding"] or "GSM",
            subject=row["subject"],
            email_to=row["email_address"],
            status_url=f"{base}/gateways/{cfg.type}/{cfg.inbound_key}/status" if base else "",
            template=template,
            interactive=interactive,
        )

    def call(self, job: Job) -> None:
        """One gateway call on this thread (the thread pool's path)."""
        cfg = job.cfg
        assert cfg is not None
        message = self.message(job)
        started = time.monotonic()
        gateway: Gateway | None = None
        try:
            gateway = self.gateway(cfg)
            job.result = gateway.send(message)
        except GatewayError as exc:
            job.error = exc
        except Exception as exc:  # a bug or an unexpected library error: retried, logged
            _unexpected(job, cfg, exc)
        job.duration_ms = int((time.monotonic() - started) * 1000)
        exchange = gateway.last_exchange if gateway is not None else None
        if exchange is not None:
            job.request_log = str(exchange.request)[:4000]
            job.response_log = str(exchange.response)[:4000]


def _unexpected(job: Job, cfg: GatewayConfig, exc: Exception) -> None:
    """A gateway call that failed with something other than a GatewayError (a bug or an
    unexpected library error): logged, and recorded as a retryable internal error."""
    log.exception("gateway %s failed unexpectedly", cfg.name)
    job.error = GatewayError(
        GATEWAY_ERROR, retryable=True, detail=f"internal: {type(exc).__name__}"
    )
    job.error_code = "INTERNAL_SERVER_ERROR"
