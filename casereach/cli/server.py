"""The server commands: init, serve, demo, worker, beat and doctor."""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from casereach.cli.app import (
    app,
    fail,
    guarded,
    setup_django,
)

if TYPE_CHECKING:
    from casereach.cli.demo import DemoKey


@app.command()
def init() -> None:
    """Create or upgrade the database named by CASEREACH_DATABASE_URL."""

    def run() -> None:
        from django.conf import settings
        from django.core.management import call_command

        from casereach.gateways.actions import do_sync_server_email_gateway

        call_command("migrate", interactive=False, verbosity=0)
        if do_sync_server_email_gateway() is not None:
            typer.echo("server SMTP settings: global email gateway SERVER-EMAIL ready")
        db = settings.DATABASES["default"]
        typer.echo(f"database ready: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}")

    guarded(run)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    threads: Annotated[int, typer.Option(help="Request threads.", min=1, max=256)] = 8,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Web only (scale-out replicas).")
    ] = False,
) -> None:
    """Run the web UI and API (waitress, a production WSGI server). SIGTERM stops it.

    With CASEREACH_BROKER_URL set, background work belongs to 'casereach worker' and
    'casereach beat', so serve is web-only whether or not --no-workers is given."""
    setup_django()
    from casereach.scaleout import config

    if config.broker_mode() and not no_workers:
        typer.echo(
            f"{config.BROKER_ENV} is set: serving web only; schedules, dispatch and lease "
            "reaping run in 'casereach worker' + 'casereach beat' (check with 'casereach doctor')",
            err=True,
        )
        no_workers = True
    _serve(host, port, threads, workers=not no_workers)


def _serve(
    host: str,
    port: int,
    threads: int,
    banner: Callable[[str], None] | None = None,
    *,
    workers: bool = True,
) -> None:
    from waitress.server import create_server

    from casereach.alerts.replywait import run_due_waits
    from casereach.alerts.scheduler import fire_due
    from casereach.messaging.chains import move_on_waiting
    from casereach.messaging.costs import fetch_due_prices
    from casereach.messaging.runner import BackgroundLoops
    from casereach.messaging.whatsapp_templates import scheduled_sync
    from casereach.scaleout.app import write_back_once
    from casereach.surveys.sessions import run_due_sessions
    from casereach.wsgi import application

    try:
        loops = BackgroundLoops(
            extra=[
                ("scheduler", fire_due),
                ("survey-timers", run_due_sessions),
                ("alert-reply-timers", run_due_waits),
                ("commcare-writeback", write_back_once),
                ("chain-timeouts", move_on_waiting),
                ("whatsapp-templates", scheduled_sync),
                ("prices", fetch_due_prices),
            ]
        )
    except ValueError as exc:  # a bad CASEREACH_DISPATCH_* value
        fail(str(exc))
    from casereach.core.hosts import allow_bind_address

    allow_bind_address(host)  # Host headers naming the listening address are answered
    # poll(), not select(): the dispatcher in this process holds up to max_in_flight provider
    # connections per gateway, which push socket numbers past select()'s limit of 1023.
    server = create_server(
        application,
        host=host,
        port=port,
        threads=threads,
        ident="casereach",
        asyncore_use_poll=True,
    )
    url = f"http://{host}:{server.effective_port}"  # type: ignore[union-attr]

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if banner:
        banner(url)
    else:
        typer.echo(f"casereach serving on {url}", err=False)
    if workers:
        from casereach.gateways.actions import do_sync_server_email_gateway

        try:
            do_sync_server_email_gateway()
        except Exception as exc:  # a bad CASEREACH_SMTP_URL must not stop SMS
            typer.echo(f"server SMTP settings ignored: {exc}", err=True)
        loops.start()
    sys.stdout.flush()
    _settle_heap()
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        loops.stop()
        typer.echo("casereach stopped")


GC_ENV = "CASEREACH_GC_TUNING"


def _settle_heap() -> None:
    """Move what start-up built (Django, the URL map, the OpenAPI schema: ~100k objects) out
    of the collector's reach, and collect the young generation less often. A send allocates
    a few thousand short-lived objects; with the default threshold (700) the collector ran
    many times per request and rescanned the start-up heap at every full pass.
    CASEREACH_GC_TUNING=0 keeps Python's defaults."""
    if os.environ.get(GC_ENV, "1").strip() == "0":
        return
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(20_000, second, third)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Set up the demo data and exit.")
    ] = False,
) -> None:
    """Initialise the database, load a demo project, then serve it."""

    def run() -> DemoKey:
        from django.core.management import call_command

        from casereach.cli.demo import load_demo

        call_command("migrate", interactive=False, verbosity=0)
        return load_demo()

    demo_key = guarded(run)
    username, key = demo_key.username, demo_key.key
    if no_serve:
        typer.echo(f"API key ({demo_key.describe()}):")
        typer.echo(f"API key: ApiKey {username}:{key}")
        return

    def banner(url: str) -> None:
        typer.echo(f"casereach demo running at {url}")
        typer.echo(
            f"  try: curl -H 'Authorization: ApiKey {username}:{key}' {url}/a/demo/api/case/v2/"
        )
        typer.echo(f"  API docs: {url}/api/docs")
        typer.echo(f"  API key {demo_key.describe()}")
        typer.echo(f"API key: ApiKey {username}:{key}")

    _serve(host, port, 8, banner)


def _need_broker() -> None:
    from casereach.scaleout import config

    url = config.broker_url()
    if not url:
        fail(f"{config.BROKER_ENV} is not set: set it to redis://… or amqp://… (scale-out mode)")
    try:
        config.check_broker_url(url)
    except ValueError as exc:
        fail(str(exc))


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option("--queues", help="Comma-separated: dispatch, schedule, bulk")
    ] = "dispatch,schedule,bulk",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Tasks run at once (threads)")
    ] = 4,
    loglevel: Annotated[str, typer.Option("--loglevel")] = "WARNING",
) -> None:
    """A Celery worker (scale-out mode): claims and sends due messages, fires due schedules,
    reaps expired leases, runs bulk alert evaluations and imports. Run any number."""
    setup_django()
    _need_broker()
    from casereach.messaging.dispatch import dispatch_sizes
    from casereach.scaleout.processes import run_worker, worker_argv

    try:
        worker_argv(queues, concurrency, loglevel)
        dispatch_sizes()  # a bad CASEREACH_DISPATCH_* value stops here, not in every task
    except ValueError as exc:
        fail(str(exc))
    run_worker(queues, concurrency, loglevel)


@app.command()
def beat(loglevel: Annotated[str, typer.Option("--loglevel")] = "WARNING") -> None:
    """Celery beat (scale-out mode): the periodic kicks. Run one; a second one by mistake
    only sends duplicate kicks, which the database claims make harmless."""
    setup_django()
    _need_broker()
    from casereach.scaleout.processes import run_beat

    run_beat(loglevel)


@app.command()
def doctor() -> None:
    """Check the database, migrations, clock, broker and workers; exit 1 on any problem."""
    setup_django()
    from casereach.scaleout.health import doctor as run_checks

    problems = 0
    for check in run_checks():
        if check.ok:
            mark = "ok  "
        elif check.warning:
            mark = "WARN"
        else:
            mark = "FAIL"
            problems += 1
        typer.echo(f"{mark} {check.name:<10} {check.detail}")
    if problems:
        typer.echo(f"{problems} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo("everything looks right")
