"""CommCare's scheduling rules through the API (issue 16, alerts items 3 to 6): the first
period of weekly and monthly schedules, a "today" start whose hour has passed, a time read
from a case property that holds none, and random-time windows across midnight."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from casereach.alerts.models import ScheduleInstance
from casereach.core.timeutil import now
from casereach.testing.alerts import create_alert as create
from casereach.testing.cases import mother_with_phone as a_case
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
# Zones spanning 25 hours of offsets: one of them is always between 04:00 and 21:59 locally.
ZONES = [
    "Pacific/Kiritimati",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Africa/Nairobi",
    "Europe/London",
    "America/New_York",
    "Pacific/Honolulu",
    "Pacific/Pago_Pago",
]


def daytime_zone() -> tuple[str, dt.datetime]:
    """A zone where it is now between 04:00 and 21:59, and the local time there."""
    for name in ZONES:
        local = now().astimezone(ZoneInfo(name))
        if 4 <= local.hour <= 21:
            return name, local
    raise AssertionError("no zone is in daytime")  # pragma: no cover - offsets span 25 h


def broadcast(cid: str, schedule: dict[str, Any], active: bool = False) -> dict[str, Any]:
    return {
        "name": "Reminder",
        "kind": "broadcast",
        "active": active,
        "content": {"sms": {"en": "Hello {case.name}"}},
        "schedule": schedule,
        "recipients": [{"type": "case", "id": cid}],
    }


def conditional(schedule: dict[str, Any], active: bool = True) -> dict[str, Any]:
    return {
        "name": "Reminder",
        "kind": "conditional",
        "case_type": "mother",
        "active": active,
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}"}},
        "schedule": schedule,
        "recipients": [{"type": "self"}],
    }


def dry_run(api: Api, alert_id: int, days: int) -> dict[str, Any]:
    r = api.post(M + f"alerts/{alert_id}/dry-run?days={days}")
    assert 200 == r.status, r.body
    out: dict[str, Any] = r.body
    return out


def upcoming(api: Api, contact_id: str, limit: int = 50) -> list[dict[str, Any]]:
    r = api.get(M + f"contacts/{contact_id}/upcoming?limit={limit}")
    assert 200 == r.status, r.body
    rows: list[dict[str, Any]] = r.body["objects"]
    return rows


def next_weekday(weekday: int, weeks_ahead: int = 2) -> dt.date:
    """A date on ``weekday`` at least ``weeks_ahead`` weeks from today."""
    day = now().date() + dt.timedelta(weeks=weeks_ahead)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def fifteenth_ahead() -> dt.date:
    """The 15th of next month."""
    return (now().date().replace(day=1) + dt.timedelta(days=40)).replace(day=15)


def local_dates(rows: list[dict[str, Any]]) -> list[str]:
    return [r["due_local"][:10] for r in rows]


# -- item 3: the first period of weekly and monthly schedules -------------------------------------


def test_monthly_on_the_1st_and_15th_starting_on_a_15th_sends_three_times(api: Api) -> None:
    cid = a_case(api, time_zone="Africa/Nairobi")
    start = fifteenth_ahead()
    schedule = {
        "type": "timed",
        "events": [{"day": 0, "time": "09:00"}, {"day": 14, "time": "09:00"}],
        "repeat": {"unit": "months", "day_of_month": 1, "iterations": 2},
        "start": {"from": "date", "date": start.isoformat()},
    }
    alert = create(api, broadcast(cid, schedule))
    assert 3 == dry_run(api, alert["id"], 90)["messages"]
    assert 200 == api.post(M + f"alerts/{alert['id']}/activate").status
    nxt = (start + dt.timedelta(days=20)).replace(day=1)
    expected = [start.isoformat(), nxt.isoformat(), nxt.replace(day=15).isoformat()]
    assert expected == local_dates(upcoming(api, cid))


def test_weekly_monday_and_tuesday_starting_on_a_thursday_sends_the_next_week(api: Api) -> None:
    cid = a_case(api, time_zone="Africa/Nairobi")
    start = next_weekday(3)  # a Thursday
    schedule = {
        "type": "timed",
        "events": [{"time": "09:00"}],
        "repeat": {"unit": "weeks", "weekdays": [0, 1], "iterations": 1},
        "start": {"from": "date", "date": start.isoformat()},
    }
    alert = create(api, broadcast(cid, schedule))
    assert 2 == dry_run(api, alert["id"], 40)["messages"]
    assert 200 == api.post(M + f"alerts/{alert['id']}/activate").status
    monday = start + dt.timedelta(days=4)
    expected = [monday.isoformat(), (monday + dt.timedelta(days=1)).isoformat()]
    assert expected == local_dates(upcoming(api, cid))


# -- item 4: a "today" start whose first event is past ------------------------------------------


def test_a_daily_week_activated_after_its_hour_still_sends_seven_times(api: Api) -> None:
    zone, local = daytime_zone()
    earlier = (local - dt.timedelta(hours=2)).strftime("%H:%M")
    cid = a_case(api, time_zone=zone, edd="2027-01-01")
    schedule = {
        "type": "timed",
        "events": [{"time": earlier}],
        "repeat": {"unit": "days", "iterations": 7},
        "start": {"from": "match"},
    }
    alert = create(api, conditional(schedule))
    rows = upcoming(api, cid)
    tomorrow = local.date() + dt.timedelta(days=1)
    assert [(tomorrow + dt.timedelta(days=d)).isoformat() for d in range(7)] == local_dates(rows)
    assert 7 == dry_run(api, alert["id"], 10)["messages"]


def test_a_weekly_start_today_after_its_hour_moves_a_week(api: Api) -> None:
    zone, local = daytime_zone()
    earlier = (local - dt.timedelta(hours=2)).strftime("%H:%M")
    cid = a_case(api, time_zone=zone, edd="2027-01-01")
    schedule = {
        "type": "timed",
        "events": [{"time": earlier}],
        "repeat": {"unit": "weeks", "iterations": 2},
        "start": {"from": "match"},
    }
    create(api, conditional(schedule))
    week = local.date() + dt.timedelta(weeks=1)
    assert [week.isoformat(), (week + dt.timedelta(weeks=1)).isoformat()] == local_dates(
        upcoming(api, cid)
    )


# -- item 5: a time property that holds no time ----------------------------------------------


def test_a_missing_or_bad_time_property_sends_at_noon_and_is_a_warning(api: Api) -> None:
    good = a_case(api, time_zone="Africa/Nairobi", edd="x", slot="9:15")
    missing = a_case(api, time_zone="Africa/Nairobi", edd="x")
    bad = a_case(api, time_zone="Africa/Nairobi", edd="x", slot="after lunch")
    schedule = {
        "type": "timed",
        "events": [{"day": 1, "time_property": "slot"}],
        "repeat": {"unit": "days", "iterations": 2},
        "start": {"from": "match"},
    }
    alert = create(api, conditional(schedule, active=False))
    out = dry_run(api, alert["id"], 5)
    assert 6 == out["messages"]
    warned = {u["contact_id"] for u in out["unreachable"] if u["reason"] == "time_property_default"}
    assert {missing, bad} == warned
    assert all(u["gets_messages"] for u in out["unreachable"])
    assert 200 == api.post(M + f"alerts/{alert['id']}/activate").status
    for cid, at in ((good, "09:15"), (missing, "12:00"), (bad, "12:00")):
        rows = upcoming(api, cid)
        assert 2 == len(rows)
        assert {at} == {r["due_local"][11:16] for r in rows}
    for cid, expected in ((good, False), (missing, True), (bad, True)):
        r = api.get(M + f"contacts/{cid}")
        assert 200 == r.status, r.body
        codes = {w["code"] for w in r.body["warnings"]}
        assert expected == ("alert_time_default" in codes), codes


# -- item 6: a random-time window across midnight -----------------------------------------------


def test_a_window_across_midnight_is_accepted_and_sends_inside_it(api: Api) -> None:
    cids = [a_case(api, name=f"M{i}", time_zone="Africa/Nairobi", edd="x") for i in range(12)]
    schedule = {
        "type": "timed",
        "events": [{"day": 1, "window_start": "23:00", "window_end": "01:00"}],
        "repeat": {"unit": "days", "iterations": 3},
        "start": {"from": "match"},
    }
    create(api, conditional(schedule))
    for cid in cids:
        rows = upcoming(api, cid)
        assert 3 == len(rows)
        for row in rows:
            hhmm = row["due_local"][11:16]
            assert hhmm >= "23:00" or hhmm < "01:00", hhmm
    assert len(cids) == ScheduleInstance.objects.count()


def test_a_window_of_no_length_is_still_refused(api: Api) -> None:
    schedule = {
        "type": "timed",
        "events": [{"window_start": "10:00", "window_end": "10:00"}],
        "repeat": {"unit": "days", "iterations": 3},
    }
    r = api.post(M + "alerts", conditional(schedule))
    assert 400 == r.status
    assert "window_end must differ from window_start" in r.body["error"]
