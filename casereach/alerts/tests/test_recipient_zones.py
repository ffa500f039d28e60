"""Sends to someone other than the case: timed in that person's zone, and listed in that
person's upcoming sends (SPEC 5; issue 4)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from casereach.alerts.models import ScheduleInstance
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"


def worker(api: Api, username: str, zone: str) -> str:
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {
            "username": username,
            "first_name": username.title(),
            "password": "pw-123456",
            "phone_numbers": ["+254700000009"],
            "time_zone": zone,
        },
    )
    assert 201 == r.status, r.body
    wid: str = r.body["id"]
    return wid


def a_case(api: Api, zone: str, parent: str | None = None, **props: str) -> str:
    body: dict[str, Any] = case_body(case_type="mother", phone="254712345678", time_zone=zone)
    body["properties"].update(props)
    if parent is not None:
        body["indices"] = {
            "parent": {"case_id": parent, "case_type": "mother", "relationship": "child"}
        }
    r = api.post(V2, body)
    assert 200 == r.status, r.body
    cid: str = r.body["case"]["case_id"]
    return cid


def alert(api: Api, *recipients: dict[str, Any]) -> None:
    r = api.post(
        M + "alerts",
        {
            "name": "Visit reminder",
            "kind": "conditional",
            "case_type": "mother",
            "active": True,
            "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
            "content": {"sms": {"en": "Visit {case.name} today"}},
            "schedule": {
                "type": "timed",
                "events": [{"day": 0, "time": "09:00"}],
                "repeat": {"unit": "days", "iterations": 5},
                "start": {"from": "match"},
            },
            "recipients": list(recipients),
        },
    )
    assert 201 == r.status, r.body


def upcoming(api: Api, contact_id: str) -> list[dict[str, Any]]:
    r = api.get(M + f"contacts/{contact_id}/upcoming?limit=10")
    assert 200 == r.status, r.body
    rows: list[dict[str, Any]] = r.body["objects"]
    return rows


def local_times(rows: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    return {
        (
            r["time_zone"],
            dt.datetime.fromisoformat(r["due_local"]).hour,
            dt.datetime.fromisoformat(r["due_local"]).minute,
        )
        for r in rows
    }


def test_an_alert_to_the_owner_runs_at_09_00_in_the_owners_zone(api: Api) -> None:
    chw = worker(api, "chw1", "Africa/Nairobi")
    r = api.post(V2, case_body(case_type="mother", owner_id=chw, time_zone="America/New_York"))
    cid = r.body["case"]["case_id"]
    api.put(V2 + cid, {"properties": {"edd": "2027-01-10"}})
    alert(api, {"type": "owner"})
    inst = ScheduleInstance.objects.get(case_id=cid)
    assert "Africa/Nairobi" == inst.time_zone
    assert inst.next_due is not None
    assert (9, 0) == (inst.next_due.astimezone(ZoneInfo("Africa/Nairobi")).timetuple()[3:5])
    rows = upcoming(api, chw)
    assert len(rows) in (4, 5)  # today's 09:00 may have passed
    assert {("Africa/Nairobi", 9, 0)} == local_times(rows)
    assert {"Visit Amina today"} == {r["text"] for r in rows}
    assert [] == upcoming(api, cid)  # the case itself is not a recipient


def test_an_alert_to_the_case_itself_keeps_the_cases_zone(api: Api) -> None:
    cid = a_case(api, "America/New_York", edd="2027-01-10")
    alert(api, {"type": "self"})
    assert {("America/New_York", 9, 0)} == local_times(upcoming(api, cid))


def test_the_parent_and_the_children_see_their_upcoming_sends(api: Api) -> None:
    mum = a_case(api, "Asia/Kolkata")
    kid = a_case(api, "America/New_York", parent=mum, edd="2027-01-10")
    alert(api, {"type": "parent"})
    assert {("Asia/Kolkata", 9, 0)} == local_times(upcoming(api, mum))
    assert [] == upcoming(api, kid)


def test_children_are_listed_for_an_alert_to_children(api: Api) -> None:
    mum = a_case(api, "Africa/Nairobi", edd="2027-01-10")
    kid = a_case(api, "America/New_York", parent=mum)
    alert(api, {"type": "children"})
    rows = upcoming(api, kid)
    assert len(rows) in (4, 5)  # today's 09:00 may have passed
    assert {"Africa/Nairobi"} == {r["time_zone"] for r in rows}  # several people: the case's


@pytest.mark.parametrize("ref", ["nurse", "id"])
def test_the_user_named_in_a_property_gets_its_zone_and_its_list(api: Api, ref: str) -> None:
    nurse = worker(api, "nurse", "Asia/Tokyo")
    a_case(api, "America/New_York", edd="2027-01-10", chw=nurse if ref == "id" else "nurse")
    alert(api, {"type": "user_property", "property": "chw"})
    assert {("Asia/Tokyo", 9, 0)} == local_times(upcoming(api, nurse))


def test_a_change_of_owner_moves_the_schedule_to_the_new_owners_zone(api: Api) -> None:
    a = worker(api, "chwa", "Africa/Nairobi")
    b = worker(api, "chwb", "Asia/Tokyo")
    r = api.post(V2, case_body(case_type="mother", owner_id=a, edd="2027-01-10"))
    cid = r.body["case"]["case_id"]
    alert(api, {"type": "owner"})
    assert "Africa/Nairobi" == ScheduleInstance.objects.get(case_id=cid).time_zone
    api.put(V2 + cid, {"owner_id": b})
    assert "Asia/Tokyo" == ScheduleInstance.objects.get(case_id=cid).time_zone
    assert [] == upcoming(api, a)
    assert {("Asia/Tokyo", 9, 0)} == local_times(upcoming(api, b))
