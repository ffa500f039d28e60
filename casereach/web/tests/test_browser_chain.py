"""One message's fallback chain in headless Chromium (issue 21): WhatsApp → SMS → delivered.

A real ``casereach serve`` sends a message to a contact of the ``chain`` project, whose channel
order is WhatsApp, SMS, email. The local fake of Meta's Cloud API answers "not a WhatsApp
user" (131026); the chain moves on to SMS over an ``http`` gateway pointed at the local fake
provider, which accepts it; a ``delivered`` report posted to the SMS gateway's status URL ends
the message delivered. The test reads the chain back through the message-log API, the message
detail's ``chain`` and the messaging-event API, then shows it on the Messages page.

It writes the record the closing note quotes to build/chain-record.md and screenshots
fallback-chain-{1280,360}.png and fallback-log-{1280,360}.png."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from casereach.testing.fake_whatsapp import NOT_A_USER, FakeWhatsApp
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.world import case_body
from casereach.web.tests.conftest import ROOT, Page

pytestmark = pytest.mark.browser

RECORD = ROOT / "build" / "chain-record.md"
NUMBER = "254712300777"
AUTH = ("cm", "cm-password-1")  # the chain project's web user (seed_browser)
M = "/messaging/v1"
TEXT = "Clinic visit tomorrow at 9"
SMS_ID = "sms-chain-1"


def _api(page: Page) -> httpx.Client:
    return httpx.Client(base_url=page.server.url + "/a/chain/api", auth=AUTH, timeout=30)


def _until(what: str, probe: Callable[[], Any]) -> Any:
    """Poll the server (its dispatcher sends in the background) until ``probe`` is truthy."""
    for _ in range(300):
        got = probe()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _setup(api: httpx.Client, fake: FakeWhatsApp, provider: ProviderServer) -> dict[str, Any]:
    """The SMS and WhatsApp gateways, the channel order, the contact; the gateways' replies."""
    sms = {
        "url": provider.url + "/send",
        "params": {"to": "{to}", "text": "{text}", "key": "{message_id}"},
        "provider_id_path": "id",
        "timeout_s": 5,
    }
    r = api.post(f"{M}/gateways", json={"name": "SMS-HTTP", "type": "http", "config": sms})
    assert 201 == r.status_code, r.text
    http_gw = r.json()
    r = api.put(f"{M}/routes", json={"default_gateway": "SMS-HTTP", "prefixes": []})
    assert 200 == r.status_code, r.text
    wa = {"name": "WA-CLOUD", "type": "whatsapp_cloud", "config": fake.gateway_config()}
    r = api.post(f"{M}/gateways", json=wa)
    assert 201 == r.status_code, r.text
    wa_gw = r.json()
    r = api.put(f"{M}/settings", json={"channel_order": ["whatsapp", "sms", "email"]})
    assert 200 == r.status_code, r.text
    assert ["whatsapp", "sms", "email"] == r.json()["channel_order"]
    r = api.post("/case/v2/", json=case_body(name="Amina Chain", phone="+" + NUMBER))
    assert 200 == r.status_code, r.text
    return {"http": http_gw, "wa": wa_gw, "case_id": r.json()["case"]["case_id"]}


def _webhook_url(gw: dict[str, Any]) -> str:
    """The WhatsApp gateway's one webhook URL (…/gateways/whatsapp_cloud/{key}/webhook)."""
    url = gw.get("inbound_url") or gw["status_url"]
    return str(url).rsplit("/", 1)[0] + "/webhook"


def _chain(api: httpx.Client, mid: str) -> list[dict[str, Any]]:
    r = api.get(f"{M}/messages/{mid}")
    assert 200 == r.status_code, r.text
    return r.json()["chain"]  # type: ignore[no-any-return]


def _write_record(
    mid: str, rows: list[dict[str, Any]], chain: list[dict[str, Any]], event: dict[str, Any]
) -> Path:
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    table = [
        f"| {m['chain_step']} | {m['channel']} | {m['gateway']} | {m['status']} | "
        f"{m['error_code'] or ''} | {m['fallback_reason'] or ''} | "
        f"created {m['created_on']}<br>sent {m['sent_on'] or '—'}<br>"
        f"delivered {m['delivered_on'] or '—'}<br>failed {m['failed_on'] or '—'}<br>"
        f"moved on {m['moved_on_at'] or '—'} |"
        for m in rows
    ]
    keep = ("id", "chain_id", "chain_step", "channel", "gateway", "status", "error_code")
    keep += ("fallback_reason", "moved_on", "moved_on_at", "sent_on", "delivered_on")
    log_excerpt = [{k: m.get(k) for k in keep} for m in rows]
    event_keep = (
        "type",
        "channel",
        "status",
        "chain_id",
        "chain_step",
        "fallback_reason",
        "moved_on",
    )
    event_excerpt = {
        "id": event.get("id"),
        "status": event["status"],
        "messages": [{k: m.get(k) for k in event_keep} for m in event["messages"]],
    }
    RECORD.write_text(
        "# One message through WhatsApp failure → SMS → delivered\n\n"
        "Recorded by `casereach/web/tests/test_browser_chain.py` against a real `casereach "
        "serve`: project channel order `whatsapp, sms, email`; a `whatsapp_cloud` gateway "
        "pointed at the local fake of Meta's Cloud API, which answers 131026 (not a WhatsApp "
        "user) for the number; an `http` SMS gateway pointed at the local fake provider, which "
        f"accepts; then `delivered` posted to the SMS gateway's status URL. Text: “{TEXT}”.\n\n"
        f"Chain `{mid}` from `GET …/messaging/v1/messages?chain_id={mid}`:\n\n"
        "| step | channel | gateway | status | error code | fallback reason | times (UTC) |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(table) + "\n\n"
        "The message log (`GET …/messaging/v1/messages?chain_id=…`, fields that tell the "
        "chain):\n\n```json\n" + json.dumps(log_excerpt, indent=2) + "\n```\n\n"
        f"The message detail's `chain` (`GET …/messaging/v1/messages/{mid}`):\n\n```json\n"
        + json.dumps(chain, indent=2)
        + "\n```\n\nThe messaging-event API (`GET …/api/v0.5/messaging-event/`): one event, "
        "both attempts in it, in order:\n\n```json\n"
        + json.dumps(event_excerpt, indent=2)
        + "\n```\n\nScreenshots: `fallback-chain-1280.png`, `fallback-chain-360.png` (the "
        "Messages page of this chain), `fallback-log-1280.png` (the message log).\n"
    )
    return RECORD


def test_a_message_moves_from_whatsapp_to_sms_and_is_delivered(page: Page) -> None:
    with FakeWhatsApp() as fake, ProviderServer() as provider, _api(page) as api:
        ids = _setup(api, fake, provider)
        # The number wrote on WhatsApp (inside the 24-hour window: free text may go), but
        # Meta answers every send to it "not a WhatsApp user".
        r = fake.post_text(_webhook_url(ids["wa"]), sender=NUMBER, text="hello")
        assert 200 == r.status_code, r.text
        fake.behave(NUMBER, NOT_A_USER)
        provider.script("/send", Reply(200, {"id": SMS_ID}))

        r = api.post(f"{M}/send", json={"contact_id": ids["case_id"], "text": TEXT})
        assert 202 == r.status_code, r.text
        mid = r.json()["messages"][0]["id"]
        _until(
            "the SMS attempt sent", lambda: [a["status"] for a in _chain(api, mid)][1:] == ["sent"]
        )

        assert [(131026, "Message undeliverable: not a WhatsApp user")] == [
            (code, message) for _, code, message in fake.refused
        ]
        assert [] == fake.sent
        assert [(NUMBER, TEXT)] == [(q.form()["to"], q.form()["text"]) for q in provider.requests]

        r = httpx.post(ids["http"]["status_url"], data={"id": SMS_ID, "status": "delivered"})
        assert 200 == r.status_code, r.text
        _until("SMS delivered", lambda: _chain(api, mid)[1]["status"] == "delivered")

        chain = _chain(api, mid)
        assert [
            (
                1,
                "whatsapp",
                "WA-CLOUD",
                "failed",
                "WHATSAPP_NOT_A_USER",
                "not_a_whatsapp_user",
                True,
            ),
            (2, "sms", "SMS-HTTP", "delivered", None, None, False),
        ] == [
            (
                a["chain_step"],
                a["channel"],
                a["gateway"],
                a["status"],
                a["error_code"],
                a["fallback_reason"],
                a["moved_on"],
            )
            for a in chain
        ]
        assert mid == chain[0]["id"]
        r = api.get(f"{M}/messages", params={"chain_id": mid})
        assert 200 == r.status_code, r.text
        # The log lists newest first, as it always does; the chain reads by its steps.
        rows = sorted(r.json()["objects"], key=lambda m: m["chain_step"])
        assert [(mid, 1), (mid, 2)] == [(m["chain_id"], m["chain_step"]) for m in rows]
        assert [a["id"] for a in chain] == [m["id"] for m in rows]
        assert rows[0]["moved_on_at"] is not None
        assert rows[1]["delivered_on"] is not None
        assert (None, False) == (rows[1]["moved_on_at"], rows[1]["moved_on"])

        r = api.get("/v0.5/messaging-event/")
        assert 200 == r.status_code, r.text
        events = [
            e for e in r.json()["objects"] if any(m.get("chain_id") == mid for m in e["messages"])
        ]
        assert 1 == len(events)
        assert [("whatsapp", 1, "not_a_whatsapp_user", True), ("sms", 2, None, False)] == [
            (m["channel"], m["chain_step"], m["fallback_reason"], m["moved_on"])
            for m in events[0]["messages"]
        ]
        assert "completed" == events[0]["status"]

    # The Messages page of the chain: both attempts, in order, with the reason and the status.
    page.login("cm", "cm-password-1")
    p = page.page
    page.goto(f"/a/chain/messages?chain_id={mid}")
    expect(p.locator("#chain-note")).to_be_visible()
    trs = p.locator("table.messages tbody tr")
    expect(trs).to_have_count(2)
    first, second = trs.nth(0), trs.nth(1)
    expect(first.locator(".chain-step")).to_have_text("step 1 · whatsapp")
    expect(first.locator(".pill")).to_have_text("failed")
    expect(first.locator(".moved-on")).to_have_text("moved on: not_a_whatsapp_user")
    expect(first).to_contain_text("WHATSAPP_NOT_A_USER")
    expect(first).to_contain_text("WA-CLOUD")
    expect(second.locator(".chain-step")).to_have_text("step 2 · sms")
    expect(second.locator(".pill")).to_have_text("delivered")
    expect(second.locator(".moved-on")).to_have_count(0)
    expect(second).to_contain_text("SMS-HTTP")
    expect(second).to_contain_text(TEXT)
    p.set_viewport_size({"width": 360, "height": 800})
    assert p.evaluate("document.documentElement.scrollWidth") <= 360
    page.shot("fallback-chain")

    # The whole log: the chain's link leads back to the same page.
    page.goto("/a/chain/messages")
    link = p.locator("a.chain-step", has_text="step 1 · whatsapp")
    expect(link).to_have_count(1)
    page.shot("fallback-log")
    link.click()
    expect(p.locator("table.messages tbody tr")).to_have_count(2)

    out = _write_record(mid, rows, chain, events[0])
    print(f"chain record: {out}")
