"""The fee table through the API: longest prefix, dated rows (a price change applies to
messages queued from its day; a used row never changes), conversion to the project's
currency, per-type defaults, and another project's key getting 404 and changing nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from casereach.billing import actions as billing_actions
from casereach.billing import queries as billing_queries
from casereach.billing.models import ConversionRate, Fee
from casereach.core.timeutil import now
from casereach.messaging import sending
from casereach.projects.models import Project
from casereach.testing.gateways import default_gateway
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
A = "/api/admin/v1/"
TODAY = now().date()


def fee(api: Api, gw: dict[str, Any], **over: Any) -> dict[str, Any]:
    body = {"amount": "0.05", "currency": "USD", "valid_from": TODAY.isoformat(), **over}
    r = api.post(M + f"gateways/{gw['id']}/fees", body)
    assert 201 == r.status, r.body
    out: dict[str, Any] = r.body
    return out


def cost_of(api: Api, number: str, text: str = "hello") -> tuple[str | None, str | None]:
    r = api.post(M + "send", {"phone_number": number, "text": text})
    assert 202 == r.status, r.body
    got = api.get(M + f"messages/{r.body['messages'][0]['id']}").body
    return got["estimated_cost"], got["cost_currency"]


def test_the_longest_prefix_wins_and_segments_multiply(api: Api) -> None:
    gw = default_gateway(api)
    fee(api, gw, prefix="", amount="0.05")
    fee(api, gw, prefix="254", amount="0.02")
    fee(api, gw, prefix="2547", amount="0.0075")

    assert ("0.007500", "USD") == cost_of(api, "254712345678")
    assert ("0.020000", "USD") == cost_of(api, "254112345678")
    assert ("0.050000", "USD") == cost_of(api, "15551230000")
    assert ("0.022500", "USD") == cost_of(api, "254712345678", "x" * 400)  # 3 segments


def test_no_fee_no_estimate(api: Api) -> None:
    default_gateway(api)
    assert (None, None) == cost_of(api, "254712345678")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.date], None]:
    """Moves "now" to noon of a day for queueing and for the fee table's rules."""

    def move(day: dt.date) -> None:
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        for module in (sending, billing_actions, billing_queries):
            monkeypatch.setattr(module, "now", lambda: at)

    return move


def test_a_new_price_applies_from_its_day_and_a_used_row_never_changes(
    api: Api, clock: Callable[[dt.date], None]
) -> None:
    gw = default_gateway(api)
    old = fee(api, gw, prefix="254", amount="0.01")
    tomorrow = TODAY + dt.timedelta(days=1)
    new = fee(api, gw, prefix="254", amount="0.02", valid_from=tomorrow.isoformat())
    assert (True, False) == (old["used"], new["used"])

    # A row whose day has not come may change (or go); today's may not.
    changed = api.put(M + f"fees/{new['id']}", {**_body(new), "amount": "0.03"})
    assert (200, "0.030000") == (changed.status, changed.body["amount"])
    refused = api.put(M + f"fees/{old['id']}", {**_body(old), "amount": "0.5"})
    assert 409 == refused.status, refused.body
    assert 409 == api.delete(M + f"fees/{old['id']}").status
    assert "0.010000" == str(Fee.objects.get(pk=old["id"]).amount)

    assert ("0.010000", "USD") == cost_of(api, "254712345678")  # queued today
    clock(tomorrow)
    assert ("0.030000", "USD") == cost_of(api, "254712345678")  # queued on the new day
    assert 409 == api.put(M + f"fees/{new['id']}", _body(new)).status  # now it is used
    assert 409 == api.delete(M + f"fees/{new['id']}").status
    prices = [m["estimated_cost"] for m in api.get(M + "messages").body["objects"]]
    assert ["0.030000", "0.010000"] == prices  # the earlier message keeps its price


def _body(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("direction", "prefix", "unit", "amount", "currency", "valid_from")
    return {k: row[k] for k in keys}


def test_a_retired_unused_row_is_gone_and_past_days_are_refused(api: Api) -> None:
    gw = default_gateway(api)
    later = fee(api, gw, valid_from=(TODAY + dt.timedelta(days=3)).isoformat())
    r = api.delete(M + f"fees/{later['id']}")
    assert (200, {"id": later["id"], "retired": True}) == (r.status, r.body)
    assert not Fee.objects.filter(pk=later["id"]).exists()
    yesterday = (TODAY - dt.timedelta(days=1)).isoformat()
    bad = [
        {"amount": "0.01", "currency": "USD", "valid_from": yesterday},
        {"amount": "-1", "currency": "USD", "valid_from": TODAY.isoformat()},
        {"amount": "0.01", "currency": "dollars", "valid_from": TODAY.isoformat()},
        {"amount": "0.01", "currency": "USD", "valid_from": TODAY.isoformat(), "prefix": "+2x"},
        {"amount": "0.01", "currency": "USD", "valid_from": TODAY.isoformat(), "unit": "mms"},
        {"amount": "0.0000001", "currency": "USD", "valid_from": TODAY.isoformat()},
        ["not", "an", "object"],
    ]
    for body in bad:
        r = api.post(M + f"gateways/{gw['id']}/fees", body)
        assert 400 == r.status, (body, r.body)
    assert 0 == Fee.objects.count()
    fee(api, gw)
    assert 409 == api.post(M + f"gateways/{gw['id']}/fees", _body(fee_row(gw))).status


def fee_row(gw: dict[str, Any]) -> dict[str, Any]:
    return {
        "direction": "out",
        "prefix": "",
        "unit": "sms_segment",
        "amount": "0.05",
        "currency": "USD",
        "valid_from": TODAY.isoformat(),
    }


def test_a_fee_in_another_currency_is_converted_at_the_rate_of_the_day(api: Api) -> None:
    gw = default_gateway(api)
    assert 200 == api.call("PATCH", M + "settings", {"currency": "kes"}).status
    fee(api, gw, amount="0.0075", currency="USD")
    assert (None, None) == cost_of(api, "254712345678")  # no rate yet: no estimate
    r = api.post(
        M + "conversion-rates",
        {"currency": "USD", "rate": "129.5", "valid_from": TODAY.isoformat()},
    )
    assert 201 == r.status, r.body
    assert ("0.971250", "KES") == cost_of(api, "254712345678")
    assert 409 == api.delete(M + f"conversion-rates/{r.body['id']}").status
    listed = api.get(M + "conversion-rates").body["objects"]
    assert [("USD", "129.50000000", True)] == [
        (x["currency"], x["rate"], x["used"]) for x in listed
    ]


def test_the_servers_default_per_type_applies_when_the_gateway_has_none(
    api: Api, project: Project
) -> None:
    get_user_model().objects.create_superuser("root@example.org", "root@example.org", "pw-r-1")
    root = Api(project, username="root@example.org")
    gw = default_gateway(api)
    body = {"amount": "0.04", "currency": "USD", "valid_from": TODAY.isoformat()}
    assert 403 == api.post(A + "gateway-types/test/fees", body).status  # a project admin
    assert 400 == root.post(A + "gateway-types/nope/fees", body).status
    made = root.post(A + "gateway-types/test/fees", body)
    assert 201 == made.status, made.body
    assert ("0.040000", "USD") == cost_of(api, "254712345678")
    fee(api, gw, prefix="1", amount="0.09")  # the gateway's own rows come first, where they match
    assert ("0.090000", "USD") == cost_of(api, "15551230000")
    assert ("0.040000", "USD") == cost_of(api, "254712345678")
    types = {f["gateway_type"]: f["gateway"] for f in api.get(M + "fees").body["objects"]}
    assert {"test": None} == {k: v for k, v in types.items() if v is None}


def test_another_projects_key_gets_404_and_changes_nothing(api: Api, other_api: Api) -> None:
    gw = default_gateway(api)
    used = fee(api, gw)
    later = fee(api, gw, valid_from=(TODAY + dt.timedelta(days=5)).isoformat())
    rate = api.post(
        M + "conversion-rates",
        {
            "currency": "EUR",
            "rate": "1.1",
            "valid_from": (TODAY + dt.timedelta(days=5)).isoformat(),
        },
    ).body
    before = (
        sorted(Fee.objects.values_list("pk", "amount", "valid_from")),
        sorted(ConversionRate.objects.values_list("pk", "rate")),
    )
    body = {"amount": "9", "currency": "USD", "valid_from": later["valid_from"]}
    for method, path, payload in [
        ("POST", M + f"gateways/{gw['id']}/fees", body),
        ("PUT", M + f"fees/{later['id']}", body),
        ("PUT", M + f"fees/{used['id']}", body),
        ("DELETE", M + f"fees/{later['id']}", None),
        ("DELETE", M + f"conversion-rates/{rate['id']}", None),
    ]:
        r = other_api.call(method, path, payload)
        assert 404 == r.status, (method, path, r.body)
    assert [] == other_api.get(M + "fees").body["objects"]
    assert [] == other_api.get(M + "conversion-rates").body["objects"]
    after = (
        sorted(Fee.objects.values_list("pk", "amount", "valid_from")),
        sorted(ConversionRate.objects.values_list("pk", "rate")),
    )
    assert before == after
