"""``prepare`` and the breaker's decisions called with plain data: unsaved model objects, a
hand-filled ``PresendContext``. No test here asks for the database (pytest-django refuses any
query from a test without the ``db`` fixture), so every decision is shown to need none."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from casereach.gateways.models import GatewayConfig, GatewayState, GlobalRoutes, RateWindow
from casereach.gateways.queries import pick_sender
from casereach.messaging.actions import CHOSEN
from casereach.messaging.dispatch import breaker
from casereach.messaging.dispatch.jobs import FAIL, POSTPONE, SEND, Job
from casereach.messaging.dispatch.prepare import prepare
from casereach.messaging.optouts import OptedOut
from casereach.messaging.presend import PresendContext
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, RestrictedWindow

AT = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # a Monday, 13:00 in Nairobi
NUMBER = "254712345678"
PROJECT = Project(pk=1, name="p")
SMS = GatewayConfig(pk=10, name="SMS", name_key="sms", type="test", sender_numbers=["11", "22"])
OTHER = GatewayConfig(pk=12, name="Other", name_key="other", type="test")
MAIL = GatewayConfig(pk=11, name="Mail", name_key="mail", type="email")


def context(
    settings: ProjectSettings | None = None,
    *,
    contacts: dict[str, dict[str, Any]] | None = None,
    opted: OptedOut | None = None,
    pinned: dict[int, GatewayConfig] | None = None,
    overrides: dict[tuple[str, str], str] | None = None,
    email: GatewayConfig | None = MAIL,
) -> PresendContext:
    return PresendContext(
        projects={1: PROJECT},
        settings={1: settings or ProjectSettings(default_gateway="SMS"), None: ProjectSettings()},
        pinned=pinned or {},
        contacts=contacts or {},
        overrides=overrides or {},
        opted=opted or OptedOut(),
        routes=GlobalRoutes(),
        indexes={1: {"sms": SMS, "other": OTHER}},
        email_gateways={1: email},
    )


def row(**kw: Any) -> dict[str, Any]:
    """A claimed row (``log.CLAIM_COLUMNS``)."""
    base: dict[str, Any] = {
        "id": "m1",
        "project_id": 1,
        "channel": "sms",
        "contact_id": None,
        "phone_number": NUMBER,
        "email_address": "",
        "subject": "",
        "text": "hi",
        "segments": 1,
        "encoding": "GSM",
        "gateway_id": None,
        "gateway_name": "",
        "gateway_source": "",
        "attempts": 1,
        "created_on": AT - dt.timedelta(hours=1),
        "allow_opted_out": False,
        "event_id": None,
        "subevent_id": None,
    }
    return {**base, **kw}


def one(ctx: PresendContext, r: dict[str, Any], sent_today: int = 0) -> Job:
    [job] = prepare([r], ctx, AT, {1: sent_today})
    return job


def test_a_routed_sms_is_sent_through_the_project_default_with_a_stable_sender() -> None:
    job = one(context(), row())
    assert (job.action, job.error_code, job.cfg) == (SEND, None, SMS)
    assert job.gateway_source == "project_default"
    assert job.sender == pick_sender(SMS, NUMBER) != ""


def test_a_stale_message_fails() -> None:
    job = one(context(), row(created_on=AT - dt.timedelta(hours=169)))
    assert (job.action, job.error_code) == (FAIL, "MESSAGE_IS_STALE")


@pytest.mark.parametrize("contacts", [{}, {"c1": {"active": False, "tz_effective": "UTC"}}])
def test_a_missing_or_inactive_contact_fails(contacts: dict[str, dict[str, Any]]) -> None:
    job = one(context(contacts=contacts), row(contact_id="c1"))
    assert (job.action, job.error_code) == (FAIL, "CONTACT_IS_INACTIVE")


def test_opted_out_in_the_project_fails_unless_allowed_or_email() -> None:
    ctx = context(opted=OptedOut(projects={(NUMBER, 1)}))
    assert (one(ctx, row()).action, one(ctx, row()).error_code) == (
        FAIL,
        "PHONE_NUMBER_OPTED_OUT",
    )
    assert SEND == one(ctx, row(allow_opted_out=True)).action
    assert SEND == one(ctx, row(channel="email", email_address="a@example.org")).action


def test_opted_out_for_the_routed_gateway_fails_naming_it() -> None:
    ctx = context(opted=OptedOut(gateways={(NUMBER, SMS.pk)}, gateway_numbers={NUMBER}))
    job = one(ctx, row())
    assert (job.action, job.error_code, job.cfg) == (FAIL, "PHONE_NUMBER_OPTED_OUT", SMS)
    assert job.gateway_source == "project_default"


def test_the_daily_limit_counts_what_the_batch_sends_and_spares_replies() -> None:
    ctx = context(ProjectSettings(default_gateway="SMS", daily_limit=2))
    reply = row(id="r", gateway_source="inbound", gateway_id=SMS.pk)
    ctx.pinned = {SMS.pk: SMS}
    rows = [row(id="a"), row(id="b"), reply, row(id="c")]
    jobs = prepare(rows, ctx, AT, {1: 1})
    assert [j.action for j in jobs] == [SEND, POSTPONE, SEND, POSTPONE]
    assert jobs[1].error_code == "DAILY_LIMIT_REACHED"
    assert jobs[1].until == AT + dt.timedelta(hours=1)


def test_outside_the_restricted_windows_a_message_waits_for_the_next_one() -> None:
    window = RestrictedWindow(start="15:00", end="16:00")
    ctx = context(ProjectSettings(default_gateway="SMS", restricted_windows=[window]))
    job = one(ctx, row())
    assert (job.action, job.error_code) == (POSTPONE, None)
    assert job.until == AT.replace(hour=15)
    in_nairobi = {"c1": {"active": True, "tz_effective": "Africa/Nairobi"}}
    ctx.contacts = in_nairobi  # 13:00 there: two hours to wait
    assert one(ctx, row(contact_id="c1")).until == AT.replace(hour=12)


def test_a_reply_goes_through_the_gateway_that_received_the_message() -> None:
    r = row(gateway_source="inbound", gateway_id=SMS.pk)
    job = one(context(pinned={SMS.pk: SMS}), r)
    assert (job.action, job.cfg, job.gateway_source) == (SEND, SMS, "inbound")
    gone = one(context(), r)
    assert (gone.action, gone.error_code) == (FAIL, "NO_SUITABLE_GATEWAY")


def test_a_chosen_gateway_must_still_be_active() -> None:
    r = row(gateway_source=CHOSEN, gateway_id=OTHER.pk)
    job = one(context(pinned={OTHER.pk: OTHER}), r)
    assert (job.action, job.cfg, job.gateway_source) == (SEND, OTHER, CHOSEN)
    gone = one(context(), r)
    assert (gone.action, gone.error_code) == (FAIL, "GATEWAY_NOT_FOUND")


def test_no_route_and_a_contact_override_naming_no_gateway_fail() -> None:
    job = one(context(ProjectSettings()), row())
    assert (job.action, job.error_code, job.gateway_source) == (FAIL, "NO_SUITABLE_GATEWAY", "none")
    ctx = context(overrides={("c1", NUMBER): "Nope"})
    ctx.contacts = {"c1": {"active": True, "tz_effective": "UTC"}}
    job = one(ctx, row(contact_id="c1"))
    assert (job.action, job.error_code, job.gateway_source) == (
        FAIL,
        "GATEWAY_NOT_FOUND",
        "contact",
    )
    ctx.overrides = {("c1", NUMBER): "other"}
    assert one(ctx, row(contact_id="c1")).cfg == OTHER


def test_traffic_of_no_project_is_not_routed() -> None:
    job = one(context(), row(project_id=None))
    assert (job.action, job.error_code) == (FAIL, "NO_SUITABLE_GATEWAY")


def test_email_goes_through_the_projects_email_gateway() -> None:
    r = row(channel="email", email_address="a@example.org", phone_number="")
    job = one(context(), r)
    assert (job.action, job.cfg, job.gateway_source, job.sender) == (SEND, MAIL, "email", "")
    none = one(context(email=None), r)
    assert (none.action, none.error_code) == (FAIL, "NO_SUITABLE_GATEWAY")


# -- the breaker's decisions ---------------------------------------------------------------


def jobs(*segments: int, cfg: GatewayConfig = SMS, sender: str = "") -> list[Job]:
    return [
        Job(row(id=f"m{i}", segments=s), cfg=cfg, sender=sender) for i, s in enumerate(segments)
    ]


def test_an_open_circuit_rests_until_its_time() -> None:
    state = GatewayState(gateway_id=SMS.pk, open_until=AT + dt.timedelta(seconds=30))
    assert breaker.resting_until(state, AT) == AT + dt.timedelta(seconds=30)
    assert breaker.resting_until(state, AT + dt.timedelta(seconds=30)) is None
    assert breaker.resting_until(GatewayState(gateway_id=SMS.pk), AT) is None


def test_the_bucket_takes_segments_and_spreads_the_rest_without_charging_them() -> None:
    state = GatewayState(gateway_id=SMS.pk, tokens=0.5, refilled_on=AT - dt.timedelta(seconds=1))
    batch = jobs(1, 1, 2, 1)
    breaker.admit_bucket(2.0, state, batch, AT)  # refilled to its capacity of 2 tokens
    assert [j.action for j in batch] == [SEND, SEND, POSTPONE, POSTPONE]
    assert [j.until for j in batch[2:]] == [
        AT + dt.timedelta(seconds=1),
        AT + dt.timedelta(seconds=1.5),
    ]
    assert (state.tokens, state.refilled_on) == (0, AT)


def test_a_minute_sends_its_allowance_at_once_and_holds_the_rest_per_sender() -> None:
    cfg = GatewayConfig(pk=13, name="M", rate_limit_per_minute=3, rate_limit_per_sender=True)
    started = AT - dt.timedelta(seconds=20)
    windows = {"11": RateWindow(gateway_id=13, sender="11", started_on=started, sent=2)}
    batch = jobs(1, 1, 1, cfg=cfg, sender="11") + jobs(2, 2, cfg=cfg, sender="22")
    allowed, touched = breaker.admit_minute(cfg, batch, windows, AT)
    assert allowed == [batch[0], batch[3]]
    assert [j.until for j in batch if j.action == POSTPONE] == [
        started + breaker.MINUTE,
        started + breaker.MINUTE,
        AT + breaker.MINUTE,
    ]
    assert [(w.sender, w.sent, w.started_on) for w in touched] == [
        ("11", 3, started),
        ("22", 2, AT),
    ]


def test_a_minute_that_ended_starts_again() -> None:
    cfg = GatewayConfig(pk=13, name="M", rate_limit_per_minute=1)
    old = RateWindow(gateway_id=13, sender="", started_on=AT - dt.timedelta(minutes=2), sent=1)
    allowed, _ = breaker.admit_minute(cfg, jobs(1, cfg=cfg), {"": old}, AT)
    assert len(allowed) == 1 and (old.started_on, old.sent) == (AT, 1)


@pytest.mark.parametrize(
    ("failures", "rest_s"), [(4, None), (5, 30), (6, 60), (8, 240), (9, 300), (40, 300)]
)
def test_failures_in_a_row_open_the_circuit_for_longer_each_time(
    failures: int, rest_s: int | None
) -> None:
    state = GatewayState(gateway_id=SMS.pk, consecutive_failures=failures - 1)
    breaker.count_failures(state, 1, AT)
    assert state.consecutive_failures == failures
    assert state.open_until == (None if rest_s is None else AT + dt.timedelta(seconds=rest_s))
