"""The scope rules of opt-outs, once every row has one (0007)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0007_opt_outs_to_their_scope'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='optout',
            index=models.Index(fields=['phone_number'], name='optout_number'),
        ),
        migrations.AddConstraint(
            model_name='optout',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('gateway__isnull', True), ('project__isnull', False)), models.Q(('gateway__isnull', False), ('project__isnull', True)), _connector='OR'), name='optout_one_scope'),
        ),
        migrations.AddConstraint(
            model_name='optout',
            constraint=models.UniqueConstraint(condition=models.Q(('project__isnull', False)), fields=('project', 'phone_number'), name='optout_per_project'),
        ),
        migrations.AddConstraint(
            model_name='optout',
            constraint=models.UniqueConstraint(condition=models.Q(('gateway__isnull', False)), fields=('gateway', 'phone_number'), name='optout_per_gateway'),
        ),
    ]
