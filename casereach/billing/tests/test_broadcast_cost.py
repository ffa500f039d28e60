"""A 1,000-contact alert: the dry run's estimated cost, the estimates written set-based when
it fires (the statements of a batch do not grow with it: the fee table and the gateways are
read once per configuration generation, no query per message), and the log's totals per
alert."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.alerts.scheduler import fire_due
from casereach.core.timeutil import now
from casereach.messaging.models import QUEUED, Message
from casereach.testing.gateways import default_gateway
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
CONTACTS = 1000


def _cases(api: Api) -> None:
    for start in range(0, CONTACTS, 100):
        bodies: list[dict[str, Any]] = [
            {
                **case_body(
                    name=f"Mother {n}", case_type="mother", phone=f"2547{n:08d}", edd="2027-01-10"
                ),
                "create": True,
            }
            for n in range(start, start + 100)
        ]
        r = api.post(V2, bodies)
        assert 200 == r.status, r.body


def test_a_1000_contact_alert_costs_what_its_dry_run_said(api: Api) -> None:
    gw = default_gateway(api)
    today = now().date().isoformat()
    for prefix, amount in (("", "0.05"), ("2547", "0.0075")):
        body = {"prefix": prefix, "amount": amount, "currency": "USD", "valid_from": today}
        assert 201 == api.post(M + f"gateways/{gw['id']}/fees", body).status
    _cases(api)
    alert = {
        "name": "Due date reminder",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}, your visit is due"}},
        "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
        "recipients": [{"type": "self"}],
    }
    r = api.post(M + "alerts", alert)
    assert 201 == r.status, r.body
    alert_id = r.body["id"]

    dry = api.post(M + f"alerts/{alert_id}/dry-run?days=1")
    assert 200 == dry.status, dry.body
    assert (CONTACTS, {"currency": "USD", "total": "7.500000", "unpriced_messages": 0}) == (
        dry.body["messages"],
        dry.body["estimated_cost"],
    )
    assert "7.500000" == dry.body["per_day"][0]["estimated_cost"]

    at = now() + dt.timedelta(seconds=1)
    with CaptureQueriesContext(connection) as small:
        assert 10 == fire_due(at=at, limit=10)
    # 890: within one chunk of ids on SQLite (900), as every batch read is chunked.
    with CaptureQueriesContext(connection) as large:
        assert 890 == fire_due(at=at, limit=890)
    assert len(small.captured_queries) == len(large.captured_queries), "\n".join(
        q["sql"][:120] for q in large.captured_queries
    )
    assert CONTACTS - 900 == fire_due(at=at, limit=CONTACTS)

    priced = Message.objects.filter(status=QUEUED, estimated_cost_micros=7500)
    assert CONTACTS == priced.count()
    cost = api.get(M + "costs", alert=str(alert_id)).body["total"]
    assert ("7.500000", "0.000000", "7.500000") == (
        cost["estimated"],
        cost["actual"],
        cost["cost"],
    )
    assert cost == {k: v for k, v in api.get(M + f"alerts/{alert_id}").body["cost"].items()}
