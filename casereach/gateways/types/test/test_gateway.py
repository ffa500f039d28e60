"""Test gateway: status callbacks typed by hand (form or JSON)."""

from __future__ import annotations

import pytest

from casereach.gateways.base import StatusUpdate
from casereach.gateways.types.test.gateway import TestGateway
from casereach.testing.gateway_tables import StatusCase, run_status_case

STATUS_CASES = [
    StatusCase(
        label="form",
        form={"id": "test-1", "status": "delivered"},
        expect=[StatusUpdate(provider_id="test-1", status="delivered")],
    ),
    StatusCase(
        label="JSON failed",
        body=b'{"id": "test-1", "status": "failed"}',
        content_type="application/json",
        expect=[StatusUpdate(provider_id="test-1", status="failed", error_code="GATEWAY_ERROR")],
    ),
    StatusCase(
        label="JSON array",
        body=b"[]",
        content_type="application/json",
        expect_error="must be a JSON object",
    ),
    StatusCase(
        label="deeply nested JSON (RecursionError is not a 500)",
        body=b"[" * 60_000,
        content_type="application/json",
        expect_error="not valid JSON",
    ),
    StatusCase(label="unknown status", form={"id": "t", "status": "x"}, expect_error="'status'"),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status_callback(case: StatusCase) -> None:
    run_status_case(TestGateway, {}, case)
