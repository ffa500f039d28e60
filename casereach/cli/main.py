"""The ``casereach`` command line (SPEC 7.1). Errors are one line on stderr, exit code 1.

The commands live by group in ``server`` (init, serve, demo, worker, beat, doctor), ``admin``
(projects, API keys, web users), ``gateway_commands`` and ``gateways_admin`` (gateways and
routes), ``data`` (import-cases, check) and ``benchmarks`` (bench); this module registers them
and runs the command line."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from casereach.cli.app import (
    app,
    fail,
    gateway_app,
    guarded,
    setup_django,
)
from casereach.core.text import is_text

__all__ = ["app", "fail", "gateway_app", "guarded", "run", "setup_django"]


def _usage_errors() -> tuple[type[Exception], type[Exception] | None, type[Exception]]:
    """(usage error, "run bare, show help", abort) of the click that typer runs on: its own
    copy in recent typer, click itself before."""
    try:
        mod = importlib.import_module("typer._click.exceptions")
    except ImportError:  # older typer on click
        mod = importlib.import_module("click.exceptions")
    abort = getattr(mod, "Abort", typer.Abort)
    return mod.UsageError, getattr(mod, "NoArgsIsHelpError", None), abort


def run() -> None:
    """The ``casereach`` command. A usage error (a missing or unknown option, a bad value) is
    one ``error:`` line naming the command's help, exit code 2; other errors are one line
    with exit code 1."""
    usage, bare, abort = _usage_errors()
    for i, arg in enumerate(sys.argv[1:], 1):
        if not is_text(arg):  # bytes that are not UTF-8 arrive as lone surrogates
            print(f"error: argument {i} is not valid UTF-8 text", file=sys.stderr)
            sys.exit(2)
    try:
        code = app(standalone_mode=False)
    except usage as exc:
        ctx: Any = getattr(exc, "ctx", None)
        if bare is not None and isinstance(exc, bare):  # a group run bare: its help
            if ctx is not None:
                print(ctx.get_help())
            sys.exit(0)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        fmt = getattr(exc, "format_message", None)
        message = fmt() if callable(fmt) else str(exc)
        print(f"error: {message}{where}", file=sys.stderr)
        sys.exit(2)
    except (abort, typer.Abort):
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# The commands, in the order ``casereach --help`` lists them: importing a module registers its
# commands on ``app`` (after this module has defined what gateways_admin imports from it).
COMMAND_MODULES = (
    "server",
    "admin",
    "gateway_commands",
    "data",
    "sending",
    "benchmarks",
    "gateways_admin",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"casereach.cli.{_name}")

if __name__ == "__main__":
    run()
