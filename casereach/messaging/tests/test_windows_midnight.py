"""Restricted sending windows that cross midnight (issue 16, alerts item 6): a window whose
end is before its start (23:00 to 01:00) runs into the next day, as CommCare allows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from casereach.core.timeutil import now
from casereach.messaging.tests.test_send import (
    NUMBER,
    case,
    drain,
    gateway,
    message,
    routes,
    send,
)
from casereach.messaging.windows import next_allowed
from casereach.projects.settings_schema import RestrictedWindow
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
NAIROBI = "Africa/Nairobi"
TZ = ZoneInfo(NAIROBI)


@dataclass(frozen=True)
class Row:
    label: str
    local: str  # "YYYY-MM-DD HH:MM" in Nairobi; 2026-05-14 is a Thursday
    windows: list[dict[str, object]]
    opens: str | None  # None: allowed now; else the next local opening


ALL = [0, 1, 2, 3, 4, 5, 6]
ROWS = [
    Row("before midnight, inside", "2026-05-14 23:30", [{"start": "23:00", "end": "01:00"}], None),
    Row("after midnight, inside", "2026-05-15 00:30", [{"start": "23:00", "end": "01:00"}], None),
    Row(
        "after the end",
        "2026-05-15 01:00",
        [{"start": "23:00", "end": "01:00"}],
        "2026-05-15 23:00",
    ),
    Row(
        "before the start",
        "2026-05-14 22:59",
        [{"start": "23:00", "end": "01:00"}],
        "2026-05-14 23:00",
    ),
    Row(
        "opened on a listed day, closes on an unlisted one",
        "2026-05-15 00:30",  # Friday; the window opened Thursday
        [{"start": "23:00", "end": "01:00", "days": [3]}],
        None,
    ),
    Row(
        "not opened the day before",
        "2026-05-15 00:30",  # Friday; Thursday is not listed
        [{"start": "23:00", "end": "01:00", "days": [4]}],
        "2026-05-15 23:00",
    ),
    Row(
        "within one day still works",
        "2026-05-14 07:00",
        [{"start": "08:00", "end": "18:00"}],
        "2026-05-14 08:00",
    ),
    Row(
        "a day window does not leak into the next morning",
        "2026-05-15 07:00",
        [{"start": "08:00", "end": "18:00", "days": [3]}],
        "2026-05-21 08:00",
    ),
]


def local(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_windows_across_midnight(row: Row) -> None:
    windows = [RestrictedWindow.model_validate({"days": ALL, **w}) for w in row.windows]
    got = next_allowed(local(row.local).astimezone(dt.UTC), windows, NAIROBI)
    expected = local(row.opens).astimezone(dt.UTC) if row.opens else None
    assert expected == got


def test_a_window_across_midnight_is_saved(api: Api) -> None:
    window = {"start": "23:00", "end": "01:00", "days": ALL}
    r = api.put(M + "settings", {"restricted_windows": [window]})
    assert 200 == r.status, r.body
    assert [window] == r.body["restricted_windows"]


def daytime_zone() -> tuple[str, dt.datetime]:
    for name in (
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        NAIROBI,
        "America/New_York",
        "Pacific/Pago_Pago",
    ):
        at = now().astimezone(ZoneInfo(name))
        if 4 <= at.hour <= 20:
            return name, at
    raise AssertionError("no zone is in daytime")  # pragma: no cover


def test_sends_follow_a_window_across_midnight(api: Api) -> None:
    gateway(api)
    routes(api, "TEST")
    zone, at = daytime_zone()
    opens = (at + dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    closes = (at - dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    # Open from an hour ahead until an hour ago the next day: now is outside it.
    window = {"start": opens.strftime("%H:%M"), "end": closes.strftime("%H:%M"), "days": ALL}
    assert 200 == api.put(M + "settings", {"restricted_windows": [window]}).status
    cid = case(api, phone=NUMBER, time_zone=zone)
    msg = send(api, contact_id=cid, text="later")
    drain()
    m = message(msg["id"])
    assert ("queued", opens.astimezone(dt.UTC)) == (m.status, m.next_attempt_at)
    # From an hour ago until two hours ago the next day (the long way round): open now.
    earlier = closes - dt.timedelta(hours=1)
    window = {"start": closes.strftime("%H:%M"), "end": earlier.strftime("%H:%M"), "days": ALL}
    assert 200 == api.put(M + "settings", {"restricted_windows": [window]}).status
    sent = send(api, contact_id=cid, text="now")
    drain()
    assert "sent" == message(sent["id"]).status
