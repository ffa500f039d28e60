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

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

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
NOT_A_USER_LATER = "not_a_user_later"
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


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str, retry_after: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


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


class FakeWhatsApp:
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
                raise _Refused(401, 190, "Invalid OAuth access token - Cannot parse access token")
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
            raise _Refused(400, 100, f"Unsupported {request.method} request to {path}")
        except _Refused as refused:
            with self._lock:
                self.refused.append((request, refused.code, refused.message))
            headers = {"Retry-After": refused.retry_after} if refused.retry_after else {}
            return refused.status, self._error(request, refused), headers, 0.0

    def _error(self, request: RecordedRequest, refused: _Refused) -> dict[str, Any]:
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
            raise _Refused(400, 100, "The request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _Refused(400, 100, "The request body must be an object")
        cloud = request.path != "/v1/messages"
        if cloud and data.get("messaging_product") != "whatsapp":
            raise _Refused(400, 100, "The parameter messaging_product is required.")
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise _Refused(400, 100, "Content-Type must be application/json")
        to = data.get("to")
        if not isinstance(to, str) or not to.isdigit() or not 7 <= len(to) <= 15:
            raise _Refused(400, 131009, "Parameter value is not valid: to")
        if to == self.business_number:
            raise _Refused(400, 131021, "Recipient cannot be sender.")
        kind = data.get("type")
        if kind == "text":
            self._check_text(data)
        elif kind == "template":
            self._check_template(data)
        elif kind == "interactive":
            self._check_interactive(data)
        else:
            raise _Refused(400, 100, f"Unsupported message type {kind!r}")
        behaviour = self.behaviours.get(to, "")
        delay = 0.0
        if behaviour == NOT_A_USER:
            raise _Refused(400, 131026, "Message undeliverable: not a WhatsApp user")
        if behaviour == SERVER_ERROR:
            raise _Refused(500, 131000, "Something went wrong")
        if behaviour == RATE_LIMITED:
            raise _Refused(400, 130429, "Rate limit hit", retry_after="7")
        outside = behaviour == OUTSIDE_WINDOW or (
            self.enforce_window and to not in self.open_windows
        )
        if outside and kind != "template":
            raise _Refused(
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

    def _check_text(self, data: Mapping[str, Any]) -> None:
        text = data.get("text")
        body = text.get("body") if isinstance(text, dict) else None
        if not isinstance(body, str) or not body.strip():
            raise _Refused(400, 100, "The parameter text['body'] is required.")
        if len(body) > 4096:
            raise _Refused(400, 100, "text['body'] is longer than 4096 characters")

    def _check_template(self, data: Mapping[str, Any]) -> None:
        template = data.get("template")
        if not isinstance(template, dict):
            raise _Refused(400, 100, "The parameter template is required.")
        name, language = template.get("name"), template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        found = next(
            (
                t
                for t in self.templates
                if t.name == name and t.language == code and t.status == "APPROVED"
            ),
            None,
        )
        if found is None:
            raise _Refused(
                404, 132001, f"Template name does not exist in the translation: {name} ({code})"
            )
        params: list[Any] = []
        for component in template.get("components") or []:
            if isinstance(component, dict) and component.get("type") == "body":
                params = list(component.get("parameters") or [])
        if len(params) != found.params:
            raise _Refused(
                400,
                132000,
                f"Number of parameters does not match: expected {found.params}, "
                f"received {len(params)}",
            )
        for param in params:
            if not (
                isinstance(param, dict)
                and param.get("type") == "text"
                and isinstance(param.get("text"), str)
                and param["text"].strip()
            ):
                raise _Refused(400, 132012, "Parameter format does not match")

    def _check_interactive(self, data: Mapping[str, Any]) -> None:
        interactive = data.get("interactive")
        if not isinstance(interactive, dict):
            raise _Refused(400, 100, "The parameter interactive is required.")
        body = interactive.get("body")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text or len(text) > 1024:
            raise _Refused(400, 100, "interactive body text must be 1 to 1024 characters")
        action = interactive.get("action")
        if not isinstance(action, dict):
            raise _Refused(400, 100, "The parameter interactive['action'] is required.")
        if interactive.get("type") == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise _Refused(400, 100, "buttons must hold 1 to 3 buttons")
            titles = []
            for button in buttons:
                reply = button.get("reply") if isinstance(button, dict) else None
                if not isinstance(reply, dict) or button.get("type") != "reply":
                    raise _Refused(400, 100, "each button is a reply button")
                _check_str(reply.get("id"), 256, "button id")
                titles.append(_check_str(reply.get("title"), 20, "button title"))
            if len(set(titles)) != len(titles):
                raise _Refused(400, 100, "button titles must be unique")
        elif interactive.get("type") == "list":
            _check_str(action.get("button"), 20, "list button")
            sections = action.get("sections")
            if not isinstance(sections, list) or not sections:
                raise _Refused(400, 100, "a list needs sections")
            rows = [
                row
                for section in sections
                if isinstance(section, dict)
                for row in (section.get("rows") or [])
            ]
            if not 1 <= len(rows) <= 10:
                raise _Refused(400, 100, "a list holds 1 to 10 rows")
            for row in rows:
                if not isinstance(row, dict):
                    raise _Refused(400, 100, "each row is an object")
                _check_str(row.get("id"), 200, "row id")
                _check_str(row.get("title"), 24, "row title")
                if "description" in row:
                    _check_str(row["description"], 72, "row description")
        else:
            raise _Refused(400, 100, f"unsupported interactive type {interactive.get('type')!r}")

    def _template_page(self, request: RecordedRequest) -> dict[str, Any]:
        query = request.query_one()
        fields = set(query.get("fields", "").split(","))
        if not {"name", "language", "status", "components"} <= fields:
            raise _Refused(400, 100, "fields must name name,language,status,components")
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

    # --- webhooks ------------------------------------------------------------------------------

    def sign(self, body: bytes) -> dict[str, str]:
        """The signature header the provider sends with ``body``."""
        if self.flavour == "cloud":
            digest = hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()
            return {"X-Hub-Signature-256": "sha256=" + digest}
        raw = hmac.new(self.hook_secret.encode(), body, hashlib.sha256).digest()
        return {"X-Turn-Hook-Signature": base64.b64encode(raw).decode()}

    def webhook_body(
        self, *, statuses: Iterable[dict[str, Any]] = (), messages: Iterable[dict[str, Any]] = ()
    ) -> bytes:
        """A webhook body as the provider posts it (Meta's envelope, or Turn's bare value)."""
        value: dict[str, Any] = {}
        messages = list(messages)
        if messages:
            value["contacts"] = [
                {"profile": {"name": "Fake Person"}, "wa_id": m["from"]} for m in messages
            ]
            value["messages"] = messages
        statuses = list(statuses)
        if statuses:
            value["statuses"] = statuses
        if self.flavour == "turn":
            return json.dumps(value).encode()
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.business_number,
                "phone_number_id": self.phone_number_id,
            },
            **value,
        }
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
        return json.dumps(envelope).encode()

    def post(self, url: str, body: bytes, *, signed: bool = True) -> httpx.Response:
        headers = {"Content-Type": "application/json", **(self.sign(body) if signed else {})}
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def status(
        self,
        wamid: str,
        status: str,
        *,
        recipient: str = "",
        category: str = "",
        error_code: int | None = None,
    ) -> dict[str, Any]:
        """One status object (``pricing`` when a category is given)."""
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": recipient or self._recipient(wamid),
        }
        if category:
            item["conversation"] = {"id": "conv-" + wamid, "origin": {"type": category}}
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category}
        if error_code is not None:
            item["errors"] = [
                {"code": error_code, "title": _ERROR_TITLES.get(error_code, "Failed")}
            ]
        return item

    def _recipient(self, wamid: str) -> str:
        with self._lock:
            return next((m.to for m in self.sent if m.wamid == wamid), "254700000000")

    def post_statuses(
        self,
        url: str,
        wamid: str,
        *statuses: str,
        category: str = "",
        error_code: int | None = None,
    ) -> httpx.Response:
        """Post one webhook with ``statuses`` of ``wamid`` in order."""
        items = [
            self.status(
                wamid, s, category=category, error_code=error_code if s == "failed" else None
            )
            for s in statuses
        ]
        return self.post(url, self.webhook_body(statuses=items))

    def deliver(
        self, url: str, statuses: tuple[str, ...] = ("sent", "delivered"), category: str = "utility"
    ) -> list[httpx.Response]:
        """Report every accepted message not yet reported: ``statuses`` in order, or a
        ``failed`` 131026 for a ``NOT_A_USER_LATER`` recipient."""
        with self._lock:
            pending = [m for m in self.sent if m.wamid not in self.reported]
            self.reported.update(m.wamid for m in pending)
        responses = []
        for message in pending:
            if self.behaviours.get(message.to) == NOT_A_USER_LATER:
                responses.append(
                    self.post_statuses(url, message.wamid, "failed", error_code=131026)
                )
            else:
                responses.append(
                    self.post_statuses(url, message.wamid, *statuses, category=category)
                )
        return responses

    def _inbound(self, sender: str, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        self.open_window(sender)
        return {
            "from": sender,
            "id": f"wamid.IN{next(self._ids):08d}",
            "timestamp": str(int(time.time())),
            "type": kind,
            kind: part,
        }

    def post_text(self, url: str, sender: str, text: str) -> httpx.Response:
        message = self._inbound(sender, "text", {"body": text})
        return self.post(url, self.webhook_body(messages=[message]))

    def post_button_reply(self, url: str, sender: str, reply_id: str, title: str) -> httpx.Response:
        part = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
        return self.post(
            url, self.webhook_body(messages=[self._inbound(sender, "interactive", part)])
        )

    def post_list_reply(self, url: str, sender: str, reply_id: str, title: str) -> httpx.Response:
        part = {"type": "list_reply", "list_reply": {"id": reply_id, "title": title}}
        return self.post(
            url, self.webhook_body(messages=[self._inbound(sender, "interactive", part)])
        )

    def post_template_button(
        self, url: str, sender: str, text: str, payload: str
    ) -> httpx.Response:
        part = {"text": text, "payload": payload}
        return self.post(url, self.webhook_body(messages=[self._inbound(sender, "button", part)]))

    def post_caption(
        self, url: str, sender: str, caption: str, kind: str = "image"
    ) -> httpx.Response:
        part = {"caption": caption, "mime_type": "image/jpeg", "sha256": "0" * 64, "id": "media1"}
        return self.post(url, self.webhook_body(messages=[self._inbound(sender, kind, part)]))


_ERROR_TITLES = {
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "Meta chose not to deliver",
}


def _check_str(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _Refused(400, 100, f"{what} must be 1 to {limit} characters")
    return value
