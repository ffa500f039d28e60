"""End-to-end tests of the web UI in headless Chromium against a real ``casereach serve``.

Select them with ``-m browser``; each test also fails on any request to another host.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from casereach.web.tests.conftest import Page

pytestmark = pytest.mark.browser

PAGES = [
    ("dashboard", "/a/demo/"),
    ("cases", "/a/demo/cases"),
    ("phone-numbers", "/a/demo/phone-numbers"),
    ("alerts", "/a/demo/alerts"),
    ("alert-new", "/a/demo/alerts/new"),
    ("surveys", "/a/demo/surveys"),
    ("messages", "/a/demo/messages"),
    ("test-phone", "/a/demo/test-phone"),
    ("gateways", "/a/demo/gateways"),
    ("gateway-new", "/a/demo/gateways/new?type=twilio"),
    ("import", "/a/demo/import"),
    ("settings", "/a/demo/settings"),
]


def test_login_then_every_page_renders(page: Page) -> None:
    page.goto("/a/demo/")
    expect(page.page).to_have_url(re.compile(r"/login\?next="))
    page.shot("login")
    page.login()
    expect(page.page.get_by_role("heading", name="Dashboard")).to_be_visible()
    for name, path in PAGES:
        response = page.goto(path)
        assert 200 == response.status, path
        page.shot(name)
    page.goto(f"/a/demo/alerts/{page.server.ids['demo_alert']}")
    page.shot("alert-detail")
    page.goto(f"/a/demo/contacts/{page.server.ids['demo_contact']}")
    page.shot("contact")


def test_keyboard_only_login_and_skip_link(page: Page) -> None:
    page.goto("/login")
    p = page.page
    expect(p.get_by_label("Username")).to_be_focused()
    p.keyboard.type("pm")
    p.keyboard.press("Tab")
    p.keyboard.type("pm-password-1")
    p.keyboard.press("Enter")
    expect(p.get_by_role("heading", name="Dashboard")).to_be_visible()
    p.keyboard.press("Tab")
    expect(p.get_by_role("link", name="Skip to content")).to_be_focused()
    p.keyboard.press("Enter")
    expect(p.locator("main")).to_be_focused()
    p.get_by_role("button", name="Log out").click()
    expect(p.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto("/a/demo/messages")
    expect(p).to_have_url(re.compile(r"/login\?next=/a/demo/messages$"))


def test_wrong_password_is_refused(page: Page) -> None:
    page.login(password="not-the-password")
    expect(page.page.get_by_role("alert")).to_contain_text("did not match")
    assert "/login" in page.page.url


def test_conditional_alert_in_two_languages_shows_its_dry_run(page: Page) -> None:
    page.login()
    page.goto("/a/demo/alerts/new?kind=conditional")
    p = page.page
    p.get_by_label("Name").fill("Antenatal visit reminder")
    p.locator("#case_type").fill("patient")
    p.locator("#rule-0-property").fill("contact_phone_number")
    p.locator("#rule-0-op").select_option("has_value")
    p.get_by_label("at a time of day in each contact's zone").check()
    p.locator("#time").fill("08:30")
    p.locator("#repeat_unit").select_option("days")
    p.locator("#iterations").fill("3")
    p.locator("#sms-en").fill("Hello {case.name}, your visit is tomorrow.")
    # Until Swahili is written, the editor marks it missing.
    expect(p.locator("#estimates")).to_contain_text("sw: missing translation")
    expect(p.locator("#missing-sw .badge")).to_have_count(1)
    p.locator("#sms-sw").fill("Habari {case.name}, ziara yako ni kesho.")
    expect(p.locator("#estimates")).to_contain_text("1 SMS segment")
    expect(p.locator("#estimates")).not_to_contain_text("missing translation")
    expect(p.locator("#missing-sw .badge")).to_have_count(0)
    page.shot("alert-form-filled")
    p.get_by_role("button", name="Save and see the dry run").click()
    expect(p.get_by_role("heading", name="Antenatal visit reminder")).to_be_visible()
    expect(p.locator("#dry-run svg rect").first).to_be_visible()
    # The page shows the texts themselves, per language, not only their counts.
    expect(p.locator("#message [lang=en] blockquote")).to_have_text(
        "Hello {case.name}, your visit is tomorrow."
    )
    expect(p.locator("#message [lang=sw] blockquote")).to_have_text(
        "Habari {case.name}, ziara yako ni kesho."
    )
    summary = p.locator("#dry-summary").inner_text()
    assert re.search(r"[1-9]\d* messages? to [1-9]\d* contacts?", summary), summary
    unreachable = p.locator("#unreachable")
    expect(unreachable).to_contain_text("Dalia (invalid number)")
    expect(unreachable).to_contain_text("NO_PHONE_NUMBER")
    page.shot("alert-dry-run")
    p.get_by_label("Case", exact=True).select_option(label="Amina (two-way)")
    p.get_by_role("button", name="Preview").click()
    # Amina's language is Swahili: the preview is her text, with her name filled in.
    expect(p.locator("#preview-text")).to_have_text("Habari Amina (two-way), ziara yako ni kesho.")
    p.get_by_role("button", name="Activate").click()
    expect(p.locator("#alert-state")).to_have_text("active")
    p.get_by_role("button", name="Deactivate").click()
    expect(p.locator("#alert-state")).to_have_text("inactive")


def test_alert_form_keeps_input_and_explains_an_error(page: Page) -> None:
    page.login()
    page.goto("/a/demo/alerts/new?kind=conditional")
    p = page.page
    p.get_by_label("Name").fill("Broken time")
    p.locator("#case_type").fill("patient")
    p.locator("#time").fill("25:99")
    p.locator("#sms-en").fill("Hi")
    p.get_by_role("button", name="Save and see the dry run").click()
    expect(p.locator("#form-error")).to_contain_text("time")
    expect(p.get_by_label("Name")).to_have_value("Broken time")
    expect(p.locator("#sms-en")).to_have_value("Hi")
    # The refused form comes back with status 400, which the console reports; nothing else.
    assert ["400 (Bad Request)"] == [e[-17:] for e in page.console_errors], page.console_errors
    page.console_errors.clear()


def test_contact_shows_upcoming_sends_in_local_time(page: Page) -> None:
    page.login()
    page.goto(f"/a/demo/contacts/{page.server.ids['demo_contact']}")
    p = page.page
    expect(p.get_by_role("heading", name="Amina (two-way)")).to_be_visible()
    expect(p.locator("dl.profile")).to_contain_text("two-way")
    upcoming = p.locator("#upcoming")
    expect(upcoming).to_contain_text("Daily clinic reminder")
    # 09:00 in the contact's zone (Africa/Nairobi), not 06:00 UTC.
    expect(upcoming.locator("tbody tr").first).to_contain_text("09:00")
    expect(upcoming.locator("tbody tr").first).to_contain_text("Africa/Nairobi")


def test_stop_from_the_test_phone_opts_the_number_out(page: Page) -> None:
    page.login()
    page.goto("/a/demo/test-phone")
    p = page.page
    p.get_by_label("Send as number").fill("+254 722 000 111")
    p.get_by_label("Message").fill("STOP")
    p.get_by_role("button", name="Send SMS").click()
    conversation = p.locator("#conversation")
    expect(conversation.locator(".from-phone")).to_contain_text("STOP")
    expect(conversation.locator(".to-phone").last).to_contain_text("unsubscribed")
    expect(p.locator("#opt-state")).to_have_text("yes")
    page.shot("test-phone-stop")
    p.locator("#conversation a").first.click()
    expect(p.locator("#opted-out")).to_contain_text("Yes")


def test_message_log_filters_by_error_code_and_exports_csv(page: Page, tmp_path: Path) -> None:
    page.login()
    page.goto("/a/demo/messages")
    p = page.page
    p.get_by_label("Error code").select_option("NO_PHONE_NUMBER")
    p.get_by_role("button", name="Filter").click()
    expect(p).to_have_url(re.compile(r"error_code=NO_PHONE_NUMBER"))
    rows = p.locator("table.messages tbody tr")
    expect(rows.first).to_contain_text("NO_PHONE_NUMBER")
    expect(rows.first).to_contain_text("What to do:")
    page.shot("messages-filtered")
    with p.expect_download() as info:
        p.get_by_role("link", name="Download these messages as CSV").click()
    target = tmp_path / "log.csv"
    info.value.save_as(target)
    with target.open(newline="") as fh:
        data = list(csv.DictReader(fh))
    assert data, "the CSV has no rows"
    assert {"NO_PHONE_NUMBER"} == {row["error_code"] for row in data}
    assert len(data) == rows.count()


def test_a_user_of_one_project_gets_404_for_every_page_and_object_of_another(page: Page) -> None:
    ids = page.server.ids
    page.login()
    paths = [
        "/a/other/",
        "/a/other/cases",
        f"/a/other/contacts/{ids['other_contact']}",
        "/a/other/phone-numbers",
        "/a/other/phone-numbers/254733000111/transfer",
        "/a/other/alerts",
        "/a/other/alerts/new",
        f"/a/other/alerts/{ids['other_alert']}",
        f"/a/other/alerts/{ids['other_alert']}/edit",
        f"/a/other/alerts/{ids['other_alert']}/status",
        "/a/other/messages",
        "/a/other/messages?format=csv",
        "/a/other/test-phone",
        "/a/other/test-phone/conversation?number=254733000111",
        "/a/other/gateways",
        f"/a/other/gateways/{ids['other_gateway']}",
        "/a/other/import",
        "/a/other/import/errors.csv",
        "/a/other/settings",
        "/a/nonexistent/",
        # the other project's objects through this project's pages
        f"/a/demo/contacts/{ids['other_contact']}",
        f"/a/demo/alerts/{ids['other_alert']}",
        f"/a/demo/alerts/{ids['other_alert']}/edit",
        f"/a/demo/gateways/{ids['other_gateway']}",
        "/a/demo/phone-numbers/254733000111/transfer",
    ]
    statuses = {}
    for path in paths:
        response = page.page.request.get(page.server.url + path)
        statuses[path] = response.status
    assert {path: 404 for path in paths} == statuses
    response = page.page.request.post(
        page.server.url + f"/a/other/alerts/{ids['other_alert']}/status",
        form={"action": "activate"},
    )
    assert response.status in (403, 404)  # no CSRF token: refused before anything happens
    page.goto("/?pick=1")
    expect(page.page.locator("ul.picker")).not_to_contain_text("other")


def test_import_shows_the_result_and_the_error_report(page: Page, tmp_path: Path) -> None:
    page.login()
    page.goto("/a/demo/import")
    p = page.page
    p.get_by_label("File").set_input_files(
        files=[
            {
                "name": "cases.csv",
                "mimeType": "text/csv",
                "buffer": b"external_id,case_type,case_name,owner_id\n"
                b"IMP-1,patient,Neema,clinic\n,patient,,clinic\n",
            }
        ]
    )
    p.get_by_role("button", name="Import").click()
    expect(p.locator("#import-result")).to_contain_text("1 case written, 1 row error")
    page.shot("import-result")
    with p.expect_download() as info:
        p.get_by_role("link", name="Download the error report (CSV)").click()
    target = tmp_path / "errors.csv"
    info.value.save_as(target)
    with target.open(newline="") as report:
        rows = list(csv.reader(report))
    assert ["row", "column", "reason"] == rows[0]
    assert 2 == len(rows)


def test_the_guard_blocks_and_records_requests_to_other_hosts(page: Page) -> None:
    page.login()
    # The Content-Security-Policy refuses a script's request to another host first ...
    with page.page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.page.evaluate("() => fetch('http://example.org/tracker.js').catch(() => null)")
    assert "connect-src 'self'" in page.csp_violations[0]
    assert all("http://example.org/tracker.js" in v for v in page.csp_violations)
    assert [] == page.foreign
    # ... and the guard records what the policy does not cover (a top-level navigation).
    with pytest.raises(PlaywrightError):
        page.page.goto("http://example.org/tracker.js")
    assert ["http://example.org/tracker.js"] == page.foreign
    # This test checks the guard and the policy; the others must never trip either.
    page.foreign.clear()
    page.csp_violations.clear()
    page.console_errors.clear()


def test_a_console_error_is_recorded_and_fails_the_test(page: Page) -> None:
    page.login()
    with page.page.expect_console_message(lambda m: m.type == "error"):
        page.page.evaluate("() => console.error('htmx:syntax:error')")
    with page.page.expect_event("pageerror"):
        page.page.evaluate("() => setTimeout(() => { throw new Error('boom') }, 0)")
    assert 2 == len(page.console_errors), page.console_errors
    assert "htmx:syntax:error" in page.console_errors[0]
    assert "boom" in page.console_errors[1]
    page.console_errors.clear()  # the listener works; the other tests must leave it empty


def test_the_icon_is_served_for_every_page(page: Page) -> None:
    response = page.page.request.get(page.server.url + "/favicon.ico")
    assert (200, "image/svg+xml") == (response.status, response.headers["content-type"])
    page.login()
    href = page.page.locator("link[rel=icon]").get_attribute("href")
    assert href is not None
    assert 200 == page.page.request.get(page.server.url + href).status


def test_api_docs_render_under_the_content_security_policy(page: Page) -> None:
    response = page.goto("/api/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.page.locator(".opblock").first).to_be_visible()  # Swagger UI drew operations
    page.shot("api-docs")


def test_on_a_phone_the_messages_per_day_chart_opens_on_today(page: Page) -> None:
    page.login()
    page.page.set_viewport_size({"width": 360, "height": 800})
    page.goto("/a/demo/")
    box = page.page.locator(".card .chart-scroll").first
    chart = box.locator("svg")
    expect(chart).to_be_visible()
    outer, inner = box.bounding_box(), chart.bounding_box()
    assert outer is not None
    assert inner is not None
    assert inner["width"] > outer["width"]  # too wide for the phone: it scrolls sideways
    # The newest day (the right edge) is in view; 30 days ago is scrolled off to the left.
    assert abs(outer["x"] + outer["width"] - (inner["x"] + inner["width"])) < 1
    assert inner["x"] < outer["x"]
    page.shot("dashboard-phone")


def test_settings_are_filled_in_per_language_and_per_day(page: Page) -> None:
    page.login()
    page.goto("/a/demo/settings")
    p = page.page
    p.locator("#f-help_text\\.en").fill("Reply STOP to stop messages.")
    p.locator("#window-0").get_by_label("Sat").check()
    p.locator("#w-0-start").fill("23:00")
    p.locator("#w-0-end").fill("23:00")
    p.get_by_role("button", name="Save settings").click()
    # The error is next to the window, and what was typed is still there.
    expect(p.locator("#e-window-0")).to_contain_text("end must differ from start")
    expect(p.locator("#f-help_text\\.en")).to_have_value("Reply STOP to stop messages.")
    page.shot("settings-error")
    # The refused form comes back with status 400, which the console reports; nothing else.
    assert ["400 (Bad Request)"] == [e[-17:] for e in page.console_errors], page.console_errors
    page.console_errors.clear()
    p.locator("#w-0-end").fill("01:00")
    p.get_by_role("button", name="Save settings").click()
    expect(p.get_by_role("status")).to_contain_text("Saved.")
    expect(p.locator("#w-0-start")).to_have_value("23:00")
    expect(p.locator("#window-0").get_by_label("Sat")).to_be_checked()
    expect(p.locator("#w-1-start")).to_have_value("")  # an empty row adds another
    page.shot("settings")
    # The form fits a phone: nothing wider than the screen.
    p.set_viewport_size({"width": 360, "height": 800})
    assert p.evaluate("() => document.documentElement.scrollWidth") <= 360
