"""The write-back sender: leases due writes (``writeback.claim``), calls HQ's Case API v2,
records each outcome (``writeback.complete``). Runs as a loop of the embedded ``serve`` and
as the ``casereach.commcare_writeback`` task in scale-out mode.

The HTTP client comes from the caller (``client_factory``): the runners pass
``gateways.netpolicy.make_client``, so write-back obeys the outbound network policy (cases
sits below gateways and cannot import it).

Outcomes::

    200/201                         sent (HQ's case id, form id and server_last_modified kept)
    408, 429, 5xx                   retried with backoff (429/503 ``Retry-After`` honoured)
    other 4xx                       failed (HQ's error text); holds the case's later writes
    connect error / connect timeout retried (nothing was sent)
    read/write timeout, connection
    dropped after sending           retried as the same request: outcome unknown
    after MAX_ATTEMPTS              failed

A **reopen** cannot be written through Case API v2 (it has no field for it, 2.3): the sender
reads the case (``GET …/v2/<case_id>``) and records the write sent when HQ has it open, and
failed otherwise, with an error saying to reopen it in HQ, then Retry. A write whose indices
name a case HQ has not created yet waits (retried with backoff) until it has.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
from dateutil import parser as dateparser

from casereach.cases.writeback import FAILED, QUEUED, SENT, Claimed, Outcome, claim, complete, reap
from casereach.core.timeutil import as_utc, now
from casereach.projects.models import Project
from casereach.projects.settings_schema import CommCareSettings, effective_settings

log = logging.getLogger("casereach.cases.writeback")

TIMEOUT_ENV = "CASEREACH_COMMCARE_TIMEOUT_S"
RETRY_BASE_ENV = "CASEREACH_COMMCARE_RETRY_BASE_S"
MAX_ATTEMPTS = 12
MAX_BACKOFF_S = 3600.0
MAX_ERROR = 2000
ClientFactory = Callable[[float], httpx.Client]
REOPEN_ERROR = (
    "CommCare HQ's Case API v2 cannot reopen a case, and HQ still has it closed: reopen it "
    "in CommCare HQ (the case's page, or a form), then press Retry"
)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 600:
        raise ValueError(f"{name} must be between 0 and 600 seconds, got {raw!r}")
    return value


def case_api_url(cc: CommCareSettings, write: Claimed) -> tuple[str, str]:
    """(method, URL) of ``write``: POST a new case; retry a create as the idempotent upsert
    ``PUT /ext/<external_id>/``; PUT an update to HQ's id of the case."""
    base = f"{cc.url}/a/{quote(cc.domain, safe='')}/api/case/v2/"
    if write.op == "reopen":
        return "GET", f"{base}{quote(write.hq_case_id, safe='')}"
    if write.op == "create":
        if write.attempts <= 1:
            return "POST", base
        return "PUT", f"{base}ext/{quote(str(write.body.get('external_id', '')), safe='')}/"
    return "PUT", f"{base}{quote(write.hq_case_id, safe='')}/"


class WriteBackSender:
    """One per thread (its HTTP client is reused); ``close`` it."""

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        batch_size: int = 20,
        concurrency: int = 4,
        timeout_s: float | None = None,
        retry_base_s: float | None = None,
    ) -> None:
        self.timeout_s = timeout_s or _env_float(TIMEOUT_ENV, 15.0)
        self.retry_base_s = retry_base_s or _env_float(RETRY_BASE_ENV, 5.0)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.client = client_factory(self.timeout_s)
        # A batch's calls run ``concurrency`` at a time: the lease covers every round.
        rounds = math.ceil(batch_size / concurrency)
        self.lease = dt.timedelta(seconds=self.timeout_s * rounds + 5.0)

    def close(self) -> None:
        self.client.close()

    def run_once(self) -> int:
        """Reap expired leases, claim a batch, send it, record the outcomes; how many sent."""
        at = now()
        reaped = reap(at)
        token = uuid.uuid4().hex
        writes = claim(self.batch_size, at + self.lease, token, at)
        if not writes:
            return reaped
        settings = {
            pk: effective_settings(raw).commcare
            for pk, raw in Project.objects.filter(
                pk__in={w.project_id for w in writes}
            ).values_list("pk", "settings")
        }
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            outcomes = list(
                pool.map(lambda w: self.send(w, token, settings.get(w.project_id)), writes)
            )
        complete(outcomes, now())
        return len(writes)

    def send(self, write: Claimed, token: str, cc: CommCareSettings | None) -> Outcome:
        if cc is None or not cc.configured:
            return Outcome(write, token, FAILED, "the project's CommCare connection is not set")
        try:
            key = cc.plain_api_key()
        except ValueError as exc:
            return Outcome(write, token, FAILED, str(exc))
        if write.op != "create" and not write.hq_case_id:
            return Outcome(write, token, FAILED, "HQ's id of this case is not known")
        if write.waits_for:
            error = f"waiting for CommCare HQ to create case {write.waits_for}, which it indexes"
            return self._retry(write, token, error, None, unknown=False)
        method, url = case_api_url(cc, write)
        headers = {
            "Authorization": f"ApiKey {cc.username}:{key}",
            "User-Agent": "casereach-writeback",
        }
        try:
            body = None if method == "GET" else write.body
            response = self.client.request(method, url, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return self._retry(write, token, f"{type(exc).__name__}: {exc}", None, unknown=False)
        except httpx.TransportError as exc:  # sent, answer lost: the same request again
            return self._retry(write, token, f"{type(exc).__name__}: {exc}", None, unknown=True)
        return self._answer(write, token, response)

    def _answer(self, write: Claimed, token: str, response: httpx.Response) -> Outcome:
        status = response.status_code
        text = response.text[:MAX_ERROR]
        if write.op == "reopen" and 200 <= status < 300:
            return self._reopened(write, token, response)
        if 200 <= status < 300:
            try:
                data: Any = response.json()
            except ValueError:
                data = {}
            case = data.get("case") if isinstance(data, dict) else None
            case = case if isinstance(case, dict) else {}
            modified = _parse_time(case.get("server_last_modified"))
            return Outcome(
                write,
                token,
                SENT,
                http_status=status,
                hq_case_id=str(case.get("case_id") or write.hq_case_id),
                hq_form_id=str(data.get("form_id") or "") if isinstance(data, dict) else "",
                hq_modified_on=modified,
            )
        error = f"HTTP {status}: {_error_text(text)}"
        if status in (408, 429) or status >= 500:
            wait = _retry_after(response.headers.get("Retry-After"))
            return self._retry(write, token, error, status, unknown=False, wait_s=wait)
        return Outcome(write, token, FAILED, error, http_status=status)

    def _reopened(self, write: Claimed, token: str, response: httpx.Response) -> Outcome:
        """HQ's answer to the read of a case we reopened: sent when HQ has it open."""
        try:
            case: Any = response.json()
        except ValueError:
            case = None
        if not isinstance(case, dict) or not isinstance(case.get("closed"), bool):
            error = f"HTTP {response.status_code}: HQ's answer is not a Case API v2 case"
            return Outcome(write, token, FAILED, error, http_status=response.status_code)
        if case["closed"]:
            return Outcome(write, token, FAILED, REOPEN_ERROR, http_status=response.status_code)
        return Outcome(
            write,
            token,
            SENT,
            http_status=response.status_code,
            hq_case_id=write.hq_case_id,
        )

    def _retry(
        self,
        write: Claimed,
        token: str,
        error: str,
        status: int | None,
        *,
        unknown: bool,
        wait_s: float | None = None,
    ) -> Outcome:
        if write.attempts >= MAX_ATTEMPTS:
            return Outcome(
                write,
                token,
                FAILED,
                f"gave up after {write.attempts} attempts: {error}",
                status,
                unknown=unknown,
            )
        if wait_s is None:
            wait_s = min(self.retry_base_s * 2 ** (write.attempts - 1), MAX_BACKOFF_S)
        at = now() + dt.timedelta(seconds=wait_s)
        return Outcome(write, token, QUEUED, error[:MAX_ERROR], status, unknown, retry_at=at)


def _error_text(text: str) -> str:
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:500]
    return text.strip()[:500]


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), MAX_BACKOFF_S)
    return None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        return None
