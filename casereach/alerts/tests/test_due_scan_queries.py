"""The due scan's cost does not grow with its batch: every read and write of the scheduler's
batch is one statement for the whole batch (per chunk of ids, far above these sizes), so a
batch of 3 instances and one of 9 run the same number of statements (issue 17)."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.alerts.models import Firing
from casereach.alerts.scheduler import fire_due
from casereach.billing.queries import tables
from casereach.core.timeutil import now
from casereach.messaging.models import QUEUED, Message
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"


def test_a_due_batch_runs_the_same_statements_whatever_its_size(api: Api) -> None:
    for n in range(12):
        body = case_body(case_type="mother", phone=f"25471234{n:04d}", edd="2027-01-10")
        body["properties"]["chw"] = "nobody"
        r = api.post(V2, body)
        assert 200 == r.status, r.body
    alert = {
        "name": "Every recipient rule that reads something",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}, due {case.edd}"}},
        "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
        "recipients": [
            {"type": "self"},
            {"type": "owner"},
            {"type": "children"},
            {"type": "user_property", "property": "chw"},
        ],
    }
    r = api.post(M + "alerts", alert)
    assert 201 == r.status, r.body
    at = now() + dt.timedelta(seconds=1)
    tables()  # the fee table, read once per configuration generation (not per batch)

    with CaptureQueriesContext(connection) as small:
        assert 3 == fire_due(at=at, limit=3)
    with CaptureQueriesContext(connection) as large:
        assert 9 == fire_due(at=at, limit=9)

    assert 12 == Firing.objects.count()
    assert 12 == Message.objects.filter(status=QUEUED).count()
    assert len(small.captured_queries) == len(large.captured_queries), "\n".join(
        q["sql"][:120] for q in large.captured_queries
    )
