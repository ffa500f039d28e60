"""The dry run, upcoming sends and a real send agree on every pre-send error (issue 16, alerts
item 7): all three run the same checks (the alert's own, then ``messaging.presend.check``,
which the dispatcher runs), so a contact the dry run counts as reachable is never failed by
sending, and the code upcoming shows is the one sending records."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from casereach.alerts import compose, dryrun, queries, recipients, scheduler
from casereach.alerts.scheduler import fire_due
from casereach.core.timeutil import now
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging import presend
from casereach.messaging.dispatch import Dispatcher
from casereach.messaging.errors import BY_CODE
from casereach.messaging.models import Message
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
USERS = "/a/{project}/api/v0.5/user/"
NUMBER = "254712345678"


def a_case(api: Api, **props: str) -> str:
    r = api.post(V2, case_body(case_type="mother", **props))
    assert 200 == r.status, r.body
    cid: str = r.body["case"]["case_id"]
    return cid


def broadcast(contact_id: str, kind: str = "case", channel: str = "sms") -> dict[str, Any]:
    content: dict[str, Any] = {"sms": {"en": "Hello {recipient.name}"}}
    if channel == "email":
        content["email"] = {"subject": {"en": "Hello"}, "body": {"en": "Hello there"}}
    return {
        "name": "Now",
        "kind": "broadcast",
        "channel": channel,
        "content": content,
        "schedule": {"type": "immediate"},
        "recipients": [{"type": kind, "id": contact_id}],
    }


Setup = Callable[[Api], tuple[dict[str, Any], str | None]]


def sendable(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api, phone=NUMBER)
    return broadcast(cid), cid


def no_phone(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api)
    return broadcast(cid), cid


def no_translation(api: Api) -> tuple[dict[str, Any], str | None]:
    assert 200 == api.put(M + "settings", {"language_fallback": "none"}).status
    cid = a_case(api, phone=NUMBER, language_code="sw")
    return broadcast(cid), cid


def inactive_worker(api: Api) -> tuple[dict[str, Any], str | None]:
    r = api.post(
        USERS,
        {"username": "chw1", "password": "pw-123456", "phone_numbers": ["+" + NUMBER]},
    )
    assert 201 == r.status, r.body
    wid: str = r.body["id"]
    assert 200 == api.post(USERS + f"{wid}/deactivate/").status
    return broadcast(wid, kind="worker"), wid


def opted_out(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api, phone=NUMBER)
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": True})
    assert 200 == r.status, r.body
    return broadcast(cid), cid


def unknown_gateway(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api, phone=NUMBER, contact_backend_id="NOPE")
    return broadcast(cid), cid


def no_email_gateway(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api, commcare_email_address="amina@example.org")
    return broadcast(cid, channel="email"), cid


def no_email(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api)
    return broadcast(cid, channel="email"), cid


def bad_email(api: Api) -> tuple[dict[str, Any], str | None]:
    cid = a_case(api, commcare_email_address="not an address")
    return broadcast(cid, channel="email"), cid


def no_owner(api: Api) -> tuple[dict[str, Any], str | None]:
    a_case(api, phone=NUMBER, edd="x")  # owner "owner-1" is nobody
    body = {
        "name": "To the owner",
        "kind": "conditional",
        "case_type": "mother",
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello"}},
        "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
        "recipients": [{"type": "owner"}],
    }
    return body, None


@dataclass(frozen=True)
class Row:
    code: str | None  # None: sent
    setup: Setup


ROWS = [
    Row(None, sendable),
    Row("NO_PHONE_NUMBER", no_phone),
    Row("NO_MESSAGE", no_translation),
    Row("CONTACT_IS_INACTIVE", inactive_worker),
    Row("PHONE_NUMBER_OPTED_OUT", opted_out),
    Row("GATEWAY_NOT_FOUND", unknown_gateway),
    Row("NO_SUITABLE_GATEWAY", no_email_gateway),
    Row("NO_EMAIL_ADDRESS", no_email),
    Row("ERROR_INVALID_EMAIL_ADDRESS", bad_email),
    Row("NO_RECIPIENT", no_owner),
]


def test_every_pre_send_failure_has_a_row() -> None:
    """A failure code added to the pre-send checks (or to the alert's own) needs a row here.
    MESSAGE_IS_STALE depends on the age of a queued message: no prediction can have it."""
    sources = [
        Path(presend.__file__).read_text(),
        Path(scheduler.__file__).read_text(),
        Path(queries.__file__).read_text(),
        Path(dryrun.__file__).read_text(),
        Path(compose.__file__).read_text(),
        Path(recipients.__file__).read_text(),
    ]
    codes = {c for text in sources for c in re.findall(r'"([A-Z][A-Z_]+[A-Z])"', text)}
    failures = {c for c in codes if c in BY_CODE} - {
        "MESSAGE_IS_STALE",
        "DAILY_LIMIT_REACHED",
        "MONTHLY_BUDGET_REACHED",  # a postponement, as the daily limit
    }
    failures -= {"CANNOT_RENDER_MESSAGE", "SUBEVENT_ERROR"}  # a template that cannot fail
    assert failures == {r.code for r in ROWS if r.code}


@pytest.mark.parametrize("row", ROWS, ids=[r.code or "sent" for r in ROWS])
def test_dry_run_upcoming_and_sending_agree(api: Api, row: Row) -> None:
    OUTBOX.clear()
    body, contact_id = row.setup(api)
    r = api.post(M + "alerts", body)
    assert 201 == r.status, r.body
    alert_id = r.body["id"]

    r = api.post(M + f"alerts/{alert_id}/dry-run?days=1")
    assert 200 == r.status, r.body
    predicted = {} if row.code is None else {row.code: 1}
    assert predicted == r.body["unreachable_by_reason"]
    assert (0 if row.code else 1) == r.body["contacts"]

    assert 200 == api.post(M + f"alerts/{alert_id}/activate").status
    if contact_id is not None:
        r = api.get(M + f"contacts/{contact_id}/upcoming")
        assert 200 == r.status, r.body
        assert [row.code] == [u["error_code"] for u in r.body["objects"]]

    assert 1 == fire_due(at=now())
    dispatcher = Dispatcher(concurrency=1)
    try:
        dispatcher.drain()
    finally:
        dispatcher.close()
    sent = list(Message.objects.filter(direction="out").values_list("status", "error_code"))
    assert [("sent", None) if row.code is None else ("failed", row.code)] == sent
