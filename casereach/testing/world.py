"""A small API client wrapper and factories for tests (keyword-only, with defaults)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.test import Client

from casereach.projects.actions import do_create_api_key, do_create_project
from casereach.projects.models import Project, Role


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes


class Api:
    """Calls the HTTP API as one project's key holder: a new key (its owner a project admin
    unless ``role`` says otherwise), or ``key`` when given."""

    def __init__(
        self,
        project: Project,
        username: str = "admin@example.org",
        *,
        role: Role | None = None,
        key: str | None = None,
    ) -> None:
        self.project = project
        self.username = username
        self.key = key or do_create_api_key(project, username, role=role)
        self.client = Client()

    @property
    def auth(self) -> str:
        return f"ApiKey {self.username}:{self.key}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | bytes | None = None,
        auth: str | None = "default",
        content_type: str = "application/json",
        **query: Any,
    ) -> Response:
        headers = {}
        if auth == "default":
            headers["HTTP_AUTHORIZATION"] = self.auth
        elif auth is not None:
            headers["HTTP_AUTHORIZATION"] = auth
        path = path.replace("{project}", self.project.name)
        data: Any = raw if raw is not None else (json.dumps(body) if body is not None else None)
        fn = getattr(self.client, method.lower())
        if method.upper() == "GET":
            resp = fn(path, query or None, **headers)
        elif data is None:
            resp = fn(path, **headers)
        else:
            resp = fn(path, data, content_type=content_type, **headers)
        content = resp.content
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = None
        return Response(resp.status_code, parsed, dict(resp.headers), content)

    def get(self, path: str, **kw: Any) -> Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.call("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.call("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.call("DELETE", path, **kw)


def make_project(
    *, name: str = "demo", time_zone: str = "UTC", languages: list[str] | None = None
) -> Project:
    return do_create_project(name, time_zone=time_zone, languages=languages or ["en"])


def case_body(
    *,
    name: str = "Amina",
    case_type: str = "patient",
    owner_id: str = "owner-1",
    phone: str | None = None,
    verified: str | None = None,
    external_id: str | None = None,
    **props: str,
) -> dict[str, Any]:
    properties = dict(props)
    if phone is not None:
        properties["contact_phone_number"] = phone
    if verified is not None:
        properties["contact_phone_number_is_verified"] = verified
    body: dict[str, Any] = {
        "case_type": case_type,
        "case_name": name,
        "owner_id": owner_id,
        "properties": properties,
    }
    if external_id is not None:
        body["external_id"] = external_id
    return body


def conditional_alert_body(**over: Any) -> dict[str, Any]:
    """An active conditional alert for ``mother`` cases with an ``edd``: daily at 09:00 for
    30 days from the match, to the case itself, in English and Swahili; ``over`` replaces
    top-level fields."""
    body: dict[str, Any] = {
        "name": "ANC reminders",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"match": "all", "rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}, due {case.edd}", "sw": "Habari {case.name}"}},
        "schedule": {
            "type": "timed",
            "events": [{"day": 0, "time": "09:00"}],
            "repeat": {"unit": "days", "iterations": 30},
            "start": {"from": "match"},
        },
        "recipients": [{"type": "self"}],
    }
    body.update(over)
    return body
