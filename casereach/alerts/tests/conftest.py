"""Alert tests run in a project that can send: a test gateway is its default, so the dry run
and upcoming sends (which run the dispatcher's pre-send checks) predict sends that succeed
unless a test says otherwise."""

from __future__ import annotations

import pytest

from casereach.testing.gateways import default_gateway
from casereach.testing.world import Api


@pytest.fixture(autouse=True)
def _default_gateway(request: pytest.FixtureRequest) -> None:
    if "api" not in request.fixturenames:
        return
    api: Api = request.getfixturevalue("api")
    default_gateway(api, "default-test")
