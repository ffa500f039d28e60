"""``casereach gateway rename|deactivate|activate|delete|routes``: managing gateways, global
ones (the system administrator's) included, and the global routes.

Routing order (SPEC 4.2, CommCare's): the contact's override, the project's prefix routes, the
project's default, the global prefix routes, the global default.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from casereach.cli.main import fail, gateway_app, guarded


def _owner(project: str | None, is_global: bool) -> Any:
    if is_global == (project is not None):
        fail("give exactly one of --project NAME or --global")
    if project is None:
        return None
    from casereach.projects.queries import get_project_by_name

    return get_project_by_name(project)


def _gateway(name: str, owner: Any) -> Any:
    from casereach.core.errors import NotFound
    from casereach.gateways.models import GatewayConfig

    gw = GatewayConfig.objects.filter(project=owner, name_key=name.strip().lower()).first()
    if gw is None:
        where = f"project {owner.name}" if owner is not None else "the global gateways"
        raise NotFound(f"no gateway named '{name}' in {where}")
    return gw


Project = Annotated[str | None, typer.Option("--project", help="Owning project")]
Global = Annotated[bool, typer.Option("--global", help="A global gateway (admin)")]


@gateway_app.command("rename")
def gateway_rename(
    name: str, new_name: str, project: Project = None, is_global: Global = False
) -> None:
    """Rename a gateway; the global routes that name it follow."""

    def run() -> None:
        from casereach.gateways.actions import do_update_gateway
        from casereach.gateways.actions_global import do_update_global_gateway

        owner = _owner(project, is_global)
        gw = _gateway(name, owner)
        old = gw.name
        if owner is None:
            do_update_global_gateway(gw, {"name": new_name})
        else:
            do_update_gateway(gw, {"name": new_name})
        typer.echo(f"gateway {old} renamed to {new_name}")

    guarded(run)


def _set_active(name: str, project: str | None, is_global: bool, active: bool) -> None:
    def run() -> None:
        from casereach.gateways.actions import do_update_gateway

        gw = _gateway(name, _owner(project, is_global))
        do_update_gateway(gw, {"is_active": active})
        state = "active" if active else "inactive: routing skips it"
        typer.echo(f"gateway {gw.name} is {state}")

    guarded(run)


@gateway_app.command("deactivate")
def gateway_deactivate(name: str, project: Project = None, is_global: Global = False) -> None:
    """Deactivate a gateway: routing skips it (the next route applies) and an override
    naming it fails GATEWAY_NOT_FOUND; nothing is deleted."""
    _set_active(name, project, is_global, False)


@gateway_app.command("activate")
def gateway_activate(name: str, project: Project = None, is_global: Global = False) -> None:
    """Activate a deactivated gateway."""
    _set_active(name, project, is_global, True)


@gateway_app.command("delete")
def gateway_delete(name: str, project: Project = None, is_global: Global = False) -> None:
    """Delete a gateway; a global one the global routes still name is refused."""

    def run() -> None:
        from casereach.gateways.actions import do_delete_gateway
        from casereach.gateways.actions_global import do_delete_global_gateway

        owner = _owner(project, is_global)
        gw = _gateway(name, owner)
        if owner is None:
            do_delete_global_gateway(gw)
        else:
            do_delete_gateway(gw)
        typer.echo(f"gateway {gw.name} deleted")

    guarded(run)


@gateway_app.command("routes")
def gateway_routes(
    default: Annotated[
        str | None, typer.Option("--default", help="The global default gateway ('' for none)")
    ] = None,
    prefix: Annotated[
        list[str] | None,
        typer.Option("--prefix", help="PREFIX=GATEWAY, e.g. 254=AT-KE (repeatable)"),
    ] = None,
    clear_prefixes: Annotated[
        bool, typer.Option("--clear-prefixes", help="Remove every global prefix route")
    ] = False,
) -> None:
    """Show the global routes, or change them: --prefix adds or replaces one prefix route
    (GATEWAY '' removes it), --default sets the global default. Only global gateways may be
    named. They apply after the project's own routes and default."""

    def run() -> None:
        from casereach.core.errors import BadRequest
        from casereach.gateways.actions_global import do_replace_global_routes
        from casereach.gateways.queries import global_routes

        routes = global_routes()
        if default is not None or prefix or clear_prefixes:
            new_default = routes.default_gateway if default is None else default.strip()
            prefixes = {} if clear_prefixes else dict(routes.prefixes)
            for item in prefix or []:
                p, sep, g = item.partition("=")
                if not sep:
                    raise BadRequest(f"--prefix {item!r}: use PREFIX=GATEWAY, e.g. 254=AT-KE")
                if g.strip():
                    prefixes[p.strip()] = g.strip()
                else:
                    prefixes.pop(p.strip(), None)
            routes = do_replace_global_routes(
                {
                    "default_gateway": new_default or None,
                    "prefixes": [{"prefix": p, "gateway": g} for p, g in sorted(prefixes.items())],
                }
            )
        typer.echo(f"default\t{routes.default_gateway or '(none)'}")
        for p, g in sorted(routes.prefixes.items()):
            typer.echo(f"{p}\t{g}")

    guarded(run)
