"""The gateway form shared by the project's and the system administrator's pages: the fields
a gateway type's config model asks for, and the posted form back into an API body."""

from __future__ import annotations

import json
from typing import Any

from django.http import QueryDict

from casereach.core.errors import CasereachError
from casereach.gateways.registry import gateway_class


def field_kind(name: str, prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "select"
    kind = prop.get("type")
    if kind == "boolean":
        return "checkbox"
    if kind == "integer":
        return "number"
    if kind == "string":
        return "text"
    any_of = [p.get("type") for p in prop.get("anyOf", [])]
    if any_of and set(any_of) <= {"string", "null"}:
        return "text"
    return "json"


def shown(value: Any, kind: str) -> str:
    if kind == "json":
        if value is None:
            return ""  # no default (an http gateway's headers): blank, not "null"
        compact = json.dumps(value, ensure_ascii=False)
        if len(compact) <= 70:
            return compact
        return json.dumps(value, ensure_ascii=False, indent=1)
    if value is None:
        return ""
    return str(value)


def type_fields(slug: str, config: dict[str, Any], typed: QueryDict | None) -> list[dict[str, Any]]:
    cls = gateway_class(slug)
    schema = cls.config_model.model_json_schema()
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        secret = name in cls.secret_fields
        kind = "password" if secret else field_kind(name, prop)
        if typed is not None:
            value = "" if secret else typed.get(f"config-{name}", "")
        else:
            value = "" if secret else shown(config.get(name, prop.get("default")), kind)
        fields.append(
            {
                "name": name,
                "label": prop.get("title") or name.replace("_", " "),
                "kind": kind,
                "value": value,
                "choices": prop.get("enum", []),
                "help": prop.get("description", ""),
                "required": name in required,
                "secret": secret,
            }
        )
    return fields


def config_from_post(slug: str, post: QueryDict) -> dict[str, Any]:
    cls = gateway_class(slug)
    schema = cls.config_model.model_json_schema()
    config: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        raw = post.get(f"config-{name}", "")
        kind = field_kind(name, prop)
        if name in cls.secret_fields:
            if raw:
                config[name] = raw  # blank = keep the stored credential
            continue
        if kind == "checkbox":
            config[name] = bool(raw)
        elif raw == "":
            continue
        elif kind == "number":
            try:
                config[name] = int(raw)
            except ValueError:
                raise CasereachError(f"{name}: enter a whole number") from None
        elif kind == "json":
            try:
                value = json.loads(raw)
            except ValueError:
                raise CasereachError(f"{name}: not valid JSON") from None
            if value is not None:  # "null" = no value: the type's default applies
                config[name] = value
        else:
            config[name] = raw
    return config


def gateway_body(slug: str, post: QueryDict) -> dict[str, Any]:
    rate = post.get("rate_limit_per_s", "").strip()
    return {
        "name": post.get("name", "").strip(),
        "config": config_from_post(slug, post),
        "sender_numbers": [
            s.strip() for s in post.get("sender_numbers", "").split(",") if s.strip()
        ],
        "rate_limit_per_s": float(rate) if rate.replace(".", "", 1).isdigit() else None,
        "is_active": bool(post.get("is_active")),
    }
