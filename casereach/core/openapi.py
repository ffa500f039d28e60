"""What every API module's OpenAPI documentation shares.

Views answer ``JsonResponse`` (or CSV), which django-ninja passes through untouched, so these
schemas only document: they never filter a field out, and every one allows more fields.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import ConfigDict


class OpenSchema(Schema):
    """A documented response shape that allows fields beyond those named."""

    model_config = ConfigDict(extra="allow")


class ApiError(OpenSchema):
    """Every error: a message and, for some, details."""

    error: str
    detail: Any = None


DATE_TIME: dict[str, Any] = {"format": "date-time"}


def query_param(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An optional query parameter a view reads by hand, for ``openapi_extra`` (a string
    unless ``schema`` says otherwise)."""
    return {
        "in": "query",
        "name": name,
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }
