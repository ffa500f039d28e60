"""``casereach send --file messages.jsonl --project P``: a JSON-lines file of sends, streamed.

Each line is the body ``POST …/send`` takes. The file is read a batch at a time (never whole)
and each batch goes through ``do_send_batch`` (one transaction, one statement set). A line
that is not a valid send is reported with its line number and not sent; the others are.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from casereach.cli.app import app, fail, guarded, project_by_name

CLI_USER = "cli"


class Tally:
    """What a run did: queued messages, failed ones by error code, bad lines."""

    def __init__(self) -> None:
        self.queued = 0
        self.failed: collections.Counter[str] = collections.Counter()
        self.bad_lines = 0

    def summary(self) -> str:
        failed = sum(self.failed.values())
        parts = [f"{self.queued:,} queued", f"{failed:,} failed"]
        if failed:
            parts[-1] += (
                " (" + ", ".join(f"{c} {n:,}" for c, n in sorted(self.failed.items())) + ")"
            )
        parts.append(f"{self.bad_lines:,} bad lines not sent")
        return ", ".join(parts)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(stream, 1):
        if raw.strip():
            yield number, raw


def send_stream(project: Any, stream: IO[bytes], batch_size: int, on_bytes: Any = None) -> Tally:
    """Send every line of ``stream`` in batches; bad lines reported on stderr."""
    from casereach.core.errors import CasereachError
    from casereach.core.requests import parse_json
    from casereach.messaging.api import parse_send

    tally = Tally()
    batch: list[tuple[int, Any]] = []
    for number, raw in _lines(stream):
        if on_bytes is not None:
            on_bytes(len(raw))
        try:
            batch.append((number, parse_send(parse_json(raw), CLI_USER)))
        except CasereachError as exc:
            _bad(tally, number, exc.message)
            continue
        if len(batch) >= batch_size:
            _send(project, batch, tally)
            batch = []
    if batch:
        _send(project, batch, tally)
    return tally


def _bad(tally: Tally, number: int, message: str) -> None:
    tally.bad_lines += 1
    typer.echo(f"line {number}: {message}", err=True)


def _send(project: Any, batch: list[tuple[int, Any]], tally: Tally) -> None:
    """One batch; a request the batch refuses (an unknown contact or gateway) is reported
    and left out, and the rest sent again."""
    from casereach.messaging.sending import ItemError, do_send_batch

    while batch:
        try:
            sent = do_send_batch(project, [req for _, req in batch])
        except ItemError as exc:
            number, _ = batch.pop(exc.index)
            _bad(tally, number, exc.cause.message)
            continue
        for _, messages in sent:
            for m in messages:
                if m.status == "failed":
                    tally.failed[m.error_code or ""] += 1
                else:
                    tally.queued += 1
        return


@app.command("send")
def send(
    file: Annotated[str, typer.Option("--file", help="JSON lines, one send each; - for stdin")],
    project: Annotated[str, typer.Option("--project", help="Project name")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1000)] = 1000,
) -> None:
    """Send the messages of a JSON-lines file (each line the body of POST …/send), streamed
    in batches; bad lines are reported by number and not sent (exit code 1)."""
    path = None if file == "-" else Path(file)
    if path is not None and not path.is_file():
        fail(f"no such file: {file}")

    def run() -> Tally:
        owner = project_by_name(project)
        console = Console(stderr=True)
        total = path.stat().st_size if path is not None else None
        columns = (
            TextColumn("sending"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task("send", total=total)

            def advance(n: int) -> None:
                bar.advance(task, n)

            if path is None:
                return send_stream(owner, sys.stdin.buffer, batch_size, advance)
            with path.open("rb") as stream:
                return send_stream(owner, stream, batch_size, advance)

    tally = guarded(run)
    typer.echo(tally.summary())
    if tally.bad_lines:
        raise typer.Exit(1)
