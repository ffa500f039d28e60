"""Gateways a project owns or is offered: casereach gateway add, accept, decline and list (the
system administrator's commands are in gateways_admin)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from casereach.cli.app import (
    fail,
    gateway_app,
    guarded,
    project_by_name,
)

if TYPE_CHECKING:
    pass


def _config_options(config_json: str | None, config: list[str] | None) -> dict[str, Any]:

    out: dict[str, Any] = {}
    if config_json:
        try:
            loaded = json.loads(config_json)
        except ValueError:
            fail("--config-json is not valid JSON")
        if not isinstance(loaded, dict):
            fail("--config-json must be a JSON object")
        out.update(loaded)
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--config takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@gateway_app.command("add")
def gateway_add(
    name: str,
    gw_type: Annotated[
        str, typer.Option("--type", help="test, http, twilio, africastalking, smpp, email")
    ],
    project: Annotated[str | None, typer.Option("--project", help="Owning project")] = None,
    is_global: Annotated[bool, typer.Option("--global", help="A global gateway (admin)")] = False,
    config_json: Annotated[str | None, typer.Option("--config-json", help="Config as JSON")] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="key=value (repeatable; JSON values allowed)"),
    ] = None,
    shared_with: Annotated[
        str | None,
        typer.Option(
            "--shared-with",
            help="Comma-separated projects it is offered to (each accepts: gateway accept)",
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Segments per second")
    ] = None,
    per_minute: Annotated[
        int | None,
        typer.Option("--rate-limit-per-minute", help="Segments per minute, sent at once"),
    ] = None,
    per_sender: Annotated[
        bool,
        typer.Option("--per-sender", help="Apply the per-minute limit to each sender number"),
    ] = False,
    default: Annotated[bool, typer.Option("--default", help="Make it the default route")] = False,
) -> None:
    """Add a gateway; prints its id and the callback URLs to give the provider."""
    if is_global == (project is not None):
        fail("give exactly one of --project NAME or --global")
    data: dict[str, Any] = {
        "name": name,
        "type": gw_type,
        "config": _config_options(config_json, config),
    }
    if shared_with:
        data["shared_with"] = [p.strip() for p in shared_with.split(",") if p.strip()]
    if rate_limit is not None:
        data["rate_limit_per_s"] = rate_limit
    if per_minute is not None:
        data["rate_limit_per_minute"] = per_minute
    if per_sender:
        data["rate_limit_per_sender"] = True

    def run() -> None:
        from casereach.core.requests import public_base_url
        from casereach.gateways.actions import (
            do_create_gateway,
            do_set_global_routes,
            do_set_routes,
        )
        from casereach.gateways.queries import global_routes, visible_gateways
        from casereach.projects.settings_schema import effective_settings

        owner = project_by_name(project) if project else None
        gw = do_create_gateway(owner, data)
        if default and owner is not None:
            s = effective_settings(owner.settings)
            known = set(visible_gateways(owner).values_list("name_key", flat=True))
            prefixes = [{"prefix": p, "gateway": g} for p, g in s.prefix_routes.items()]
            do_set_routes(owner, {"default_gateway": gw.name, "prefixes": prefixes}, known)
        elif default:
            routes = global_routes()
            prefixes = [{"prefix": p, "gateway": g} for p, g in routes.prefixes.items()]
            do_set_global_routes({"default_gateway": gw.name, "prefixes": prefixes})
        base = public_base_url()
        typer.echo(f"gateway {gw.name} ({gw.type}) created with id {gw.pk}")
        typer.echo(f"  inbound URL: {base}/gateways/{gw.type}/{gw.inbound_key}/inbound")
        typer.echo(f"  status URL:  {base}/gateways/{gw.type}/{gw.inbound_key}/status")
        for name in data.get("shared_with", []):
            typer.echo(f"  offered to {name}: casereach gateway accept {gw.pk} --project {name}")

    guarded(run)


SYSTEM_ADMIN = "system administrator (CLI)"


def _offered(gateway: str, project: Any) -> int:
    """The id of the gateway named (by id or name) among those offered to ``project``."""
    from casereach.gateways.models import GatewayShare

    shares = GatewayShare.objects.filter(project=project)
    found = (
        shares.filter(gateway_id=int(gateway))
        if gateway.isdigit() and len(gateway) < 19
        else shares.filter(gateway__name_key=gateway.lower())
    )
    ids = list(found.values_list("gateway_id", flat=True))
    if len(ids) != 1:
        fail(
            f"no gateway {gateway!r} is offered to project {project.name}"
            if not ids
            else f"several gateways named {gateway!r} are offered: give the id"
        )
    return int(ids[0])


@gateway_app.command("accept")
def gateway_accept(
    gateway: Annotated[str, typer.Argument(help="Gateway id or name")],
    project: Annotated[str, typer.Option("--project", help="The project it is offered to")],
) -> None:
    """Accept, for a project, a gateway another project offers it (system administrator)."""

    def run() -> None:
        from casereach.gateways.actions import do_accept_share

        proj = project_by_name(project)
        gw = do_accept_share(_offered(gateway, proj), proj, by=SYSTEM_ADMIN)
        typer.echo(f"project {proj.name} accepted gateway {gw.name} (id {gw.pk})")

    guarded(run)


@gateway_app.command("decline")
def gateway_decline(
    gateway: Annotated[str, typer.Argument(help="Gateway id or name")],
    project: Annotated[str, typer.Option("--project", help="The project it is offered to")],
) -> None:
    """Decline a gateway offered to a project, or stop the project using it."""

    def run() -> None:
        from casereach.gateways.actions import do_decline_share

        proj = project_by_name(project)
        gw_id = _offered(gateway, proj)
        do_decline_share(gw_id, proj)
        typer.echo(f"project {proj.name} declined gateway {gw_id}")

    guarded(run)


@gateway_app.command("list")
def gateway_list(
    project: Annotated[str | None, typer.Option("--project", help="Project name")] = None,
    is_global: Annotated[bool, typer.Option("--global", help="Only global gateways")] = False,
) -> None:
    """List gateways (a project's visible ones, the global ones, or all): id, name, type,
    owner, active or inactive."""

    def run() -> None:
        from casereach.gateways.models import GatewayConfig
        from casereach.gateways.queries import visible_gateways

        if is_global and project:
            fail("give at most one of --project NAME or --global")
        qs = visible_gateways(project_by_name(project)) if project else GatewayConfig.objects.all()
        if is_global:
            qs = qs.filter(project__isnull=True)
        for gw in qs.select_related("project").order_by("name_key"):
            owner = gw.project.name if gw.project else "(global)"
            state = "active" if gw.is_active else "inactive"
            typer.echo(f"{gw.pk}\t{gw.name}\t{gw.type}\t{owner}\t{state}")

    guarded(run)


@gateway_app.command("templates-sync")
def gateway_templates_sync(
    gateway: Annotated[str, typer.Argument(help="WhatsApp gateway name (or id)")],
    project: Annotated[
        str | None, typer.Option("--project", help="A project that may use it (else: global)")
    ] = None,
) -> None:
    """Sync a WhatsApp gateway's message templates from its provider now (added, updated,
    removed)."""

    def run() -> None:
        from casereach.gateways.base import GatewayError
        from casereach.gateways.models import GatewayConfig
        from casereach.gateways.queries import visible_gateways
        from casereach.messaging.whatsapp_templates import NotWhatsApp, do_sync_templates

        qs = (
            visible_gateways(project_by_name(project))
            if project
            else GatewayConfig.objects.filter(project__isnull=True)
        )
        found = (
            qs.filter(pk=int(gateway))
            if gateway.isdigit() and len(gateway) < 19
            else qs.filter(name_key=gateway.strip().lower())
        )
        gws = list(found[:2])
        if len(gws) != 1:
            where = f"project {project}" if project else "the global gateways (give --project)"
            fail(
                f"no gateway {gateway!r} in {where}"
                if not gws
                else f"several gateways named {gateway!r}: give the id"
            )
        try:
            result = do_sync_templates(gws[0])
        except NotWhatsApp as exc:
            fail(str(exc))
        except GatewayError as exc:
            fail(f"the provider could not list templates: {exc}")
        typer.echo(
            f"gateway {result.gateway}: {result.listed} listed, {result.added} added, "
            f"{result.updated} updated, {result.removed} removed"
        )

    guarded(run)
