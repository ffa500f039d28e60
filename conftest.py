"""Root pytest fixtures: a project, an API client for it, and a second project."""

from __future__ import annotations

import pytest

from casereach.projects.models import Project
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
