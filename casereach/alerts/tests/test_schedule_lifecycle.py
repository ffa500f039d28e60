"""Schedules across deactivation and zone changes (issue 16, alerts items 1 and 2): activating
again re-evaluates every recipient, and every active schedule follows its recipient's current
time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from casereach.alerts.scheduler import fire_due
from casereach.core.timeutil import now
from casereach.testing.alerts import create_alert as create
from casereach.testing.cases import mother_with_phone as a_case
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
USERS = "/a/{project}/api/v0.5/user/"
DAILY_9 = {
    "type": "timed",
    "events": [{"time": "09:00"}],
    "repeat": {"unit": "days", "iterations": 30},
}


def a_worker(api: Api, zone: str) -> str:
    r = api.post(
        USERS,
        {
            "username": "chw1",
            "first_name": "Chw",
            "password": "pw-123456",
            "phone_numbers": ["+254700000009"],
            "time_zone": zone,
        },
    )
    assert 201 == r.status, r.body
    wid: str = r.body["id"]
    return wid


def conditional_from_property(**over: Any) -> dict[str, Any]:
    return {
        "name": "Visits",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"rules": [{"property": "visit", "op": "has_value"}]},
        "content": {"sms": {"en": "Visit {case.name}"}},
        "schedule": {**DAILY_9, "start": {"from": "property", "property": "visit"}},
        "recipients": [{"type": "self"}],
        **over,
    }


def broadcast_to(kind: str, rid: str) -> dict[str, Any]:
    start = (now().date() + dt.timedelta(days=1)).isoformat()
    return {
        "name": "Daily tips",
        "kind": "broadcast",
        "active": True,
        "content": {"sms": {"en": "Tip"}},
        "schedule": {**DAILY_9, "start": {"from": "date", "date": start}},
        "recipients": [{"type": kind, "id": rid}],
    }


def upcoming(api: Api, contact_id: str) -> list[dict[str, Any]]:
    r = api.get(M + f"contacts/{contact_id}/upcoming?limit=5")
    assert 200 == r.status, r.body
    rows: list[dict[str, Any]] = r.body["objects"]
    return rows


def when(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["due_utc"], r["due_local"][11:16], r["time_zone"]) for r in rows]


# -- item 1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conditional", "broadcast"])
def test_deactivate_then_activate_brings_the_schedule_back(api: Api, kind: str) -> None:
    tomorrow = (now().date() + dt.timedelta(days=1)).isoformat()
    cid = a_case(api, time_zone="Africa/Nairobi", visit=tomorrow)
    body = conditional_from_property() if kind == "conditional" else broadcast_to("case", cid)
    alert = create(api, body)
    before = upcoming(api, cid)
    assert 5 == len(before)
    assert 200 == api.post(M + f"alerts/{alert['id']}/deactivate").status
    assert [] == upcoming(api, cid)
    r = api.post(M + f"alerts/{alert['id']}/activate")
    assert 200 == r.status, r.body
    assert (1, {"state": "done", "processed": 1, "total": 1}) == (
        r.body["instances"],
        r.body["progress"],
    )
    assert when(before) == when(upcoming(api, cid))


def test_activating_again_does_not_resend_what_was_sent(api: Api) -> None:
    tomorrow = (now().date() + dt.timedelta(days=1)).isoformat()
    cid = a_case(api, time_zone="Africa/Nairobi", visit=tomorrow)
    alert = create(api, conditional_from_property())
    first = upcoming(api, cid)[0]
    due = dt.datetime.fromisoformat(first["due_utc"].replace("Z", "+00:00"))
    assert 1 == fire_due(at=due)
    api.post(M + f"alerts/{alert['id']}/deactivate")
    api.post(M + f"alerts/{alert['id']}/activate")
    # Activated again before the next one: the one already sent is not due again.
    assert first["due_utc"] != upcoming(api, cid)[0]["due_utc"]
    assert 0 == fire_due(at=due)


# -- item 2 -----------------------------------------------------------------------------------


def test_a_broadcast_to_a_case_follows_its_new_time_zone(api: Api) -> None:
    cid = a_case(api, time_zone="America/New_York")
    create(api, broadcast_to("case", cid))
    assert {("09:00", "America/New_York")} == {(w[1], w[2]) for w in when(upcoming(api, cid))}
    r = api.put(V2 + cid, {"properties": {"time_zone": "Africa/Nairobi"}})
    assert 200 == r.status, r.body
    rows = upcoming(api, cid)
    assert {("09:00", "Africa/Nairobi")} == {(w[1], w[2]) for w in when(rows)}
    assert all(r["due_utc"][11:16] == "06:00" for r in rows)


def test_a_broadcast_to_a_worker_follows_its_new_time_zone(api: Api) -> None:
    wid = a_worker(api, "America/New_York")
    create(api, broadcast_to("worker", wid))
    assert {("09:00", "America/New_York")} == {(w[1], w[2]) for w in when(upcoming(api, wid))}
    r = api.put(USERS + wid + "/", {"time_zone": "Africa/Nairobi"})
    assert r.status in (200, 202), r.body
    assert {("09:00", "Africa/Nairobi")} == {(w[1], w[2]) for w in when(upcoming(api, wid))}


def test_an_alert_to_the_owner_follows_the_owners_new_zone_at_once(api: Api) -> None:
    wid = a_worker(api, "America/New_York")
    r = api.post(V2, case_body(case_type="mother", owner_id=wid, visit="2030-01-01"))
    assert 200 == r.status, r.body
    create(api, conditional_from_property(recipients=[{"type": "owner"}]))
    assert {("09:00", "America/New_York")} == {(w[1], w[2]) for w in when(upcoming(api, wid))}
    r = api.put(USERS + wid + "/", {"time_zone": "Africa/Nairobi"})
    assert r.status in (200, 202), r.body
    assert {("09:00", "Africa/Nairobi")} == {(w[1], w[2]) for w in when(upcoming(api, wid))}


def test_a_new_project_zone_moves_the_schedules_of_contacts_without_one(api: Api) -> None:
    tomorrow = (now().date() + dt.timedelta(days=1)).isoformat()
    cid = a_case(api, visit=tomorrow)  # no time_zone: the project's (Africa/Nairobi)
    other = a_case(api)
    create(api, conditional_from_property())
    create(api, broadcast_to("case", other))
    for contact in (cid, other):
        assert {("09:00", "Africa/Nairobi")} == {(w[1], w[2]) for w in when(upcoming(api, contact))}
    r = api.put(M + "settings", {"time_zone": "America/New_York"})
    assert 200 == r.status, r.body
    for contact in (cid, other):
        assert {("09:00", "America/New_York")} == {
            (w[1], w[2]) for w in when(upcoming(api, contact))
        }
