"""The HTTP side of the fake HQ's Case API v2 (``commcare_hq.CaseApi``): authentication,
injected faults, the writes (``CaseApi.apply``) and the reads (the list and one case)."""

from __future__ import annotations

import json
from typing import Any

from casereach.testing.commcare_hq import CaseApi, Received, serialize_v2


def handler(api: CaseApi) -> Any:
    """The request handler class of ``api``'s HTTP server."""
    import time
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            if (self.headers.get("Authorization") or "").lower() != api.auth.lower():
                self._answer(401, {"error": "unauthorized"})
                api.record(Received(self.command, self.path, body, 401, False))
                return
            if api.delay_s:
                time.sleep(api.delay_s)
            fault = api.next_fault()
            if fault == "drop-before":
                api.record(Received(self.command, self.path, body, 0, False))
                self.close_connection = True
                return
            if fault == "500":
                api.record(Received(self.command, self.path, body, 500, False))
                self._answer(500, {"error": "Internal Server Error"})
                return
            status, reply, case_id = api.apply(self.command, self.path, body)
            applied = status == 200
            if fault == "drop":
                api.record(Received(self.command, self.path, body, 0, applied, case_id))
                self.close_connection = True
                return
            if fault == "timeout":
                api.record(Received(self.command, self.path, body, 0, applied, case_id))
                time.sleep(api.slow_s)
                self.close_connection = True
                return
            api.record(Received(self.command, self.path, body, status, applied, case_id))
            self._answer(status, reply)

        def _answer(self, status: int, reply: dict[str, Any]) -> None:
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = _handle  # noqa: N815 (http.server names them)

        def do_GET(self) -> None:  # the list (the Connect page's test call) or one case
            ok = (self.headers.get("Authorization") or "").lower() == api.auth.lower()
            path = self.path.split("?")[0].rstrip("/")
            base = f"/a/{api.hq.domain}/api/case/v2"
            reply: dict[str, Any] = {}
            with api.lock:
                if path == base:
                    reply = {"matching_records": len(api.hq.cases)}
                elif path.startswith(base + "/") and path[len(base) + 1 :] in api.hq.cases:
                    reply = serialize_v2(api.hq.cases[path[len(base) + 1 :]], api.hq.domain)
            status = (200 if reply else 404) if ok else 401
            api.record(Received("GET", self.path, None, status, False))
            self._answer(status, reply if status == 200 else {})

    return Handler
