"""HTTP API of the projects app: the project settings (messaging API v1,
``GET``/``PUT``/``PATCH /a/{project}/api/messaging/v1/settings``).

A change goes through ``casereach.projects.settings_change.do_change_settings``, which re-derives
the contacts of the apps that registered a resync (cases and workers, from their
``AppConfig.ready``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from casereach.core.errors import BadRequest
from casereach.core.openapi import AUTH_RESPONSES, json_error, json_ok
from casereach.core.requests import parse_json
from casereach.projects.auth import project_for, requires
from casereach.projects.models import Role
from casereach.projects.settings_change import do_change_settings
from casereach.projects.settings_schema import ProjectSettings, effective_settings

router = Router(tags=["settings (messaging v1)"])
V1 = "/a/{project}/api/messaging/v1"


def _json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        body = parse_json(request.body)
    except BadRequest as exc:
        raise BadRequest(
            "Payload must be valid JSON", exc.detail or "send a JSON object of settings to change"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("Payload must be a JSON object of settings", type(body).__name__)
    return body


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Inline pydantic's ``#/$defs/…`` references (they do not resolve inside OpenAPI)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _settings_schema() -> dict[str, Any]:
    schema = ProjectSettings.model_json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline_refs(schema, defs)
    inlined["description"] = "Any subset of the settings; omitted ones are unchanged."
    return inlined


SETTINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _settings_schema()}},
    }
}


# Response documents. The views return a dict that ninja serialises as it is (no response
# schema, which would filter fields), so the answers are documented here. Keys are ints, like
# the 200 ninja writes, so each merges into one entry.
def _settings_out_schema() -> dict[str, Any]:
    schema = ProjectSettings.model_json_schema(mode="serialization")
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline_refs(schema, defs)
    inlined.pop("additionalProperties", None)
    inlined.pop("required", None)
    inlined["description"] = "Every setting, with defaults filled in."
    return inlined


_SETTINGS_OK = json_ok(_settings_out_schema())
GET_DOC: dict[str, Any] = {"responses": {200: _SETTINGS_OK, **AUTH_RESPONSES}}
CHANGE_DOC: dict[str, Any] = {
    **SETTINGS_BODY,
    "responses": {
        200: _SETTINGS_OK,
        400: json_error("Not a JSON object, an unknown setting or an invalid value."),
        **AUTH_RESPONSES,
    },
}


@router.get(
    V1 + "/settings",
    operation_id="messaging_settings_get",
    summary="Every project setting, with defaults filled in",
    openapi_extra=GET_DOC,
)
@requires(Role.VIEWER)
def get_settings(request: HttpRequest, project: str) -> dict[str, Any]:
    proj = project_for(request, project)
    return effective_settings(proj.settings).model_dump(mode="json")


@router.api_operation(
    ["PUT"],
    V1 + "/settings",
    operation_id="messaging_settings_put",
    summary="Change some or all project settings",
    openapi_extra=CHANGE_DOC,
)
@requires(Role.ADMIN)
def put_settings(request: HttpRequest, project: str) -> dict[str, Any]:
    proj = project_for(request, project)
    settings, _ = do_change_settings(proj, _json_object(request))
    return settings.model_dump(mode="json")


@router.api_operation(
    ["PATCH"],
    V1 + "/settings",
    operation_id="messaging_settings_patch",
    summary="Change some project settings (the same as PUT: both are partial)",
    openapi_extra=CHANGE_DOC,
)
@requires(Role.ADMIN)
def patch_settings(request: HttpRequest, project: str) -> dict[str, Any]:
    return put_settings(request, project)
