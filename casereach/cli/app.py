"""The ``casereach`` command line's Typer apps and what every command shares: Django set up on
demand, errors as one line on stderr with exit code 1."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="casereach: cases as messaging contacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
project_app = typer.Typer(help="Manage projects.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Manage web users.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(apikey_app, name="apikey")
app.add_typer(user_app, name="user")
gateway_app = typer.Typer(help="Manage gateways and routes.", no_args_is_help=True)
app.add_typer(gateway_app, name="gateway")

T = TypeVar("T")


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
    import django

    django.setup()


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn`` with Django set up; any known error becomes one line on stderr."""
    setup_django()
    from django.db import DatabaseError

    from casereach.core.errors import CasereachError

    try:
        return fn()
    except CasereachError as exc:
        fail(exc.message)
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"database error: {first} (did you run 'casereach init'?)")
    raise AssertionError("unreachable")


def project_by_name(name: str) -> Any:
    from casereach.projects.queries import get_project_by_name

    return get_project_by_name(name)
