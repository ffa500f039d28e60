"""Schemathesis over the system administrator's operations (``/api/admin/v1/``) as a superuser:
positive and negative examples of each; no answer is a 5xx, and every one has a documented
status, content type and schema (the project-wide run calls them with a project admin's key,
which gets 403 only)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from casereach.projects import auth
from casereach.projects.models import Project
from casereach.testing.world import Api
from casereach.wsgi import application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def root(project: Project, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setattr(auth, "BUCKET", auth._Bucket(rate=1e9, burst=1e9))
    monkeypatch.setattr(auth, "KEY_FAILURES", auth._KeyFailures(limit=10**9, window=1))
    get_user_model().objects.create_superuser("root@example.org", "root@example.org", "pw-1")
    root = Api(project, username="root@example.org")
    for name in ("G-1", "G-2"):
        assert 201 == root.post("/api/admin/v1/gateways", {"name": name, "type": "test"}).status
    assert 200 == root.put("/api/admin/v1/routes/prefixes/254", {"gateway": "G-1"}).status
    return root


@pytest.fixture
def wsgi_schema(root: Api) -> Iterator[schemathesis.BaseSchema]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/openapi.json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_admin_operations_as_a_superuser(
    root: Api, wsgi_schema: schemathesis.BaseSchema
) -> None:
    operations = [
        op
        for op in (result.ok() for result in wsgi_schema.get_all_operations())
        if op.path.startswith("/api/admin/")
    ]
    statuses: list[int] = []
    for operation, mode in itertools.product(operations, GenerationMode):
        strategy = operation.as_strategy(mode, headers={"Authorization": root.auth})

        @given(case=strategy)
        @settings(
            max_examples=8,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call()
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert GenerationMode.NEGATIVE == mode, operation.label
    assert 17 == len(operations)  # 13 gateways and routes, 4 fees (docs/costs.md)
    assert {200, 400} <= set(statuses)
    assert all(s < 500 for s in statuses)
