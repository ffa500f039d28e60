"""Gateway sharing becomes an offer the receiving project accepts (issue 15).

Every existing ``shared_with`` pair becomes an offer that is *not* accepted: those shares were
made without the receiving project's consent, so until its admin (or a system administrator,
``casereach gateway accept``) accepts, the gateway is no longer visible to or usable by it.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def offers_from_shares(apps, schema_editor):
    GatewayConfig = apps.get_model("gateways", "GatewayConfig")
    GatewayShare = apps.get_model("gateways", "GatewayShare")
    through = GatewayConfig.shared_with.through
    stamp = timezone.now()
    GatewayShare.objects.bulk_create(
        [
            GatewayShare(gateway_id=gw_id, project_id=project_id, offered_on=stamp)
            for gw_id, project_id in through.objects.values_list("gatewayconfig_id", "project_id")
        ],
        batch_size=1000,
    )


def shares_from_offers(apps, schema_editor):
    GatewayConfig = apps.get_model("gateways", "GatewayConfig")
    GatewayShare = apps.get_model("gateways", "GatewayShare")
    through = GatewayConfig.shared_with.through
    through.objects.bulk_create(
        [
            through(gatewayconfig_id=gw_id, project_id=project_id)
            for gw_id, project_id in GatewayShare.objects.values_list("gateway_id", "project_id")
        ],
        batch_size=1000,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('gateways', '0001_initial'),
        ('projects', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='GatewayShare',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('offered_on', models.DateTimeField()),
                ('accepted_on', models.DateTimeField(null=True)),
                ('accepted_by', models.CharField(default='', max_length=150)),
                ('gateway', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='shares', to='gateways.gatewayconfig')),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='gateway_shares', to='projects.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('gateway', 'project'), name='gateway_share_once')],
            },
        ),
        migrations.RunPython(offers_from_shares, shares_from_offers),
        migrations.RemoveField(
            model_name='gatewayconfig',
            name='shared_with',
        ),
    ]
