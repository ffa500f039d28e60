"""A fake CommCare HQ for tests: cases as HQ holds them, and its Data Forwarding (case
repeater) posting them the way HQ does (reference/commcare-api.md 6.1):

- one POST per case change, carrying the case's whole current state, as XML (``text/xml``,
  the ``<case>`` element HQ's ``V2CaseXMLGenerator`` writes: ``create`` on every state,
  ``close`` when closed, ``index`` when indexed) or JSON (the lite case serializer);
- the header ``server-modified-on``, HQ's server time of the change;
- a non-2xx answer or a transport error is retried later, up to ``max_attempts``, then the
  record is cancelled;
- on request, records go out of order and some twice (``deliver(shuffle=…, repeat=…)``).

``send`` is how a record reaches the receiver: ``client_sender`` (Django's test client, in
process) or ``http_sender`` (httpx, against a running server).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

Format = Literal["xml", "json"]
Send = Callable[[str, bytes, dict[str, str]], int]  # (path, body, headers) → status
CASE_NS = "http://commcarehq.org/case/transaction/v2"
FORWARDING = "/a/{project}/api/commcare/case-forwarding/"


def hq_time(when: dt.datetime) -> str:
    """HQ's datetime format for forwarded cases: ``…ffffffZ``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class HqCase:
    """A case as HQ holds it."""

    case_id: str
    case_type: str
    case_name: str
    owner_id: str
    user_id: str = ""
    external_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    indices: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # name → case_id, case_type, relationship
    closed: bool = False
    date_opened: dt.datetime | None = None
    date_modified: dt.datetime | None = None
    server_modified_on: dt.datetime | None = None


def case_xml(case: HqCase) -> bytes:
    """The case as ``case.to_xml(V2, include_case_on_closed=True)`` writes it."""
    assert case.date_modified is not None
    date_opened = (case.date_opened or case.date_modified).date().isoformat()
    update = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in case.properties.items())
    if case.external_id:
        update = f"<external_id>{escape(case.external_id)}</external_id>" + update
    index = "".join(
        f"<{name} case_type={quoteattr(i['case_type'])}"
        + (' relationship="extension"' if i.get("relationship") == "extension" else "")
        + f">{escape(i['case_id'])}</{name}>"
        for name, i in case.indices.items()
    )
    owner = case.owner_id or case.user_id
    return (
        f'<case xmlns="{CASE_NS}" case_id={quoteattr(case.case_id)} '
        f"user_id={quoteattr(case.user_id)} "
        f'date_modified="{hq_time(case.date_modified)}">'
        f"<create><case_type>{escape(case.case_type)}</case_type>"
        f"<case_name>{escape(case.case_name)}</case_name>"
        f"<owner_id>{escape(owner)}</owner_id></create>"
        f"<update><date_opened>{date_opened}</date_opened>{update}</update>"
        + (f"<index>{index}</index>" if index else "")
        + ("<close/>" if case.closed else "")
        + "</case>"
    ).encode()


def case_json(case: HqCase, domain: str) -> bytes:
    """The case as ``to_api_json(lite=True)`` gives it."""
    assert case.date_modified is not None and case.server_modified_on is not None
    opened = case.date_opened or case.date_modified
    body: dict[str, Any] = {
        "domain": domain,
        "case_id": case.case_id,
        "user_id": case.user_id,
        "closed": case.closed,
        "xform_ids": [],
        "date_closed": hq_time(case.date_modified) if case.closed else None,
        "date_modified": hq_time(case.date_modified),
        "server_date_modified": hq_time(case.server_modified_on),
        "properties": {
            "case_name": case.case_name,
            "case_type": case.case_type,
            "owner_id": case.owner_id or case.user_id,
            "external_id": case.external_id,
            "date_opened": opened.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            **case.properties,
        },
        "indices": {
            name: {
                "case_id": i["case_id"],
                "case_type": i["case_type"],
                "relationship": i.get("relationship", "child"),
            }
            for name, i in case.indices.items()
        },
        "attachments": {},
    }
    return json.dumps(body).encode()


@dataclass
class Record:
    """A repeat record: one case state, in one format, and its delivery attempts."""

    state: HqCase
    fmt: Format
    attempts: list[int] = field(default_factory=list)  # status per attempt (0: transport error)
    cancelled: bool = False

    @property
    def delivered(self) -> bool:
        return bool(self.attempts) and 200 <= self.attempts[-1] < 300

    def payload(self, domain: str) -> tuple[bytes, dict[str, str]]:
        assert self.state.server_modified_on is not None
        headers = {"server-modified-on": hq_time(self.state.server_modified_on)}
        if self.fmt == "xml":
            return case_xml(self.state), {**headers, "Content-Type": "text/xml"}
        return case_json(self.state, domain), {**headers, "Content-Type": "application/json"}


class FakeHq:
    """HQ's cases and its case repeater for one project space (``domain``)."""

    def __init__(
        self,
        domain: str,
        send: Send,
        *,
        fmt: Format | Literal["alternate"] = "xml",
        max_attempts: int = 3,
        start: dt.datetime | None = None,
        real_clock: bool = False,
    ) -> None:
        self.domain = domain
        self.send = send
        self.fmt = fmt
        self.max_attempts = max_attempts
        self.cases: dict[str, HqCase] = {}
        self.queue: list[Record] = []
        self.records: list[Record] = []
        self.clock = start or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        self.real_clock = real_clock  # HQ's times follow the wall clock (write-back tests)

    def _tick(self) -> dt.datetime:
        self.clock += dt.timedelta(milliseconds=1)
        if self.real_clock:
            self.clock = max(self.clock, dt.datetime.now(dt.UTC))
        return self.clock

    def _format(self) -> Format:
        if self.fmt == "alternate":
            return "xml" if len(self.records) % 2 == 0 else "json"
        return self.fmt

    def save(self, case: HqCase, *, fmt: Format | None = None) -> Record:
        """A change in HQ (a form or an API call): the case's new state is queued for
        forwarding, stamped with HQ's server time."""
        when = self._tick()
        state = replace(
            case,
            properties=dict(case.properties),
            indices={k: dict(v) for k, v in case.indices.items()},
            date_opened=case.date_opened or when,
            date_modified=case.date_modified or when,
            server_modified_on=when,
        )
        self.cases[case.case_id] = state
        record = Record(state, fmt or self._format())
        self.queue.append(record)
        self.records.append(record)
        return record

    def attempt(self, record: Record) -> int:
        body, headers = record.payload(self.domain)
        try:
            status = self.send(FORWARDING.replace("{project}", self.domain), body, headers)
        except OSError:
            status = 0
        record.attempts.append(status)
        return status

    def deliver(
        self,
        *,
        shuffle: float = 0.0,
        repeat: float = 0.0,
        rng: random.Random | None = None,
        batch: list[Record] | None = None,
    ) -> list[Record]:
        """Send every queued record: a ``shuffle`` share of them moved later than their
        turn, a ``repeat`` share sent twice; failures retried (after the others) until
        delivered or ``max_attempts``. Returns the records that were cancelled."""
        rng = rng or random.Random(0)
        if batch is None:
            batch, self.queue = self.queue, []
        order = list(batch)
        for record in [r for r in batch if rng.random() < shuffle]:
            i = order.index(record)  # out of order: sent after later changes
            order.pop(i)
            order.insert(rng.randint(i, len(order)), record)
        order += [r for r in batch if rng.random() < repeat]
        pending = order
        for _ in range(self.max_attempts):
            failed = [r for r in pending if not 200 <= self.attempt(r) < 300]
            if not failed:
                return []
            pending = list({id(r): r for r in failed}.values())
        for record in pending:
            record.cancelled = True
        return pending


def client_sender(client: Any, auth: str) -> Send:
    """Posts through Django's test client (in process)."""

    def send(path: str, body: bytes, headers: dict[str, str]) -> int:
        extra = {
            "HTTP_" + k.upper().replace("-", "_"): v
            for k, v in headers.items()
            if k.lower() != "content-type"
        }
        response = client.post(
            path,
            body,
            content_type=headers.get("Content-Type", "application/octet-stream"),
            HTTP_AUTHORIZATION=auth,
            **extra,
        )
        return int(response.status_code)

    return send


class HttpSender:
    """Posts over HTTP to a running server, on one connection pool (``close`` it)."""

    def __init__(self, base_url: str, auth: str, *, timeout: float = 30.0) -> None:
        import httpx

        self.auth = auth
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def __call__(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        import httpx

        try:
            response = self.http.post(
                path, content=body, headers={**headers, "Authorization": self.auth}
            )
        except httpx.TransportError as exc:
            raise OSError(str(exc)) from exc
        return response.status_code

    def close(self) -> None:
        self.http.close()


# -- HQ's Case API v2 writes (reference/commcare-api.md 2.1-2.5), for write-back tests ----------

Fault = Literal["500", "timeout", "drop", "drop-before"]
# What a Case API v2 create or update may carry (2.3); any other key is a 400.
V2_FIELDS = frozenset(
    {"case_type", "case_name", "owner_id", "external_id", "properties", "indices", "close"}
)


def serialize_v2(case: HqCase, domain: str) -> dict[str, Any]:
    """The 14 keys of a Case API v2 case (2.2)."""
    assert case.date_modified is not None and case.server_modified_on is not None
    return {
        "domain": domain,
        "case_id": case.case_id,
        "case_type": case.case_type,
        "case_name": case.case_name,
        "external_id": case.external_id,
        "owner_id": case.owner_id,
        "date_opened": hq_time(case.date_opened or case.date_modified),
        "last_modified": hq_time(case.date_modified),
        "server_last_modified": hq_time(case.server_modified_on),
        "indexed_on": hq_time(case.server_modified_on),
        "closed": case.closed,
        "date_closed": hq_time(case.date_modified) if case.closed else None,
        "properties": dict(case.properties),
        "indices": {k: dict(v) for k, v in case.indices.items()},
    }


@dataclass
class Received:
    """One Case API request as HQ read it, and what became of it."""

    method: str
    path: str
    body: Any
    status: int  # answered (0: no answer: the connection was dropped or timed out)
    applied: bool
    case_id: str | None = None


class CaseApi:
    """HQ's Case API v2 writes on ``hq``'s cases, served over HTTP on 127.0.0.1: ``POST /`` a
    new case, ``PUT /<case_id>/`` an update, ``PUT /ext/<external_id>/`` an upsert. Every
    request is recorded in ``received``. ``faults`` (consumed one per request, in order)
    make a request fail: ``500`` (not applied), ``timeout`` (applied, answered after
    ``slow_s``), ``drop`` (applied, connection closed unanswered), ``drop-before`` (connection
    closed after reading, not applied). Each applied write queues the case's new state on
    ``hq`` for forwarding, as HQ's repeater does (the echo); ``auto_deliver`` sends them
    from a thread every ``deliver_every_s``."""

    def __init__(
        self,
        hq: FakeHq,
        *,
        username: str = "hq-user@example.org",
        api_key: str = "hq-key",
        slow_s: float = 3.0,
        delay_s: float = 0.0,
        auto_deliver: bool = False,
        deliver_every_s: float = 0.05,
    ) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.hq = hq
        self.auth = f"apikey {username}:{api_key}"
        self.slow_s = slow_s
        self.delay_s = delay_s  # every request waits this long before it is applied
        self.faults: list[Fault] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        from casereach.testing.commcare_hq_http import handler

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler(self))
        self.server.daemon_threads = True
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True)]
        if auto_deliver:
            self.threads.append(
                threading.Thread(target=self._deliver_loop, args=(deliver_every_s,), daemon=True)
            )
        for t in self.threads:
            t.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self.threads:
            t.join(10)

    def _deliver_loop(self, every_s: float) -> None:
        while not self.stopping.wait(every_s):
            with self.lock:
                queued = bool(self.hq.queue)
            if queued:
                self.deliver()

    def deliver(self) -> list[Record]:
        """Forward the queued states (the echoes), outside the request lock."""
        with self.lock:
            batch, self.hq.queue = self.hq.queue, []
        return self.hq.deliver(batch=batch) if batch else []

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def apply(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any], str | None]:
        """(status, reply, case id) of one write, applied to ``hq`` when it succeeds."""
        import uuid

        prefix = f"/a/{self.hq.domain}/api/case/v2/"
        if not path.startswith(prefix):
            return 404, {"error": "not found"}, None
        rest = path[len(prefix) :].strip("/")
        if not isinstance(body, dict):
            return 400, {"error": "Payload must be a single JSON object"}, None
        with self.lock:
            if method == "POST" and rest == "":
                if "case_id" in body:
                    return (
                        400,
                        {"error": "You cannot specify case_id when creating a new case"},
                        None,
                    )
                case = HqCase(case_id=str(uuid.uuid4()), case_type="", case_name="", owner_id="")
            elif method == "PUT" and rest.startswith("ext/"):
                ext = rest[4:]
                found = [c for c in self.hq.cases.values() if c.external_id == ext]
                case = found[0] if found else HqCase(str(uuid.uuid4()), "", "", "", external_id=ext)
            elif method == "PUT" and rest:
                if rest not in self.hq.cases:
                    return 400, {"error": f"No case found with ID '{rest}'"}, None
                case = self.hq.cases[rest]
            else:
                return 405, {"error": "Request method not allowed"}, None
            unknown = sorted(set(body) - V2_FIELDS)
            if unknown:
                return 400, {"error": f"'{unknown[0]}' is not a valid field."}, None
            indices = {k: dict(v) for k, v in case.indices.items()}
            for name, idx in (body.get("indices") or {}).items():
                if not idx.get("case_id"):
                    indices.pop(name, None)
                elif idx["case_id"] not in self.hq.cases:
                    error = f"InvalidCaseIndex: Case '{idx['case_id']}' referenced by index"
                    return 400, {"error": f"{error} '{name}' not found"}, None
                else:
                    indices[name] = {k: idx[k] for k in ("case_id", "case_type", "relationship")}
            case = replace(
                case,
                properties={**case.properties, **(body.get("properties") or {})},
                indices=indices,
                date_modified=None,
            )
            for key in ("case_type", "case_name", "owner_id", "external_id"):
                if isinstance(body.get(key), str):
                    setattr(case, key, body[key])
            if body.get("close"):
                case.closed = True
            saved = self.hq.save(case).state
            reply = {"form_id": str(uuid.uuid4()), "case": serialize_v2(saved, self.hq.domain)}
            return 200, reply, saved.case_id

    def record(self, entry: Received) -> None:
        with self.lock:
            self.received.append(entry)
