"""Fallback chains: one logical message, one attempt per channel, against a real local HTTP
provider (SMS) and a real SMTP server (email)."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.test import Client

from casereach.core.timeutil import now
from casereach.gateways.base import StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.messaging.actions import do_apply_status_update
from casereach.messaging.chains import move_on_waiting, parse_order, reason_for
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message, MessagingSubEvent
from casereach.projects.models import Project
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"
EMAIL = "amina@example.org"


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox(port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def gateways(api: Api, provider: ProviderServer, mailbox: Mailbox) -> dict[str, Any]:
    cfg = {
        "url": provider.url + "/send",
        "params": {"to": "{to}", "text": "{text}", "key": "{message_id}"},
        "provider_id_path": "id",
        "timeout_s": 2,
    }
    r = api.post(M + "gateways", {"name": "HTTP", "type": "http", "config": cfg})
    assert 201 == r.status, r.body
    api.put(M + "routes", {"default_gateway": "HTTP", "prefixes": []})
    mail = {"host": "127.0.0.1", "port": mailbox.port, "from_address": "clinic@example.org"}
    r2 = api.post(M + "gateways", {"name": "MAIL", "type": "email", "config": mail})
    assert 201 == r2.status, r2.body
    return r.body  # type: ignore[no-any-return]


def chain_project(api: Api, **settings: Any) -> None:
    r = api.put(M + "settings", {"channel_order": ["sms", "email"], **settings})
    assert 200 == r.status, r.body


def contact(api: Api, **props: str) -> str:
    body = case_body(phone=NUMBER, commcare_email_address=EMAIL, **props)
    cid: str = api.post("/a/{project}/api/case/v2/", body).body["case"]["case_id"]
    return cid


def send(api: Api, cid: str, text: str = "Clinic visit tomorrow") -> str:
    r = api.post(M + "send", {"contact_id": cid, "text": text})
    assert 202 == r.status, r.body
    mid: str = r.body["messages"][0]["id"]
    return mid


def drain(at: dt.datetime | None = None) -> None:
    """Send everything due (as of ``at``: a time the tests moved to)."""
    d = Dispatcher(concurrency=2)
    if at is not None:
        d.clock = lambda: at  # type: ignore[method-assign]
    try:
        d.drain()
    finally:
        d.close()


def chain(api: Api, mid: str) -> list[dict[str, Any]]:
    r = api.get(M + f"messages/{mid}")
    assert 200 == r.status, r.body
    return r.body["chain"]  # type: ignore[no-any-return]


def steps(api: Api, mid: str) -> list[tuple[Any, ...]]:
    return [
        (a["chain_step"], a["channel"], a["status"], a["fallback_reason"], a["moved_on"])
        for a in chain(api, mid)
    ]


def test_a_permanent_failure_moves_the_message_from_sms_to_email(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(400, "unknown subscriber"))
    mid = send(api, contact(api))

    drain()

    assert [(1, "sms", "failed", "failed", True), (2, "email", "sent", None, False)] == steps(
        api, mid
    )
    assert [[EMAIL]] == [m.rcpt_tos for m in mailbox.messages]
    assert b"Clinic visit tomorrow" in mailbox.messages[0].content
    email = api.get(M + "messages", chain_id=mid).body["objects"][0]
    assert (mid, 2, "email", None) == (
        email["chain_id"],
        email["chain_step"],
        email["channel"],
        email["fallback_reason"],
    )
    sub = MessagingSubEvent.objects.get(messages__id=mid)
    assert ("completed", None) == (sub.status, sub.error_code)
    events = api.get("/a/{project}/api/v0.5/messaging-event/").body["objects"]
    assert 1 == len(events)
    assert "completed" == events[0]["status"]
    assert [("sms", "error", 1, "failed", True), ("email", "completed", 2, None, False)] == [
        (m["type"], m["status"], m["chain_step"], m["fallback_reason"], m["moved_on"])
        for m in events[0]["messages"]
    ]


def test_retries_exhausted_move_the_chain_on(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gateways(api, provider, mailbox)
    chain_project(api, retry_delays_minutes=[0])
    provider.script("/send", Reply(503, "busy"), Reply(503, "busy"))
    mid = send(api, contact(api))

    drain()

    assert [
        (1, "sms", "failed", "retries_exhausted", True),
        (2, "email", "sent", None, False),
    ] == steps(api, mid)
    assert 2 == len(provider.requests)


def test_a_project_without_a_channel_order_sends_as_before(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gateways(api, provider, mailbox)
    provider.script("/send", Reply(400, "unknown subscriber"))
    mid = send(api, contact(api))

    drain()

    m = api.get(M + f"messages/{mid}").body
    assert ("failed", None, None, False, []) == (
        m["status"],
        m["chain_id"],
        m["chain_step"],
        m["moved_on"],
        m["chain"],
    )
    assert [] == mailbox.messages
    assert 1 == Message.objects.count()


def test_no_delivery_in_time_moves_on_and_a_late_receipt_is_only_recorded(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = gateways(api, provider, mailbox)
    chain_project(api, fallback_after_minutes={"sms": 30})
    provider.script("/send", Reply(200, {"id": "prov-1"}))
    mid = send(api, contact(api))
    drain()
    assert [(1, "sms", "sent", None, False)] == steps(api, mid)

    assert 0 == move_on_waiting(at=now() + dt.timedelta(minutes=29))
    later = now() + dt.timedelta(minutes=31)
    assert 1 == move_on_waiting(at=later)
    assert 0 == move_on_waiting(at=later)
    drain(later)
    assert [
        (1, "sms", "sent", "not_delivered_in_time", True),
        (2, "email", "sent", None, False),
    ] == steps(api, mid)

    # The SMS is delivered after all: recorded on its attempt, nothing else is sent.
    path = gw["status_url"].replace("http://testserver", "")
    r = Client().post(path, {"id": "prov-1", "status": "delivered"})
    assert 200 == r.status_code, r.content
    drain(later)
    assert [
        (1, "sms", "delivered", "not_delivered_in_time", True),
        (2, "email", "sent", None, False),
    ] == steps(api, mid)
    assert 1 == len(mailbox.messages)
    assert 1 == len(provider.requests)
    sub = MessagingSubEvent.objects.get(messages__id=mid)
    assert "completed" == sub.status


def test_a_delivered_attempt_ends_its_chain_before_the_scan(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = gateways(api, provider, mailbox)
    chain_project(api, fallback_after_minutes={"sms": 30})
    provider.script("/send", Reply(200, {"id": "prov-2"}))
    mid = send(api, contact(api))
    drain()
    path = gw["status_url"].replace("http://testserver", "")
    assert 200 == Client().post(path, {"id": "prov-2", "status": "delivered"}).status_code

    assert 0 == move_on_waiting(at=now() + dt.timedelta(hours=2))
    drain()

    assert [(1, "sms", "delivered", None, False)] == steps(api, mid)
    assert [] == mailbox.messages


def test_a_failure_report_after_sent_moves_the_chain_on_once(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(200, {"id": "prov-3"}))
    mid = send(api, contact(api))
    drain()
    path = gw["status_url"].replace("http://testserver", "")

    for _ in range(2):  # the provider repeats its report
        r = Client().post(path, {"id": "prov-3", "status": "failed", "code": "1"})
        assert 200 == r.status_code, r.content
    drain()

    assert [(1, "sms", "failed", "failed", True), (2, "email", "sent", None, False)] == steps(
        api, mid
    )
    assert 1 == len(mailbox.messages)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("WHATSAPP_NOT_A_USER", "not_a_whatsapp_user"),
        ("WHATSAPP_OUTSIDE_WINDOW", "outside_window"),
    ],
)
def test_whatsapp_codes_move_the_chain_on_with_their_reason(
    api: Api, provider: ProviderServer, mailbox: Mailbox, code: str, reason: str
) -> None:
    """Reported by the gateway's status update, as a WhatsApp type reports them."""
    gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(200, {"id": "wamid-1"}))
    mid = send(api, contact(api))
    drain()
    gw = GatewayConfig.objects.get(name="HTTP")

    assert do_apply_status_update(gw, StatusUpdate("wamid-1", "failed", error_code=code))
    drain()

    assert [(1, "sms", "failed", reason, True), (2, "email", "sent", None, False)] == steps(
        api, mid
    )


def test_reasons_by_error_code() -> None:
    assert [
        "not_a_whatsapp_user",
        "outside_window",
        "retries_exhausted",
        "failed",
        "failed",
        None,
        None,
        None,
    ] == [
        reason_for(c)
        for c in (
            "WHATSAPP_NOT_A_USER",
            "WHATSAPP_OUTSIDE_WINDOW",
            "TOO_MANY_UNSUCCESSFUL_ATTEMPTS",
            "GATEWAY_ERROR",
            "PHONE_NUMBER_OPTED_OUT",
            "MESSAGE_IS_STALE",
            "CONTACT_IS_INACTIVE",
            "MONTHLY_BUDGET_REACHED",
        )
    ]
    assert ["email", "sms"] == parse_order(" Email, SMS ,fax, email")
    assert None is parse_order("fax")
    assert None is parse_order("")


def test_a_channel_that_cannot_reach_the_contact_is_skipped(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    """No number: the chain starts on email. No WhatsApp gateway: WhatsApp is skipped."""
    gateways(api, provider, mailbox)
    chain_project(api, channel_order=["whatsapp", "sms", "email"])
    body = case_body(commcare_email_address=EMAIL)
    cid = api.post("/a/{project}/api/case/v2/", body).body["case"]["case_id"]
    r = api.post(M + "send", {"contact_id": cid, "text": "Clinic visit"})
    mid = r.body["messages"][0]["id"]
    assert ("queued", "MAIL") == (r.body["messages"][0]["status"], r.body["messages"][0]["gateway"])

    drain()

    assert [(1, "email", "sent", None, False)] == steps(api, mid)
    assert [] == provider.requests


def test_the_contact_override_wins_over_the_project_order(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(200, {"id": "prov-4"}))
    mid = send(api, contact(api, contact_channel_order="email, sms"))

    drain()

    assert [(1, "email", "sent", None, False)] == steps(api, mid)
    assert 1 == len(mailbox.messages)
    assert [] == provider.requests
    attempt = Message.objects.get(id=mid)
    assert "sms" == attempt.chain_next


def test_sms_stop_skips_sms_in_the_chain(
    api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gw = gateways(api, provider, mailbox)
    chain_project(api)
    cid = contact(api)
    path = gw["inbound_url"].replace("http://testserver", "")
    r = Client().post(path, {"from": NUMBER, "to": "5555", "text": "STOP"})
    assert 200 == r.status_code, r.content
    assert ["sms"] == [o["channel"] for o in api.get(M + "contacts/" + cid).body["opt_outs"]]
    mid = send(api, cid)

    drain()

    assert [(1, "email", "sent", None, False)] == steps(api, mid)
    assert ["STOP reply"] == [
        "STOP reply" if "unsubscribed" in r.form()["text"] else r.form()["text"]
        for r in provider.requests
    ]


def test_settings_refuse_a_bad_channel_order(api: Api) -> None:
    for bad in (
        {"channel_order": ["sms", "sms"]},
        {"channel_order": ["fax"]},
        {"fallback_after_minutes": {"sms": 0}},
        {"fallback_after_minutes": {"fax": 5}},
    ):
        r = api.put(M + "settings", bad)
        assert 400 == r.status, (bad, r.body)
    assert [] == api.get(M + "settings").body["channel_order"]


def test_another_projects_chain_is_not_found(
    api: Api, other_api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(400, "no"))
    mid = send(api, contact(api))
    drain()

    assert 404 == other_api.get(M + f"messages/{mid}").status
    assert [] == other_api.get(M + "messages", chain_id=mid).body["objects"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_timeout_scans_move_a_chain_once(
    project: Project, provider: ProviderServer, mailbox: Mailbox
) -> None:
    api = Api(project)
    gateways(api, provider, mailbox)
    chain_project(api, fallback_after_minutes={"sms": 30})
    for i in range(5):
        provider.script("/send", Reply(200, {"id": f"prov-c{i}"}))
    cid = contact(api)
    ids = [send(api, cid, f"message {i}") for i in range(5)]
    drain()
    at = now() + dt.timedelta(minutes=31)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def scan() -> None:
        try:
            barrier.wait()
            results.append(move_on_waiting(at=at))
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert 5 == sum(results)
    drain(at)
    for mid in ids:
        assert [("sms", "sent"), ("email", "sent")] == [
            (a["channel"], a["status"]) for a in chain(api, mid)
        ]
    assert 5 == len(mailbox.messages)


def test_the_message_log_page_lists_a_chain_in_order(
    project: Project, api: Api, provider: ProviderServer, mailbox: Mailbox
) -> None:
    from django.contrib.auth import get_user_model

    from casereach.projects.actions import do_create_web_user
    from casereach.projects.models import Role

    gateways(api, provider, mailbox)
    chain_project(api)
    provider.script("/send", Reply(400, "unknown subscriber"))
    mid = send(api, contact(api))
    drain()
    do_create_web_user(project, "pm", "pm-password-1", role=Role.VIEWER)
    web = Client()
    web.force_login(get_user_model().objects.get(username="pm"))

    page = web.get(f"/a/{project.name}/messages", {"chain_id": mid}).content.decode()

    assert "One message's fallback chain" in page
    first, second = page.index("step 1 · sms"), page.index("step 2 · email")
    assert first < second
    assert "moved on: failed" in page[first:second]
    response = web.get(f"/a/{project.name}/messages", {"format": "csv"})
    csv_text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    header, *lines = csv_text.strip().splitlines()
    names = header.split(",")
    at = names.index("chain_id")
    assert ["chain_id", "chain_step", "fallback_reason", "moved_on"] == names[at : at + 4]
    assert sorted([f"{mid},1,failed,True", f"{mid},2,,False"]) == sorted(
        ",".join(line.split(",")[at : at + 4]) for line in lines
    )
