"""The dry run and the upcoming list count what the scheduler will send: sends due at once,
and never one instant twice."""

from __future__ import annotations

import datetime as dt

from casereach.alerts.scheduler import run_until_idle
from casereach.messaging.models import Message
from casereach.testing.alerts import create_alert as create
from casereach.testing.cases import mother_with_phone as a_case
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"


def test_the_dry_run_of_an_immediate_broadcast_counts_its_messages(api: Api) -> None:
    ids = [a_case(api) for _ in range(3)]
    alert = create(
        api,
        {
            "name": "Clinic closed",
            "kind": "broadcast",
            "active": False,
            "content": {"sms": {"en": "Clinic closed today"}},
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case", "id": i} for i in ids],
        },
    )
    r = api.post(M + f"alerts/{alert['id']}/dry-run?days=1")
    assert 200 == r.status, r.body
    assert (3, 3, 3) == (r.body["recipients"], r.body["contacts"], r.body["messages"])
    assert 3 == sum(d["messages"] for d in r.body["per_day"])


def test_a_repeated_round_starting_at_once_sends_each_instant_once(api: Api) -> None:
    cid = a_case(api, edd="2027-01-10")
    schedule = {"type": "alert", "events": [{"wait_minutes": 0}, {"wait_minutes": 120}]}
    body = {
        "name": "Every two hours",
        "kind": "conditional",
        "case_type": "mother",
        "active": False,
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Take your medicine"}},
        "schedule": {**schedule, "iterations": 3},
        "recipients": [{"type": "self"}],
    }
    alert = create(api, body)
    dry = api.post(M + f"alerts/{alert['id']}/dry-run?days=2").body
    assert 200 == api.post(M + f"alerts/{alert['id']}/activate").status
    rows = api.get(M + f"contacts/{cid}/upcoming?limit=10").body["objects"]
    dues = [dt.datetime.fromisoformat(r["due_utc"]) for r in rows]
    first = dues[0]
    hours = [(d - first) / dt.timedelta(hours=1) for d in dues]
    assert [0.0, 2.0, 4.0, 6.0] == hours
    assert 4 == dry["messages"]
    # The scheduler agrees: four sends over the whole span, one per instant.
    for d in dues:
        run_until_idle(at=d)
    sent = Message.objects.filter(event__source="conditional_alert")
    assert 4 == sent.count()
