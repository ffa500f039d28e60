"""Finding gateways and routing (SPEC 4.2)."""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from casereach.core.crypto import decrypt_json
from casereach.core.errors import NotFound
from casereach.gateways.base import Gateway
from casereach.gateways.models import GatewayConfig, GatewayShare, GlobalRoutes
from casereach.gateways.registry import gateway_class
from casereach.projects.cache import GenerationCache
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

# Per process, under the configuration generation (projects.cache): each project's active
# visible gateways, the global routes, and each project's validated settings (kept with the
# raw settings they were validated from, and used only for the same raw settings).
_VISIBLE: GenerationCache[int, list[GatewayConfig]] = GenerationCache()
_GLOBAL_ROUTES: GenerationCache[str, GlobalRoutes] = GenerationCache()
_SETTINGS: GenerationCache[int, tuple[dict[str, Any], ProjectSettings]] = GenerationCache()


def visible_gateways(project: Project) -> QuerySet[GatewayConfig]:
    """Gateways this project may use: its own, shared with it *and accepted*, and global ones.
    A share not yet accepted is invisible to the project (issue 15)."""
    accepted = GatewayShare.objects.filter(project=project, accepted_on__isnull=False)
    return GatewayConfig.objects.filter(
        Q(project=project) | Q(pk__in=accepted.values("gateway_id")) | Q(project__isnull=True)
    )


def serving_projects(gw: GatewayConfig) -> set[int] | None:
    """The projects a gateway serves: its owner and the projects that accepted it; None for a
    global gateway (every project that sends through it)."""
    if gw.project_id is None:
        return None
    accepted = GatewayShare.objects.filter(gateway_id=gw.pk, accepted_on__isnull=False)
    return {gw.project_id, *accepted.values_list("project_id", flat=True)}


def share_offers(project: Project) -> QuerySet[GatewayShare]:
    """Shares offered to ``project`` and not yet accepted, with their gateway and owner."""
    return (
        GatewayShare.objects.filter(project=project, accepted_on__isnull=True)
        .select_related("gateway", "gateway__project")
        .order_by("offered_on", "pk")
    )


def owned_gateways(project: Project) -> QuerySet[GatewayConfig]:
    return GatewayConfig.objects.filter(project=project)


def _rank(project: Project, g: GatewayConfig) -> tuple[int, int]:
    if g.project_id == project.pk:
        return (0, g.pk)
    if g.project_id is not None:
        return (1, g.pk)
    return (2, g.pk)


GatewayIndex = dict[str, GatewayConfig]


def _active_visible(project: Project) -> list[GatewayConfig]:
    """The project's active visible gateways, cached (callers copy what they hand out)."""
    return _VISIBLE.get(project.pk, lambda: list(visible_gateways(project).filter(is_active=True)))


def _index(project: Project) -> GatewayIndex:
    index: GatewayIndex = {}
    for g in _active_visible(project):
        best = index.get(g.name_key)
        if best is None or _rank(project, g) < _rank(project, best):
            index[g.name_key] = g
    return index


def gateway_index(project: Project) -> GatewayIndex:
    """Every active gateway the project may use, by lower-case name, the best-ranked one
    per name (owned, then shared, then global): at most one query for a whole batch of
    routing (none while the request cache holds them)."""
    return {name: copy.copy(g) for name, g in _index(project).items()}


def find_gateway(
    project: Project, name: str, index: GatewayIndex | None = None
) -> GatewayConfig | None:
    """By name, case-insensitively: owned by the project, then shared with it, then global."""
    key = name.strip().lower()
    if not key:
        return None
    if index is not None:
        return index.get(key)
    found = _index(project).get(key)
    return copy.copy(found) if found is not None else None


@dataclass(frozen=True)
class Route:
    gateway: GatewayConfig | None
    source: str  # contact|route|project_default|global_route|global_default|none
    error_code: str | None  # GATEWAY_NOT_FOUND | NO_SUITABLE_GATEWAY | None
    requested: str = ""


def _longest_prefix(prefixes: dict[str, str], number: str) -> str | None:
    best = None
    for prefix in prefixes:
        if number.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def global_gateways() -> QuerySet[GatewayConfig]:
    """The server's global gateways, in name order (the system administrator's list)."""
    return GatewayConfig.objects.filter(project__isnull=True).order_by("name_key", "pk")


def global_routes() -> GlobalRoutes:
    """The global routes (an empty row when none are set), a copy of the cached row."""
    row = _GLOBAL_ROUTES.get(
        "routes", lambda: GlobalRoutes.objects.order_by("pk").first() or GlobalRoutes()
    )
    mine = copy.copy(row)
    mine.prefixes = dict(row.prefixes)
    return mine


def project_settings(project: Project) -> ProjectSettings:
    """``effective_settings(project.settings)``, validated once per generation for the same
    stored settings. Read only: the instance is shared by every request."""
    raw = project.settings
    cached = _SETTINGS.get(project.pk, lambda: (copy.deepcopy(raw), effective_settings(raw)))
    if cached[0] == raw:
        return cached[1]
    return effective_settings(raw)


# Ids beyond a 64-bit key name no gateway (and would overflow the database's integer).
MAX_ID = 2**63 - 1


def global_gateway(gateway_id: int) -> GatewayConfig:
    """The global gateway with this id (NotFound for a project's, or none)."""
    gw = (
        GatewayConfig.objects.filter(project__isnull=True, pk=gateway_id).first()
        if 0 < gateway_id <= MAX_ID
        else None
    )
    if gw is None:
        raise NotFound(f"no global gateway {gateway_id}")
    return gw


def owned_gateway(project: Project, gateway_id: int) -> GatewayConfig:
    """The project's own gateway with this id (NotFound for a shared, global or another
    project's one, or none)."""
    gw = (
        GatewayConfig.objects.filter(project=project, pk=gateway_id).first()
        if 0 < gateway_id <= MAX_ID
        else None
    )
    if gw is None:
        raise NotFound(f"gateway {gateway_id} not found in this project")
    return gw


def global_gateway_named(name: str) -> GatewayConfig:
    gw = GatewayConfig.objects.filter(project__isnull=True, name_key=name.strip().lower()).first()
    if gw is None:
        raise NotFound(f"no gateway named '{name}' in the global gateways")
    return gw


def global_route_uses(name: str, routes: GlobalRoutes | None = None) -> list[str]:
    """Where the global routes name the gateway ``name`` (``default``, ``prefix 254``)."""
    routes = routes or global_routes()
    key = name.lower()
    uses = ["default"] if routes.default_gateway.lower() == key else []
    return uses + [f"prefix {p}" for p, g in sorted(routes.prefixes.items()) if g.lower() == key]


def route(
    project: Project,
    number: str,
    override: str = "",
    *,
    routes: GlobalRoutes | None = None,
    index: GatewayIndex | None = None,
    settings: ProjectSettings | None = None,
) -> Route:
    """The gateway for an SMS to ``number``: override → project prefix → project default →
    global prefix → global default. An override naming no usable gateway is an error, not a
    fallback (the contact asked for that gateway)."""
    if override.strip():
        found = find_gateway(project, override, index)
        if found is None:
            return Route(None, "contact", "GATEWAY_NOT_FOUND", override.strip())
        return Route(found, "contact", None, override.strip())
    if settings is None:  # a batch passes the project's settings, validated once
        settings = project_settings(project)
    prefix = _longest_prefix(settings.prefix_routes, number)
    if prefix is not None:
        found = find_gateway(project, settings.prefix_routes[prefix], index)
        if found is not None:
            return Route(found, "route", None)
    if settings.default_gateway:
        found = find_gateway(project, settings.default_gateway, index)
        if found is not None:
            return Route(found, "project_default", None)
    glob = routes or global_routes()
    prefix = _longest_prefix(glob.prefixes, number)
    if prefix is not None:
        found = find_gateway(project, glob.prefixes[prefix], index)
        if found is not None:
            return Route(found, "global_route", None)
    if glob.default_gateway:
        found = find_gateway(project, glob.default_gateway, index)
        if found is not None:
            return Route(found, "global_default", None)
    return Route(None, "none", "NO_SUITABLE_GATEWAY")


def email_gateway(project: Project) -> GatewayConfig | None:
    """The project's email gateway: its own first, then shared, then global."""
    candidates = sorted(
        (g for g in _active_visible(project) if g.type == "email"),
        key=lambda g: (0 if g.project_id == project.pk else 1 if g.project_id else 2, g.pk),
    )
    return copy.copy(candidates[0]) if candidates else None


def instantiate(gateway: GatewayConfig, **kwargs: Any) -> Gateway:
    """A ready Gateway object with its decrypted secrets merged into its config."""
    cls = gateway_class(gateway.type)
    config = cls.restore_secrets(gateway.config, decrypt_json(gateway.secrets))
    return cls(config, **kwargs)


def pick_sender(gateway: GatewayConfig, number: str) -> str:
    """A stable choice among load-balanced sender numbers: the same person always hears
    from the same number."""
    senders = [str(s) for s in gateway.sender_numbers]
    if not senders:
        return ""
    return senders[zlib.crc32(number.encode()) % len(senders)]
