"""The monthly budget: sending stops when the month's cost reaches it (as the daily limit
does, with its own code), a warning at 80% in the costs API, the dashboard and the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from casereach.core.timeutil import now
from casereach.messaging.dispatch import monthly
from casereach.messaging.models import Message
from casereach.projects.actions import do_create_web_user
from casereach.projects.models import Role
from casereach.testing.gateways import default_gateway
from casereach.testing.sending import drain
from casereach.testing.tenants import web_login
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def _priced(api: Api, amount: str = "1") -> None:
    gw = default_gateway(api)
    body = {"amount": amount, "currency": "USD", "valid_from": now().date().isoformat()}
    assert 201 == api.post(M + f"gateways/{gw['id']}/fees", body).status


def _send(api: Api, n: int) -> None:
    for i in range(n):
        r = api.post(M + "send", {"phone_number": f"25471234560{i}", "text": "hi"})
        assert 202 == r.status, r.body


def _budget(api: Api, amount: Any) -> None:
    r = api.call("PATCH", M + "settings", {"monthly_budget": amount})
    assert 200 == r.status, r.body


def test_sending_stops_at_the_budget_with_its_own_code(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monthly, "_WARNED", set())  # once per process: a fresh process
    _priced(api)
    _budget(api, "2.5")
    _send(api, 4)
    with caplog.at_level(logging.WARNING, logger="casereach.messaging.dispatch.monthly"):
        drain()
        drain()
    rows = sorted(Message.objects.values_list("status", "error_code"))
    assert [
        ("queued", "MONTHLY_BUDGET_REACHED"),
        ("sent", None),
        ("sent", None),
        ("sent", None),
    ] == rows
    budget = api.get(M + "costs").body["budget"]
    assert ("2.500000", "3.000000", True, True, 120.0) == (
        budget["amount"],
        budget["spent"],
        budget["warning"],
        budget["reached"],
        budget["percent"],
    )
    warnings = [r for r in caplog.records if "of its budget" in r.getMessage()]
    assert 1 == len(warnings)  # once per month, however many batches

    _budget(api, "10")  # raised: the held message goes with the next pass due
    Message.objects.filter(status="queued").update(next_attempt_at=now())
    drain()
    assert ["sent"] * 4 == list(Message.objects.values_list("status", flat=True))


def test_without_a_budget_nothing_is_held(api: Api) -> None:
    _priced(api)
    _send(api, 3)
    drain()
    assert ["sent"] * 3 == list(Message.objects.values_list("status", flat=True))
    assert None is api.get(M + "costs").body["budget"]


def test_the_warning_shows_at_80_percent_and_bad_budgets_are_refused(api: Api) -> None:
    _priced(api, "0.85")
    _budget(api, "1")
    _send(api, 1)
    drain()
    costs = api.get(M + "costs").body
    assert (True, False, "0.850000") == (
        costs["budget"]["warning"],
        costs["budget"]["reached"],
        costs["total"]["estimated"],
    )
    # The dashboard shows the warning and the costs per day and per gateway.
    do_create_web_user(api.project, "manager", "manager-pass-1", role=Role.VIEWER)
    client, _ = web_login("manager", "manager-pass-1")
    page = client.get(f"/a/{api.project.name}/").content.decode()
    assert "Warning: 80% of the budget is spent." in page
    assert "0.850000 of 1.000000 USD" in page
    assert 2 == page.count('<td data-label="Estimated">0.850000</td>')  # the day, TEST
    for bad in ("-1", "abc", "1.0000001"):
        r = api.call("PATCH", M + "settings", {"monthly_budget": bad})
        assert 400 == r.status, (bad, r.body)
    assert 400 == api.call("PATCH", M + "settings", {"currency": "EURO"}).status
    assert "1" == str(api.get(M + "settings").body["monthly_budget"]).rstrip("0").rstrip(".")


def test_another_projects_key_sees_only_its_own_costs(api: Api, other_api: Api) -> None:
    _priced(api)
    _send(api, 2)
    assert "2.000000" == api.get(M + "costs").body["total"]["estimated"]
    theirs = other_api.get(M + "costs").body
    assert ("0.000000", [], []) == (
        theirs["total"]["estimated"],
        theirs["per_day"],
        theirs["per_gateway"],
    )
