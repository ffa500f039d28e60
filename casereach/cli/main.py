"""The ``casereach`` command line (SPEC 7.1). Errors are one line on stderr, exit code 1."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from casereach.core.text import is_text

if TYPE_CHECKING:
    from casereach.cli.demo import DemoKey

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


def _project(name: str) -> Any:
    from casereach.projects.queries import get_project_by_name

    return get_project_by_name(name)


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

    from casereach.alerts.scheduler import fire_due
    from casereach.messaging.runner import BackgroundLoops
    from casereach.wsgi import application

    try:
        loops = BackgroundLoops(extra=[("scheduler", fire_due)])
    except ValueError as exc:  # a bad CASEREACH_DISPATCH_* value
        fail(str(exc))
    from casereach.core.hosts import allow_bind_address

    allow_bind_address(host)  # Host headers naming the listening address are answered
    server = create_server(application, host=host, port=port, threads=threads, ident="casereach")
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
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close()
        loops.stop()
        typer.echo("casereach stopped")


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
            _project(project), username, role=parse_role(role) if role is not None else None
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

        rows = list_api_keys(_project(project), username=username)
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

        revoked = do_revoke_api_keys(_project(project), prefix=prefix, username=username)
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
        membership = do_create_web_user(_project(project), username, secret, role=wanted)
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

        do_set_role(_project(project), username, parse_role(role))
        typer.echo(f"{username} is now {parse_role(role).value} in {project}")

    guarded(run)


def _config_options(config_json: str | None, config: list[str] | None) -> dict[str, Any]:
    import json

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

    def run() -> None:
        from casereach.core.requests import public_base_url
        from casereach.gateways.actions import (
            do_create_gateway,
            do_set_global_routes,
            do_set_routes,
        )
        from casereach.gateways.queries import global_routes, visible_gateways
        from casereach.projects.settings_schema import effective_settings

        owner = _project(project) if project else None
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

        proj = _project(project)
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

        proj = _project(project)
        gw_id = _offered(gateway, proj)
        do_decline_share(gw_id, proj)
        typer.echo(f"project {proj.name} declined gateway {gw_id}")

    guarded(run)


@gateway_app.command("list")
def gateway_list(
    project: Annotated[str | None, typer.Option("--project", help="Project name")] = None,
) -> None:
    """List gateways (a project's visible ones, or all)."""

    def run() -> None:
        from casereach.gateways.models import GatewayConfig
        from casereach.gateways.queries import visible_gateways

        qs = visible_gateways(_project(project)) if project else GatewayConfig.objects.all()
        for gw in qs.select_related("project").order_by("name_key"):
            owner = gw.project.name if gw.project else "(global)"
            typer.echo(f"{gw.pk}\t{gw.name}\t{gw.type}\t{owner}")

    guarded(run)


@app.command("import-cases")
def import_cases(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file")],
    project: Annotated[str, typer.Option("--project", help="Project name")],
    case_type: Annotated[
        str | None, typer.Option("--case-type", help="Case type for rows without one")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Where to write the error report (CSV)")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 5000,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Scale-out mode: hand the import to a worker (the file must be on storage "
            "every worker can read); prints the task id and returns",
        ),
    ] = False,
) -> None:
    """Import cases in bulk (streaming); bad rows go to an error report, good rows land."""
    if queue:

        def enqueue() -> str:
            from casereach.scaleout import config
            from casereach.scaleout.app import get_app

            if not config.broker_mode():
                fail(f"--queue needs {config.BROKER_ENV} (the scale-out mode)")
            if not file.is_file():
                fail(f"no such file: {file}")
            owner = _project(project)
            result = get_app().send_task(
                "casereach.import_cases", args=(str(file.resolve()), owner.pk, case_type)
            )
            return str(result.id)

        task_id = guarded(enqueue)
        typer.echo(f"import queued for a worker: task {task_id}")
        return

    def run() -> int:
        from casereach.cli.importing import run_import

        failed: int = run_import(file, _project(project), case_type, errors, batch_size)
        return failed

    failed = guarded(run)
    if failed:
        raise typer.Exit(1)


@app.command()
def check(
    project: Annotated[str, typer.Option("--project", help="Project name")],
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV instead of a table")] = False,
) -> None:
    """Data-quality report: every contact with a warning."""

    def run() -> None:
        from casereach.cli.reports import print_data_quality

        print_data_quality(_project(project), csv_out=csv_out)

    guarded(run)


@app.command()
def bench(
    suite: Annotated[
        str, typer.Argument(help="Benchmark suite: ingest, dispatch, inbound or alerts")
    ] = "ingest",
    cases: Annotated[int, typer.Option("--cases", help="Cases per measurement")] = 100_000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results here")] = None,
    rss_rows: Annotated[
        int, typer.Option("--rss-rows", help="Rows for the peak-RSS import (0 to skip)")
    ] = 1_000_000,
    requests: Annotated[
        int, typer.Option("--requests", help="Inbound requests per closed-loop run (inbound)")
    ] = 5_000,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Celery workers to start (scale-out mode; dispatch)"),
    ] = None,
    latency_ms: Annotated[
        float,
        typer.Option("--gateway-latency-ms", help="The local gateway answers this slowly"),
    ] = 0.0,
) -> None:
    """Run a benchmark suite (ingest, dispatch, inbound, alerts): our path and the raw floor
    side by side.

    For dispatch, --cases is the number of queued messages and --rss-rows the size of the
    outbox drained for the peak-RSS measurement. For inbound, --requests is the number of
    inbound SMS (and of floor requests) in the closed-loop runs; --cases and --rss-rows are
    not used. For alerts, --cases is the number of cases a conditional alert is activated
    over (and of instances the scheduler fires); --rss-rows is not used.

    The mode comes from the environment: CASEREACH_BROKER_URL plus a PostgreSQL
    CASEREACH_DATABASE_URL run dispatch through --workers N Celery workers (default 1).
    'all' runs dispatch embedded (SQLite), with 1 and with 2 workers, and the floor, in one
    table (it needs the scale-out environment)."""
    from casereach.cli.bench_scale import (
        mode_of_environment,
        run_all,
        run_dispatch_scaleout_suite,
    )
    from casereach.scaleout import config

    if latency_ms < 0:
        fail("--gateway-latency-ms must be 0 or more")
    if workers is not None and suite not in ("dispatch", "all"):
        fail("--workers applies to 'dispatch' and 'all' only")
    try:
        if suite == "all":
            run_all(messages=cases, latency_ms=latency_ms or 20.0, json_out=json_out)
            return
        if suite == "dispatch" and (config.broker_mode() or workers is not None):
            run_dispatch_scaleout_suite(
                messages=cases, workers=workers or 1, latency_ms=latency_ms, json_out=json_out
            )
            return
        _run_suite(suite, cases, json_out, rss_rows, requests, latency_ms)
        if json_out is not None and json_out.exists():
            document = json.loads(json_out.read_text())
            document.update({"mode": mode_of_environment(), "workers": 0})
            json_out.write_text(json.dumps(document, indent=2) + "\n")
    except ValueError as exc:
        fail(str(exc))


def _run_suite(
    suite: str,
    cases: int,
    json_out: Path | None,
    rss_rows: int,
    requests: int,
    latency_ms: float,
) -> None:
    from casereach.cli.bench import run_bench
    from casereach.cli.bench_alerts import run_alerts_suite
    from casereach.cli.bench_dispatch import run_dispatch_suite
    from casereach.cli.bench_inbound import run_inbound_suite

    if suite == "alerts":
        run_alerts_suite(cases=cases, json_out=json_out)
        return
    if suite == "dispatch":
        run_dispatch_suite(
            messages=cases, drain_rows=rss_rows, json_out=json_out, latency_ms=latency_ms
        )
        return
    if suite == "inbound":
        run_inbound_suite(requests=requests, json_out=json_out)
        return
    run_bench(suite, cases=cases, json_out=json_out, rss_rows=rss_rows)


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


if __name__ == "__main__":
    run()
