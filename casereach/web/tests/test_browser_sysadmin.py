"""The system administrator's global gateways page in a real browser (issue 16 item 10): the
header link only a superuser sees, adding a global gateway with a write-only secret, the global
routes form, and a project admin refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from casereach.web.tests.conftest import Page

pytestmark = pytest.mark.browser


def test_a_superuser_adds_a_global_gateway_and_sets_the_global_routes(page: Page) -> None:
    page.login("root", "root-password-1")
    page.goto("/")
    page.page.get_by_role("link", name="System admin").click()
    expect(page.page.get_by_role("heading", name="Global gateways and routes")).to_be_visible()
    page.page.get_by_label("Add a global gateway of type").select_option("http")
    page.page.get_by_role("button", name="Add…").click()
    page.page.get_by_label("Name", exact=True).fill("G-KE")
    page.page.locator("#f-url").fill("https://sms.example.org/send")
    page.page.locator("#f-params").fill('{"to": "{to}", "text": "{text}"}')
    page.page.locator("#f-username").fill("ke")
    page.page.locator("#f-password").fill("s3cret-pass-word")
    page.page.get_by_role("button", name="Save").click()
    expect(page.page.get_by_role("heading", name="Global gateway G-KE")).to_be_visible()
    assert "s3cret-pass-word" not in page.page.content()
    expect(page.page.locator("#f-password")).to_have_attribute(
        "placeholder", "stored — leave empty to keep"
    )
    page.shot("sysadmin-gateway")
    page.page.get_by_role("link", name="Cancel").click()
    page.page.get_by_label("Global default gateway").select_option("G-KE")
    page.page.get_by_label("Global prefix routes").fill("254 G-KE")
    page.page.get_by_role("button", name="Save global routes").click()
    expect(page.page.get_by_role("status")).to_have_text("global routes saved")
    expect(page.page.get_by_role("cell", name="default, prefix 254")).to_be_visible()
    page.page.get_by_label("Global prefix routes").fill("25x G-KE")
    page.page.get_by_role("button", name="Save global routes").click()
    expect(page.page.get_by_role("alert")).to_contain_text("must be 1-15 digits")
    assert [m for m in page.console_errors if "400 (Bad Request)" not in m] == []
    page.console_errors.clear()  # the refused form's 400 itself
    page.shot("sysadmin-gateways")


def test_a_project_admin_sees_no_link_and_is_refused(page: Page) -> None:
    page.login()
    page.goto("/a/demo/")
    expect(page.page.get_by_role("link", name="System admin")).to_have_count(0)
    response = page.goto("/sysadmin/gateways")
    assert 403 == response.status
    expect(page.page.get_by_role("alert")).to_contain_text("system administrator")
    page.console_errors.clear()  # the 403 answer itself is reported by the console
