"""Survey sessions in headless Chromium (issue 20): the five-question survey of
docs/surveys.md played on the test phone by a Swahili-speaking contact (an invalid answer
gets the retry prompt, a question is skipped after too many invalid answers), its session
page and transcript, the case properties it wrote (read back through the case API), and the
contact's *Surveys* card with a queued survey and *Cancel*.

The test writes the transcript the closing note quotes to build/transcripts/
survey-test-phone.md and screenshots at 1280 and 360 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from casereach.testing.surveys import survey_body
from casereach.testing.world import case_body
from casereach.web.tests.conftest import ROOT, Page

pytestmark = pytest.mark.browser

TRANSCRIPTS = ROOT / "build" / "transcripts"
NUMBER = "254711000555"
AUTH = ("pm", "pm-password-1")  # the web user's password works as Basic credentials
REPLIES = [
    ("3", "Tafadhali jibu 1 au 2. 1 Ndiyo 2 Hapana"),  # not a choice: the retry prompt
    ("hapana", "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha"),  # a label: "no"
    ("9", "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha"),  # invalid: the question again
    ("9", "Ni siku ngapi tangu kujifungua?"),  # invalid again: why_not is skipped
    ("12", "Uzito wa mtoto kwa kilo?"),  # shown because days < 29
    ("3,25", "Zawadi, ziara yako ijayo ni lini? (siku/mwezi/mwaka)"),
    ("5/1/2027", "Asante Zawadi. Ziara ijayo: 2027-01-05."),
]
WRITTEN = {
    "took_medicine": "no",
    "days_since_birth": "12",
    "baby_weight": "3.25",
    "next_visit": "2027-01-05",
}


def _api(page: Page) -> httpx.Client:
    return httpx.Client(base_url=page.server.url + "/a/demo/api", auth=AUTH, timeout=30)


def _seed(page: Page) -> tuple[str, int]:
    """A Swahili-speaking case with a two-way number, and the survey (a name of its own:
    the builder test saves the docs' one in the same server)."""
    with _api(page) as api:
        body = case_body(
            name="Zawadi",
            phone="+" + NUMBER,
            verified="yes",
            external_id="survey-test-phone",
            language_code="sw",
        )
        r = api.post("/case/v2/", json=body)
        assert 200 == r.status_code, r.text
        case_id = r.json()["case"]["case_id"]
        r = api.post("/surveys/v1/surveys", json=survey_body(name="Test phone follow-up"))
        assert 201 == r.status_code, r.text
        return case_id, r.json()["id"]


def _send(p: Any, text: str, expected: str) -> None:
    """Send ``text`` from the test phone; wait for it and the survey's answer to show."""
    bubbles = p.locator("#conversation .bubble")
    before = bubbles.count()
    p.locator("#text").fill(text)
    p.get_by_role("button", name="Send SMS").click()
    expect(bubbles).to_have_count(before + 2)
    expect(bubbles.nth(before)).to_contain_text(text)
    expect(bubbles.last).to_contain_text(expected)


def _shot(page: Page, name: str) -> None:
    """Screenshots at 1280 and 360 px; at 360 px nothing is wider than the screen."""
    p = page.page
    p.set_viewport_size({"width": 360, "height": 800})
    assert p.evaluate("document.documentElement.scrollWidth") <= 360, name
    page.shot(name)


def _write_transcript(lines: list[dict[str, str]], properties: dict[str, Any]) -> Path:
    TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
    out = TRANSCRIPTS / "survey-test-phone.md"
    rows = [
        f"| {'contact' if line['direction'] == 'in' else 'survey'} | {line['text']} | "
        f"{line['result']} |"
        for line in lines
    ]
    written = [f"- `{k}` = `{properties[k]}`" for k in WRITTEN]
    absent = "missed_reason" not in properties
    out.write_text(
        "# A survey played on the test phone\n\n"
        "Recorded by `casereach/web/tests/test_browser_survey_sessions.py` against a real "
        "`casereach serve`: the five-question survey of docs/surveys.md (English and "
        "Swahili) started from the test phone for Zawadi, whose language is Swahili; every "
        "reply typed on the test phone went through the inbound SMS path.\n\n"
        "| From | Text | Result |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nCase properties read back through the case API after the survey completed:\n\n"
        + "\n".join(written)
        + f"\n\n`missed_reason` (the skipped question's property) absent: {absent}.\n"
    )
    return out


def test_a_survey_played_on_the_test_phone_writes_the_case(page: Page) -> None:
    case_id, survey_id = _seed(page)
    page.login()
    p = page.page
    page.goto(f"/a/demo/test-phone?number={NUMBER}")
    expect(p.get_by_role("link", name="Zawadi")).to_be_visible()
    p.get_by_label("Survey", exact=True).select_option(label="Test phone follow-up")
    p.get_by_role("button", name="Start the survey").click()
    expect(p.locator("#survey-started")).to_contain_text("started: the first question was sent")
    expect(p.locator("#conversation .bubble").last).to_contain_text(
        "Habari Zawadi. Umekunywa dawa leo? 1 Ndiyo 2 Hapana"
    )
    expect(p.locator("#phone-survey")).to_have_attribute("data-status", "active")
    for text, expected in REPLIES:
        _send(p, text, expected)
    box = p.locator("#phone-survey")
    expect(box).to_have_attribute("data-status", "completed")
    expect(box.locator("[data-question=why_not]")).to_contain_text("skipped")
    expect(box.locator(".written-properties")).to_contain_text("next_visit=2027-01-05")
    _shot(page, "survey-test-phone")

    with _api(page) as api:
        case = api.get(f"/case/v2/{case_id}/").json()
    props = case["properties"]
    assert WRITTEN == {k: props.get(k) for k in WRITTEN}
    assert "missed_reason" not in props

    # The session page: the whole transcript in order, each reply with its result.
    box.get_by_role("link", name="session #").click()
    expect(p.get_by_role("heading", name="Survey session #")).to_be_visible()
    expect(p.locator("#session-status")).to_contain_text("completed")
    bubbles = p.locator("ol.transcript > li")
    lines = [
        {
            "direction": b.get_attribute("data-direction") or "",
            "text": b.locator(".text").inner_text(),
            "result": b.locator(".result").inner_text() if b.locator(".result").count() else "",
        }
        for b in bubbles.all()
    ]
    expected_texts = ["Habari Zawadi. Umekunywa dawa leo? 1 Ndiyo 2 Hapana"]
    for text, reply in REPLIES:
        expected_texts += [text, reply]
    assert expected_texts == [line["text"] for line in lines]
    results = [line["result"] for line in lines if line["direction"] == "in"]
    assert [
        "invalid: asked again",
        "accepted for took: Hapana",
        "invalid: asked again",
        "invalid: why_not skipped",
        "accepted for days: 12",
        "accepted for weight: 3.25",
        "accepted for visit: 2027-01-05",
    ] == results
    for prop, value in WRITTEN.items():
        expect(p.locator(".session-answers")).to_contain_text(prop)
        expect(p.locator(".written-properties")).to_contain_text(f"{prop}={value}")
    _shot(page, "survey-session")
    _write_transcript(lines, props)

    # The survey's sessions: one completed.
    page.goto(f"/a/demo/surveys/{survey_id}/sessions")
    expect(p.locator('[data-count="completed"]')).to_have_text("1")
    expect(p.locator("#sessions tbody tr")).to_have_count(1)
    page.goto(f"/a/demo/surveys/{survey_id}/sessions?status=active")
    expect(p.locator("#sessions tbody")).to_contain_text("No sessions match these filters")


def test_a_second_survey_for_the_number_waits_in_its_queue(page: Page) -> None:
    page.login()
    p = page.page
    with _api(page) as api:
        r = api.post(
            "/case/v2/", json=case_body(name="Neema", phone="+254711000666", verified="yes")
        )
        case_id = r.json()["case"]["case_id"]
        r = api.post("/surveys/v1/surveys", json=survey_body(name="Queue follow-up"))
        assert 201 == r.status_code, r.text
    page.goto(f"/a/demo/contacts/{case_id}")
    card = p.locator("#surveys")
    expect(card).to_contain_text("No survey has been started for this contact.")
    for _ in range(2):
        card.get_by_label("Survey", exact=True).select_option(label="Queue follow-up")
        card.get_by_role("button", name="Start a survey").click()
    expect(p.locator("#surveys [role=status]")).to_contain_text("queued")
    rows = p.locator("#contact-sessions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-status", "active")
    expect(rows.nth(1)).to_have_attribute("data-status", "queued")
    expect(rows.nth(1)).to_contain_text("1st in the queue of 254711000666")

    # Cancel the active one: the queued one starts.
    rows.nth(0).get_by_role("link").click()
    p.get_by_role("button", name="Cancel session").click()
    expect(p.get_by_role("status")).to_have_text("Session cancelled.")
    expect(p.locator("#session-status")).to_contain_text("cancelled")
    expect(p.get_by_role("button", name="Cancel session")).to_have_count(0)
    page.goto(f"/a/demo/contacts/{case_id}")
    expect(rows.nth(0)).to_have_attribute("data-status", "active")
    expect(rows.nth(1)).to_have_attribute("data-status", "cancelled")

    # One more waits behind the new active one: the card lists active, queued and ended.
    card.get_by_label("Survey", exact=True).select_option(label="Queue follow-up")
    card.get_by_role("button", name="Start a survey").click()
    expect(rows).to_have_count(3)
    assert ["active", "queued", "cancelled"] == [r.get_attribute("data-status") for r in rows.all()]
    expect(rows.nth(1)).to_contain_text("1st in the queue of 254711000666")
    _shot(page, "contact-surveys")
