"""Drop the single-column ``project_id`` indexes of messages, events and sub-events.

Each table has a composite index that starts with ``project_id``, so the single-column one
only cost a write per row (every message of a due scan or a send paid for it). On SQLite,
``AlterField`` would copy each table to a new one, which takes minutes on a large message
log: the indexes are dropped by name instead (Django names them the same on every database),
and only the model state changes."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "messaging_message": "messaging_message_project_id_5d220d34",
    "messaging_messagingevent": "messaging_messagingevent_project_id_b28d1395",
    "messaging_messagingsubevent": "messaging_messagingsubevent_project_id_e93ff3d0",
}


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0003_inbound_queue"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("project_id")',
                )
                for table, name in INDEXES.items()
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="projects.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="messagingevent",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="projects.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="messagingsubevent",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="projects.project",
                    ),
                ),
            ],
        ),
    ]
