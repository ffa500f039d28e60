"""The "Connect to CommCare" page through Django's test client: what to paste into HQ, the
write-back settings (the key write-only), the test call against the fake HQ, the last
forwarded case, the backlog and the retry of a failed write; read-only for viewers, 404 for
other projects."""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from casereach.cases.models import CommCareWrite
from casereach.cases.writeback_send import WriteBackSender
from casereach.gateways.netpolicy import make_client
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Project, Role
from casereach.testing.commcare_hq import CaseApi, FakeHq, HqCase, case_json, client_sender
from casereach.testing.gateways import create_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.world import Api

PAGE = "/a/demo/connect"
HQ_USER, HQ_KEY = "hq-user@example.org", "s3cret-hq-key"
PHONE = "254712345678"


def login(project: Project, username: str, role: Role) -> Client:
    do_create_web_user(project, username, f"{username}-password-1", role=role)
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.fixture
def admin(project: Project) -> Client:
    return login(project, "pm", Role.ADMIN)


@pytest.fixture
def hq(api: Api) -> Iterator[CaseApi]:
    fake = FakeHq(api.project.name, client_sender(api.client, api.auth), real_clock=True)
    server = CaseApi(fake, username=HQ_USER, api_key=HQ_KEY)
    yield server
    server.close()


def save(client: Client, url: str, domain: str = "demo", key: str = HQ_KEY) -> Any:
    return client.post(
        PAGE,
        {"action": "save", "url": url, "domain": domain, "username": HQ_USER, "api_key": key},
    )


def test_the_page_gives_both_forwarding_formats_and_the_receiver_url(admin: Client) -> None:
    html = admin.get(PAGE).content.decode()
    url = "http://testserver/a/demo/api/commcare/case-forwarding/"
    assert 2 == html.count('<code id="forwarding-url-') and 2 == html.count(url)
    assert "http://testserver/a/demo/receiver/" in html
    assert 'href="/a/demo/connect" aria-current="page"' in html


def test_public_url_is_used_when_set(admin: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEREACH_PUBLIC_URL", "https://sms.example.org/")
    html = admin.get(PAGE).content.decode()
    assert "https://sms.example.org/a/demo/api/commcare/case-forwarding/" in html


def test_settings_are_saved_and_the_key_is_never_shown(admin: Client, project: Project) -> None:
    assert 200 == save(admin, "https://hq.example.org/").status_code
    html = save(admin, "https://hq.example.org", key="").content.decode()  # blank keeps it
    assert "Write-back settings saved." in html
    assert "A key is stored" in html and HQ_KEY not in html
    project.refresh_from_db()
    cc = project.settings["commcare"]
    assert ("https://hq.example.org", "demo", HQ_USER) == (cc["url"], cc["domain"], cc["username"])
    assert HQ_KEY not in str(project.settings) and cc["api_key"]


def test_a_bad_url_is_refused_and_kept_in_the_form(admin: Client, project: Project) -> None:
    response = save(admin, "ftp://hq")
    assert 400 == response.status_code
    assert "http:// or https://" in response.content.decode()
    assert 'value="ftp://hq"' in response.content.decode()
    project.refresh_from_db()
    assert "" == project.settings.get("commcare", {}).get("url", "")


def test_the_test_button_reports_ok_401_and_unreachable_without_writing(
    admin: Client, hq: CaseApi
) -> None:
    save(admin, hq.url)
    ok = admin.post(PAGE, {"action": "test"}).content.decode()
    assert 'data-kind="ok"' in ok and "Test passed" in ok
    save(admin, hq.url, key="wrong-key")
    assert 'data-kind="unauthorized"' in admin.post(PAGE, {"action": "test"}).content.decode()
    assert [("GET", 200), ("GET", 401)] == [(r.method, r.status) for r in hq.received]
    save(admin, "http://127.0.0.1:9", key=HQ_KEY)
    down = admin.post(PAGE, {"action": "test"})
    assert 200 == down.status_code and 'data-kind="unreachable"' in down.content.decode()
    assert 0 == CommCareWrite.objects.count()


def test_the_test_button_without_settings_says_what_is_missing(admin: Client) -> None:
    html = admin.post(PAGE, {"action": "test"}).content.decode()
    assert 'data-kind="not_configured"' in html


def test_a_key_for_hq_is_shown_once_and_forwarding_with_it_is_shown_as_last(
    admin: Client, api: Api
) -> None:
    html = admin.post(PAGE, {"action": "create_key"}).content.decode()
    key = re.search(r'id="new-key-value">([0-9a-f]+)<', html)
    assert key is not None
    assert key.group(1) not in admin.get(PAGE).content.decode()
    basic = base64.b64encode(f"commcare-hq-demo:{key.group(1)}".encode()).decode()
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    case = HqCase("fw-1", "mother", "Amina", "owner-1", properties={"x": "1"})
    case.date_modified = case.server_modified_on = when
    body = case_json(case, "demo")
    r = Client().post(
        "/a/demo/api/commcare/case-forwarding/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )
    assert 200 == r.status_code, r.content
    shown = admin.get(PAGE).content.decode()
    assert "<code>fw-1</code>" in shown and '<strong class="outcome">applied</strong>' in shown


def test_a_failed_write_is_listed_and_retried(
    admin: Client, api: Api, hq: CaseApi, project: Project
) -> None:
    save(admin, hq.url, key="wrong-key")
    hq.hq.save(
        HqCase(
            "hq-1",
            "mother",
            "Amina",
            "owner-1",
            properties={"contact_phone_number": PHONE, "contact_phone_number_is_verified": "yes"},
        )
    )
    hq.deliver()
    gw = create_gateway(api)
    m = "/a/{project}/api/messaging/v1/"
    assert 200 == api.put(m + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    kw = {"keyword": "weight", "reply": {"en": "ok"}, "fields": [{"property": "weight"}]}
    assert 201 == api.post(m + "keywords", kw).status
    inbound(gw, "WEIGHT 3.2", sender=PHONE)
    sender = WriteBackSender(make_client, timeout_s=2, retry_base_s=0.001)
    try:
        sender.run_once()
        write = CommCareWrite.objects.get()
        assert "failed" == write.status
        html = admin.get(PAGE).content.decode()
        assert f'id="write-{write.pk}"' in html and "HTTP 401" in html
        assert '<strong data-status="failed">1</strong>' in html
        save(admin, hq.url, key=HQ_KEY)
        done = admin.post(PAGE, {"action": "retry", "write_id": str(write.pk)})
        assert f"Write-back {write.pk} of case" in done.content.decode()
        for _ in range(20):
            if sender.run_once() == 0:
                break
            time.sleep(0.01)
    finally:
        sender.close()
    write.refresh_from_db()
    assert "sent" == write.status
    again = admin.post(PAGE, {"action": "retry", "write_id": str(write.pk)})
    assert 409 == again.status_code and "only a failed or queued" in again.content.decode()


def test_viewers_see_it_read_only_and_other_projects_get_404(
    admin: Client, project: Project, other_project: Project
) -> None:
    save(admin, "https://hq.example.org")
    viewer = login(project, "watcher", Role.VIEWER)
    html = viewer.get(PAGE).content.decode()
    assert "https://hq.example.org" in html and "stored" in html
    assert '<form method="post" class="inline-form">' not in html
    assert 'name="api_key"' not in html and "Retry" not in html
    for action in ("save", "test", "create_key", "retry"):
        assert 403 == viewer.post(PAGE, {"action": action}).status_code
    outsider = login(other_project, "stranger", Role.ADMIN)
    assert 404 == outsider.get(PAGE).status_code
    assert 404 == outsider.post(PAGE, {"action": "create_key"}).status_code


def test_an_unknown_action_or_write_is_a_400_or_404_not_a_500(admin: Client) -> None:
    assert 400 == admin.post(PAGE, {"action": "nope"}).status_code
    assert 404 == admin.post(PAGE, {"action": "retry", "write_id": "x"}).status_code
