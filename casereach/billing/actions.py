"""The only writer of the fee table and the conversion rates.

Rows are added, never rewritten once used (``queries.is_used``: from their date on). A row
whose date has not come may be changed or retired; a used one answers 409 (a new price is a
new row with a later date). Dates are UTC days and may not lie in the past: what a past day
cost is settled.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from casereach.billing.models import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    DIRECTIONS,
    UNITS,
    ConversionRate,
    Fee,
)
from casereach.billing.queries import is_used
from casereach.core.errors import BadRequest, Conflict
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.registry import GATEWAY_TYPES
from casereach.projects.actions import bump_generation
from casereach.projects.models import Project


def _today() -> dt.date:
    return now().date()


def _currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise ValueError("currency must be a three-letter ISO 4217 code, e.g. USD or KES")
    return code


def _not_past(value: dt.date) -> dt.date:
    if value < _today():
        raise ValueError("valid_from may not be in the past (UTC): a past day's price is settled")
    return value


class FeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: str = "out"
    prefix: str = Field(default="", max_length=15)
    unit: str = "sms_segment"
    amount: Decimal = Field(ge=0, max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    currency: str
    valid_from: dt.date

    @field_validator("direction")
    @classmethod
    def _direction(cls, value: str) -> str:
        if value not in DIRECTIONS:
            raise ValueError("direction must be 'out' or 'in'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip().lstrip("+")
        if value and not value.isdigit():
            raise ValueError("prefix must be digits (a country code, e.g. 254), or '' for any")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if value not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}")
        return value

    _c = field_validator("currency")(classmethod(lambda cls, v: _currency(v)))
    _d = field_validator("valid_from")(classmethod(lambda cls, v: _not_past(v)))


class RateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    currency: str
    rate: Decimal = Field(gt=0, max_digits=18, decimal_places=8)
    valid_from: dt.date

    _c = field_validator("currency")(classmethod(lambda cls, v: _currency(v)))
    _d = field_validator("valid_from")(classmethod(lambda cls, v: _not_past(v)))


def _validated(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        raise BadRequest("invalid " + model.__name__.removesuffix("In").lower(), problems) from None


def do_add_fee(body: Any, *, gateway: GatewayConfig | None = None, gateway_type: str = "") -> Fee:
    """Add a fee row for ``gateway`` (a project's or a global gateway) or, with
    ``gateway_type``, the server's default for every gateway of that type."""
    data: FeeIn = _validated(FeeIn, body)
    if gateway is None and gateway_type not in GATEWAY_TYPES:
        raise BadRequest(f"unknown gateway type {gateway_type!r}")
    fee = Fee(
        gateway=gateway,
        gateway_type="" if gateway is not None else gateway_type,
        created_on=now(),
        **data.model_dump(),
    )
    try:
        with transaction.atomic():
            fee.save(force_insert=True)
            bump_generation()
    except IntegrityError:
        raise Conflict(
            "a fee for this gateway, direction, prefix and unit already starts that day"
        ) from None
    return fee


def do_update_fee(fee: Fee, body: Any) -> Fee:
    """Change a fee row whose date has not come (409 once used)."""
    if is_used(fee.valid_from, _today()):
        raise Conflict(
            f"fee {fee.pk} is in use since {fee.valid_from}: add a new row with a later date",
            {"valid_from": fee.valid_from.isoformat()},
        )
    data: FeeIn = _validated(FeeIn, body)
    for name, value in data.model_dump().items():
        setattr(fee, name, value)
    try:
        with transaction.atomic():
            fee.save()
            bump_generation()
    except IntegrityError:
        raise Conflict(
            "a fee for this gateway, direction, prefix and unit already starts that day"
        ) from None
    return fee


def do_retire_fee(fee: Fee) -> None:
    """Remove a fee row that was never used (409 once used)."""
    _retire(fee, f"fee {fee.pk} is in use since {fee.valid_from}: it stays; add a new row instead")


def do_add_rate(project: Project, body: Any) -> ConversionRate:
    data: RateIn = _validated(RateIn, body)
    rate = ConversionRate(project=project, created_on=now(), **data.model_dump())
    try:
        with transaction.atomic():
            rate.save(force_insert=True)
            bump_generation()
    except IntegrityError:
        raise Conflict(f"a rate for {data.currency} already starts on {data.valid_from}") from None
    return rate


def do_retire_rate(rate: ConversionRate) -> None:
    """Remove a conversion rate that was never used (409 once used)."""
    _retire(rate, f"rate {rate.pk} is in use since {rate.valid_from}: add a new row instead")


def _retire(row: Fee | ConversionRate, in_use: str) -> None:
    """Delete a dated row whose day has not come (``in_use``: the 409's message once it has)."""
    if is_used(row.valid_from, _today()):
        raise Conflict(in_use, {"valid_from": row.valid_from.isoformat()})
    with transaction.atomic():
        row.delete()  # writes: billing.Fee, billing.ConversionRate
        bump_generation()
