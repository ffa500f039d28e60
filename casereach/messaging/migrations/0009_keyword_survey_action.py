"""A keyword's action: ``reply`` (every existing keyword) or ``survey`` with ``survey_id``."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0008_opt_out_scope_constraints'),
    ]

    operations = [
        migrations.AddField(
            model_name='keyword',
            name='action',
            field=models.CharField(default='reply', max_length=16),
        ),
        migrations.AddField(
            model_name='keyword',
            name='survey_id',
            field=models.BigIntegerField(null=True),
        ),
    ]
