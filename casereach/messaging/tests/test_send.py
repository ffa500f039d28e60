"""The outbound pipeline through the API and the dispatcher, with the test gateway."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import transaction

from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import Message, MessagingEvent, SendAttempt
from casereach.messaging.optouts import Scope, do_person_opt_out
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import set_routes as routes
from casereach.testing.sending import drain, send
from casereach.testing.world import Api

V2 = "/a/{project}/api/case/v2/"
M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"


def opt_out(api: Api, number: str) -> None:
    """The person's STOP in the project's scope."""
    with transaction.atomic():
        do_person_opt_out(number, Scope(projects=(api.project.pk,)), source="test")


def message(mid: str) -> Message:
    return Message.objects.get(id=mid)


def test_send_to_contact_through_default_gateway(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    cid = case(api, phone="+254 712 345 678", language_code="sw")
    msg = send(api, contact_id=cid, content={"sms": {"en": "Hello", "sw": "Habari"}})
    assert ("queued", None, "TEST") == (msg["status"], msg["error_code"], msg["gateway"])
    assert 1 == drain()
    m = message(msg["id"])
    assert ("sent", NUMBER, "Habari", "sw", 1, "GSM") == (
        m.status,
        m.phone_number,
        m.text,
        m.language,
        m.segments,
        m.encoding,
    )
    assert [(msg["id"], NUMBER, "Habari")] == [(o.message_id, o.to, o.text) for o in OUTBOX]
    assert [("sent", 1)] == list(SendAttempt.objects.values_list("outcome", "number"))
    listed = api.get(M + "messages").body["objects"]
    assert [("sent", "TEST", cid)] == [(o["status"], o["gateway"], o["contact_id"]) for o in listed]


def test_send_to_raw_number_with_plain_text(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    msg = send(api, phone_number="+1 (555) 123-4567", text="Clinic tomorrow at 9")
    drain()
    assert ("sent", "15551234567") == (message(msg["id"]).status, message(msg["id"]).phone_number)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("no_gateway", "NO_SUITABLE_GATEWAY"),
        ("unknown_override", "GATEWAY_NOT_FOUND"),
        ("closed", "CONTACT_IS_INACTIVE"),
        ("no_phone", "NO_PHONE_NUMBER"),
        ("opted_out", "PHONE_NUMBER_OPTED_OUT"),
        ("no_translation", "NO_MESSAGE"),
        ("blank", "MESSAGE_BLANK"),
    ],
)
def test_checks_before_the_gateway_record_the_error(api: Api, setup: str, expected: str) -> None:
    if setup != "no_gateway":
        gateway(api)
        routes(api, "TEST")
    props: dict[str, Any] = {"phone": NUMBER}
    if setup == "unknown_override":
        props["contact_backend_id"] = "NOPE"
    if setup == "no_phone":
        props = {}
    cid = case(api, **props)
    if setup == "closed":
        api.put(V2 + cid, {"close": True})
    if setup == "opted_out":
        opt_out(api, NUMBER)
    content = {"sms": {"fr": "Bonjour"}} if setup == "no_translation" else {"sms": {"*": "Hi"}}
    if setup == "blank":
        content = {"sms": {"*": "   "}}
    if setup == "no_translation":
        api.put(M + "settings", {"language_fallback": "project"})
    msg = send(api, contact_id=cid, content=content)
    assert ("failed", expected) == (msg["status"], msg["error_code"])
    m = message(msg["id"])
    assert ("failed", expected) == (m.status, m.error_code)
    assert 0 == drain()
    assert [] == list(OUTBOX)
    ev = api.get(M + "messages", error_code=expected).body["objects"]
    assert [msg["id"]] == [o["id"] for o in ev]
    assert ev[0]["error_description"]


def test_checks_are_repeated_at_dispatch(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    cid = case(api, phone=NUMBER)
    a = send(api, contact_id=cid, text="one")
    b = send(api, phone_number="254700000001", text="two")
    c = send(api, phone_number="254700000002", text="three")
    api.put(V2 + cid, {"close": True})
    opt_out(api, "254700000001")
    Message.objects.filter(id=c["id"]).update(created_on=now() - dt.timedelta(days=8))
    drain()
    assert ["CONTACT_IS_INACTIVE", "PHONE_NUMBER_OPTED_OUT", "MESSAGE_IS_STALE"] == [
        message(x["id"]).error_code for x in (a, b, c)
    ]
    assert [] == list(OUTBOX)


def test_daily_limit_postpones_one_hour(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    api.put(M + "settings", {"daily_limit": 1})
    first = send(api, phone_number=NUMBER, text="1")
    second = send(api, phone_number=NUMBER, text="2")
    drain()
    assert "sent" == message(first["id"]).status
    m = message(second["id"])
    assert ("queued", "DAILY_LIMIT_REACHED") == (m.status, m.error_code)
    assert m.next_attempt_at is not None and m.next_attempt_at > now() + dt.timedelta(minutes=59)
    assert 0 == m.attempts


def test_restricted_window_uses_the_contacts_zone(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    at = now()
    # A one-hour window that starts 3 hours from now in New York time.
    from zoneinfo import ZoneInfo

    ny = at.astimezone(ZoneInfo("America/New_York")) + dt.timedelta(hours=3)
    start = ny.replace(minute=0, second=0, microsecond=0)
    window = {
        "start": start.strftime("%H:%M"),
        # Windows do not wrap midnight: a window starting at 23:00 ends at 23:59.
        "end": "23:59" if start.hour == 23 else f"{start.hour + 1:02d}:00",
        "days": [start.weekday()],
    }
    api.put(M + "settings", {"restricted_windows": [window]})
    cid = case(api, phone=NUMBER, time_zone="America/New_York")
    msg = send(api, contact_id=cid, text="later")
    drain()
    m = message(msg["id"])
    assert "queued" == m.status
    assert start.astimezone(dt.UTC) == m.next_attempt_at


def test_retryable_errors_back_off_then_give_up(api: Api) -> None:
    gateway(api, config={"retry_numbers": [NUMBER]})
    routes(api, "TEST")
    api.put(M + "settings", {"retry_delays_minutes": [5, 10]})
    msg = send(api, phone_number=NUMBER, text="x")
    drain()
    m = message(msg["id"])
    assert ("queued", 1, "GATEWAY_ERROR") == (m.status, m.attempts, m.error_code)
    assert m.next_attempt_at is not None
    assert dt.timedelta(minutes=4) < m.next_attempt_at - now() <= dt.timedelta(minutes=5)
    Message.objects.filter(id=m.id).update(next_attempt_at=now())
    drain()
    m = message(msg["id"])
    assert 2 == m.attempts
    assert m.next_attempt_at is not None
    assert dt.timedelta(minutes=9) < m.next_attempt_at - now() <= dt.timedelta(minutes=10)
    Message.objects.filter(id=m.id).update(next_attempt_at=now())
    drain()
    m = message(msg["id"])
    assert ("failed", "TOO_MANY_UNSUCCESSFUL_ATTEMPTS", 3) == (m.status, m.error_code, m.attempts)
    assert ["retry", "retry", "retry"] == list(
        SendAttempt.objects.filter(message_id=m.id).order_by("id").values_list("outcome", flat=True)
    )


def test_permanent_error_fails_at_once(api: Api) -> None:
    gateway(api, config={"fail_numbers": [NUMBER]})
    routes(api, "TEST")
    msg = send(api, phone_number=NUMBER, text="x")
    drain()
    m = message(msg["id"])
    assert ("failed", "INVALID_DESTINATION_NUMBER", 1) == (m.status, m.error_code, m.attempts)


def test_routing_order(api: Api, other_api: Api) -> None:
    for name in ("DEFAULT", "KE", "KE-SAF", "OVERRIDE"):
        gateway(api, name)
    routes(api, "DEFAULT", p254="KE", p25470="KE-SAF")
    expectations = [
        ({"phone": "254712000001"}, "KE", "route"),
        ({"phone": "254700000001"}, "KE-SAF", "route"),
        ({"phone": "15551230000"}, "DEFAULT", "project_default"),
        ({"phone": "254712000002", "contact_backend_id": "override"}, "OVERRIDE", "contact"),
    ]
    for props, name, source in expectations:
        cid = case(api, **props)
        msg = send(api, contact_id=cid, text="x")
        m = message(msg["id"])
        assert (name, source) == (m.gateway_name, m.gateway_source), props
        profile = api.get(M + f"contacts/{cid}").body["gateway"]
        assert {"name": name, "source": source, "status": "ok"} == profile


def test_gateways_of_other_projects_are_not_usable_unless_shared_and_accepted(
    api: Api, other_api: Api
) -> None:
    r = other_api.post(
        M.replace("{project}", "other") + "gateways", {"name": "THEIRS", "type": "test"}
    )
    assert 201 == r.status
    r = api.put(M + "routes", {"default_gateway": "THEIRS", "prefixes": []})
    assert 400 == r.status
    gw = GatewayConfig.objects.get(name="THEIRS")
    r = other_api.put(
        M.replace("{project}", "other") + f"gateways/{gw.pk}", {"shared_with": ["demo"]}
    )
    assert 200 == r.status, r.body
    r = api.put(M + "routes", {"default_gateway": "THEIRS", "prefixes": []})
    assert 400 == r.status  # an offer not yet accepted
    assert 200 == api.post(M + f"gateways/{gw.pk}/accept").status
    routes(api, "THEIRS")
    msg = send(api, phone_number=NUMBER, text="x")
    assert "THEIRS" == msg["gateway"]
    listed = {g["name"]: g for g in api.get(M + "gateways").body["objects"]}
    assert "shared" == listed["THEIRS"]["scope"]
    assert "config" not in listed["THEIRS"]  # another project's settings stay private


def test_global_routes(api: Api) -> None:
    from casereach.gateways.actions import do_create_gateway, do_set_global_routes

    do_create_gateway(None, {"name": "GLOBAL", "type": "test"})
    do_create_gateway(None, {"name": "GLOBAL-KE", "type": "test"})
    do_set_global_routes(
        {"default_gateway": "GLOBAL", "prefixes": [{"prefix": "254", "gateway": "GLOBAL-KE"}]}
    )
    a = send(api, phone_number=NUMBER, text="x")
    b = send(api, phone_number="15551230000", text="x")
    assert ("GLOBAL-KE", "global_route") == (
        message(a["id"]).gateway_name,
        message(a["id"]).gateway_source,
    )
    assert ("GLOBAL", "global_default") == (
        message(b["id"]).gateway_name,
        message(b["id"]).gateway_source,
    )


def test_sender_numbers_are_stable_per_destination(api: Api) -> None:
    gateway(api, sender_numbers=["+254700000100", "254700000200", "254700000300"])
    routes(api, "TEST")
    for _ in range(3):
        send(api, phone_number=NUMBER, text="x")
        send(api, phone_number="254712000999", text="y")
    drain()
    by_to: dict[str, set[str]] = {}
    for o in OUTBOX:
        by_to.setdefault(o.to, set()).add(o.sender)
    assert {1} == {len(s) for s in by_to.values()}


def test_rate_limit_postpones_by_segments(api: Api) -> None:
    gateway(api, rate_limit_per_s=2)
    routes(api, "TEST")
    long_text = "a" * 400  # 3 segments
    first = send(api, phone_number=NUMBER, text="short")
    second = send(api, phone_number=NUMBER, text=long_text)
    drain_once = Dispatcher(concurrency=1)
    try:
        drain_once.run_once()
    finally:
        drain_once.close()
    assert "sent" == message(first["id"]).status
    m = message(second["id"])
    assert ("queued", 0, 3) == (m.status, m.attempts, m.segments)
    assert m.next_attempt_at is not None and m.next_attempt_at > now()


def test_status_callbacks_move_forward_only(api: Api) -> None:
    gw = gateway(api)
    routes(api, "TEST")
    msg = send(api, phone_number=NUMBER, text="x")
    drain()
    provider_id = message(msg["id"]).provider_id
    status_url = gw["status_url"].replace("http://testserver", "")
    for status in ("delivered", "sent", "delivered"):
        r = api.client.post(status_url, {"id": provider_id, "status": status})
        assert 200 == r.status_code
    m = message(msg["id"])
    assert ("delivered", None) == (m.status, m.error_code)
    assert m.delivered_on is not None
    r = api.client.post(status_url, {"id": provider_id, "status": "failed"})
    assert "delivered" == message(msg["id"]).status
    bad = api.client.post(
        status_url.replace(gw["status_url"].split("/")[-2], "wrong-key"),
        {"id": "x", "status": "sent"},
    )
    assert 401 == bad.status_code
    garbage = api.client.post(status_url, "not json", content_type="application/json")
    assert 400 == garbage.status_code


def test_reaper_requeues_expired_leases_as_unknown(api: Api) -> None:
    from casereach.messaging import log

    gateway(api)
    routes(api, "TEST")
    msg = send(api, phone_number=NUMBER, text="x")
    at = now()
    assert [msg["id"]] == log.claim(10, at - dt.timedelta(seconds=1), "dead-worker", at)
    drain()
    m = message(msg["id"])
    assert ("sent", 1, 2) == (m.status, m.unknown_outcomes, m.attempts)
    assert ["unknown", "sent"] == list(
        SendAttempt.objects.filter(message_id=m.id).order_by("id").values_list("outcome", flat=True)
    )


def test_email(api: Api) -> None:
    no_email = case(api, phone=NUMBER)
    bad_email = case(api, commcare_email_address="nope@")
    r = api.post(
        M + "send",
        {
            "contact_id": no_email,
            "channel": "email",
            "content": {"email": {"subject": {"*": "S"}, "body": {"*": "B"}}},
        },
    )
    assert ("failed", "NO_EMAIL_ADDRESS") == (
        r.body["messages"][0]["status"],
        r.body["messages"][0]["error_code"],
    )
    r = api.post(M + "send", {"contact_id": bad_email, "channel": "email", "text": "B"})
    assert "ERROR_INVALID_EMAIL_ADDRESS" == r.body["messages"][0]["error_code"]
    r = api.post(M + "send", {"email_address": "a@example.org", "text": "B"})
    assert "NO_SUITABLE_GATEWAY" == r.body["messages"][0]["error_code"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"phone_number": NUMBER}, 400),
        ({"phone_number": NUMBER, "text": "x", "content": {"sms": {"*": "x"}}}, 400),
        ({"phone_number": "12a", "text": "x"}, 400),
        ({"phone_number": NUMBER, "text": "x" * 1601}, 400),
        ({"phone_number": NUMBER, "text": 5}, 400),
        ({"phone_number": NUMBER, "content": {"sms": "x"}}, 400),
        ({"phone_number": NUMBER, "text": "x", "colour": "red"}, 400),
        ({"contact_id": "nope", "text": "x"}, 404),
        ({"contact_id": "a", "phone_number": NUMBER, "text": "x"}, 400),
    ],
)
def test_bad_send_requests_store_nothing(api: Api, body: dict[str, Any], status: int) -> None:
    r = api.post(M + "send", body)
    assert status == r.status, r.body
    assert "error" in r.body
    assert 0 == Message.objects.count()


def test_error_codes_and_csv(api: Api) -> None:
    codes = api.get(M + "error-codes").body["objects"]
    assert 23 == len(codes)
    assert all(c["description"] and c["hint"] for c in codes)
    send(api, phone_number=NUMBER, text="=cmd()")
    r = api.client.get(
        M.replace("{project}", "demo") + "messages?format=csv", HTTP_AUTHORIZATION=api.auth
    )
    text = b"".join(r.streaming_content).decode()  # type: ignore[attr-defined]
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,event_id,direction,status,error_code")
    assert "'=cmd()" in lines[1]
    assert 2 == len(lines)


def test_message_ids_are_time_ordered_uuids_used_as_idempotency_keys(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    ids = []
    for i in range(3):
        ids.append(send(api, phone_number=NUMBER, text=f"reminder {i}")["id"])
    parsed = [uuid.UUID(i) for i in ids]
    assert [(7, uuid.RFC_4122)] * 3 == [(u.version, u.variant) for u in parsed]
    assert ids == [u.hex for u in parsed]  # 32 lowercase hex digits, as before
    stamps = [int(i[:12], 16) for i in ids]  # milliseconds since the epoch, first
    assert stamps == sorted(stamps)
    assert abs(now().timestamp() * 1000 - stamps[-1]) < 60_000
    assert 3 == drain()
    assert sorted(ids) == sorted(o.message_id for o in OUTBOX)


def test_a_chosen_gateway_replaces_routing(api: Api) -> None:
    gateway(api, "TEST")
    new = gateway(api, "NEW")
    routes(api, "TEST")

    msg = send(api, phone_number=NUMBER, text="trying the new gateway", gateway="new")

    assert ("queued", None, "NEW") == (msg["status"], msg["error_code"], msg["gateway"])
    assert 1 == drain()
    m = message(msg["id"])
    assert ("sent", "NEW", new["id"], "chosen") == (
        m.status,
        m.gateway_name,
        m.gateway_id,
        m.gateway_source,
    )
    assert ["NEW"] == list(SendAttempt.objects.values_list("gateway_name", flat=True))
    listed = api.get(M + "messages").body["objects"]
    assert [("NEW", "chosen")] == [(o["gateway"], o["gateway_source"]) for o in listed]


def test_a_chosen_gateway_still_takes_every_other_check(api: Api) -> None:
    gateway(api, "TEST")
    new = gateway(api, "NEW")
    routes(api, "TEST")
    opt_out(api, NUMBER)
    opted = send(api, phone_number=NUMBER, text="x", gateway="NEW")
    later = send(api, phone_number="254700000001", text="y", gateway="NEW")
    r = api.put(M + f"gateways/{new['id']}", {"is_active": False})
    assert 200 == r.status, r.body

    drain()

    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (opted["status"], opted["error_code"])
    m = message(later["id"])
    assert ("failed", "GATEWAY_NOT_FOUND") == (m.status, m.error_code)
    assert [] == list(OUTBOX)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("NOPE", "gateway 'NOPE' not found"),
        ("THEIRS", "gateway 'THEIRS' not found"),  # another project's, not shared
        ("OFF", "gateway 'OFF' not found"),  # inactive
        ("  ", "gateway must name a gateway"),
        (7, "gateway must be a string"),
    ],
)
def test_a_bad_chosen_gateway_is_400_and_stores_nothing(
    api: Api, other_api: Api, name: Any, reason: str
) -> None:
    r = other_api.post(
        M.replace("{project}", "other") + "gateways", {"name": "THEIRS", "type": "test"}
    )
    assert 201 == r.status
    gateway(api, "TEST")
    gateway(api, "OFF", is_active=False)
    routes(api, "TEST")

    r = api.post(M + "send", {"phone_number": NUMBER, "text": "x", "gateway": name})

    assert 400 == r.status, r.body
    assert reason in r.body["error"]
    assert (0, 0) == (Message.objects.count(), MessagingEvent.objects.count())


def test_dispatch_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from casereach.messaging.dispatch import dispatch_sizes
    from casereach.messaging.runner import BackgroundLoops

    monkeypatch.delenv("CASEREACH_DISPATCH_BATCH", raising=False)
    monkeypatch.delenv("CASEREACH_DISPATCH_THREADS", raising=False)
    assert (200, 16) == dispatch_sizes()
    monkeypatch.setenv("CASEREACH_DISPATCH_BATCH", " 500 ")
    monkeypatch.setenv("CASEREACH_DISPATCH_THREADS", "64")
    assert (500, 64) == dispatch_sizes()
    loops = BackgroundLoops()  # what serve runs: the same sizes as the scale-out workers
    assert (500, 64) == (loops.batch_size, loops.concurrency)
    monkeypatch.setenv("CASEREACH_DISPATCH_THREADS", "2000")
    with pytest.raises(ValueError, match="CASEREACH_DISPATCH_THREADS must be a whole number"):
        dispatch_sizes()
