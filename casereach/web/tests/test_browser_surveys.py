"""The survey builder in headless Chromium (issue 20): the five-question, two-language
survey of docs/surveys.md built through the form (adding, moving and removing questions
without losing what was typed), previewed with an invalid answer and a skipped question,
saved, and shown at 1280 and 360 px."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from casereach.testing.surveys import survey_body
from casereach.web.tests.conftest import Page

pytestmark = pytest.mark.browser


def _fill_question(p: Any, i: int, q: dict[str, Any]) -> None:
    block = p.locator("[data-question]").nth(i)
    p.locator(f"#q-{i}-id").fill(q["id"])
    p.locator(f"#q-{i}-type").select_option(q["type"])
    for lang in ("en", "sw"):
        p.locator(f"#q-{i}-prompt-{lang}").fill(q["prompt"][lang])
        if q.get("retry_prompt"):
            p.locator(f"#q-{i}-retry-{lang}").fill(q["retry_prompt"][lang])
    for j, choice in enumerate(q.get("choices", [])):
        if j >= 2:  # two blank choice rows come with a question
            block.get_by_role("button", name="Add choice").click()
        p.locator(f"#q-{i}-c-{j}-value").fill(choice["value"])
        for lang in ("en", "sw"):
            p.locator(f"#q-{i}-c-{j}-label-{lang}").fill(choice["label"][lang])
    c = q.get("constraints", {})
    for key in ("min", "max"):
        if key in c:
            p.locator(f"#q-{i}-{key}").fill(str(c[key]))
    if not c.get("required", True):
        p.locator(f"#q-{i}-required").uncheck()
    if "max_retries" in q:
        p.locator(f"#q-{i}-max_retries").fill(str(q["max_retries"]))
    if "on_max_retries" in q:
        p.locator(f"#q-{i}-on_max_retries").select_option(q["on_max_retries"])
    p.locator(f"#q-{i}-case_property").fill(q["case_property"])
    if "show_if" in q:
        p.locator(f"#q-{i}-show_if").fill(json.dumps(q["show_if"]))


def test_build_preview_and_save_the_five_question_survey(page: Page) -> None:
    body = survey_body()
    took, why_not, days, weight, visit = body["questions"]
    page.login()
    page.goto("/a/demo/surveys")
    p = page.page
    p.get_by_role("link", name="New survey").click()
    expect(p.get_by_role("heading", name="New survey")).to_be_visible()
    p.get_by_label("Name", exact=True).fill(body["name"])
    _fill_question(p, 0, took)
    # The segment count follows the text as it is typed (GSM-7 here; UCS-2 below).
    expect(p.locator("#q-0-prompt-sw ~ [data-seg-out]")).to_contain_text("GSM, 1 SMS segment")
    add = p.get_by_role("button", name="Add question")
    add.click()
    _fill_question(p, 1, why_not)
    add.click()
    _fill_question(p, 2, days)
    # visit is written before weight, then moved below it; a stray question is removed.
    add.click()
    _fill_question(p, 3, visit)
    add.click()
    _fill_question(p, 4, weight)
    add.click()
    p.locator("#q-5-id").fill("stray")
    p.locator("#q-5-prompt-en").fill("Ünïcode ş" * 9)
    expect(p.locator("#q-5-prompt-en ~ [data-seg-out]")).to_contain_text("UCS2, 2 SMS segments")
    p.locator("[data-question]").nth(5).get_by_role("button", name="Remove question").click()
    p.locator("[data-question]").nth(4).get_by_role("button", name="Move up").click()
    expect(p.locator("#q-3-id")).to_have_value("weight")
    expect(p.locator("#q-4-id")).to_have_value("visit")
    expect(p.locator("#q-4-prompt-sw")).to_have_value(visit["prompt"]["sw"])
    expect(p.locator("#q-3-show_if")).to_have_value(json.dumps(weight["show_if"]))
    for lang in ("en", "sw"):
        p.locator(f"#closing-{lang}").fill(body["closing"][lang])
    page.shot("survey-builder")

    # At 360 px the language columns stack: Swahili below English.
    p.set_viewport_size({"width": 360, "height": 800})
    en = p.locator("#q-0-prompt-en").bounding_box()
    sw = p.locator("#q-0-prompt-sw").bounding_box()
    assert en is not None and sw is not None
    assert sw["y"] > en["y"] + en["height"], (en, sw)
    assert p.evaluate("document.documentElement.scrollWidth") <= 360
    p.set_viewport_size({"width": 1280, "height": 800})

    # Preview: "no", two invalid reasons (the question is skipped), 75 days (invalid, asked
    # again), 12, a weight and the visit date.
    p.get_by_label("Language", exact=True).select_option("sw")
    p.get_by_label("Case name (for {case.name})").fill("Amina")
    p.get_by_label("Replies, one per line").fill("2\nxyz\nabc\n75\n12\n3.2\n15/03/2027")
    p.get_by_role("button", name="Play the preview").click()
    result = p.locator("#preview-result")
    expect(result.locator("#preview-status")).to_contain_text("completed")
    expect(result).to_contain_text("Habari Amina. Umekunywa dawa leo?")
    expect(result.locator(".r-skipped")).to_have_count(1)
    expect(result.locator(".r-invalid")).to_have_count(2)
    expect(result).to_contain_text("Tafadhali tuma namba kutoka 0 hadi 60.")
    expect(result).to_contain_text("Skipped after too many invalid answers: why_not")
    expect(result).to_contain_text("Asante Amina. Ziara ijayo: 2027-03-15.")
    props = result.locator("#preview-properties tbody tr")
    expect(props).to_have_count(4)
    expect(result.locator("#preview-properties")).to_contain_text("baby_weight")
    expect(result.locator("#preview-properties")).not_to_contain_text("missed_reason")
    result.scroll_into_view_if_needed()
    page.shot("survey-preview")

    p.get_by_role("button", name="Save survey").click()
    expect(p.get_by_role("heading", name="Surveys")).to_be_visible()
    expect(p.get_by_role("status")).to_have_text("Survey saved.")
    row = p.locator("tbody tr", has_text=body["name"])
    expect(row.locator('[data-label="Questions"]')).to_have_text("5")
    expect(row.locator('[data-label="Languages"]')).to_have_text("en, sw")
    page.shot("surveys-list")
    row.get_by_role("link", name=body["name"]).click()
    ids = [p.locator(f"#q-{i}-id").input_value() for i in range(5)]
    assert ["took", "why_not", "days", "weight", "visit"] == ids
    expect(p.locator("#q-1-c-2-label-sw")).to_have_value("Imeisha")
    expect(p.locator("#q-3-required")).not_to_be_checked()
