"""A real local HTTP server that plays a provider: what every gateway type's tests send to.

``ProviderServer`` is a real HTTP server (``ThreadingHTTPServer`` on ``127.0.0.1``, a free port,
a background thread). Each test scripts the replies it wants per path — status, headers, body,
an optional delay — and the server records every request it receives.

Tests only: the wheel does not ship ``casereach.testing``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

__all__ = ["ProviderServer", "RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One scripted provider reply. A dict or list body is sent as JSON.

    A header value may be a function, called when the reply is served (for values relative to
    the current time, such as an HTTP-date ``Retry-After``).
    """

    status: int = 200
    body: str | bytes | Mapping[str, Any] | Sequence[Any] = b""
    headers: Mapping[str, str | Callable[[], str]] = field(default_factory=dict)
    delay_s: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = {k: v if isinstance(v, str) else v() for k, v in self.headers.items()}
        if isinstance(self.body, bytes):
            content = self.body
        elif isinstance(self.body, str):
            content = self.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            content = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return content, headers


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        """The body parsed as a form (last value of each key)."""
        parsed = parse_qs(self.body.decode(), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def json(self) -> Any:
        return json.loads(self.body)

    def query_one(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.query.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a dispatcher opens many connections at once (max_in_flight)
    provider: ProviderServer


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
        reply = self.server.provider._take(recorded)
        content, headers = reply.encoded()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout case); nothing to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class ProviderServer:
    """A real local HTTP server that plays a provider from scripted replies.

    Use as a context manager (or ``start()``/``stop()``); ``url`` is ``http://127.0.0.1:<port>``.
    """

    UNSCRIPTED: ClassVar[Reply] = Reply(status=418, body="unscripted request")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: dict[str, deque[Reply]] = {}
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ProviderServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.provider = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="provider", daemon=True)
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

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        """Queue replies for ``path`` (the path only, no query string), used in order."""
        with self._lock:
            self._replies.setdefault(path, deque()).extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()
            self.unexpected.clear()

    def unused(self) -> dict[str, int]:
        """Scripted replies nobody asked for, by path."""
        with self._lock:
            return {path: len(queue) for path, queue in self._replies.items() if queue}

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._replies.get(request.path)
            if queue:
                return queue.popleft()
            self.unexpected.append(request)
            return self.UNSCRIPTED
