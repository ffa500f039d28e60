from django.db import migrations, models


def first_row(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("projects", "ConfigGeneration").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("projects", "0003_drop_membership_is_admin")]

    operations = [
        migrations.CreateModel(
            name="ConfigGeneration",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(first_row, migrations.RunPython.noop),
    ]
