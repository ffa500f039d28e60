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


# For ``openapi_extra["responses"]``, where a view returns a dict that a response schema would
# filter, or answers in CommCare's own shape. Keys are ints, like the 200 ninja writes, so each
# merges into one entry.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
HQ_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}


def json_ok(schema: dict[str, Any]) -> dict[str, Any]:
    """A documented JSON success answer."""
    return {"content": {"application/json": {"schema": schema}}}


def json_error(description: str, schema: dict[str, Any] = ERROR_SCHEMA) -> dict[str, Any]:
    """A documented JSON error answer."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


AUTH_RESPONSES: dict[int, Any] = {
    401: json_error("Missing or invalid credentials."),
    403: json_error("The key is not valid for this project."),
    429: json_error("Too many requests; see Retry-After."),
}
