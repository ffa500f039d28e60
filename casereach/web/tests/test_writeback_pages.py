"""Write-back failures where people look for them, through Django's test client: the case's
own page lists its writes not yet at HQ (status, attempts, HQ's status, last error) with a
Retry button for members, and the message log shows them in its error style with a link to
the case and to the Connect page. Viewers see but cannot retry; another case's or project's
write is a 404."""

from __future__ import annotations

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
from casereach.testing.commcare_hq import CaseApi, FakeHq, HqCase, client_sender
from casereach.testing.gateways import create_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
HQ_USER, HQ_KEY = "hq-user@example.org", "s3cret-hq-key"
PHONE = "254712345678"
CASE_PAGE = "/a/demo/contacts/hq-1"
LOG = "/a/demo/messages"


def login(project: Project, username: str, role: Role) -> Client:
    do_create_web_user(project, username, f"{username}-password-1", role=role)
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def connect(api: Api, url: str, key: str) -> None:
    block = {"url": url, "domain": api.project.name, "username": HQ_USER, "api_key": key}
    r = api.call("PATCH", M + "settings", {"commcare": block})
    assert 200 == r.status, r.body


@pytest.fixture
def hq(api: Api) -> Iterator[CaseApi]:
    fake = FakeHq(api.project.name, client_sender(api.client, api.auth), real_clock=True)
    server = CaseApi(fake, username=HQ_USER, api_key=HQ_KEY)
    yield server
    server.close()


@pytest.fixture
def sender() -> Iterator[WriteBackSender]:
    s = WriteBackSender(make_client, timeout_s=2, retry_base_s=0.001)
    yield s
    s.close()


def run(sender: WriteBackSender) -> None:
    for _ in range(20):
        if sender.run_once() == 0:
            return
        time.sleep(0.01)


@pytest.fixture
def refused(api: Api, hq: CaseApi, sender: WriteBackSender) -> CommCareWrite:
    """A keyword update of the HQ case hq-1 that HQ refused (a wrong key), and a later one
    waiting behind it."""
    connect(api, hq.url, "wrong-key")
    props = {"contact_phone_number": PHONE, "contact_phone_number_is_verified": "yes"}
    hq.hq.save(HqCase("hq-1", "mother", "Amina", "owner-1", properties=props))
    hq.deliver()
    gw = create_gateway(api)
    assert 200 == api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    kw = {"keyword": "weight", "reply": {"en": "ok"}, "fields": [{"property": "weight"}]}
    assert 201 == api.post(M + "keywords", kw).status
    inbound(gw, "WEIGHT 3.2", sender=PHONE)
    inbound(gw, "WEIGHT 3.4", sender=PHONE)
    run(sender)
    write = CommCareWrite.objects.order_by("id").first()
    assert write is not None and "failed" == write.status
    return write


def test_the_case_page_lists_its_failed_and_waiting_writes_and_a_member_retries(
    api: Api, project: Project, hq: CaseApi, sender: WriteBackSender, refused: CommCareWrite
) -> None:
    member = login(project, "worker", Role.MEMBER)
    html = member.get(CASE_PAGE).content.decode()
    assert "CommCare write-back" in html and "2 changes of this case have not reached" in html
    row = html.split(f'id="cc-write-{refused.pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-status="failed"' in row and "HTTP 401" in row
    assert '<td data-label="HQ status">401</td>' in row
    assert '<td data-label="Attempts">1</td>' in row
    assert f'aria-label="Retry write-back {refused.pk}"' in row
    assert 'data-status="queued"' in html  # the later one waits behind it
    assert 'href="/a/demo/connect#backlog"' in html
    connect(api, hq.url, HQ_KEY)
    r = member.post(CASE_PAGE, {"action": "retry_write", "write_id": str(refused.pk)})
    assert 200 == r.status_code
    assert f"Write-back {refused.pk} queued again" in r.content.decode()
    run(sender)
    assert ["3.2", "3.4"] == [
        x.body["properties"]["weight"] for x in hq.received if x.status == 200
    ]
    html = member.get(CASE_PAGE).content.decode()
    assert "Every change casereach made to this case has reached CommCare HQ." in html
    again = member.post(CASE_PAGE, {"action": "retry_write", "write_id": str(refused.pk)})
    assert 409 == again.status_code
    assert "only a failed or queued one can be retried" in again.content.decode()


def test_the_message_log_shows_write_back_failures_in_its_error_style(
    project: Project, refused: CommCareWrite
) -> None:
    viewer = login(project, "watcher", Role.VIEWER)
    html = viewer.get(LOG).content.decode()
    section = html.split('id="writeback-errors"', 1)[1].split("</section>", 1)[0]
    assert "CommCare write-back" in section and 'data-count="1"' in section
    assert "1 waiting" in section
    row = section.split(f'id="wb-{refused.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "<code>commcare_writeback</code> HQ answered 401: HTTP 401" in row
    assert 'href="/a/demo/contacts/hq-1#writeback"' in row
    assert 'href="/a/demo/connect#backlog"' in section


def test_the_message_log_has_no_write_back_group_without_failures(project: Project) -> None:
    viewer = login(project, "watcher", Role.VIEWER)
    assert 'id="writeback-errors"' not in viewer.get(LOG).content.decode()


def test_viewers_see_the_writes_but_cannot_retry(project: Project, refused: CommCareWrite) -> None:
    viewer = login(project, "watcher", Role.VIEWER)
    html = viewer.get(CASE_PAGE).content.decode()
    assert f'id="cc-write-{refused.pk}"' in html and "HTTP 401" in html
    assert "Retry write-back" not in html
    r = viewer.post(CASE_PAGE, {"action": "retry_write", "write_id": str(refused.pk)})
    assert 403 == r.status_code
    refused.refresh_from_db()
    assert "failed" == refused.status


def test_another_cases_or_projects_write_is_a_404(
    api: Api,
    other_api: Api,
    project: Project,
    other_project: Project,
    refused: CommCareWrite,
) -> None:
    member = login(project, "worker", Role.MEMBER)
    r = api.post(
        f"/a/{api.project.name}/api/case/v2/",
        {
            "case_type": "mother",
            "case_name": "Zawadi",
            "owner_id": "o",
            "properties": {"contact_phone_number": "254700000009"},
        },
    )
    assert 200 == r.status, r.body
    other_case = r.body["case"]["case_id"]
    post: dict[str, Any] = {"action": "retry_write", "write_id": str(refused.pk)}
    assert 404 == member.post(f"/a/demo/contacts/{other_case}", post).status_code
    assert 404 == member.post(CASE_PAGE, {**post, "write_id": "x"}).status_code
    assert 400 == member.post(CASE_PAGE, {"action": "nope"}).status_code
    r = other_api.post(
        f"/a/{other_api.project.name}/api/case/v2/",
        {
            "case_type": "mother",
            "case_name": "Neema",
            "owner_id": "o",
            "properties": {"contact_phone_number": "254700000008"},
        },
    )
    assert 200 == r.status, r.body
    theirs = r.body["case"]["case_id"]
    outsider = login(other_project, "stranger", Role.ADMIN)
    page = f"/a/{other_project.name}/contacts/{theirs}"
    assert 200 == outsider.get(page).status_code
    assert 404 == outsider.post(page, post).status_code
    assert 404 == outsider.get(CASE_PAGE).status_code
    refused.refresh_from_db()
    assert "failed" == refused.status


def test_the_api_lists_one_cases_writes(api: Api, refused: CommCareWrite) -> None:
    r = api.get(f"/a/{api.project.name}/api/commcare/writeback?case_id=hq-1")
    assert 200 == r.status, r.body
    assert [("update", "queued"), ("update", "failed")] == [
        (w["op"], w["status"]) for w in r.body["objects"]
    ]
    r = api.get(f"/a/{api.project.name}/api/commcare/writeback?case_id=nope")
    assert (200, 0, []) == (r.status, r.body["total_count"], r.body["objects"])
