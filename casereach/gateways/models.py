"""Configured gateways (instances of a gateway type), global routes, and per-gateway
rate-limit and circuit-breaker state."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from casereach.projects.models import Project


class GatewayConfig(models.Model):
    """A gateway instance: owned by a project, shared with others (``GatewayShare``: an offer
    the other project accepts), or global (project null)."""

    name = models.CharField(max_length=100)
    # lower(name): contact_backend_id refers to a gateway case-insensitively.
    name_key = models.CharField(max_length=100)
    type = models.CharField(max_length=30)
    project = models.ForeignKey(
        Project, null=True, on_delete=models.CASCADE, related_name="gateways"
    )
    config = models.JSONField(default=dict)  # without secrets
    secrets = models.TextField(default="")  # encrypted JSON (core.crypto)
    inbound_key = models.CharField(max_length=64, unique=True)
    rate_limit_per_s = models.FloatField(null=True)
    sender_numbers = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_on = models.DateTimeField(auto_now_add=True)
    updated_on = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name_key"],
                condition=Q(project__isnull=False),
                name="gateway_name_per_project",
            ),
            models.UniqueConstraint(
                fields=["name_key"], condition=Q(project__isnull=True), name="gateway_name_global"
            ),
        ]


class GatewayShare(models.Model):
    """The owner offers its gateway to another project; until that project's admin (or a
    system administrator) accepts, nothing of the gateway is visible to or usable by it."""

    gateway = models.ForeignKey(GatewayConfig, on_delete=models.CASCADE, related_name="shares")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gateway_shares")
    offered_on = models.DateTimeField()
    accepted_on = models.DateTimeField(null=True)
    accepted_by = models.CharField(max_length=150, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "project"], name="gateway_share_once")
        ]


class GlobalRoutes(models.Model):
    """The single row of global routing: prefix routes and the global default gateway."""

    default_gateway = models.CharField(max_length=100, default="")
    prefixes = models.JSONField(default=dict)  # {"254": "KE-HTTP"}


class GatewayState(models.Model):
    """Shared by every dispatcher: a segment-weighted token bucket and a circuit breaker."""

    gateway = models.OneToOneField(
        GatewayConfig, primary_key=True, on_delete=models.CASCADE, related_name="state"
    )
    tokens = models.FloatField(default=0)
    refilled_on = models.DateTimeField(null=True)
    consecutive_failures = models.IntegerField(default=0)
    open_until = models.DateTimeField(null=True)
