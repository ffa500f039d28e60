"""The ``casereach serve`` a ``bench send`` phase measures: its database (fresh, with the bench
project and an API key), the subprocess (``--no-workers`` to accept only, or with its embedded
dispatcher), the set-up through the API, and what the server says about its messages (the
``/metrics`` outbox counts, and the message log's failed and postponed messages by error
code)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx

from casereach.bench.sendprovider import free_port
from casereach.bench.workspace import PROJECT, BenchError, Workspace

API_USER = "bench-send@example.org"
API = f"/a/{PROJECT}/api/messaging/v1"
GATEWAY = "FAKE"
SENDER = "CLINIC"
DAILY_LIMIT = 100_000_000  # the most the settings allow; the default 50,000 would postpone
LOG_TAIL = 5  # lines of serve's log quoted when it dies


class Instance:
    """One fresh database and the ``casereach serve`` processes started on it in turn."""

    def __init__(self, ws: Workspace, name: str, template: Instance | None = None) -> None:
        """A fresh database: migrated, with the bench project and an API key; on SQLite a
        copy of ``template``'s file when given (made the same way, never served)."""
        self.ws, self.name = ws, name
        self.auth: str
        if template is not None and ws.vendor == "sqlite":
            self.target = ws.database(name)
            shutil.copyfile(template.target.url, self.target.url)
            self.auth = template.auth
        else:
            self.target = ws.fresh(name)
            key = ws.cli(
                self.target, "apikey", "create", "--project", PROJECT, "--username", API_USER
            )
            self.auth = f"ApiKey {API_USER}:{key.strip().splitlines()[-1].strip()}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": self.auth}, timeout=120
        )
        self.codes: list[str] = []
        self.log_path = ws.root / f"serve-{name}.log"

    @property
    def env(self) -> dict[str, str]:
        env = self.ws.env(self.target)
        env["CASEREACH_API_RATE"] = "1000000"  # the per-key limit (100/s) would cap the accept
        return env

    def serve(self, *, workers: bool) -> int:
        """Start ``casereach serve`` (with its dispatcher when ``workers``); returns the
        CLOCK_MONOTONIC ns at which it was started, once ``/healthz`` answers."""
        argv = [sys.executable, "-m", "casereach", "serve", "--port", str(self.port)]
        if not workers:
            argv.append("--no-workers")
        started = time.monotonic_ns()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.ws.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 120
        while True:
            self.check_alive()
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return started
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: casereach serve did not become healthy in 120 s")
            time.sleep(0.05)

    def log_tail(self) -> str:
        """The last lines serve wrote (it logs warnings and errors only)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in lines[-LOG_TAIL:])

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"{self.name}: casereach serve exited ({self.proc.returncode}): {self.log_tail()}"
            )

    def _get(self, path: str, **params: str) -> httpx.Response:
        """GET from serve; a failed request is a BenchError quoting serve's log."""
        try:
            return self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            self.check_alive()
            raise BenchError(
                f"{self.name}: GET {path} failed ({exc!r}); serve's log ends: {self.log_tail()}"
            ) from None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.client.close()

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        resp = self.client.request(method, API + path, json=body)
        if resp.status_code != expect:
            raise BenchError(
                f"{self.name}: {method} {path} answered {resp.status_code}: {resp.text[:300]}"
            )
        return resp.json()

    def configure(
        self,
        provider_url: str,
        *,
        rate_limit_per_s: float | None = None,
        max_in_flight: int | None = None,
        daily_limit: int = DAILY_LIMIT,
    ) -> bool:
        """Lift the daily limit, add the gateway (GET, as the peer bench's) and route to it.
        Returns whether the gateway config took ``max_in_flight`` (False when not asked)."""
        self.call("PATCH", "/settings", {"daily_limit": daily_limit})
        config: dict[str, Any] = {
            "url": provider_url,
            "method": "GET",
            "params": {"from": SENDER, "to": "{to}", "text": "{text}"},
            "provider_id_path": "id",
        }
        gateway: dict[str, Any] = {
            "name": GATEWAY,
            "type": "http",
            "rate_limit_per_s": rate_limit_per_s,
            "config": config,
        }
        took = False
        if max_in_flight is not None:
            resp = self.client.post(
                API + "/gateways",
                json={**gateway, "config": {**config, "max_in_flight": max_in_flight}},
            )
            took = resp.status_code == 201
            if not took and "max_in_flight" not in resp.text:
                raise BenchError(
                    f"{self.name}: POST /gateways answered {resp.status_code}: {resp.text[:300]}"
                )
        if not took:
            self.call("POST", "/gateways", gateway, expect=201)
        self.call("PUT", "/routes", {"default_gateway": GATEWAY, "prefixes": []})
        self.codes = [e["code"] for e in self.call("GET", "/error-codes")["objects"]]
        return took

    def outbox(self) -> dict[str, int]:
        """``/metrics``: outbound messages by status."""
        text = self._get("/metrics").text
        return {
            m.group(1): int(float(m.group(2)))
            for m in re.finditer(
                r'casereach_outbox_messages\{status="([a-z_]+)"\} ([0-9.e+]+)', text
            )
        }

    def _total(self, **params: str) -> int:
        resp = self._get(API + "/messages", **params, limit="1")
        if resp.status_code != 200:
            raise BenchError(f"{self.name}: GET /messages answered {resp.status_code}")
        return int(resp.json()["meta"]["total_count"])

    def trouble(self) -> str:
        """'' while no message has failed or been put off (queued again with an error code:
        postponed, or waiting for a retry); else those counts by status and error code."""
        codes = ",".join(self.codes)
        failed = self._total(status="failed")
        held = self._total(status="queued", error_code=codes) if codes else 0
        if not failed and not held:
            return ""
        parts = []
        for status, count, filt in (
            ("failed", failed, {"status": "failed"}),
            ("postponed or retrying", held, {"status": "queued", "error_code": codes}),
        ):
            if not count:
                continue
            page = self._get(API + "/messages", **filt, limit="1000")
            seen = Counter(str(m.get("error_code")) for m in page.json()["objects"])
            by_code = ", ".join(
                f"{code} x {self._total(status=filt['status'], error_code=code):,}"
                if code in self.codes
                else f"{code} x {n:,}"
                for code, n in seen.most_common()
            )
            parts.append(f"{count:,} {status} ({by_code})")
        return "; ".join(parts)
