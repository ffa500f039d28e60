"""Dates at the ends of the calendar in case properties: a case write is never refused (nor a
500) because an alert computes with them; such a date matches nothing and starts nothing."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from casereach.alerts.models import ScheduleInstance
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
EXTREMES = ["9999-12-31", "0001-01-01", "1899-12-31", "2200-01-01"]


def alert(api: Api, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Visits",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"match": "all", "rules": []},
        "content": {"sms": {"en": "Visit on {case.visit}"}},
        "schedule": {
            "type": "timed",
            "events": [{"day": 0, "time": "09:00"}, {"day": 30, "time": "09:00"}],
            "repeat": {"unit": "days", "iterations": 2},
            "start": {"from": "property", "property": "visit"},
        },
        "recipients": [{"type": "self"}],
        "stop_property": "stop",
        **over,
    }
    r = api.post(M + "alerts", body)
    assert 201 == r.status, r.body
    out: dict[str, Any] = r.body
    return out


def write_case(api: Api, **props: str) -> dict[str, Any]:
    r = api.post(V2, case_body(case_type="mother", phone="254712345678", **props))
    assert 200 == r.status, r.body
    out: dict[str, Any] = r.body["case"]
    return out


@pytest.mark.parametrize("day", EXTREMES)
@pytest.mark.parametrize("op", ["days_after", "days_before"])
@pytest.mark.parametrize("days", [-36500, 0, 36500])
def test_a_date_criterion_on_an_extreme_date_neither_fails_nor_crashes(
    api: Api, day: str, op: str, days: int
) -> None:
    alert(
        api,
        criteria={"rules": [{"property": "lmp", "op": op, "days": days}]},
        schedule={
            "type": "timed",
            "events": [{"day": 0, "time": "09:00"}],
            "repeat": {"unit": "days", "iterations": 1},
            "start": {"from": "match"},
        },
    )
    case = write_case(api, lmp=day)
    assert day == case["properties"]["lmp"]
    assert 200 == api.get(V2 + case["case_id"]).status


@pytest.mark.parametrize("day", EXTREMES)
def test_an_extreme_start_or_stop_date_starts_no_schedule_and_the_case_is_stored(
    api: Api, day: str
) -> None:
    alert(api)
    started = write_case(api, visit=day)
    assert not ScheduleInstance.objects.filter(case_id=started["case_id"]).exists()
    stopped = write_case(api, visit="2030-01-01", stop=day)
    assert ScheduleInstance.objects.filter(case_id=stopped["case_id"]).exists()
    upcoming = api.get(M + f"contacts/{stopped['case_id']}/upcoming?limit=3")
    assert 200 == upcoming.status, upcoming.body


def test_activating_over_cases_with_extreme_dates_finishes(api: Api) -> None:
    ids = [write_case(api, visit=day)["case_id"] for day in EXTREMES]
    ok = write_case(api, visit="2030-01-01")["case_id"]
    body = alert(api, active=False)
    r = api.post(M + f"alerts/{body['id']}/dry-run?days=30")
    assert 200 == r.status, r.body
    r = api.post(M + f"alerts/{body['id']}/activate")
    assert 200 == r.status, r.body
    assert {"state": "done", "processed": 5, "total": 5} == r.body["progress"]
    assert [ok] == list(ScheduleInstance.objects.values_list("case_id", flat=True))
    assert set(ids).isdisjoint(ScheduleInstance.objects.values_list("case_id", flat=True))


def test_a_forever_schedule_far_out_without_a_time_sends_at_noon(api: Api) -> None:
    """A time property that holds no time sends at 12:00 local (CommCare), even ten years
    out on a forever schedule, without stepping off the calendar."""
    write_case(api, visit="2030-01-01")  # no "slot" property: every event is at 12:00
    body = alert(
        api,
        active=False,
        stop_property=None,
        schedule={
            "type": "timed",
            "events": [{"day": 3650, "time_property": "slot"}],
            "repeat": {"unit": "days", "interval": 1000, "iterations": None},
            "start": {"from": "match"},
        },
    )
    assert 200 == api.post(M + f"alerts/{body['id']}/dry-run?days=30").status
    r = api.post(M + f"alerts/{body['id']}/activate")
    assert 200 == r.status, r.body
    inst = ScheduleInstance.objects.get()
    assert inst.next_due is not None
    local = inst.next_due.astimezone(ZoneInfo(inst.time_zone))
    assert (12, 0) == (local.hour, local.minute)


def test_a_forever_alert_schedule_of_year_long_waits_lists_its_sends(api: Api) -> None:
    case = write_case(api, visit="2030-01-01")
    alert(
        api,
        stop_property=None,
        schedule={"type": "alert", "events": [{"wait_minutes": 525_600}], "iterations": None},
    )
    r = api.get(M + f"contacts/{case['case_id']}/upcoming?limit=50")
    assert 200 == r.status, r.body
    assert 50 == len(r.body["objects"])


def test_an_alert_saved_before_a_check_was_added_still_loads_and_runs(api: Api) -> None:
    from casereach.alerts.models import Alert

    body = alert(api, criteria={"rules": [{"property": "code", "op": "regex", "value": "a"}]})
    stored = Alert.objects.get(pk=body["id"])
    spec = dict(stored.spec)
    spec["criteria"] = {
        "match": "all",
        "rules": [{"property": "code", "op": "regex", "value": "(a+)+$"}],
    }
    spec["schedule"] = {**spec["schedule"], "start": {"from": "date", "date": "2300-01-01"}}
    Alert.objects.filter(pk=stored.pk).update(spec=spec, version=stored.version + 1)
    case = write_case(api, visit="2030-01-01", code="aaa")
    assert "aaa" == case["properties"]["code"]
    assert 200 == api.get(M + f"alerts/{body['id']}").status
