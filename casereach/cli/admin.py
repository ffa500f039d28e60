"""Projects, API keys and web users: casereach project, apikey and user."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from casereach.cli.app import (
    apikey_app,
    fail,
    guarded,
    project_app,
    project_by_name,
    user_app,
)

if TYPE_CHECKING:
    pass


@project_app.command("create")
def project_create(
    name: str,
    time_zone: Annotated[str | None, typer.Option("--time-zone", help="IANA zone")] = None,
    languages: Annotated[
        str | None, typer.Option("--languages", help="Comma-separated, first is default")
    ] = None,
) -> None:
    """Create a project."""

    def run() -> None:
        from casereach.core.errors import BadRequest
        from casereach.projects.actions import do_create_project

        langs = [x.strip() for x in languages.split(",")] if languages is not None else None
        if langs is not None and (not langs or "" in langs):
            raise BadRequest(f"--languages {languages!r} has an empty language code")
        project = do_create_project(name, time_zone=time_zone, languages=langs)
        typer.echo(f"project {project.name} created")

    guarded(run)


_ROLE_HELP = "admin, member or viewer"


@apikey_app.command("create")
def apikey_create(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    username: Annotated[str, typer.Option("--username", help="Who the key is for")],
    role: Annotated[
        str | None,
        typer.Option("--role", help=f"{_ROLE_HELP}: for an owner not yet a member (default admin)"),
    ] = None,
) -> None:
    """Create an API key; the key alone is the last line of stdout (shown once). The key acts
    with its owner's role in the project."""

    def run() -> None:
        from casereach.projects.actions import do_create_api_key, parse_role

        key = do_create_api_key(
            project_by_name(project), username, role=parse_role(role) if role is not None else None
        )
        typer.echo(
            f"API key for {username} on {project} (use 'Authorization: ApiKey {username}:<key>'):"
        )
        typer.echo(key)

    guarded(run)


@apikey_app.command("list")
def apikey_list(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    username: Annotated[str | None, typer.Option("--username", help="Only this owner's")] = None,
) -> None:
    """List a project's API keys: prefix, owner, owner's role, state, created (never the key)."""

    def run() -> None:
        from casereach.projects.queries import list_api_keys

        rows = list_api_keys(project_by_name(project), username=username)
        typer.echo("prefix    username  role  state  created")
        for row in rows:
            typer.echo(
                f"{row.prefix}  {row.username}  {row.role or '-'}  {row.state}  "
                f"{row.created_on.isoformat(timespec='seconds')}"
            )

    guarded(run)


@apikey_app.command("revoke")
def apikey_revoke(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="The key's first 8 characters")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="Revoke every key of this owner")
    ] = None,
) -> None:
    """Revoke one key (by --prefix) or all of an owner's keys (--username); they get 401."""

    def run() -> None:
        from casereach.projects.actions import do_revoke_api_keys

        revoked = do_revoke_api_keys(project_by_name(project), prefix=prefix, username=username)
        for key in revoked:
            typer.echo(f"revoked API key {key.prefix} of {key.username} on {project}")

    guarded(run)


@user_app.command("create")
def user_create(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    username: Annotated[str, typer.Option("--username")],
    password: Annotated[
        str | None, typer.Option("--password", help="Or CASEREACH_PASSWORD, or a prompt")
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", help=f"{_ROLE_HELP} (a new member: member)")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Same as --role admin")] = False,
) -> None:
    """Create a web user (for the UI) with a role in a project."""
    if admin and role is not None and role.strip().lower() != "admin":
        fail(f"--admin contradicts --role {role}")
    secret = password or os.environ.get("CASEREACH_PASSWORD")
    if not secret:
        if not sys.stdin.isatty():
            fail("no password: pass --password, set CASEREACH_PASSWORD, or run in a terminal")
        secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    def run() -> None:
        from casereach.projects.actions import do_create_web_user, parse_role

        assert secret is not None
        wanted = parse_role("admin") if admin else parse_role(role) if role is not None else None
        membership = do_create_web_user(project_by_name(project), username, secret, role=wanted)
        typer.echo(f"web user {username} can use project {project} ({membership.role})")

    guarded(run)


@user_app.command("role")
def user_role(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    username: Annotated[str, typer.Option("--username")],
    role: Annotated[str, typer.Option("--role", help=_ROLE_HELP)],
) -> None:
    """Change a member's role in a project (their API keys act with it at once)."""

    def run() -> None:
        from casereach.projects.actions import do_set_role, parse_role

        do_set_role(project_by_name(project), username, parse_role(role))
        typer.echo(f"{username} is now {parse_role(role).value} in {project}")

    guarded(run)
