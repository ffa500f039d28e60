"""The only writers of gateways and routes."""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from pydantic import ValidationError

from casereach.core.crypto import decrypt_json, encrypt_json
from casereach.core.errors import BadRequest, Conflict, NotFound
from casereach.core.timeutil import now
from casereach.gateways.hooks import run_before_delete
from casereach.gateways.models import GatewayConfig, GatewayShare, GlobalRoutes
from casereach.gateways.queries import MAX_ID
from casereach.gateways.registry import GATEWAY_TYPES, gateway_class
from casereach.projects.actions import bump_generation, do_update_settings, validation_message
from casereach.projects.models import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
FIELDS = frozenset(
    {
        "name",
        "type",
        "config",
        "shared_with",
        "rate_limit_per_s",
        "rate_limit_per_minute",
        "rate_limit_per_sender",
        "sender_numbers",
        "is_active",
    }
)


def _validate_config(
    gw_type: str, config: Any, existing_secrets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a full config (secrets kept from before when omitted); returns
    (public part, secret part)."""
    if not isinstance(config, dict):
        raise BadRequest("config must be an object")
    cls = gateway_class(gw_type)
    merged = cls.restore_secrets(config, existing_secrets)
    try:
        validated = cls.config_model.model_validate(merged)
    except ValidationError as exc:
        raise BadRequest(f"invalid {gw_type} gateway config: {validation_message(exc)}") from None
    return cls.split_secrets(validated.model_dump(mode="json", exclude_unset=False))


def _shared(names: Any, owner: Project | None) -> list[Project]:
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("shared_with must be a list of project names")
    projects = list(Project.objects.filter(name__in=names))
    missing = sorted(set(names) - {p.name for p in projects})
    if missing:
        raise BadRequest(f"unknown project(s) in shared_with: {', '.join(missing)}")
    return [p for p in projects if owner is None or p.pk != owner.pk]


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100_000:
        raise BadRequest("rate_limit_per_s must be a number between 0 and 100000")
    return float(value)


def _per_minute(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1_000_000:
        raise BadRequest("rate_limit_per_minute must be a whole number between 1 and 1000000")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return value


def _senders(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, str) and 0 < len(v) <= 32 for v in value
    ):
        raise BadRequest("sender_numbers must be a list of strings (numbers or sender ids)")
    return [v.lstrip("+") if v.lstrip("+").isdigit() else v for v in value]


def do_create_gateway(project: Project | None, data: Any) -> GatewayConfig:
    """Create a gateway owned by ``project`` (None: a global gateway, admin only)."""
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not a valid field.")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequest("name is required: letters, digits, '-', '_' or '.', at most 100")
    gw_type = data.get("type")
    if gw_type not in GATEWAY_TYPES:
        raise BadRequest(f"type must be one of: {', '.join(GATEWAY_TYPES)}")
    public, secret = _validate_config(gw_type, data.get("config", {}), {})
    shared = _shared(data.get("shared_with"), project)
    if shared and project is None:
        raise BadRequest("a global gateway serves every project: it has no shared_with")
    try:
        with transaction.atomic():
            gw = GatewayConfig.objects.create(
                name=name,
                name_key=name.lower(),
                type=gw_type,
                project=project,
                config=public,
                secrets=encrypt_json(secret),
                inbound_key=secrets.token_urlsafe(24),
                rate_limit_per_s=_rate(data.get("rate_limit_per_s")),
                rate_limit_per_minute=_per_minute(data.get("rate_limit_per_minute")),
                rate_limit_per_sender=_flag(
                    "rate_limit_per_sender", data.get("rate_limit_per_sender", False)
                ),
                sender_numbers=_senders(data.get("sender_numbers")),
                is_active=bool(data.get("is_active", True)),
            )
            _offer(gw, shared)
            bump_generation()
    except IntegrityError:
        raise Conflict(f"a gateway named '{name}' already exists") from None
    return gw


def do_update_gateway(gw: GatewayConfig, data: Any) -> GatewayConfig:
    """Change a gateway; credentials not sent are kept (they are write-only)."""
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not a valid field.")
    if "type" in data and data["type"] != gw.type:
        raise BadRequest("a gateway's type cannot change; create a new gateway")
    with transaction.atomic():
        if "name" in data:
            name = data["name"]
            if not isinstance(name, str) or not _NAME.match(name):
                raise BadRequest("name: letters, digits, '-', '_' or '.', at most 100")
            gw.name, gw.name_key = name, name.lower()
        if "config" in data:
            old_secrets = decrypt_json(gw.secrets)
            config = data["config"]
            if not isinstance(config, dict):
                raise BadRequest("config must be an object")
            public, secret = _validate_config(gw.type, {**gw.config, **config}, old_secrets)
            gw.config, gw.secrets = public, encrypt_json(secret)
        if "rate_limit_per_s" in data:
            gw.rate_limit_per_s = _rate(data["rate_limit_per_s"])
        if "rate_limit_per_minute" in data:
            gw.rate_limit_per_minute = _per_minute(data["rate_limit_per_minute"])
        if "rate_limit_per_sender" in data:
            gw.rate_limit_per_sender = _flag("rate_limit_per_sender", data["rate_limit_per_sender"])
        if "sender_numbers" in data:
            gw.sender_numbers = _senders(data["sender_numbers"])
        if "is_active" in data:
            if not isinstance(data["is_active"], bool):
                raise BadRequest("is_active must be a boolean")
            gw.is_active = data["is_active"]
        try:
            with transaction.atomic():
                gw.save()
        except IntegrityError:
            raise Conflict(f"a gateway named '{gw.name}' already exists") from None
        if "shared_with" in data:
            if gw.project is None:
                raise BadRequest("a global gateway serves every project: it has no shared_with")
            _offer(gw, _shared(data["shared_with"], gw.project))
        bump_generation()
    return gw


def _offer(gw: GatewayConfig, projects: list[Project]) -> None:
    """Make ``projects`` the ones the gateway is offered to: new ones get an offer they must
    accept, ones left out are withdrawn (accepted or not), the rest keep their state."""
    keep = {p.pk for p in projects}
    GatewayShare.objects.filter(gateway=gw).exclude(project_id__in=keep).delete()
    have = set(GatewayShare.objects.filter(gateway=gw).values_list("project_id", flat=True))
    stamp = now()
    GatewayShare.objects.bulk_create(
        [GatewayShare(gateway=gw, project_id=pk, offered_on=stamp) for pk in sorted(keep - have)]
    )


def do_accept_share(gw_id: int, project: Project, *, by: str) -> GatewayConfig:
    """``project`` accepts the gateway offered to it (its admin, or a system administrator
    through the CLI). Accepting again changes nothing. NotFound when no offer exists, so a
    project learns nothing about gateways not offered to it."""
    if not 0 < gw_id <= MAX_ID:
        raise NotFound(f"no gateway {gw_id} is offered to this project")
    with transaction.atomic():
        share = (
            GatewayShare.objects.select_for_update()
            .select_related("gateway")
            .filter(gateway_id=gw_id, project=project)
            .first()
        )
        if share is None:
            raise NotFound(f"no gateway {gw_id} is offered to this project")
        if share.accepted_on is None:
            share.accepted_on, share.accepted_by = now(), by[:150]
            share.save(update_fields=["accepted_on", "accepted_by"])
            bump_generation()
    return share.gateway


def do_decline_share(gw_id: int, project: Project) -> None:
    """``project`` declines an offer, or stops using a gateway it accepted: the share is
    removed (the owner may offer it again)."""
    if not 0 < gw_id <= MAX_ID:
        raise NotFound(f"no gateway {gw_id} is offered to this project")
    with transaction.atomic():
        deleted, _ = GatewayShare.objects.filter(gateway_id=gw_id, project=project).delete()
        bump_generation()
    if not deleted:
        raise NotFound(f"no gateway {gw_id} is offered to this project")


def do_delete_gateway(gw: GatewayConfig) -> None:
    """Delete a gateway; what higher layers keep about it is settled first, in the same
    transaction (a global gateway's opt-outs become its projects' own: ``gateways.hooks``)."""
    with transaction.atomic():
        run_before_delete(gw)
        gw.delete()
        bump_generation()


def parse_routes(data: Any) -> tuple[str | None, dict[str, str]]:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - {"default_gateway", "prefixes"})
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not a valid field.")
    default = data.get("default_gateway")
    if default is not None and not isinstance(default, str):
        raise BadRequest("default_gateway must be a gateway name or null")
    prefixes: dict[str, str] = {}
    raw = data.get("prefixes", [])
    if not isinstance(raw, list):
        raise BadRequest("prefixes must be a list of {prefix, gateway}")
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"prefix", "gateway"}:
            raise BadRequest('each prefix route is {"prefix": "254", "gateway": "NAME"}')
        prefix, gateway = item["prefix"], item["gateway"]
        if not isinstance(prefix, str) or not prefix.isdigit() or len(prefix) > 15:
            raise BadRequest(f"prefix {prefix!r} must be 1-15 digits")
        if not isinstance(gateway, str) or not gateway.strip():
            raise BadRequest("gateway must be a gateway name")
        if prefix in prefixes:
            raise BadRequest(f"prefix {prefix} is listed twice")
        prefixes[prefix] = gateway.strip()
    return (default or None), prefixes


def do_set_routes(project: Project, data: Any, known: set[str]) -> None:
    """Replace the project's prefix routes and default gateway. ``known`` are the lower-case
    names of gateways the project may use; naming another one is refused."""
    default, prefixes = parse_routes(data)
    for name in [default, *prefixes.values()]:
        if name is not None and name.lower() not in known:
            raise BadRequest(f"no gateway named '{name}' is available to this project")
    do_update_settings(project, {"default_gateway": default, "prefix_routes": prefixes})


def do_set_global_routes(data: Any) -> GlobalRoutes:
    default, prefixes = parse_routes(data)
    with transaction.atomic():
        row = GlobalRoutes.objects.order_by("pk").first() or GlobalRoutes()
        row.default_gateway = default or ""
        row.prefixes = prefixes
        row.save()
        bump_generation()
    return row


SERVER_EMAIL_GATEWAY = "SERVER-EMAIL"


def do_sync_server_email_gateway() -> GatewayConfig | None:
    """Keep the global SERVER-EMAIL gateway in line with the server's SMTP settings
    (CASEREACH_SMTP_URL): created or updated when set, deactivated when not. Projects without
    an email gateway of their own send through it."""
    from django.conf import settings

    from casereach.gateways.types.email.gateway import config_from_settings

    existing = GatewayConfig.objects.filter(
        project__isnull=True, name_key=SERVER_EMAIL_GATEWAY.lower()
    ).first()
    if not getattr(settings, "EMAIL_HOST", ""):
        if existing is not None and existing.is_active:
            existing.is_active = False
            with transaction.atomic():
                existing.save(update_fields=["is_active", "updated_on"])
                bump_generation()
        return None
    public, secret = _validate_config("email", config_from_settings(settings), {})
    if existing is None:
        return do_create_gateway(
            None,
            {"name": SERVER_EMAIL_GATEWAY, "type": "email", "config": {**public, **secret}},
        )
    existing.config, existing.secrets, existing.is_active = public, encrypt_json(secret), True
    with transaction.atomic():
        existing.save(update_fields=["config", "secrets", "is_active", "updated_on"])
        bump_generation()
    return existing
