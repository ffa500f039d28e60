"""Alerts that expect a reply (issue 20): an SMS broadcast with ``expect_reply_within_minutes``
sent through the test gateway, replies posted to the gateway's inbound URL, and the due scan
driven with ``run_due_waits(at=…)``; what happened is read back from the API."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection

from casereach.alerts.replywait import run_due_waits
from casereach.alerts.scheduler import run_until_idle
from casereach.core.timeutil import now
from casereach.gateways.actions_global import do_create_global_gateway
from casereach.messaging.models import Message
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway, default_gateway, set_routes
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.sending import drain
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
WAITS = M + "alert-reply-waits"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"
OWNER_NUMBER = "254711000222"
TEXT = "Hello Amina, did the nurse visit? Reply YES or NO"
MISSED = {"action": "set_property", "property": "visit_unconfirmed", "value": "yes"}


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    return default_gateway(api)


def broadcast(api: Api, contact_id: str, no_reply: dict[str, Any] | None, **over: Any) -> int:
    body = {
        "name": "Visit check",
        "kind": "broadcast",
        "active": True,
        "content": {"sms": {"en": "Hello {recipient.name}, did the nurse visit? Reply YES or NO"}},
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "case", "id": contact_id}],
        "expect_reply_within_minutes": 30,
        **({"no_reply": no_reply} if no_reply else {}),
        **over,
    }
    r = api.post(M + "alerts", body)
    assert 201 == r.status, r.body
    run_until_idle()
    drain()
    return int(r.body["id"])


def waits(api: Api, **query: str) -> list[dict[str, Any]]:
    r = api.get(WAITS, **query)
    assert 200 == r.status, r.body
    found: list[dict[str, Any]] = r.body["objects"]
    return found


def the_wait(api: Api) -> dict[str, Any]:
    [wait] = waits(api)
    return wait


def later(minutes: int) -> dt.datetime:
    return now() + dt.timedelta(minutes=minutes)


def sent(number: str = NUMBER) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(direction="out", phone_number=number)
        .order_by("created_on", "id")
        .values_list("text", "gateway_name")
    )


def properties(api: Api, case_id: str) -> dict[str, str]:
    r = api.get(V2 + case_id + "/")
    assert 200 == r.status, r.body
    props: dict[str, str] = r.body["properties"]
    return props


def test_a_reply_in_time_marks_the_wait_replied_and_runs_no_action(
    api: Api, gw: dict[str, Any]
) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)
    wait = the_wait(api)
    assert ("waiting", "TEST", NUMBER, mother) == (
        wait["status"],
        wait["gateway"],
        wait["phone_number"],
        wait["case_id"],
    )

    assert 200 == inbound(gw, "yes she came").status_code
    assert "replied" == the_wait(api)["status"]  # at once, by the inbound hook

    assert 0 == run_due_waits(at=later(31))
    wait = the_wait(api)
    assert "replied" == wait["status"]
    assert wait["replied_on"] is not None and wait["reply_message_id"] is not None
    assert "visit_unconfirmed" not in properties(api, mother)
    # The reply was not taken from the project's own handling.
    last = Message.objects.get(direction="in")
    assert "unhandled" == last.inbound_action


def test_no_reply_sets_the_case_property_once(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)

    assert 0 == run_due_waits(at=later(29))
    assert 1 == run_due_waits(at=later(31))
    assert 0 == run_due_waits(at=later(32))

    wait = the_wait(api)
    assert "no_reply" == wait["status"]
    assert f"no reply: set_property visit_unconfirmed=yes on case {mother}" == wait["detail"]
    assert "yes" == properties(api, mother)["visit_unconfirmed"]


def test_no_reply_messages_the_case_owner_in_the_alerts_log(api: Api, gw: dict[str, Any]) -> None:
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "nurse", "password": "s3cret-pass", "phone_numbers": [OWNER_NUMBER]},
    )
    assert 201 == r.status, r.body
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", owner_id=r.body["id"])
    action = {
        "action": "message_owner",
        "message": {"en": "{case.name} did not answer", "sw": "{case.name} hakujibu"},
    }
    alert_id = broadcast(api, mother, action)

    assert 1 == run_due_waits(at=later(31))
    assert 0 == run_due_waits(at=later(31))
    drain()

    assert [("Amina did not answer", "TEST")] == sent(OWNER_NUMBER)
    logged = api.get(M + "messages", alert=str(alert_id))
    assert 200 == logged.status, logged.body
    assert {NUMBER, OWNER_NUMBER} == {m["phone_number"] for m in logged.body["objects"]}
    assert the_wait(api)["detail"].startswith(f"no reply: message_owner to {r.body['id']}")


def test_no_reply_sends_the_same_text_through_another_gateway(api: Api, gw: dict[str, Any]) -> None:
    create_gateway(api, "OTHER")
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, {"action": "other_gateway", "gateway": "OTHER"})

    assert 1 == run_due_waits(at=later(31))
    assert 0 == run_due_waits(at=later(31))
    drain()

    assert [(TEXT, "TEST"), (TEXT, "OTHER")] == sent()
    wait = the_wait(api)
    assert "no_reply" == wait["status"]
    assert "no reply: other_gateway OTHER: message" in wait["detail"]


def test_stop_cancels_the_wait_and_is_still_an_opt_out(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)

    inbound(gw, "STOP")

    assert "opt_out" == Message.objects.get(direction="in").inbound_action
    assert "cancelled" == the_wait(api)["status"]  # at once, by the inbound hook
    assert 0 == run_due_waits(at=later(31))
    wait = the_wait(api)
    assert ("cancelled", "the number opted out (STOP)") == (wait["status"], wait["detail"])
    assert "visit_unconfirmed" not in properties(api, mother)


def test_a_reply_from_another_number_does_not_count(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)

    inbound(gw, "yes", sender="254799000111")

    assert "waiting" == the_wait(api)["status"]
    assert 1 == run_due_waits(at=later(31))
    assert "no_reply" == the_wait(api)["status"]
    assert "yes" == properties(api, mother)["visit_unconfirmed"]


def test_another_projects_test_phone_on_the_same_gateway_does_not_count(
    api: Api, other_api: Api
) -> None:
    """A global test gateway serves both projects; B's test phone acts as B's own gateway."""
    do_create_global_gateway({"name": "SHARED", "type": "test"})
    set_routes(api, "SHARED")
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)
    assert "SHARED" == the_wait(api)["gateway"]

    for text in ("yes", "STOP"):
        r = other_api.post(M + "test-phone", {"from": NUMBER, "text": text})
        assert 201 == r.status, r.body

    assert "waiting" == the_wait(api)["status"]
    assert [] == waits(other_api)
    assert 1 == run_due_waits(at=later(31))
    assert "no_reply" == the_wait(api)["status"]


def test_a_message_never_sent_ends_its_wait_cancelled(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)
    Message.objects.filter(direction="out").update(status="failed", error_code="GATEWAY_ERROR")

    assert 1 == run_due_waits(at=later(31))

    wait = the_wait(api)
    assert ("cancelled", "the message was not sent: GATEWAY_ERROR") == (
        wait["status"],
        wait["detail"],
    )
    assert "visit_unconfirmed" not in properties(api, mother)


def test_the_deadline_is_an_absolute_instant_across_a_dst_change(
    api: Api, gw: dict[str, Any]
) -> None:
    """Sent at 01:30 in New York just before clocks jump to 03:00: two hours later is 08:30
    UTC (04:30 local), not 03:30 local."""
    mother = case(api, name="Amina", phone=NUMBER, verified="yes", time_zone="America/New_York")
    broadcast(api, mother, MISSED, expect_reply_within_minutes=120)
    sent_at = dt.datetime(2027, 3, 14, 6, 30, tzinfo=dt.UTC)  # 01:30 EST
    Message.objects.filter(direction="out").update(sent_on=sent_at)  # the dispatcher's clock

    assert 1 == run_due_waits(at=sent_at + dt.timedelta(minutes=119))  # moved to the send

    wait = the_wait(api)
    assert ("waiting", "2027-03-14T08:30:00+00:00") == (wait["status"], wait["due_at"])
    assert 0 == run_due_waits(at=dt.datetime(2027, 3, 14, 8, 29, tzinfo=dt.UTC))
    assert 1 == run_due_waits(at=dt.datetime(2027, 3, 14, 8, 31, tzinfo=dt.UTC))
    assert "no_reply" == the_wait(api)["status"]


def test_the_list_filters_and_refuses_bad_values(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    alert_id = broadcast(api, mother, MISSED)

    assert 1 == len(waits(api, alert=str(alert_id), status="waiting", contact_id=mother))
    assert [] == waits(api, status="replied")
    assert [] == waits(api, alert=str(alert_id + 1))
    for query in ({"status": "late"}, {"alert": "x"}):
        r = api.get(WAITS, **query)
        assert 400 == r.status, r.body
        assert r.body["error"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_scans_run_the_action_once(project: Project) -> None:
    api = Api(project)
    default_gateway(api)
    create_gateway(api, "OTHER")
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, {"action": "other_gateway", "gateway": "OTHER"})
    at = later(31)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def scan() -> None:
        try:
            barrier.wait()
            results.append(run_due_waits(at=at))
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert 1 == sum(results)
    assert 2 == Message.objects.filter(direction="out", phone_number=NUMBER).count()
    assert "no_reply" == the_wait(api)["status"]


def test_a_reply_the_hook_did_not_see_still_counts(api: Api, gw: dict[str, Any]) -> None:
    """START is an opt-in word: no conversation hook sees it, the due scan finds it."""
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, MISSED)

    inbound(gw, "START")

    assert ("opt_in", "waiting") == (
        Message.objects.get(direction="in").inbound_action,
        the_wait(api)["status"],
    )
    assert 1 == run_due_waits(at=later(31))
    assert "replied" == the_wait(api)["status"]
    assert "visit_unconfirmed" not in properties(api, mother)


def test_the_setting_is_checked_when_the_alert_is_saved(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    base = {
        "name": "Visit check",
        "kind": "broadcast",
        "content": {"sms": {"en": "Hi"}},
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "case", "id": mother}],
    }
    bad = [
        ({"no_reply": MISSED}, "no_reply needs expect_reply_within_minutes"),
        ({"expect_reply_within_minutes": 0}, "expect_reply_within_minutes"),
        ({"expect_reply_within_minutes": 40321}, "expect_reply_within_minutes"),
        (
            {
                "expect_reply_within_minutes": 30,
                "channel": "email",
                "content": {"email": {"subject": {"en": "s"}, "body": {"en": "b"}}},
            },
            "SMS alerts",
        ),
        (
            {"expect_reply_within_minutes": 30, "no_reply": {"action": "set_property"}},
            "valid case property name",
        ),
        (
            {
                "expect_reply_within_minutes": 30,
                "no_reply": {"action": "message_owner", "message": {"en": "{case.nme"}},
            },
            "no_reply.message[en]",
        ),
        (
            {
                "expect_reply_within_minutes": 30,
                "no_reply": {"action": "message_owner", "message": {"en": "late"}},
            },
            "no_reply.message[sw]: missing or blank",
        ),
        (
            {"expect_reply_within_minutes": 30, "no_reply": {"action": "other_gateway"}},
            "other_gateway needs the gateway's name",
        ),
    ]
    for over, message in bad:
        r = api.post(M + "alerts", {**base, **over})
        assert 400 == r.status, (over, r.body)
        assert message in r.body["error"], (over, r.body)
    r = api.get(M + "alerts")
    assert [] == r.body["objects"]


def test_a_conditional_alert_writes_to_its_own_case(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, case_type="mother", name="Amina", phone=NUMBER, verified="yes", missed="yes")
    r = api.post(
        M + "alerts",
        {
            "name": "Missed dose",
            "kind": "conditional",
            "active": True,
            "case_type": "mother",
            "criteria": {"rules": [{"property": "missed", "op": "equal", "value": "yes"}]},
            "content": {"sms": {"en": "{case.name}, did you take it?"}},
            "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
            "recipients": [{"type": "self"}],
            "expect_reply_within_minutes": 60,
            "no_reply": MISSED,
        },
    )
    assert 201 == r.status, r.body
    run_until_idle()
    drain()
    assert [("Amina, did you take it?", "TEST")] == sent()

    assert 0 == run_due_waits(at=later(59))
    assert 1 == run_due_waits(at=later(62))

    wait = the_wait(api)
    assert ("no_reply", mother, r.body["id"]) == (wait["status"], wait["case_id"], wait["alert_id"])
    assert "yes" == properties(api, mother)["visit_unconfirmed"]


def test_an_action_that_cannot_run_says_why(api: Api, gw: dict[str, Any]) -> None:
    mother = case(api, name="Amina", phone=NUMBER, verified="yes")
    broadcast(api, mother, {"action": "other_gateway", "gateway": "NOWHERE"})

    assert 1 == run_due_waits(at=later(31))

    wait = the_wait(api)
    assert "no_reply" == wait["status"]
    assert (
        "no reply: other_gateway NOWHERE: not sent: "
        "gateway 'NOWHERE' not found (or not active) for this project"
    ) == wait["detail"]
    assert [(TEXT, "TEST")] == sent()
