"""The cost totals' response (``GET …/messaging/v1/costs``, docs/costs.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from casereach.core.openapi import OpenSchema


class CostTotals(OpenSchema):
    currency: str
    estimated: str
    actual: str
    cost: str = Field(description="actual where known, else estimated")
    messages_with_actual_cost: int


class CostsOut(OpenSchema):
    """What messages cost (docs/costs.md): decimal strings in the project's currency."""

    currency: str
    total: CostTotals
    per_day: list[dict[str, Any]]
    per_gateway: list[dict[str, Any]]
    budget: dict[str, Any] | None = Field(
        description="amount, currency, spent, percent, warning (80%), reached; null = none"
    )
