"""A real local HTTP server standing in for Meta's WhatsApp Cloud API and for Turn.io.

It checks every request as the provider would — path, API version, phone number id, WABA id,
bearer token, the message JSON, that a template exists and is approved in that language with
the right number of parameters, interactive limits — and answers as Meta does (a wamid, or an
error with Meta's code). It also posts signed webhooks, like the provider, to a URL of ours.

Start it, point a gateway at it, script recipients::

    with FakeWhatsApp(flavour="cloud") as fake:          # or flavour="turn"
        fake.add_template("visit_reminder", "en", "Hi {{1}}, your visit is on {{2}}.")
        fake.behave("254700000002", NOT_A_USER)           # see BEHAVIOURS
        gateway = WhatsAppCloudGateway(fake.gateway_config())   # or TurnGateway
        gateway.send(message)                             # checked, answered as Meta does
        fake.sent                                         # the messages it accepted
        fake.post_statuses(url, fake.sent[0].wamid, "delivered", category="utility")
        fake.post_text(url, sender="254700000001", text="STOP")
        fake.deliver(url)       # sent + delivered (or the scripted async failure) for
                                # every accepted message not yet reported

Behaviours by recipient: ``NOT_A_USER`` (131026 at once), ``NOT_A_USER_LATER`` (accepted, then
a ``failed`` status with 131026 from ``deliver``), ``OUTSIDE_WINDOW`` (free text refused with
131047; templates pass), ``SERVER_ERROR`` (HTTP 500), ``RATE_LIMITED`` (130429 with
Retry-After), ``SLOW`` (answers after ``slow_s``). ``enforce_window=True`` refuses free text to
every number that has not written (``post_text`` and friends, or ``open_window``) — as Meta
does outside the 24-hour window.

Tests only: the wheel does not ship ``casereach.testing``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from casereach.testing.fake_whatsapp_checks import (
    Refused,
    check_interactive,
    check_template,
    check_text,
)
from casereach.testing.fake_whatsapp_hooks import NOT_A_USER_LATER, WebhookPoster
from casereach.testing.provider import RecordedRequest

__all__ = [
    "BEHAVIOURS",
    "NOT_A_USER",
    "NOT_A_USER_LATER",
    "OUTSIDE_WINDOW",
    "RATE_LIMITED",
    "SERVER_ERROR",
    "SLOW",
    "FakeTemplate",
    "FakeWhatsApp",
    "SentMessage",
]

NOT_A_USER = "not_a_user"
OUTSIDE_WINDOW = "outside_window"
SERVER_ERROR = "server_error"
RATE_LIMITED = "rate_limited"
SLOW = "slow"
BEHAVIOURS = frozenset(
    {NOT_A_USER, NOT_A_USER_LATER, OUTSIDE_WINDOW, SERVER_ERROR, RATE_LIMITED, SLOW}
)

TOKEN = "EAAfaketoken0123456789"  # noqa: S105 (the fake's made-up credentials)
APP_SECRET = "fake-app-secret-42"  # noqa: S105
HOOK_SECRET = "fake-turn-hook-secret"  # noqa: S105
VERIFY_TOKEN = "fake-verify-token"  # noqa: S105
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
BUSINESS_NUMBER = "15550001111"
API_VERSION = "v21.0"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass
class FakeTemplate:
    name: str
    language: str
    body: str
    status: str = "APPROVED"
    category: str = "UTILITY"

    @property
    def params(self) -> int:
        return len(set(_PLACEHOLDER.findall(self.body)))


@dataclass(frozen=True)
class SentMessage:
    """A message the fake accepted."""

    wamid: str
    to: str
    type: str
    payload: dict[str, Any]
    path: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeWhatsApp


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        recorded = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, payload, headers, delay = self.server.fake._answer(recorded)
        if delay:
            time.sleep(delay)
        content = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class FakeWhatsApp(WebhookPoster):
    """Meta's Cloud API (``/{version}/{phone_number_id}/messages``,
    ``/{version}/{waba_id}/message_templates``) and Turn's (``/v1/messages``,
    ``/graph/{version}/{waba_id}/message_templates``) on one local server; ``flavour`` picks
    which the webhooks and ``gateway_config`` imitate."""

    def __init__(
        self,
        flavour: Literal["cloud", "turn"] = "cloud",
        *,
        page_size: int = 2,
        slow_s: float = 1.0,
        enforce_window: bool = False,
    ) -> None:
        self.flavour = flavour
        self.token = TOKEN
        self.phone_number_id = PHONE_NUMBER_ID
        self.waba_id = WABA_ID
        self.business_number = BUSINESS_NUMBER
        self.api_version = API_VERSION
        self.app_secret = APP_SECRET
        self.hook_secret = HOOK_SECRET
        self.verify_token = VERIFY_TOKEN
        self.page_size = page_size
        self.slow_s = slow_s
        self.enforce_window = enforce_window
        self.templates: list[FakeTemplate] = []
        self.behaviours: dict[str, str] = {}
        self.open_windows: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        self.refused: list[tuple[RecordedRequest, int, str]] = []  # (request, code, message)
        self.reported: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeWhatsApp:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="fake-wa", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeWhatsApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def gateway_config(self, **overrides: Any) -> dict[str, Any]:
        """A config for the ``whatsapp_cloud`` (or ``turn``) type pointing here."""
        if self.flavour == "cloud":
            config: dict[str, Any] = {
                "phone_number_id": self.phone_number_id,
                "waba_id": self.waba_id,
                "access_token": self.token,
                "app_secret": self.app_secret,
                "verify_token": self.verify_token,
                "api_version": self.api_version,
                "base_url": self.url,
            }
        else:
            config = {
                "number": self.business_number,
                "access_token": self.token,
                "hook_secret": self.hook_secret,
                "waba_id": self.waba_id,
                "api_version": self.api_version,
                "base_url": self.url,
            }
        return {**config, **overrides}

    # --- scripting -----------------------------------------------------------------------------

    def add_template(
        self,
        name: str,
        language: str,
        body: str,
        *,
        status: str = "APPROVED",
        category: str = "UTILITY",
    ) -> FakeTemplate:
        template = FakeTemplate(name, language, body, status, category)
        with self._lock:
            self.templates.append(template)
        return template

    def behave(self, to: str, behaviour: str) -> None:
        """Script how sends to ``to`` are answered (one of ``BEHAVIOURS``)."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        with self._lock:
            self.behaviours[to] = behaviour

    def open_window(self, number: str) -> None:
        with self._lock:
            self.open_windows.add(number)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self.refused.clear()
            self.reported.clear()
            self.behaviours.clear()
            self.open_windows.clear()
            self._ids = itertools.count(1)

    # --- answering -----------------------------------------------------------------------------

    def _answer(
        self, request: RecordedRequest
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        with self._lock:
            self.requests.append(request)
        try:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                raise Refused(401, 190, "Invalid OAuth access token - Cannot parse access token")
            path = request.path
            version = self.api_version
            if request.method == "POST" and path in (
                f"/{version}/{self.phone_number_id}/messages",
                "/v1/messages",
            ):
                return self._message(request)
            if request.method == "GET" and path in (
                f"/{version}/{self.waba_id}/message_templates",
                f"/graph/{version}/{self.waba_id}/message_templates",
            ):
                return 200, self._template_page(request), {}, 0.0
            raise Refused(400, 100, f"Unsupported {request.method} request to {path}")
        except Refused as refused:
            with self._lock:
                self.refused.append((request, refused.code, refused.message))
            headers = {"Retry-After": refused.retry_after} if refused.retry_after else {}
            return refused.status, self._error(request, refused), headers, 0.0

    def _error(self, request: RecordedRequest, refused: Refused) -> dict[str, Any]:
        if request.path == "/v1/messages":  # Turn: the on-premises API's error list
            return {"errors": [{"code": refused.code, "title": refused.message}]}
        return {
            "error": {
                "message": refused.message,
                "type": "OAuthException",
                "code": refused.code,
                "error_data": {"messaging_product": "whatsapp", "details": refused.message},
                "fbtrace_id": "AbCdEfFake",
            }
        }

    def _message(
        self, request: RecordedRequest
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise Refused(400, 100, "The request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, 100, "The request body must be an object")
        cloud = request.path != "/v1/messages"
        if cloud and data.get("messaging_product") != "whatsapp":
            raise Refused(400, 100, "The parameter messaging_product is required.")
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise Refused(400, 100, "Content-Type must be application/json")
        to = data.get("to")
        if not isinstance(to, str) or not to.isdigit() or not 7 <= len(to) <= 15:
            raise Refused(400, 131009, "Parameter value is not valid: to")
        if to == self.business_number:
            raise Refused(400, 131021, "Recipient cannot be sender.")
        kind = data.get("type")
        if kind == "text":
            check_text(data)
        elif kind == "template":
            check_template(data, self.templates)
        elif kind == "interactive":
            check_interactive(data)
        else:
            raise Refused(400, 100, f"Unsupported message type {kind!r}")
        behaviour = self.behaviours.get(to, "")
        delay = 0.0
        if behaviour == NOT_A_USER:
            raise Refused(400, 131026, "Message undeliverable: not a WhatsApp user")
        if behaviour == SERVER_ERROR:
            raise Refused(500, 131000, "Something went wrong")
        if behaviour == RATE_LIMITED:
            raise Refused(400, 130429, "Rate limit hit", retry_after="7")
        outside = behaviour == OUTSIDE_WINDOW or (
            self.enforce_window and to not in self.open_windows
        )
        if outside and kind != "template":
            raise Refused(
                400, 131047, "Re-engagement message: more than 24 hours since the last reply"
            )
        if behaviour == SLOW:
            delay = self.slow_s
        wamid = f"wamid.FAKE{next(self._ids):08d}"
        with self._lock:
            self.sent.append(SentMessage(wamid, to, kind, data, request.path))
        reply: dict[str, Any] = {"messages": [{"id": wamid}]}
        if cloud:
            reply = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                **reply,
            }
        return 200, reply, {}, delay

    def _template_page(self, request: RecordedRequest) -> dict[str, Any]:
        query = request.query_one()
        fields = set(query.get("fields", "").split(","))
        if not {"name", "language", "status", "components"} <= fields:
            raise Refused(400, 100, "fields must name name,language,status,components")
        limit = min(int(query.get("limit", "25") or 25), self.page_size)
        start = int(query.get("after", "0") or 0)
        with self._lock:
            page = self.templates[start : start + limit]
            total = len(self.templates)
        data = [
            {
                "name": t.name,
                "language": t.language,
                "status": t.status,
                "category": t.category,
                "components": [{"type": "BODY", "text": t.body}],
                "id": str(1000 + start + i),
            }
            for i, t in enumerate(page)
        ]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + limit)}}
        if start + limit < total:
            next_query = urlencode(
                {"fields": query.get("fields", ""), "limit": str(limit), "after": start + limit}
            )
            paging["next"] = f"{self.url}{request.path}?{next_query}"
        return {"data": data, "paging": paging}
