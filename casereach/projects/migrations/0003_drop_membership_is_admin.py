"""Drop ``Membership.is_admin`` now that 0002 copied it into ``role`` (its own migration, so
its own transaction: PostgreSQL refuses to alter a table with pending trigger events)."""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("projects", "0002_membership_role")]

    operations = [migrations.RemoveField(model_name="membership", name="is_admin")]
