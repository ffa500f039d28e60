"""Alerts through the API and the scheduler: rules, schedules, recipients, content, time."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from casereach.alerts.models import Firing, ScheduleInstance
from casereach.alerts.scheduler import fire_due, run_until_idle
from casereach.core.timeutil import now
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.testing.alerts import create_alert as create
from casereach.testing.cases import mother_case_id as case
from casereach.testing.world import Api, case_body, conditional_alert_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
NAIROBI = ZoneInfo("Africa/Nairobi")


def update(api: Api, cid: str, **props: Any) -> None:
    r = api.put(V2 + cid, {"properties": props})
    assert 200 == r.status, r.body


def conditional(**over: Any) -> dict[str, Any]:
    return conditional_alert_body(**over)


def next_local_9(zone: ZoneInfo = NAIROBI) -> dt.datetime:
    local = now().astimezone(zone)
    target = local.replace(hour=9, minute=0, second=0, microsecond=0)
    if target <= local - dt.timedelta(seconds=60):
        target = (local + dt.timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return target.astimezone(dt.UTC)


def instance(cid: str) -> ScheduleInstance | None:
    return ScheduleInstance.objects.filter(case_id=cid).first()


def test_matching_case_gets_an_instance_at_9_local_and_fires_once(api: Api) -> None:
    cid = case(api, phone="254712345678", edd="2027-01-10", language_code="sw")
    alert = create(api, conditional())
    assert {"state": "done", "processed": 1, "total": 1} == alert["progress"]
    inst = instance(cid)
    assert inst is not None and inst.next_due == next_local_9()
    due = inst.next_due
    assert 1 == fire_due(at=due)
    assert 0 == fire_due(at=due)  # nothing is due twice
    msgs = list(Message.objects.filter(event__source="conditional_alert"))
    assert [("Habari Amina", "sw", "254712345678", "queued")] == [
        (m.text, m.language, m.phone_number, m.status) for m in msgs
    ]
    assert 1 == MessagingEvent.objects.filter(source="conditional_alert").count()
    assert 1 == Firing.objects.count()
    assert due + dt.timedelta(days=1) == ScheduleInstance.objects.get().next_due


def test_a_second_scheduler_cannot_fire_an_occurrence_again(api: Api) -> None:
    cid = case(api, phone="254712345678", edd="2027-01-10")
    create(api, conditional())
    inst = instance(cid)
    assert inst is not None
    due = inst.next_due
    fire_due(at=due)
    # A scheduler that read the instance before the first one advanced it:
    ScheduleInstance.objects.filter(pk=inst.pk).update(next_due=due)
    fire_due(at=due)
    assert 1 == Message.objects.filter(event__source="conditional_alert").count()


def test_case_that_stops_matching_or_closes_loses_its_instance(api: Api) -> None:
    a = case(api, edd="2027-01-10")
    b = case(api, edd="2027-01-10")
    create(api, conditional())
    assert instance(a) is not None and instance(b) is not None
    update(api, a, edd="")
    assert instance(a) is None
    r = api.put(V2 + b, {"close": True})
    assert 200 == r.status
    assert instance(b) is None
    c = case(api)  # created without edd: no instance, then it starts matching
    assert instance(c) is None
    update(api, c, edd="2027-02-01")
    assert instance(c) is not None
    r = api.delete(V2 + c)
    assert instance(c) is None


@pytest.mark.parametrize(
    ("rule", "props", "expected"),
    [
        ({"property": "risk", "op": "equal", "value": "high"}, {"risk": "high"}, True),
        ({"property": "risk", "op": "equal", "value": "high"}, {"risk": "low"}, False),
        ({"property": "risk", "op": "not_equal", "value": "high"}, {"risk": "low"}, True),
        ({"property": "risk", "op": "has_value"}, {"risk": "  "}, False),
        ({"property": "risk", "op": "has_no_value"}, {"risk": ""}, True),
        ({"property": "code", "op": "regex", "value": "^A[0-9]+"}, {"code": "A12x"}, True),
        ({"property": "code", "op": "regex", "value": "[0-9]+"}, {"code": "A12"}, False),
        ({"property": "lmp", "op": "days_after", "days": 10}, {"lmp": "2020-01-01"}, True),
        ({"property": "lmp", "op": "days_after", "days": 10}, {"lmp": "2999-01-01"}, False),
        ({"property": "edd", "op": "days_before", "days": 0}, {"edd": "2999-01-01T10:00"}, True),
        ({"property": "edd", "op": "days_before", "days": 0}, {"edd": "2000-01-01"}, False),
        ({"property": "edd", "op": "days_after", "days": 0}, {"edd": "not a date"}, False),
    ],
)
def test_each_criterion(
    api: Api, rule: dict[str, Any], props: dict[str, str], expected: bool
) -> None:
    cid = case(api, **props)
    create(api, conditional(criteria={"rules": [rule]}))
    assert expected == (instance(cid) is not None)


def test_any_and_parent_criteria(api: Api) -> None:
    parent = case(api, case_type="household", village="north")
    r = api.post(
        V2,
        {
            **case_body(case_type="child", name="Baby"),
            "indices": {
                "parent": {"case_id": parent, "case_type": "household", "relationship": "child"}
            },
        },
    )
    child = r.body["case"]["case_id"]
    other = case(api, case_type="child", name="Other", vaccinated="no")
    create(
        api,
        conditional(
            case_type="child",
            criteria={
                "match": "any",
                "rules": [
                    {"property": "parent/village", "op": "equal", "value": "north"},
                    {"property": "vaccinated", "op": "equal", "value": "no"},
                ],
            },
        ),
    )
    assert instance(child) is not None and instance(other) is not None


def test_start_date_property_stop_and_reset(api: Api) -> None:
    today = now().astimezone(NAIROBI).date()
    cid = case(api, edd="x", visit=(today + dt.timedelta(days=3)).isoformat(), stop="")
    create(
        api,
        conditional(
            schedule={
                "type": "timed",
                "events": [{"day": 0, "time": "09:00"}],
                "repeat": {"unit": "days", "iterations": None},
                "start": {"from": "property", "property": "visit"},
            },
            stop_property="stop",
            reset_property="round",
        ),
    )
    inst = instance(cid)
    assert inst is not None
    first = dt.datetime.combine(today + dt.timedelta(days=3), dt.time(9), NAIROBI)
    assert first.astimezone(dt.UTC) == inst.next_due
    update(api, cid, visit=(today + dt.timedelta(days=5)).isoformat())
    inst = instance(cid)
    assert inst is not None
    assert first + dt.timedelta(days=2) == inst.next_due
    update(api, cid, stop=(today + dt.timedelta(days=5)).isoformat())
    inst = instance(cid)
    assert inst is not None and (None, False) == (inst.next_due, inst.active)
    update(api, cid, stop="", visit="not a date")
    assert instance(cid) is None  # CommCare: no usable start date → no instance


def test_reset_property_restarts_an_alert_schedule(api: Api) -> None:
    cid = case(api, edd="x", round="1")
    create(
        api,
        conditional(
            schedule={
                "type": "alert",
                "events": [{"wait_minutes": 60}, {"wait_minutes": 120}],
                "iterations": 1,
            },
            reset_property="round",
        ),
    )
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    first_start = inst.start
    assert dt.timedelta(minutes=60) == inst.next_due - first_start
    fire_due(at=inst.next_due)
    inst.refresh_from_db()
    assert dt.timedelta(minutes=180) == inst.next_due - first_start  # type: ignore[operator]
    update(api, cid, round="2")
    inst.refresh_from_db()
    assert inst.start > first_start
    assert dt.timedelta(minutes=60) == inst.next_due - inst.start  # type: ignore[operator]


def test_time_from_property_and_random_window(api: Api) -> None:
    cid = case(api, edd="x", visit_time="14:30")
    create(
        api,
        conditional(
            schedule={
                "type": "timed",
                "events": [{"day": 1, "time_property": "visit_time"}],
                "repeat": {"unit": "once"},
            }
        ),
    )
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    assert dt.time(14, 30) == inst.next_due.astimezone(NAIROBI).time()
    other = case(api, case_type="kid", edd="x")
    create(
        api,
        conditional(
            case_type="kid",
            schedule={
                "type": "timed",
                "events": [{"day": 1, "window_start": "10:00", "window_end": "12:00"}],
            },
        ),
    )
    inst = instance(other)
    assert inst is not None and inst.next_due is not None
    local = inst.next_due.astimezone(NAIROBI).time()
    assert dt.time(10) <= local < dt.time(12)


def test_recipients_owner_parent_children_user_and_email(api: Api) -> None:
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {
            "username": "nurse",
            "first_name": "Neema",
            "password": "pw",
            "phone_numbers": ["+254700000009"],
        },
    )
    wid = r.body["id"]
    parent = case(api, case_type="household", name="House", phone="254700000001")
    r = api.post(
        V2,
        {
            **case_body(case_type="mother", name="Mum", owner_id=wid, phone="254700000002"),
            "properties": {
                "edd": "x",
                "contact_phone_number": "254700000002",
                "chw": "nurse",
                "family_email": "fam@example.org",
            },
            "indices": {
                "parent": {"case_id": parent, "case_type": "household", "relationship": "child"}
            },
        },
    )
    mum = r.body["case"]["case_id"]
    api.post(
        V2,
        {
            **case_body(case_type="baby", name="Kid", phone="254700000003"),
            "indices": {"parent": {"case_id": mum, "case_type": "mother", "relationship": "child"}},
        },
    )
    create(
        api,
        conditional(
            content={
                "sms": {
                    "en": "For {recipient.name}: {case.name} of {case.parent.name}, CHW {case.owner.name}"
                }
            },
            recipients=[
                {"type": "self"},
                {"type": "owner"},
                {"type": "parent"},
                {"type": "children"},
                {"type": "user_property", "property": "chw"},
            ],
        ),
    )
    inst = instance(mum)
    assert inst is not None
    fire_due(at=inst.next_due)
    got = sorted(
        (m.phone_number, m.text) for m in Message.objects.filter(event__source="conditional_alert")
    )
    assert [
        ("254700000001", "For House: Mum of House, CHW Neema"),
        ("254700000002", "For Mum: Mum of House, CHW Neema"),
        ("254700000003", "For Kid: Mum of House, CHW Neema"),
        ("254700000009", "For Neema: Mum of House, CHW Neema"),
    ] == got  # the owner and the user named in "chw" are the same worker: sent once
    email_alert = create(
        api,
        conditional(
            name="email",
            channel="email",
            content={"email": {"subject": {"en": "About {case.name}"}, "body": {"en": "Hi"}}},
            recipients=[{"type": "email_property", "property": "family_email"}],
        ),
    )
    inst = ScheduleInstance.objects.get(alert_id=email_alert["id"])
    fire_due(at=inst.next_due)
    m = Message.objects.get(channel="email")
    assert ("fam@example.org", "About Mum") == (m.email_address, m.subject)


def test_no_recipient_and_no_phone_are_recorded(api: Api) -> None:
    cid = case(api, edd="x")  # no phone, no parent
    create(api, conditional(recipients=[{"type": "self"}, {"type": "parent"}]))
    inst = instance(cid)
    assert inst is not None
    fire_due(at=inst.next_due)
    codes = sorted(m.error_code or "" for m in Message.objects.all())
    assert ["NO_PHONE_NUMBER", "NO_RECIPIENT"] == codes
    assert {"error"} == set(MessagingSubEvent.objects.values_list("status", flat=True))


@pytest.mark.parametrize(
    ("fallback", "content", "default", "expected"),
    [
        ("none", {"en": "Hello", "sw": " "}, None, (None, "NO_MESSAGE")),
        ("alert", {"fr": "Bonjour", "en": "Hello"}, "fr", ("Bonjour", None)),
        ("alert", {"en": "Hello"}, "fr", (None, "NO_MESSAGE")),
        ("project", {"en": "Hello"}, "fr", ("Hello", None)),
        ("project", {"*": "Any"}, None, (None, "NO_MESSAGE")),
        ("untranslated", {"*": "Any"}, None, ("Any", None)),
    ],
)
def test_language_fallback(
    api: Api,
    fallback: str,
    content: dict[str, str],
    default: str | None,
    expected: tuple[str | None, str | None],
) -> None:
    r = api.put(M + "settings", {"language_fallback": fallback, "languages": ["en", "sw", "fr"]})
    assert 200 == r.status, r.body
    cid = case(api, edd="x", phone="254700000001", language_code="sw")
    create(api, conditional(content={"sms": content}, default_language=default))
    inst = instance(cid)
    assert inst is not None
    fire_due(at=inst.next_due)
    m = Message.objects.get()
    assert expected == (m.text or None, m.error_code)


def test_late_occurrences_are_skipped_and_recorded(api: Api) -> None:
    cid = case(api, edd="x", phone="254700000001")
    create(api, conditional(late_limit_hours=1))
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    fire_due(at=inst.next_due + dt.timedelta(hours=3))
    m = Message.objects.get()
    assert ("failed", "MESSAGE_IS_STALE") == (m.status, m.error_code)
    assert "overdue" in m.error_detail
    assert "skipped_late" == Firing.objects.get().outcome


def test_immediate_broadcast_to_a_case_group_and_a_worker(api: Api) -> None:
    a = case(api, phone="254700000001", village="north")
    case(api, phone="254700000002", village="south")
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "w", "password": "pw", "phone_numbers": ["+254700000009"]},
    )
    alert = create(
        api,
        {
            "name": "Closed today",
            "kind": "broadcast",
            "active": True,
            "content": {"sms": {"en": "Clinic closed, {recipient.name}"}},
            "schedule": {"type": "immediate"},
            "recipients": [
                {
                    "type": "case_group",
                    "case_type": "mother",
                    "criteria": {
                        "rules": [{"property": "village", "op": "equal", "value": "north"}]
                    },
                },
                {"type": "worker", "id": r.body["id"]},
                {"type": "case", "id": a},
            ],
        },
    )
    assert {"state": "done", "processed": 2, "total": 2} == alert["progress"]
    assert 2 == run_until_idle()
    got = sorted(m.phone_number for m in Message.objects.all())
    assert ["254700000001", "254700000009"] == got
    assert 0 == ScheduleInstance.objects.filter(active=True).count()


def test_weekly_broadcast_on_chosen_weekdays_in_each_contacts_zone(api: Api) -> None:
    cid = case(api, phone="254700000001", time_zone="America/New_York")
    today = now().date()
    alert = create(
        api,
        {
            "name": "Mon/Thu",
            "kind": "broadcast",
            "active": True,
            "content": {"sms": {"en": "Hi"}},
            "schedule": {
                "type": "timed",
                "events": [{"time": "08:30"}],
                "repeat": {"unit": "weeks", "weekdays": [0, 3], "iterations": 4},
                "start": {"from": "date", "date": today.isoformat()},
            },
            "recipients": [{"type": "case", "id": cid}],
        },
    )
    r = api.get(M + f"contacts/{cid}/upcoming", limit=8)
    assert 200 == r.status
    rows = r.body["objects"]
    assert 8 >= len(rows) >= 6
    for row in rows:
        local = dt.datetime.fromisoformat(row["due_local"])
        assert (dt.time(8, 30), "America/New_York", alert["id"]) == (
            local.time().replace(tzinfo=None),
            row["time_zone"],
            row["alert_id"],
        )
        assert local.weekday() in (0, 3)
    assert [r["due_utc"] for r in rows] == sorted(r["due_utc"] for r in rows)


def test_dry_run_counts_and_unreachable_contacts(api: Api) -> None:
    api.put(M + "settings", {"language_fallback": "none"})
    case(api, edd="x", phone="254700000001")
    case(api, edd="x")  # no phone
    case(api, edd="x", phone="254700000002", language_code="sw")  # no sw text
    case(api, edd="x", phone="254700000003", time_zone="Mars/Olympus")
    body = conditional(active=False, content={"sms": {"en": "Hello"}})
    alert = create(api, body)
    assert ["sw"] == alert["missing_translations"]
    r = api.post(M + f"alerts/{alert['id']}/dry-run?days=3")
    assert 200 == r.status, r.body
    out = r.body
    assert (4, 2) == (out["recipients"], out["contacts"])
    assert {"NO_MESSAGE": 1, "NO_PHONE_NUMBER": 1} == out["unreachable_by_reason"]
    assert 6 == out["messages"] == sum(d["messages"] for d in out["per_day"])
    reasons = {u["reason"] for u in out["unreachable"]}
    assert {"NO_MESSAGE", "NO_PHONE_NUMBER", "time_zone_fallback"} == reasons
    assert 0 == ScheduleInstance.objects.count()  # a dry run writes nothing


def test_monthly_dry_run_notes_months_without_the_day(api: Api) -> None:
    cid = case(api, phone="254700000001")
    alert = create(
        api,
        {
            "name": "monthly",
            "kind": "broadcast",
            "content": {"sms": {"en": "Hi"}},
            "schedule": {
                "type": "timed",
                "events": [{"time": "09:00"}],
                "repeat": {"unit": "months", "day_of_month": 31, "iterations": None},
                "start": {"from": "date", "date": "2027-01-01"},
            },
            "recipients": [{"type": "case", "id": cid}],
        },
    )
    r = api.post(M + f"alerts/{alert['id']}/dry-run?days=90")
    assert 200 == r.status, r.body
    assert any("has no day 31" in n for n in r.body["notes"]), r.body["notes"]


def test_edit_bumps_version_and_deactivate_stops(api: Api) -> None:
    cid = case(api, edd="x", phone="254700000001")
    alert = create(api, conditional())
    r = api.call("PATCH", M + f"alerts/{alert['id']}", {"content": {"sms": {"en": "New"}}})
    assert 200 == r.status, r.body
    assert 2 == r.body["version"]
    inst = instance(cid)
    assert inst is not None and 2 == inst.alert_version
    r = api.post(M + f"alerts/{alert['id']}/deactivate")
    assert False is r.body["active"]
    assert 0 == run_until_idle(at=now() + dt.timedelta(days=5))
    assert 204 == api.delete(M + f"alerts/{alert['id']}").status
    assert 404 == api.get(M + f"alerts/{alert['id']}").status


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"criteria": {"rules": [{"property": "x", "op": "regex", "value": "("}]}}, "regex"),
        ({"schedule": {"type": "timed", "events": [{"time": "25:00"}]}}, "25:00"),
        ({"content": {"sms": {}}}, "content"),
        ({"content": {"sms": {"en": "x" * 10_001}}}, "long"),
        (
            {
                "schedule": {
                    "type": "timed",
                    "events": [{"time": "09:00"}],
                    "repeat": {"unit": "days", "interval": 0},
                }
            },
            "interval",
        ),
        ({"content": {"sms": {"en": "{case.__class__}"}}}, "__class__"),
        ({"content": {"sms": {"en": "{{7*7}}"}}}, "{"),
        ({"content": {"sms": {"en": "{0.__globals__}"}}}, "__globals__"),
        ({"recipients": [{"type": "case", "id": "x"}]}, "conditional alerts send to"),
        ({"case_type": None}, "case_type"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_alerts_are_refused_and_nothing_is_stored(
    api: Api, change: dict[str, Any], fragment: str
) -> None:
    r = api.post(M + "alerts", conditional(**change))
    assert 400 == r.status, r.body
    assert fragment in r.body["error"], r.body
    assert [] == api.get(M + "alerts").body["objects"]


@pytest.mark.django_db
def test_the_readme_tour_alert_works_on_the_demo() -> None:
    from django.test import Client

    from casereach.cli.demo import load_demo

    demo = load_demo()
    user, key = demo.username, demo.key
    auth = {"HTTP_AUTHORIZATION": f"ApiKey {user}:{key}"}
    base = "/a/demo/api/messaging/v1/"
    body = {
        "name": "Daily reminder",
        "kind": "conditional",
        "case_type": "patient",
        "criteria": {"rules": [{"property": "contact_phone_number", "op": "has_value"}]},
        "content": {
            "sms": {
                "en": "Hello {case.name}, take your medicine.",
                "sw": "Habari {case.name}, meza dawa.",
            }
        },
        "schedule": {
            "type": "timed",
            "events": [{"time": "09:00"}],
            "repeat": {"unit": "days", "iterations": 7},
        },
        "recipients": [{"type": "self"}],
    }
    c = Client()
    r = c.post(base + "alerts", body, content_type="application/json", **auth)
    assert 201 == r.status_code, r.content
    alert_id = r.json()["id"]
    r = c.post(base + f"alerts/{alert_id}/dry-run?days=7", **auth)
    assert 200 == r.status_code, r.content
    assert r.json()["messages"] > 0
    r = c.post(base + f"alerts/{alert_id}/activate", **auth)
    assert r.json()["progress"]["state"] == "done"
    amina = ScheduleInstance.objects.filter(alert_id=alert_id).first()
    assert amina is not None
    r = c.get(base + f"contacts/{amina.contact_id}/upcoming?limit=3", **auth)
    assert 3 == len(r.json()["objects"])


def test_a_zone_change_never_fires_the_same_occurrence_twice(api: Api) -> None:
    cid = case(api, edd="x", phone="254700000001", time_zone="Asia/Tokyo")
    create(api, conditional())
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    fired_day = inst.next_due.astimezone(ZoneInfo("Asia/Tokyo")).date()
    fire_due(at=inst.next_due)
    # Moving west makes 09:00 on the same local date a later instant: it must not fire again.
    update(api, cid, time_zone="America/Los_Angeles")
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    local = inst.next_due.astimezone(ZoneInfo("America/Los_Angeles"))
    assert (dt.time(9), True) == (local.time(), local.date() > fired_day)


def test_instances_of_an_inactive_or_older_alert_are_retired_not_fired(api: Api) -> None:
    from casereach.alerts.models import Alert

    cid = case(api, edd="x", phone="254700000001")
    alert = create(api, conditional())
    inst = instance(cid)
    assert inst is not None and inst.next_due is not None
    Alert.objects.filter(pk=alert["id"]).update(active=False)  # e.g. a race with deactivate
    assert 1 == fire_due(at=inst.next_due)
    inst.refresh_from_db()
    assert (False, None, 0) == (inst.active, inst.next_due, Message.objects.count())


def test_an_evaluation_runner_takes_the_bulk_evaluation_out_of_the_request(api: Api) -> None:
    from casereach.alerts.actions import evaluate_alert, register_evaluation_runner
    from casereach.alerts.models import Alert

    cid = case(api, edd="2027-01-01")
    handed: list[int] = []
    register_evaluation_runner(handed.append)
    try:
        body = create(api, conditional())
    finally:
        register_evaluation_runner(None)
    assert ([body["id"]], "queued", None) == (handed, body["progress"]["state"], instance(cid))
    evaluate_alert(Alert.objects.get(pk=body["id"]))
    progress = api.get(M + f"alerts/{body['id']}").body["progress"]
    assert ("done", 1, 1) == (progress["state"], progress["processed"], progress["total"])
    assert instance(cid) is not None


def test_an_unreachable_runner_falls_back_to_evaluating_at_once(api: Api) -> None:
    from casereach.alerts.actions import register_evaluation_runner

    cid = case(api, edd="2027-01-01")

    def broker_down(alert_id: int) -> None:
        raise ConnectionError("broker unreachable")

    register_evaluation_runner(broker_down)
    try:
        body = create(api, conditional())
    finally:
        register_evaluation_runner(None)
    assert "done" == body["progress"]["state"]
    assert instance(cid) is not None


def test_an_unknown_placeholder_is_saved_listed_and_renders_a_question_mark(api: Api) -> None:
    cid = case(api, phone="254712345678", edd="2027-01-10")
    body = conditional(content={"sms": {"en": "Hi {case.name}, your CHW is {case.owner.phone}"}})
    alert = create(api, body)
    assert [
        {
            "placeholder": "{case.owner.phone}",
            "renders": "(?)",
            "hint": "only {case.owner.name} is available for the owner",
        }
    ] == alert["unknown_placeholders"]
    rows = api.get(M + f"contacts/{cid}/upcoming?limit=1").body["objects"]
    assert ["Hi Amina, your CHW is (?)"] == [r["text"] for r in rows]
    for bad in ("{case.__class__}", "{{7*7}}", "{0.__globals__}"):
        r = api.post(M + "alerts", conditional(content={"sms": {"en": f"Hi {bad}"}}))
        assert 400 == r.status, bad


def test_the_messaging_event_api_names_the_alert_and_the_keyword(api: Api) -> None:
    """CommCare's source.name: the rule or broadcast's name, the keyword; 'sms' for ad hoc."""
    cid = case(api, phone="254712345678", edd="2027-01-10", verified="yes")
    create(api, conditional(name="ANC day"))
    inst = instance(cid)
    assert inst is not None
    fire_due(at=inst.next_due)
    r = api.post(M + "gateways", {"name": "TEST", "type": "test"})
    assert 201 == r.status, r.body
    api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []})
    assert 201 == api.post(M + "keywords", {"keyword": "VISIT", "reply": {"en": "ok"}}).status
    assert 201 == api.post(M + "test-phone", {"from": "254712345678", "text": "visit"}).status
    objs = api.get("/a/{project}/api/v0.5/messaging-event/").body["objects"]
    assert {("conditional-alert", "ANC day"), ("keyword", "VISIT")} <= {
        (o["source"]["type"], o["source"]["name"]) for o in objs
    }
