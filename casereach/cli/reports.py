"""``casereach check``: the data-quality report (every contact with a warning) in a terminal."""

from __future__ import annotations

import csv
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

COLUMNS = ("contact_id", "contact_type", "name", "phone", "warnings", "messages")


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas in user-supplied text (CSV injection)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def print_data_quality(project: Any, *, csv_out: bool) -> None:
    """Print ``data_quality(project)`` as a table, or as CSV on stdout with ``csv_out``.

    The CSV has the columns of the HTTP report (``…/data-quality?format=csv``): warning codes
    joined by ``;`` and their messages by `` | ``.
    """
    from casereach.contacts.queries import data_quality

    rows: list[dict[str, Any]] = data_quality(project)
    if csv_out:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r["contact_id"],
                    r["contact_type"],
                    _csv_safe(r["name"] or ""),
                    _csv_safe(r["phone"] or ""),
                    ";".join(r["warnings"]),
                    " | ".join(r["messages"]),
                ]
            )
        sys.stdout.flush()
        return
    if not rows:
        typer.echo(f"no data-quality warnings in project {project.name}")
        return
    table = Table(
        title=f"data quality: {escape(project.name)} ({len(rows):,} contacts with warnings)"
    )
    table.add_column("contact", overflow="fold")
    table.add_column("type", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("phone", no_wrap=True)
    table.add_column("warnings", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    for r in rows:
        table.add_row(  # Text: names are user data, never rich markup
            Text(r["contact_id"]),
            Text(r["contact_type"]),
            Text(r["name"] or ""),
            Text(r["phone"] or ""),
            Text("\n".join(r["warnings"])),
            Text("\n".join(r["messages"])),
        )
    Console().print(table)
