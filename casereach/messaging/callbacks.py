"""Provider callbacks under ``/gateways/{gateway_type}/{inbound_key}/…``.

The inbound key in the URL is the credential: an unknown key gets 401 and nothing is stored.
Parsing is the gateway type's job; storing the result is ours. On SQLite the inbound webhook's
database work is done by one worker thread (``SqliteWorker``) while the request waits for it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from ninja import Router
from pydantic import Field

from casereach.core import bulk
from casereach.core.errors import BadRequest, CasereachError
from casereach.core.openapi import ApiError, OpenSchema
from casereach.core.requests import public_base_url
from casereach.core.rows import RawRows
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import instantiate
from casereach.gateways.registry import gateway_class
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.inbound import InboundResult, batched, do_receive
from casereach.messaging.inbound_queue import do_queue_inbound, queues_inbound

log = logging.getLogger(__name__)
router = Router(tags=["gateway callbacks"], auth=None)
MAX_CALLBACK_BYTES = 64 * 1024


class PayloadTooLarge(CasereachError):
    status = 413


class UnknownKey(CasereachError):
    status = 401


class BadSignature(CasereachError):
    status = 403


# Response documents. The views answer HttpResponse/JsonResponse, which ninja passes through
# untouched, so these schemas only document (they never filter a field out).


CALLBACK_ERRORS: dict[int, Any] = {
    400: ApiError,  # a body the gateway type cannot read
    401: ApiError,  # no gateway of that type has that inbound key
    403: ApiError,  # a signed provider's (Twilio's) signature is missing or wrong
    413: ApiError,  # a body over MAX_CALLBACK_BYTES
}


class StatusCallbackOut(OpenSchema):
    received: int = Field(description="delivery reports in the callback")
    applied: int = Field(description="those that changed a message")


class InboundMessageResult(OpenSchema):
    id: str | None
    duplicate: bool
    action: str


class InboundOut(OpenSchema):
    status: str = Field(json_schema_extra={"enum": ["received"]})
    messages: list[InboundMessageResult]


INBOUND_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "Received. JSON for most gateway types; Twilio gets empty TwiML "
            "(text/xml).",
            "content": {
                "text/xml": {
                    "schema": {"type": "string"},
                    "example": '<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
                }
            },
        }
    }
}


INBOUND_GET_DOC: dict[str, Any] = {
    "responses": {
        200: {
            "description": "Received. Kannel gets an empty text/plain body, so it sends no SMS "
            "back.",
            "content": {"text/plain": {"schema": {"type": "string"}, "example": ""}},
        }
    }
}


# Callbacks arrive by the thousand for a handful of gateways: the configuration and its
# instantiated Gateway (decrypted secrets, validated config) are kept per key, and reused only
# while the row read by every request is unchanged to the byte — an edited, re-keyed or
# deleted gateway is seen by the next request. Callbacks only parse with them, never send.
_GATEWAY = RawRows(GatewayConfig)
_GATEWAY_SQL = (
    f"SELECT {_GATEWAY.columns('g')} FROM gateways_gatewayconfig g"
    " WHERE g.type = %s AND g.inbound_key = %s"
)
_MAX_CACHED = 256
_cache: dict[tuple[str, str], tuple[tuple[Any, ...], GatewayConfig, Gateway]] = {}
_cache_lock = threading.Lock()


def callback_gateway(gateway_type: str, inbound_key: str) -> tuple[GatewayConfig, Gateway]:
    """The gateway with this type and inbound key, and its instantiated Gateway, for one
    light query; UnknownKey (401) when there is none. The GatewayConfig returned is shared:
    read it, never change it."""
    key = (gateway_type, inbound_key)
    read: dict[tuple[str, str], tuple[GatewayConfig, Gateway]] | None = getattr(
        _batch_read, "gateways", None
    )
    if read is not None and key in read:  # read already in this batch's transaction
        return read[key]
    with connection.cursor() as cursor:
        cursor.execute(_GATEWAY_SQL, [gateway_type, inbound_key])
        found = cursor.fetchone()
    if found is None:
        raise UnknownKey("unknown gateway key")
    row = tuple(found)
    hit = _cache.get(key)
    if hit is not None and hit[0] == row:
        found_gw, found_gateway = hit[1], hit[2]
    else:
        found_gw = _GATEWAY.build(row)
        found_gateway = instantiate(found_gw)
        with _cache_lock:
            if len(_cache) >= _MAX_CACHED:
                _cache.clear()
            _cache[key] = (row, found_gw, found_gateway)
    if read is not None:
        read[key] = (found_gw, found_gateway)
    return found_gw, found_gateway


# The gateways read by the SQLite worker's current batch (``SqliteWorker._together``): in
# its one write transaction no other writer can change them, and receiving a message never
# does, so the batch's later messages skip the read.
_batch_read = threading.local()


def public_url(request: HttpRequest) -> str:
    """The URL the provider called: CASEREACH_PUBLIC_URL + path when set (behind a proxy),
    else what this server saw."""
    base = public_base_url()
    if base:
        query = request.META.get("QUERY_STRING", "")
        return base + request.path + (f"?{query}" if query else "")
    return request.build_absolute_uri()


def check_signature(request: HttpRequest, gateway: Gateway, form: dict[str, str]) -> None:
    """Providers that sign their callbacks (Twilio) must sign them right."""
    validate = getattr(gateway, "valid_callback_signature", None)
    if validate is None:
        return
    signature = request.headers.get("X-Twilio-Signature", "")
    post_only = {k: request.POST.get(k, "") for k in request.POST}
    if not signature or not validate(public_url(request), post_only, signature):
        raise BadSignature("invalid or missing request signature")


@router.api_operation(
    ["POST"],
    "/gateways/{gateway_type}/{inbound_key}/status",
    operation_id="gateway_status_callback",
    summary="Delivery reports from a provider",
    response={200: StatusCallbackOut, **CALLBACK_ERRORS},
)
def status_callback(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    return _status(request, gateway_type, inbound_key)


@router.api_operation(
    ["GET"],
    "/gateways/{gateway_type}/{inbound_key}/status",
    operation_id="gateway_status_callback_get",
    summary="Delivery reports from a provider that calls with GET (Kannel's dlr-url)",
    response={200: StatusCallbackOut, **CALLBACK_ERRORS, 405: ApiError},
)
def status_callback_get(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if not _takes_get(gateway_type):
        return HttpResponseNotAllowed(["POST"])
    return _status(request, gateway_type, inbound_key)


def _takes_get(gateway_type: str) -> bool:
    """Whether the type's provider calls its webhooks with GET; True for an unknown type,
    which the key lookup then answers 401 as POST does."""
    try:
        return gateway_class(gateway_type).callbacks_by_get
    except KeyError:
        return True


def _status(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"callback bodies are limited to {MAX_CALLBACK_BYTES} bytes")
    gw, gateway = callback_gateway(gateway_type, inbound_key)
    content_type = request.content_type or ""
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))
    try:
        form = {k: request.POST.get(k, "") for k in request.POST} if is_form else {}
        form.update({k: request.GET.get(k, "") for k in request.GET if k not in form})
    except Exception as exc:  # Django's form parsing: bad multipart, too many fields, …
        raise BadRequest(f"malformed callback body: {type(exc).__name__}") from None
    check_signature(request, gateway, form)
    try:
        updates = gateway.parse_status(form, request.body, content_type)
    except ValueError as exc:
        raise BadRequest(f"malformed status callback: {exc}") from None
    applied = sum(1 for u in updates if do_apply_status_update(gw, u))
    return JsonResponse({"received": len(updates), "applied": applied})


T = TypeVar("T")
MAX_BATCH = 32  # inbound messages sharing one SQLite transaction, at most


@dataclass
class _Job:
    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class SqliteWorker:
    """The inbound webhook's database work on SQLite, done in turn by one thread on one
    long-lived connection.

    SQLite has one writer at a time. A request thread doing its own work opens a connection
    for every request (set up, page cache cold, closed after), and then, for every statement,
    waits for the interpreter lock held by the other request threads — all while it holds the
    database's write lock, so every other inbound message waits as well. One thread with a warm
    connection and its prepared statements gets through more messages a second; the request
    threads keep the HTTP work and wait for their result (the reply still follows the commit).
    Messages that arrive while it is busy are received together in one transaction (one commit
    for all, in arrival order); if one of them fails inside it, nothing of that transaction is
    kept and each is received again on its own, so a failure stays with its own message.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the worker thread; its result, or its exception raised here."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._loop, name="casereach-inbound-db", daemon=True
                    )
                    self._thread.start()
        job = _Job(fn)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def after_fork(self) -> None:
        """A forked child has no worker thread: it starts its own when it needs one."""
        self._jobs = queue.SimpleQueue()
        self._thread = None
        self._start = threading.Lock()

    def _loop(self) -> None:
        while True:
            batch = [self._jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                if len(batch) == 1 or not self._together(batch):
                    for job in batch:
                        self._alone(job)
            except BaseException as exc:  # the loop itself failed: no job may wait forever
                for job in batch:
                    job.error = job.error or exc
                raise
            finally:
                for job in batch:
                    job.done.set()

    def _alone(self, job: _Job) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # for the waiting request thread to raise
            job.error = exc
            if isinstance(exc, DatabaseError):
                connection.close()  # the next job starts on a fresh connection

    def _together(self, batch: list[_Job]) -> bool:
        """The jobs waiting together in one transaction (one commit for all); False, with
        nothing kept, when one failed inside it and the others must not share its fate."""
        _batch_read.gateways = {}
        try:
            with batched():
                for job in batch:
                    try:
                        job.result = job.fn()
                    except Exception as exc:
                        if connection.needs_rollback or isinstance(exc, DatabaseError):
                            raise _Replay from exc
                        job.error = exc  # refused before writing anything (401, 400, 403)
        except (_Replay, DatabaseError) as exc:
            for job in batch:
                job.result, job.error = None, None
            if isinstance(exc, DatabaseError) or isinstance(exc.__cause__, DatabaseError):
                connection.close()
            return False
        finally:
            _batch_read.gateways = None
        return True


class _Replay(Exception):
    """A job failed inside the shared transaction: run each job again on its own."""


_worker = SqliteWorker()
os.register_at_fork(after_in_child=_worker.after_fork)


def on_db_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on the SQLite worker thread, or here when that cannot help: on PostgreSQL, or
    inside a transaction (whose uncommitted rows another connection would not see)."""
    if not bulk.one_writer_database() or connection.in_atomic_block or _worker.is_current():
        return fn()
    return _worker.run(fn)


def _form_of(request: HttpRequest) -> dict[str, str]:
    content_type = request.content_type or ""
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/"))
    try:
        form = {k: request.POST.get(k, "") for k in request.POST} if is_form else {}
        form.update({k: request.GET.get(k, "") for k in request.GET if k not in form})
    except Exception as exc:  # Django's form parsing: bad multipart, too many fields, …
        raise BadRequest(f"malformed body: {type(exc).__name__}") from None
    return form


@router.api_operation(
    ["POST"],
    "/gateways/{gateway_type}/{inbound_key}/inbound",
    operation_id="gateway_inbound_sms",
    summary="Inbound SMS from a provider",
    response={200: InboundOut, **CALLBACK_ERRORS},
    openapi_extra=INBOUND_DOC,
)
def inbound_sms(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    """Each type reads its provider's native format; the message is stored once per
    provider message id and handled in the same request (SPEC 6)."""
    return _inbound(request, gateway_type, inbound_key)


@router.api_operation(
    ["GET"],
    "/gateways/{gateway_type}/{inbound_key}/inbound",
    operation_id="gateway_inbound_sms_get",
    summary="Inbound SMS from a provider that calls with GET (Kannel's sms-service get-url)",
    response={200: InboundOut, **CALLBACK_ERRORS, 405: ApiError},
    openapi_extra=INBOUND_GET_DOC,
)
def inbound_sms_get(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    """The fields are in the query; the answer is the type's (Kannel: an empty body)."""
    if not _takes_get(gateway_type):
        return HttpResponseNotAllowed(["POST"])
    return _inbound(request, gateway_type, inbound_key)


def _inbound(request: HttpRequest, gateway_type: str, inbound_key: str) -> HttpResponse:
    if len(request.body) > MAX_CALLBACK_BYTES:
        raise PayloadTooLarge(f"inbound bodies are limited to {MAX_CALLBACK_BYTES} bytes")

    def receive() -> tuple[Gateway, list[InboundResult]]:
        # On the SQLite worker (see SqliteWorker), while this thread waits for it.
        gw, gateway = callback_gateway(gateway_type, inbound_key)
        form = _form_of(request)
        check_signature(request, gateway, form)
        try:
            messages = gateway.parse_inbound(form, request.body, request.content_type or "")
        except ValueError as exc:
            raise BadRequest(f"malformed inbound message: {exc}") from None
        if queues_inbound():  # scale-out: a worker handles them (messaging/inbound_queue.py)
            return gateway, do_queue_inbound(gw, messages)
        return gateway, [do_receive(gw, m) for m in messages]

    gateway, results = on_db_thread(receive)
    status, content_type, body = gateway.inbound_reply(None)
    if content_type == "application/json":
        return JsonResponse(
            {
                "status": "received",
                "messages": [
                    {"id": r.message_id or None, "duplicate": r.duplicate, "action": r.action}
                    for r in results
                ],
            },
            status=status,
        )
    return HttpResponse(body, status=status, content_type=content_type)
