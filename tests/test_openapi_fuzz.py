"""Schemathesis over every operation of our OpenAPI document: bad input never gets a 5xx.

Fixed seed (derandomize) and a bounded number of examples per operation keep it
reproducible and inside CI's time budget.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from casereach.testing.world import Api
from casereach.wsgi import application


@pytest.fixture
def api_schema(db: None) -> Iterator[schemathesis.BaseSchema]:
    # Like Django's test client: keep the test transaction's connection open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/openapi.json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, api: Api) -> None:
    if case.path_parameters and "project" in case.path_parameters:
        case.path_parameters = {**case.path_parameters, "project": api.project.name}
    response = case.call(headers={"Authorization": api.auth})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
