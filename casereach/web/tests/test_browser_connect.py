"""The "Connect to CommCare" page in headless Chromium against a real ``casereach serve`` and
the fake CommCare HQ (``casereach.testing.commcare_hq``): a key for HQ's Connection Settings,
a case forwarded with it, the write-back settings and their test call, a failed write shown
and retried. Screenshots go to the browser tests' folder and to ``CASEREACH_CONNECT_SHOTS``
(for the closing note) as ``connect-*.png``."""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from casereach.testing.commcare_hq import CaseApi, FakeHq, HqCase, HttpSender
from casereach.web.tests.conftest import SHOTS, Page

pytestmark = pytest.mark.browser

HQ_USER, HQ_KEY = "hq-user@example.org", "s3cret-hq-key"
PHONE = "254712000999"
EXTRA = os.environ.get("CASEREACH_CONNECT_SHOTS", "")


def shot(page: Page, name: str) -> None:
    page.shot(f"connect-{name}")
    if EXTRA:
        Path(EXTRA).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / f"connect-{name}-1280.png", Path(EXTRA) / f"connect-{name}.png")


@pytest.fixture
def hq() -> Iterator[CaseApi]:
    # Forwarding goes nowhere until the test has a key (the sender is replaced then).
    fake = FakeHq("demo", lambda path, body, headers: 0, real_clock=True)
    server = CaseApi(fake, username=HQ_USER, api_key=HQ_KEY)
    yield server
    server.close()


def save(page: Page, url: str, key: str) -> None:
    p = page.page
    p.get_by_label("HQ URL").fill(url)
    p.get_by_label("Project space").fill("demo")
    p.get_by_label("HQ username").fill(HQ_USER)
    p.get_by_label("HQ API key").fill(key)
    p.get_by_role("button", name="Save write-back settings").click()
    expect(p.get_by_role("status").first).to_contain_text("Write-back settings saved.")


def test_connect_page_key_forwarding_test_button_and_retry(page: Page, hq: CaseApi) -> None:
    page.login()
    page.goto("/a/demo/connect")
    p = page.page
    expect(p.get_by_role("heading", name="Connect to CommCare")).to_be_visible()
    expect(p.locator("#forwarding-url-json")).to_have_text(
        page.server.url + "/a/demo/api/commcare/case-forwarding/"
    )
    shot(page, "empty")

    # A key for HQ's Connection Settings, shown once; HQ forwards a case with it (Basic).
    p.get_by_role("button", name="Create an API key for HQ").click()
    key = p.locator("#new-key-value").inner_text()
    shot(page, "key")
    basic = base64.b64encode(f"commcare-hq-demo:{key}".encode()).decode()
    sender = HttpSender(page.server.url, f"Basic {basic}")
    hq.hq.send = sender
    try:
        verified = {"contact_phone_number": PHONE, "contact_phone_number_is_verified": "yes"}
        hq.hq.save(HqCase("hq-case-1", "mother", "Zawadi", "owner-1", properties=verified))
        assert [] == hq.deliver()
    finally:
        sender.close()
    page.goto("/a/demo/connect")
    expect(p.locator("#new-key-value")).to_have_count(0)  # never shown again
    expect(p.locator("#last-forwarded")).to_contain_text("hq-case-1")
    expect(p.locator("#last-forwarded .outcome")).to_have_text("applied")

    # Write-back with a wrong key: the test button says 401; with the right one, ok.
    save(page, hq.url, "wrong-key")
    p.get_by_role("button", name="Test the connection").click()
    expect(p.locator("#test-result")).to_have_attribute("data-kind", "unauthorized")
    shot(page, "test-401")

    # A change casereach makes to that case (the demo's WEIGHT keyword, by SMS from the case's
    # number) fails against HQ with that key.
    gateways = httpx.get(
        page.server.url + "/a/demo/api/messaging/v1/gateways",
        headers={"Authorization": f"Bearer {key}"},
    ).json()["objects"]
    inbound = next(g["inbound_url"] for g in gateways if g["name"] == "DEMO-TEST")
    reply = httpx.post(
        re.sub(r"^https?://[^/]+", page.server.url, inbound),
        data={"from": PHONE, "to": "5550000", "text": "WEIGHT 3.6"},
    )
    assert reply.status_code < 300, reply.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page.goto("/a/demo/connect")
        if p.locator("#backlog [data-status=failed]").inner_text() != "0":
            break
        time.sleep(0.3)
    expect(p.locator("#backlog table")).to_contain_text("HTTP 401")
    shot(page, "failed")

    save(page, hq.url, HQ_KEY)
    p.get_by_role("button", name="Test the connection").click()
    expect(p.locator("#test-result")).to_have_attribute("data-kind", "ok")
    expect(p.locator("#test-result")).to_contain_text("Test passed")
    shot(page, "test-ok")
    p.get_by_role("button", name=re.compile(r"^Retry write-back")).first.click()
    expect(p.get_by_role("status").first).to_contain_text("queued again")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page.goto("/a/demo/connect")
        if p.locator("#backlog [data-status=failed]").inner_text() == "0":
            break
        time.sleep(0.3)
    expect(p.locator("#backlog [data-status=failed]")).to_have_text("0")
    expect(p.locator("#backlog table")).to_contain_text("No failed write.")
    # The retried write is queued again at once; the sender loop delivers it a moment later.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if hq.hq.cases["hq-case-1"].properties.get("baby_weight_kg") is not None:
            break
        time.sleep(0.2)
    assert "3.6" == hq.hq.cases["hq-case-1"].properties.get("baby_weight_kg")
    shot(page, "retried")


def test_the_nav_links_the_page_for_an_admin(page: Page) -> None:
    page.login()
    page.goto("/a/demo/connect")
    expect(page.page.get_by_role("button", name="Create an API key for HQ")).to_be_visible()
    expect(page.page.get_by_role("link", name="CommCare")).to_have_attribute("aria-current", "page")
