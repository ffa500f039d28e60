"""Roles on memberships (issue 15 item 6).

Existing admins become ``admin`` and other members ``member``. Every API key's owner gets a
membership in the key's project: a key whose username names no member of that project becomes
an ``admin`` (keys could do everything before roles existed, so nothing that worked stops
working); its user has no usable password, so it cannot log in to the UI.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations, models


def forwards(apps: Any, schema_editor: Any) -> None:
    membership_model = apps.get_model("projects", "Membership")
    key_model = apps.get_model("projects", "ApiKey")
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    membership_model.objects.filter(is_admin=True).update(role="admin")
    membership_model.objects.filter(is_admin=False).update(role="member")
    owners = key_model.objects.values_list("project_id", "username").distinct()
    for project_id, username in owners:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model.objects.create(username=username, password=make_password(None))
        membership_model.objects.get_or_create(
            user=user, project_id=project_id, defaults={"role": "admin"}
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    membership_model = apps.get_model("projects", "Membership")
    membership_model.objects.filter(role="admin").update(is_admin=True)


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="role",
            field=models.CharField(
                choices=[("viewer", "Viewer"), ("member", "Member"), ("admin", "Admin")],
                default="member",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="revoked_on",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, backwards),
        # is_admin is dropped by 0003, in its own transaction: on PostgreSQL a table cannot
        # be altered in the transaction that just wrote rows with deferred constraint checks.
    ]
