"""The name of an event's source (the alert or the keyword), for the messaging-event API.

Added with one ALTER TABLE … ADD COLUMN on both databases: Django would rebuild SQLite's
whole event table to add it, and that table is the largest of the message log.
"""

from django.db import migrations, models

ADD = "ALTER TABLE messaging_messagingevent ADD COLUMN source_name varchar(255) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE messaging_messagingevent DROP COLUMN source_name"


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0004_drop_redundant_project_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="messagingevent",
                    name="source_name",
                    field=models.CharField(default="", max_length=255),
                ),
            ],
        ),
    ]
