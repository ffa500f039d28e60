"""Alert tests run in a project that can send: a test gateway is its default, so the dry run
and upcoming sends (which run the dispatcher's pre-send checks) predict sends that succeed
unless a test says otherwise."""

from __future__ import annotations

import pytest

from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


@pytest.fixture(autouse=True)
def _default_gateway(request: pytest.FixtureRequest) -> None:
    if "api" not in request.fixturenames:
        return
    api: Api = request.getfixturevalue("api")
    r = api.post(M + "gateways", {"name": "default-test", "type": "test"})
    assert 201 == r.status, r.body
    r = api.put(M + "routes", {"default_gateway": "default-test", "prefixes": []})
    assert 200 == r.status, r.body
