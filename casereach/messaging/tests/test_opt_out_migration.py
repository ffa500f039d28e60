"""messaging 0006-0008 and gateways 0002: today's global opt-outs move to the scope they came
from, and shares become offers not yet accepted (issue 15). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from casereach.gateways.models import GatewayShare
from casereach.messaging.models import OptOut

BEFORE = [("gateways", "0001_initial"), ("messaging", "0005_event_source_name")]
STAMP = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _migrate(targets: list[tuple[str, str]] | None) -> Any:
    executor = MigrationExecutor(connection)
    plan_targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(plan_targets)
    executor.loader.build_graph()
    return executor.loader.project_state(plan_targets).apps


@pytest.mark.django_db(transaction=True)
def test_global_opt_outs_move_to_the_scope_they_came_from() -> None:
    old = _migrate(BEFORE)
    project = old.get_model("projects", "Project")
    gateway = old.get_model("gateways", "GatewayConfig")
    message = old.get_model("messaging", "Message")
    opt_out = old.get_model("messaging", "OptOut")
    api_key = old.get_model("projects", "ApiKey")
    a = project.objects.create(name="a")
    b = project.objects.create(name="b")
    c = project.objects.create(name="c")
    a_gw = gateway.objects.create(
        name="A-GW", name_key="a-gw", type="http", project=a, inbound_key="k1"
    )
    b_gw = gateway.objects.create(
        name="B-GW", name_key="b-gw", type="http", project=b, inbound_key="k2"
    )
    glob = gateway.objects.create(name="GLOBAL", name_key="global", type="http", inbound_key="k3")
    a_gw.shared_with.add(b)
    api_key.objects.create(project=a, username="alice", key_hash="h", prefix="p")

    def msg(number: str, project: Any, gw: Any, **kw: Any) -> None:
        message.objects.create(
            project=project,
            phone_number=number,
            gateway_id=gw.pk if gw else None,
            gateway_name=gw.name if gw else "",
            created_on=STAMP,
            updated_on=STAMP,
            **kw,
        )

    def row(number: str, source: str, can_opt_in: bool = False) -> None:
        opt_out.objects.create(
            phone_number=number, source=source, can_opt_in=can_opt_in, changed_on=STAMP
        )

    msg("1", a, a_gw, direction="in", inbound_action="opt_out", status="received")
    row("1", "keyword:A-GW")  # STOP through A's own gateway
    msg("2", None, glob, direction="in", inbound_action="opt_out", status="received")
    row("2", "keyword:GLOBAL")  # STOP through a global gateway
    msg("3", b, b_gw, direction="out", error_code="PHONE_NUMBER_OPTED_OUT", attempts=1)
    row("3", "gateway:B-GW")  # the provider refused B's send
    msg("4", a, a_gw, direction="out")
    msg("4", b, b_gw, direction="out")
    row("4", "admin:alice", can_opt_in=True)  # alice is A's: A only
    msg("5", a, a_gw, direction="out")
    msg("5", c, None, direction="out")
    row("5", "")  # origin unknown: every project that knows the number
    row("6", "keyword:GONE")  # no project knows it: every project

    _migrate(None)

    got = {
        (o.phone_number, o.project.name if o.project else None, o.gateway_id, o.can_opt_in)
        for o in OptOut.objects.select_related("project")
    }
    assert {
        ("1", "a", None, False),
        ("2", None, glob.pk, False),
        ("3", "b", None, False),
        ("4", "a", None, True),
        ("5", "a", None, False),
        ("5", "c", None, False),
        ("6", "a", None, False),
        ("6", "b", None, False),
        ("6", "c", None, False),
    } == got
    assert [("A-GW", "b", None)] == [
        (s.gateway.name, s.project.name, s.accepted_on) for s in GatewayShare.objects.all()
    ]


@pytest.mark.django_db(transaction=True)
def test_the_migration_reverses_to_one_row_per_number() -> None:
    new = _migrate(None)
    project = new.get_model("projects", "Project")
    opt_out = new.get_model("messaging", "OptOut")
    a = project.objects.create(name="a")
    b = project.objects.create(name="b")
    opt_out.objects.create(phone_number="1", project=a, can_opt_in=True, changed_on=STAMP)
    opt_out.objects.create(phone_number="1", project=b, can_opt_in=False, changed_on=STAMP)
    opt_out.objects.create(
        phone_number="2", project=a, opted_out=False, can_opt_in=True, changed_on=STAMP
    )

    old = _migrate(BEFORE)

    rows = old.get_model("messaging", "OptOut").objects.order_by("phone_number")
    assert [("1", True, False), ("2", False, True)] == [
        (r.phone_number, r.opted_out, r.can_opt_in) for r in rows
    ]
    _migrate(None)
