"""The fee table and the conversion rates (ADR 0013). Written only by ``billing.actions``.

Rows never change once used: a row is *used* from its ``valid_from`` date on (messages queued
that day may have been priced with it), so a new price is a new row with a later date; a row
whose date has not come may still be edited or retired.
"""

from __future__ import annotations

from typing import Final, Literal

from django.db import models
from django.db.models import Q

from casereach.gateways.models import GatewayConfig
from casereach.projects.models import Project

Direction = Literal["out", "in"]
DIRECTIONS: tuple[Direction, ...] = ("out", "in")

# What a fee is per: one SMS segment, or one WhatsApp message of a pricing category.
SMS_SEGMENT: Final = "sms_segment"
WHATSAPP_CATEGORIES = ("marketing", "utility", "authentication", "service", "referral_conversion")
UNITS: tuple[str, ...] = (SMS_SEGMENT, *WHATSAPP_CATEGORIES)

AMOUNT_DIGITS = 14
AMOUNT_PLACES = 6


class Fee(models.Model):
    """One price: a gateway (or, for the server's defaults, every gateway of a type) by
    direction by country prefix (digits, longest wins; "" = any) by unit, from a date."""

    gateway = models.ForeignKey(
        GatewayConfig, null=True, on_delete=models.CASCADE, related_name="+"
    )
    gateway_type = models.CharField(max_length=30, default="")  # when ``gateway`` is null
    direction = models.CharField(max_length=3, default="out")
    prefix = models.CharField(max_length=15, default="")
    unit = models.CharField(max_length=24, default=SMS_SEGMENT)
    amount = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    currency = models.CharField(max_length=3)
    valid_from = models.DateField()
    created_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(gateway__isnull=False, gateway_type="")
                | Q(gateway__isnull=True) & ~Q(gateway_type=""),
                name="fee_gateway_or_type",
            ),
            models.UniqueConstraint(
                fields=["gateway", "gateway_type", "direction", "prefix", "unit", "valid_from"],
                name="fee_once_per_day",
            ),
        ]


class ConversionRate(models.Model):
    """One unit of ``currency`` is ``rate`` units of the project's currency, from a date."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=18, decimal_places=8)
    valid_from = models.DateField()
    created_on = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "currency", "valid_from"], name="rate_once_per_day"
            )
        ]
