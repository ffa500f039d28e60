"""The UI pages through Django's test client: access, forms that keep their input and show
the same validation as the API, and the writes that go through the shared actions."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.world import Api, case_body


@pytest.fixture
def web(project: Project) -> Client:
    do_create_web_user(project, "pm", "pm-password-1", role=Role.ADMIN)
    client = Client()
    # force_login: Client.login passes no request, which django-axes (login throttling) needs
    client.force_login(get_user_model().objects.get(username="pm"))
    return client


def test_pages_need_a_login(project: Project) -> None:
    response = Client().get("/a/demo/messages")
    assert 302 == response.status_code
    assert "/login?next=/a/demo/messages" == response["Location"]


def test_a_non_member_gets_404_for_the_project_and_its_objects(
    web: Client, other_api: Api, other_project: Project
) -> None:
    case = other_api.post("/a/{project}/api/case/v2/", case_body(phone="254700111222")).body["case"]
    alert = other_api.post(
        "/a/{project}/api/messaging/v1/alerts",
        {
            "name": "B",
            "kind": "broadcast",
            "content": {"sms": {"en": "x"}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case_group", "case_type": "patient"}],
        },
    ).body
    paths = [
        "/a/other/",
        "/a/other/settings",
        f"/a/other/contacts/{case['case_id']}",
        f"/a/demo/contacts/{case['case_id']}",
        f"/a/demo/alerts/{alert['id']}",
        f"/a/demo/alerts/{alert['id']}/edit",
    ]
    assert {p: 404 for p in paths} == {p: web.get(p).status_code for p in paths}


def test_settings_error_is_shown_next_to_the_field_and_nothing_is_saved(
    web: Client, api: Api
) -> None:
    page = web.get("/a/demo/settings").content.decode()
    assert 'name="time_zone" value="Africa/Nairobi"' in page
    form = {
        "time_zone": "Mars/Base",
        "languages": "en, sw",
        "language_fallback": "untranslated",
        "daily_limit": "123",
    }
    response = web.post("/a/demo/settings", form)
    html = response.content.decode()
    assert 400 == response.status_code
    assert 'id="e-time_zone"' in html
    assert "unknown time zone" in html
    assert 'value="Mars/Base"' in html  # the user's input is kept
    assert 'value="123"' in html
    settings = api.get("/a/{project}/api/messaging/v1/settings").body
    assert ("Africa/Nairobi", 50_000) == (settings["time_zone"], settings["daily_limit"])


def test_alert_form_saves_through_the_api_rules(web: Client, api: Api) -> None:
    form = {
        "name": "Visit reminder",
        "kind": "conditional",
        "channel": "sms",
        "case_type": "patient",
        "match": "all",
        "rule_count": "1",
        "rule-0-property": "edd",
        "rule-0-op": "has_value",
        "sched_type": "timed",
        "time": "09:00",
        "day": "0",
        "repeat_unit": "days",
        "repeat_interval": "1",
        "iterations": "3",
        "start_from": "match",
        "relative": ["self"],
        "sms-en": "Hello {case.name}",
        "sms-sw": "Habari {case.name}",
        "late_limit_hours": "48",
    }
    response = web.post("/a/demo/alerts/new", form)
    assert 302 == response.status_code
    alerts = api.get("/a/{project}/api/messaging/v1/alerts").body["objects"]
    assert ["Visit reminder"] == [a["name"] for a in alerts]
    saved = api.get(f"/a/{{project}}/api/messaging/v1/alerts/{alerts[0]['id']}").body
    assert {"en": "Hello {case.name}", "sw": "Habari {case.name}"} == saved["content"]["sms"]
    assert [{"property": "edd", "op": "has_value", "value": None, "days": None}] == saved[
        "criteria"
    ]["rules"]
    bad = web.post("/a/demo/alerts/new", {**form, "name": "Bad", "sms-en": "Hi {case.}"})
    assert 400 == bad.status_code
    assert 'value="Bad"' in bad.content.decode()
    assert 1 == len(api.get("/a/{project}/api/messaging/v1/alerts").body["objects"])


def test_transfer_needs_the_confirmation(web: Client, api: Api) -> None:
    first = api.post(
        "/a/{project}/api/case/v2/", case_body(name="A", phone="254700111222", verified="1")
    ).body["case"]
    second = api.post(
        "/a/{project}/api/case/v2/", case_body(name="B", phone="254700111222", verified="1")
    ).body["case"]

    def holder() -> str:
        rows = api.get("/a/{project}/api/messaging/v1/phone-numbers", number="254700111222")
        return next(r["contact_id"] for r in rows.body["objects"] if r["two_way"])

    assert first["case_id"] == holder()
    url = "/a/demo/phone-numbers/254700111222/transfer"
    web.post(url, {"contact_id": second["case_id"]})
    assert first["case_id"] == holder()
    response = web.post(url, {"contact_id": second["case_id"], "confirm": "yes"})
    assert 302 == response.status_code
    assert second["case_id"] == holder()


def test_gateway_credentials_are_write_only(web: Client) -> None:
    form = {
        "type": "twilio",
        "name": "TW",
        "config-account_sid": "AC" + "0" * 32,
        "config-auth_token": "very-secret-token",
        "is_active": "on",
    }
    response = web.post("/a/demo/gateways/new", form)
    assert 302 == response.status_code, response.content.decode()[:2000]
    page = web.get(response["Location"]).content.decode()
    assert "very-secret-token" not in page
    assert "stored — leave empty to keep" in page
    assert "/gateways/twilio/" in page  # the callback URLs to give the provider


def test_dashboard_and_log_explain_a_message_stopped_before_any_gateway(
    web: Client, api: Api
) -> None:
    from casereach.messaging.errors import describe

    case = api.post("/a/{project}/api/case/v2/", case_body(name="No phone")).body["case"]
    sent = api.post(
        "/a/{project}/api/messaging/v1/send", {"contact_id": case["case_id"], "text": "hi"}
    )
    assert 202 == sent.status
    info = describe("NO_PHONE_NUMBER")
    assert info is not None
    # One vocabulary, the API's: the message is `failed` there, so it is `failed` here too.
    assert "failed" == sent.body["messages"][0]["status"]
    dashboard = web.get("/a/demo/").content.decode()
    assert "failed: 1" in dashboard
    assert 'class="s-failed"' in dashboard  # a bar of the chart
    assert "?status=failed" in dashboard  # the total opens those messages in the log
    assert info.description in dashboard
    log = web.get("/a/demo/messages", {"error_code": "NO_PHONE_NUMBER"}).content.decode()
    assert info.hint in log
    assert "before any gateway" in log
    by_status = web.get("/a/demo/messages", {"status": "failed"}).content.decode()
    assert info.hint in by_status
    for page in (dashboard, log, by_status):
        assert "skipped" not in page.lower()
    export = web.get("/a/demo/messages", {"error_code": "NO_PHONE_NUMBER", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [("NO_PHONE_NUMBER", case["case_id"])] == [
        (r["error_code"], r["contact_id"]) for r in rows
    ]
    empty = web.get("/a/demo/messages", {"error_code": "NO_MESSAGE", "format": "csv"})
    assert 1 == len(b"".join(empty.streaming_content).decode().splitlines())


def test_test_send_goes_by_the_route_or_through_the_picked_gateway(web: Client, api: Api) -> None:
    from casereach.messaging.models import Message

    m = "/a/{project}/api/messaging/v1/"
    for name in ("ROUTED", "NEW"):
        assert 201 == api.post(m + "gateways", {"name": name, "type": "test"}).status
    assert 200 == api.put(m + "routes", {"default_gateway": "ROUTED", "prefixes": []}).status
    page = web.get("/a/demo/gateways").content.decode()
    assert '<option value="NEW" >NEW</option>' in page

    routed = web.post("/a/demo/gateways", {"form": "test", "number": "254700000001"})
    picked = web.post(
        "/a/demo/gateways", {"form": "test", "number": "254700000002", "gateway": "NEW"}
    )
    unknown = web.post(
        "/a/demo/gateways", {"form": "test", "number": "254700000003", "gateway": "GONE"}
    )

    assert (200, 200, 400) == (routed.status_code, picked.status_code, unknown.status_code)
    assert "queued via ROUTED" in routed.content.decode()
    assert "queued via NEW" in picked.content.decode()
    assert "gateway &#x27;GONE&#x27; not found" in unknown.content.decode()
    assert [("254700000001", "ROUTED"), ("254700000002", "NEW")] == list(
        Message.objects.order_by("phone_number").values_list("phone_number", "gateway_name")
    )


def test_secret_params_and_headers_are_write_only_in_the_form(web: Client, api: Api) -> None:
    config = {
        "url": "https://sms.example.org/send",
        "params": {"to": "{to}", "text": "{text}", "key": "param-secret-1"},
        "headers": {"X-Api-Token": "header-secret-1"},
        "secret_params": ["key"],
        "secret_headers": ["X-Api-Token"],
    }
    gw = api.post(
        "/a/{project}/api/messaging/v1/gateways", {"name": "S", "type": "http", "config": config}
    ).body
    page = web.get(f"/a/demo/gateways/{gw['id']}").content.decode()
    assert "param-secret-1" not in page
    assert "header-secret-1" not in page
    assert "&quot;key&quot;: &quot;***&quot;" in page
    # Saving the form as shown keeps the stored values.
    form = {
        "name": "S",
        "config-url": "https://sms.example.org/send",
        "config-method": "POST",
        "config-encoding": "form",
        "config-params": '{"to": "{to}", "text": "{text}", "key": "***"}',
        "config-headers": '{"X-Api-Token": "***"}',
        "config-secret_params": '["key"]',
        "config-secret_headers": '["X-Api-Token"]',
        "is_active": "on",
    }
    response = web.post(f"/a/demo/gateways/{gw['id']}", form)
    assert 302 == response.status_code, response.content.decode()[:2000]
    from casereach.gateways.models import GatewayConfig
    from casereach.gateways.queries import instantiate

    saved = instantiate(GatewayConfig.objects.get(pk=gw["id"])).config
    assert ("param-secret-1", "header-secret-1") == (
        saved.params["key"],  # type: ignore[attr-defined]
        saved.headers["X-Api-Token"],  # type: ignore[attr-defined]
    )


def test_cases_list_shows_the_warnings_of_the_data_quality_report(web: Client, api: Api) -> None:
    cases = "/a/{project}/api/case/v2/"
    api.post(cases, case_body(name="Amina", phone="254712345678", verified="1"))
    api.post(cases, case_body(name="Baraka", phone="254712345678", verified="1"))
    api.post(cases, case_body(name="Imani", phone="254712000001", contact_backend_id="nope"))
    api.post(cases, case_body(name="Juma", phone="12a45"))
    page = web.get("/a/demo/cases").content.decode()
    report = api.get("/a/{project}/api/messaging/v1/data-quality").body["objects"]
    expected = {row["name"]: row["warnings"] for row in report}
    assert {
        "Baraka": ["two_way_conflict"],
        "Imani": ["unknown_gateway"],
        "Juma": ["not_digits"],
    } == expected
    for name, codes in expected.items():
        row = page[page.index(f">{name}</a>") :].split("</tr>")[0]
        assert codes == [c for c in WARNING_CODES if f">{c}</span>" in row]
    amina = page[page.index(">Amina</a>") :].split("</tr>")[0]
    assert 'class="pill warn"' not in amina


WARNING_CODES = ("two_way_conflict", "unknown_gateway", "not_digits")


def test_alert_page_shows_the_message_text_in_each_language(web: Client, api: Api) -> None:
    alert = api.post(
        "/a/{project}/api/messaging/v1/alerts",
        {
            "name": "Visit",
            "kind": "broadcast",
            "content": {"sms": {"en": "Your visit is tomorrow", "sw": "Ziara yako ni kesho"}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case_group", "case_type": "patient"}],
        },
    ).body
    page = web.get(f"/a/demo/alerts/{alert['id']}").content.decode()
    message = page[page.index('id="message"') :]
    assert '<blockquote class="text">Your visit is tomorrow</blockquote>' in message
    assert '<blockquote class="text">Ziara yako ni kesho</blockquote>' in message
    assert "22 characters" in message  # the estimate stays next to its text


def test_names_not_ids_for_two_way_holders_and_in_the_message_log(web: Client, api: Api) -> None:
    case = "/a/{project}/api/case/v2/"
    holder = api.post(case, case_body(name="Baraka", phone="254700111222", verified="1"))
    other = api.post(case, case_body(name="Imani", phone="254700111222", verified="1"))
    holder_id = holder.body["case"]["case_id"]
    other_id = other.body["case"]["case_id"]
    link = f'<a href="/a/demo/contacts/{holder_id}">Baraka</a>'
    contact = web.get(f"/a/demo/contacts/{other_id}").content.decode()
    assert f"held by {link}" in contact
    assert f"held by contact {holder_id}" not in contact
    dashboard = web.get("/a/demo/").content.decode()
    assert f"held by {link}" in dashboard
    api.post("/a/{project}/api/messaging/v1/send", {"contact_id": holder_id, "text": "hi"})
    log = web.get("/a/demo/messages").content.decode()
    assert link in log


def test_every_page_has_an_icon_and_favicon_ico_is_served(web: Client) -> None:
    assert '<link rel="icon" href="/static/web/favicon.svg"' in web.get("/a/demo/").content.decode()
    icon = Client().get("/favicon.ico")  # no login needed: browsers ask before anything else
    assert (200, "image/svg+xml") == (icon.status_code, icon["Content-Type"])
    assert b"<svg" in icon.content


def _settings_form(web: Client) -> dict[str, str | list[str]]:
    """The settings form as the browser would post it, unchanged."""
    import html
    import re

    page = web.get("/a/demo/settings").content.decode()
    form: dict[str, str | list[str]] = {}
    for name, value in re.findall(
        r'<input (?:type="(?:text|number|hidden|time)" )?id="[^"]*" name="([^"]+)" value="([^"]*)"',
        page,
    ):
        form[name] = value
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page):
        form[name] = value
    for name, value in re.findall(
        r'<textarea id="[^"]*" name="([^"]+)"[^>]*>([^<]*)</textarea>', page
    ):
        form[name] = value
    for name, value in re.findall(
        r'<select id="[^"]*" name="([^"]+)"[^>]*>.*?<option value="([^"]*)" selected', page, re.S
    ):
        form[name] = value
    return {k: html.unescape(v) for k, v in form.items()}


def test_settings_texts_keywords_and_windows_are_form_fields_not_json(
    web: Client, api: Api
) -> None:
    page = web.get("/a/demo/settings").content.decode()
    assert 'class="code"' not in page  # no raw JSON box for any setting
    for name in ("help_text", "opt_out_reply", "opt_out_keywords", "help_keywords"):
        for lang in ("en", "sw"):
            assert f'name="{name}.{lang}"' in page, (name, lang)
    assert 'type="time" id="w-0-start" name="restricted_windows.0.start"' in page
    assert 'value="en, sw"' in page  # languages as a plain list
    form = _settings_form(web)
    form.update(
        {
            "help_text.en": "Reply STOP to stop.",
            "help_text.sw": "Jibu ACHA kusimamisha.",
            "opt_out_keywords.sw": "acha, simama",
            "restricted_windows.0.days": ["0", "1", "2", "3", "4"],
            "restricted_windows.0.start": "08:00",
            "restricted_windows.0.end": "18:00",
            "self_registration.enabled": "on",
            "self_registration.case_type": "client",
            "self_registration.welcome_text.sw": "Karibu!",
        }
    )
    response = web.post("/a/demo/settings", form)
    assert 200 == response.status_code, response.content.decode()
    saved = api.get("/a/{project}/api/messaging/v1/settings").body
    assert {"en": "Reply STOP to stop.", "sw": "Jibu ACHA kusimamisha."} == saved["help_text"]
    assert {"sw": ["ACHA", "SIMAMA"]} == saved["opt_out_keywords"]
    assert [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}] == saved[
        "restricted_windows"
    ]
    assert {
        "enabled": True,
        "case_type": "client",
        "owner_id": None,
        "welcome_text": {"sw": "Karibu!"},
    } == saved["self_registration"]
    assert 50_000 == saved["daily_limit"]  # what the form did not change stays
    page = web.get("/a/demo/settings").content.decode()
    assert 'name="restricted_windows.1.start" value=""' in page  # a new empty row to add one
    assert 'name="opt_out_keywords.sw" value="ACHA, SIMAMA"' in page


def test_settings_errors_are_next_to_the_window_and_the_keywords(web: Client, api: Api) -> None:
    form = _settings_form(web)
    form.update(
        {
            "restricted_windows.rows": "2",
            "restricted_windows.0.days": ["5"],
            "restricted_windows.0.start": "09:00",
            "restricted_windows.0.end": "12:00",
            "restricted_windows.1.days": ["6"],
            "restricted_windows.1.start": "10:00",
            "restricted_windows.1.end": "10:00",
        }
    )
    response = web.post("/a/demo/settings", form)
    html = response.content.decode()
    assert 400 == response.status_code
    row = html[html.index('id="window-1"') :]
    row = row[: row.index("</fieldset>")]
    assert 'id="e-window-1"' in row and "end must differ from start" in row
    assert 'id="e-window-0"' not in html
    assert 'name="restricted_windows.1.start" value="10:00"' in html  # the input is kept
    form.update({"restricted_windows.1.end": "11:00", "help_keywords.en": "stop"})
    html = web.post("/a/demo/settings", form).content.decode()
    field = html[html.index('id="f-help_keywords"') :]
    assert field.index('id="e-help_keywords"') < field.index("</fieldset>")
    assert "STOP is already one of the opt_out_keywords" in field
    assert [] == api.get("/a/{project}/api/messaging/v1/settings").body["restricted_windows"]


def test_settings_channel_order_and_waits_are_form_fields(web: Client, api: Api) -> None:
    page = web.get("/a/demo/settings").content.decode()
    assert 'name="channel_order" value=""' in page
    for channel in ("whatsapp", "sms", "email"):
        assert f'name="fallback_after_minutes.{channel}" value=""' in page
    form = _settings_form(web)
    form.update({"channel_order": "whatsapp, sms", "fallback_after_minutes.whatsapp": "30"})

    response = web.post("/a/demo/settings", form)

    assert 200 == response.status_code, response.content.decode()
    saved = api.get("/a/{project}/api/messaging/v1/settings").body
    assert (["whatsapp", "sms"], {"whatsapp": 30}) == (
        saved["channel_order"],
        saved["fallback_after_minutes"],
    )
    form.update({"fallback_after_minutes.sms": "soon"})
    page = web.post("/a/demo/settings", form).content.decode()
    assert "enter whole minutes" in page
    assert {"whatsapp": 30} == api.get("/a/{project}/api/messaging/v1/settings").body[
        "fallback_after_minutes"
    ]
