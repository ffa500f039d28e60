"""The only writers of global gateways and the global routes: the system administrator's, through
the admin API, the admin pages and the CLI alike.

Routing order (SPEC 4.2, CommCare's): the contact's override, the project's prefix routes, the
project's default, the global prefix routes, the global default. The global routes may name
only global gateways; renaming one rewrites the routes that name it, and deleting one they
still name is refused.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from casereach.core.errors import BadRequest, Conflict, NotFound
from casereach.gateways.actions import (
    do_create_gateway,
    do_delete_gateway,
    do_set_global_routes,
    do_update_gateway,
    parse_routes,
)
from casereach.gateways.models import GatewayConfig, GlobalRoutes
from casereach.gateways.queries import global_route_uses, global_routes

MAX_PREFIX = 15


def _known_names() -> set[str]:
    return set(
        GatewayConfig.objects.filter(project__isnull=True).values_list("name_key", flat=True)
    )


def _save(default: str, prefixes: dict[str, str]) -> GlobalRoutes:
    """Store the global routes after checking that each names a global gateway."""
    known = _known_names()
    for name in [default, *prefixes.values()]:
        if name and name.lower() not in known:
            raise BadRequest(f"no global gateway named '{name}'")
    return do_set_global_routes(
        {
            "default_gateway": default or None,
            "prefixes": [{"prefix": p, "gateway": g} for p, g in sorted(prefixes.items())],
        }
    )


def do_create_global_gateway(data: Any) -> GatewayConfig:
    return do_create_gateway(None, data)


def do_update_global_gateway(gw: GatewayConfig, data: Any) -> GatewayConfig:
    """Change a global gateway (credentials not sent are kept); a new name carries over to
    the global routes that named the old one."""
    with transaction.atomic():
        routes = global_routes()
        old = gw.name
        do_update_gateway(gw, data)
        if gw.name != old and global_route_uses(old, routes):
            rename = {old.lower(): gw.name}
            default = routes.default_gateway
            _save(
                rename.get(default.lower(), default),
                {p: rename.get(g.lower(), g) for p, g in routes.prefixes.items()},
            )
    return gw


def do_delete_global_gateway(gw: GatewayConfig) -> None:
    """Delete a global gateway; refused (409) while the global routes name it."""
    uses = global_route_uses(gw.name)
    if uses:
        raise Conflict(
            f"the global routes name {gw.name} ({', '.join(uses)}); change them first",
            {"routes": uses},
        )
    do_delete_gateway(gw)


def do_replace_global_routes(data: Any) -> GlobalRoutes:
    """Replace the global default and every global prefix route (``{"default_gateway": …,
    "prefixes": [{"prefix": "254", "gateway": "NAME"}]}``)."""
    default, prefixes = parse_routes(data)
    return _save(default or "", prefixes)


def do_set_global_default(name: str | None) -> GlobalRoutes:
    """Set the global default gateway (None or empty clears it)."""
    if name is not None and not isinstance(name, str):
        raise BadRequest("gateway must be a gateway name or null")
    routes = global_routes()
    return _save((name or "").strip(), dict(routes.prefixes))


def check_prefix(prefix: str) -> str:
    if not prefix.isascii() or not prefix.isdigit() or len(prefix) > MAX_PREFIX:
        raise BadRequest(f"prefix {prefix[:20]!r} must be 1-{MAX_PREFIX} digits")
    return prefix


def do_set_global_prefix(prefix: str, name: Any) -> GlobalRoutes:
    """Add or replace the global route of one prefix."""
    check_prefix(prefix)
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("gateway must be a global gateway's name")
    routes = global_routes()
    return _save(routes.default_gateway, {**routes.prefixes, prefix: name.strip()})


def do_delete_global_prefix(prefix: str) -> GlobalRoutes:
    """Remove the global route of one prefix (NotFound when there is none)."""
    check_prefix(prefix)
    routes = global_routes()
    if prefix not in routes.prefixes:
        raise NotFound(f"no global route for prefix {prefix}")
    rest = {p: g for p, g in routes.prefixes.items() if p != prefix}
    return _save(routes.default_gateway, rest)
