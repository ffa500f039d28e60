"""A pin on the dispatcher's statements: one batch of N claimed messages costs the same
number of statements whatever N — sends, refusals and retries, with their events closed."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.core.timeutil import now
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.models import SENDING, Message, MessagingEvent, MessagingSubEvent
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
FAILS, RETRIES = "254700000001", "254700000002"


def gateway(api: Api) -> None:
    """The test gateway, refusing one number for good and failing another retryably."""
    config: dict[str, Any] = {"fail_numbers": [FAILS], "retry_numbers": [RETRIES]}
    r = api.post(M + "gateways", {"name": "T", "type": "test", "config": config})
    assert 201 == r.status, r.body
    assert 200 == api.put(M + "routes", {"default_gateway": "T", "prefixes": []}).status


def queue(api: Api, count: int) -> None:
    """``count`` messages of each kind (sent, refused, retried), each in its own event."""
    Message.objects.all().delete()
    MessagingEvent.objects.all().delete()
    for i in range(count):
        for to in (f"2547120{i:05d}", FAILS, RETRIES):
            assert 202 == api.post(M + "send", {"phone_number": to, "text": "x"}).status
    at = now()
    for message in Message.objects.all():
        event = MessagingEvent.objects.create(project=api.project, created_on=at)
        sub = MessagingSubEvent.objects.create(
            event=event, project=api.project, created_on=at, date_last_activity=at
        )
        Message.objects.filter(pk=message.pk).update(event=event, subevent=sub)


def batch_statements() -> int:
    """The statements of one ``run_once`` of a fresh dispatcher, which claims everything."""
    d = Dispatcher(concurrency=2)
    try:
        with CaptureQueriesContext(connection) as queries:
            claimed = d.run_once()
    finally:
        d.close()
    assert claimed == Message.objects.count()
    assert not Message.objects.filter(status=SENDING).exists()
    return len(queries.captured_queries)


def test_a_batch_costs_the_same_statements_for_3_and_for_36_messages(api: Api) -> None:
    gateway(api)
    queue(api, 1)
    batch_statements()  # the gateway's first batch also creates its state row
    OUTBOX.clear()
    queue(api, 1)
    small = batch_statements()
    queue(api, 12)
    large = batch_statements()
    assert 1 + 12 == len(OUTBOX)
    assert small == large
