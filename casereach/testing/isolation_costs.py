"""The isolation walk's values for the cost operations (fees, conversion rates, costs) and
A's write-back ids: path values, queries and bodies that ``isolation_api`` merges into its
catalogue (tests only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from casereach.testing.tenants import Tenant

MV = "/a/{project}/api/messaging/v1/"
ADMIN = "/api/admin/v1/"
_FEE: dict[str, Any] = {
    "prefix": "254",
    "amount": "9",
    "currency": "USD",
    "valid_from": "2099-01-01",
}
_RATE: dict[str, Any] = {"currency": "EUR", "rate": "2", "valid_from": "2099-01-01"}


def write_ids(a: Tenant) -> list[str]:
    """A's CommCare write-backs (none unless a test queued some: then a made-up id)."""
    from casereach.cases.models import CommCareWrite

    ids = CommCareWrite.objects.filter(project__name=a.name).values_list("id", flat=True)
    return [str(i) for i in ids] or ["987654321"]


def cost_paths(a: Tenant) -> dict[str, list[str]]:
    """A's fee rows (one in use, one not yet) and conversion rate; gateway types."""
    return {
        "fee_id": [str(i) for i in a.fee_ids],
        "rate_id": [str(i) for i in a.rate_ids],
        "gateway_type": ["test", "http"],
    }


COST_QUERIES: dict[tuple[str, str], Callable[[Tenant], list[dict[str, str]]]] = {
    ("GET", MV + "costs"): lambda a: [
        {"alert": str(a.alert_ids[0])},
        {"gateway": a.gateway_names()[0]},
        {"phone_number": a.numbers["mother"]},
    ],
}

COST_BODIES: dict[tuple[str, str], Callable[..., list[Any]]] = {
    ("POST", MV + "gateways/{gateway_id}/fees"): lambda a, b, w: [_FEE],
    ("PUT", MV + "fees/{fee_id}"): lambda a, b, w: [_FEE],
    ("POST", MV + "conversion-rates"): lambda a, b, w: [_RATE],
    ("POST", ADMIN + "gateway-types/{gateway_type}/fees"): lambda a, b, w: [_FEE],
    ("POST", ADMIN + "gateways/{gateway_id}/fees"): lambda a, b, w: [_FEE],
}
