"""Migrations 0002-0003: admins → admin, other members → member, every key owner a member."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("projects", "0001_initial")]
AFTER = [("projects", "0003_drop_membership_is_admin")]


@pytest.mark.django_db(transaction=True)
def test_roles_come_from_is_admin_and_key_owners_become_admins() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    project = old.get_model("projects", "Project").objects.create(name="p")
    users = old.get_model("auth", "User").objects
    members = old.get_model("projects", "Membership").objects
    members.create(user=users.create(username="boss"), project=project, is_admin=True)
    members.create(user=users.create(username="pm"), project=project, is_admin=False)
    keys = old.get_model("projects", "ApiKey").objects
    keys.create(project=project, username="pm", key_hash="a" * 64, prefix="aaaaaaaa")
    keys.create(project=project, username="sync", key_hash="b" * 64, prefix="bbbbbbbb")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    roles = dict(
        new.get_model("projects", "Membership").objects.values_list("user__username", "role")
    )
    assert {"boss": "admin", "pm": "member", "sync": "admin"} == roles
    sync = new.get_model("auth", "User").objects.get(username="sync")
    assert sync.password.startswith("!")  # unusable: a key owner cannot log in

    # Leave the database as the later transactional tests on this worker expect it.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
