"""Root pytest fixtures: a project, an API client for it, a second project, an empty test-gateway
outbox for every test, and a scratch PostgreSQL database for commcare-export."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from casereach.gateways.types.test.gateway import OUTBOX
from casereach.projects.models import Project
from casereach.testing.commcare_export import scratch_database
from casereach.testing.world import Api, make_project


@pytest.fixture
def project(db: None) -> Project:
    return make_project(name="demo", time_zone="Africa/Nairobi", languages=["en", "sw"])


@pytest.fixture
def api(project: Project) -> Api:
    return Api(project)


@pytest.fixture
def other_project(db: None) -> Project:
    return make_project(name="other")


@pytest.fixture
def other_api(other_project: Project) -> Api:
    return Api(other_project, username="other@example.org")


@pytest.fixture(autouse=True)
def _clear_outbox() -> None:
    """The test gateway's outbox starts empty."""
    OUTBOX.clear()


@pytest.fixture
def export_db() -> Iterator[str]:
    """A scratch PostgreSQL database for commcare-export's SQL output; dropped after."""
    with scratch_database() as url:
        yield url
