"""Browser-test fixtures: a real ``casereach serve`` on a free port over a temporary SQLite
file, and Debian's Chromium driven by Playwright. Any request to a host other than the
local server fails the test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("CASEREACH_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("CASEREACH_SCREENSHOTS", str(ROOT / "build" / "screenshots")))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, url: str, ids: dict[str, Any]) -> None:
        self.url = url
        self.ids = ids


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    env = {
        **os.environ,
        "CASEREACH_DATABASE_URL": str(tmp / "ui.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "casereach.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for name in ("CASEREACH_HTTPS", "CASEREACH_DEBUG"):
        env.pop(name, None)
    ids_file = tmp / "ids.json"
    subprocess.run(
        [sys.executable, "-m", "casereach.web.tests.seed_browser", str(ids_file)],
        env=env,
        check=True,
        cwd=tmp,
        timeout=120,
    )
    port = _free_port()
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "casereach", "serve", "--port", str(port), "--threads", "4"],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                with urlopen(url + "/healthz", timeout=2) as resp:  # noqa: S310 (local URL)
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("casereach serve did not start: " + (tmp / "serve.log").read_text())
        yield Server(url, json.loads(ids_file.read_text()))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and any later test that calls asyncio.run() would fail under it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
            "(apt-get install -y chromium) or set CASEREACH_CHROMIUM; the browser tests "
            "cannot run without it",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


class Page:
    """A Playwright page that records every request to another host and takes
    screenshots at 1280 and 360 px."""

    def __init__(self, page: Any, server: Server) -> None:
        self.page = page
        self.server = server
        self.foreign: list[str] = []
        # Console reports of anything the Content-Security-Policy blocked (inline script or
        # style, eval, a foreign source): the UI must run under the policy untouched.
        self.csp_violations: list[str] = []
        # Every console error (htmx's own, a failed resource such as a missing favicon, an
        # uncaught exception): each fails the test at teardown unless the test expects it.
        self.console_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(f"{self.page.url}: {message.text}")
        elif message.type == "error":
            self.console_errors.append(f"{self.page.url}: {message.text}")

    def _page_error(self, error: Any) -> None:
        self.console_errors.append(f"{self.page.url}: uncaught {error}")

    def goto(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for width in (1280, 360):
            self.page.set_viewport_size({"width": width, "height": 800})
            self.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 800})

    def login(self, username: str = "pm", password: str = "pm-password-1") -> None:  # noqa: S107
        self.goto("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_load_state()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(15_000)
    wrapped = Page(context.new_page(), server)

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            wrapped.foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    yield wrapped
    context.close()
    assert [] == wrapped.foreign, "the UI requested another host"
    assert [] == wrapped.csp_violations, "the page broke the Content-Security-Policy"
    assert [] == wrapped.console_errors, "the browser console reported errors"
