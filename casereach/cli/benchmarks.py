"""casereach bench: the command; the suites are in casereach.bench."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from casereach.cli.app import (
    app,
    fail,
)

if TYPE_CHECKING:
    pass


DispatchInFlight = Annotated[
    int | None, typer.Option("--max-in-flight", help="The gateway's max_in_flight (dispatch)")
]
DispatchRate = Annotated[
    float | None, typer.Option("--rate-limit", help="The gateway's rate_limit_per_s (dispatch)")
]
# The options of 'bench send' only (see docs/cli.md).
SendN = Annotated[int | None, typer.Option("--n", help="Messages per phase (send; 20,000)")]
SendClients = Annotated[
    int | None, typer.Option("--clients", help="Connections for /healthz and /send (send; 8)")
]
SendDatabase = Annotated[
    str | None, typer.Option("--database", help="postgres://… to run on PostgreSQL (send)")
]
SendOnly = Annotated[
    str | None, typer.Option("--only", help="Phases: accept,drain,latency300,e2e (send)")
]
SendPeer = Annotated[
    Path | None, typer.Option("--peer-json", help="A peer-kannel run's --json (send)")
]
# The options of 'bench surveys' only.
SurveySessions = Annotated[
    int | None, typer.Option("--sessions", help="Active survey sessions (surveys; 10,000)")
]
SurveyAnswers = Annotated[
    int | None,
    typer.Option("--answers-per-session", help="Answers POSTed per session (surveys; 2)"),
]
SurveyStartContacts = Annotated[
    int | None,
    typer.Option("--start-contacts", help="Contacts of the broadcast start (surveys; 100,000)"),
]
SurveySkipStart = Annotated[
    bool, typer.Option("--skip-start", help="Do not measure the broadcast start (surveys)")
]


# long: one command holds every suite's options (typer), then hands over to the suite
@app.command()
def bench(
    suite: Annotated[
        str,
        typer.Argument(
            help="Suite: ingest, dispatch, inbound, alerts, send, forwarding or surveys"
        ),
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
    max_in_flight: DispatchInFlight = None,
    rate_limit: DispatchRate = None,
    n: SendN = None,
    clients: SendClients = None,
    database: SendDatabase = None,
    only: SendOnly = None,
    peer_json: SendPeer = None,
    sessions: SurveySessions = None,
    answers_per_session: SurveyAnswers = None,
    start_contacts: SurveyStartContacts = None,
    skip_start: SurveySkipStart = False,
    whatsapp: Annotated[
        bool,
        typer.Option(
            "--whatsapp",
            help="dispatch: only the WhatsApp run (whatsapp_cloud beside http, same provider)",
        ),
    ] = False,
) -> None:
    """Run a benchmark suite: our path and the raw floor side by side. For send: --n, --clients,
    --database, --only, --peer-json, --json; for forwarding (vs /healthz): --n, --clients;
    for surveys (answers vs /healthz): --sessions, --clients, --answers-per-session,
    --start-contacts, --skip-start, --json.

    For dispatch, --cases is the number of queued messages and --rss-rows the size of the
    outbox drained for the peak-RSS measurement; --whatsapp runs only the WhatsApp run (--cases
    messages through a whatsapp_cloud gateway and through the http type, same provider). With --gateway-latency-ms (and optionally
    --max-in-flight, --rate-limit) it measures latency hiding alone: e.g. 300 ms, rate limit
    2000. For inbound, --requests is the number of inbound SMS (and of floor requests) in the
    closed-loop runs; --cases and --rss-rows are not used. For alerts, --cases is the number
    of cases a conditional alert is activated over (and of instances the scheduler fires);
    --rss-rows is not used.

    The mode comes from the environment: CASEREACH_BROKER_URL plus a PostgreSQL
    CASEREACH_DATABASE_URL run dispatch through --workers N Celery workers (default 1).
    'all' runs dispatch embedded (SQLite), with 1 and with 2 workers, and the floor, in one
    table (it needs the scale-out environment)."""
    from casereach.bench.scale import (
        mode_of_environment,
        run_all,
        run_dispatch_scaleout_suite,
    )
    from casereach.scaleout import config

    if latency_ms < 0:
        fail("--gateway-latency-ms must be 0 or more")
    if workers is not None and suite not in ("dispatch", "all"):
        fail("--workers applies to 'dispatch' and 'all' only")
    if whatsapp:
        _run_whatsapp(suite, cases, json_out)
        return
    surveys = (sessions, answers_per_session, start_contacts, skip_start or None)
    if _surveys_suite(suite, clients, json_out, (n, database, only, peer_json), surveys):
        return
    _send_options_only_for_send(suite, (n, clients, database, only, peer_json))
    try:
        if suite in ("send", "forwarding"):
            _run_send(suite, n, clients, database, only, json_out, peer_json)
            return
        if suite == "all":
            run_all(messages=cases, latency_ms=latency_ms or 20.0, json_out=json_out)
            return
        if suite == "dispatch" and (config.broker_mode() or workers is not None):
            run_dispatch_scaleout_suite(
                messages=cases, workers=workers or 1, latency_ms=latency_ms, json_out=json_out
            )
            return
        if max_in_flight is not None and not 1 <= max_in_flight <= 1000:
            fail("--max-in-flight must be from 1 to 1000")
        if suite == "dispatch" and (max_in_flight or rate_limit):
            _run_latency(cases, latency_ms, max_in_flight, rate_limit, json_out)
            return
        _run_suite(suite, cases, json_out, rss_rows, requests, latency_ms)
        if json_out is not None and json_out.exists():
            document = json.loads(json_out.read_text())
            document.update({"mode": mode_of_environment(), "workers": 0})
            json_out.write_text(json.dumps(document, indent=2) + "\n")
    except ValueError as exc:
        fail(str(exc))


def _run_whatsapp(suite: str, cases: int, json_out: Path | None) -> None:
    """``casereach bench dispatch --whatsapp``: the WhatsApp run alone."""
    from casereach.bench.dispatch_whatsapp import run_whatsapp_suite

    if suite != "dispatch":
        fail("--whatsapp applies to 'dispatch' only")
    try:
        run_whatsapp_suite(messages=cases, json_out=json_out)
    except ValueError as exc:
        fail(str(exc))


def _send_options_only_for_send(suite: str, values: tuple[object, ...]) -> None:
    if suite == "forwarding" and any(v is not None for v in values[2:]):
        fail("'forwarding' takes --n, --clients and --json only")
    if suite not in ("send", "forwarding") and any(v is not None for v in values):
        fail("--n, --clients, --database, --only and --peer-json apply to 'send' only")


def _surveys_suite(
    suite: str,
    clients: int | None,
    json_out: Path | None,
    others: tuple[object, ...],
    options: tuple[int | bool | None, ...],
) -> bool:
    """Run 'bench surveys' (True), or refuse its options for another suite."""
    if suite != "surveys":
        if any(v is not None for v in options):
            fail(
                "--sessions, --answers-per-session, --start-contacts and --skip-start apply "
                "to 'surveys' only"
            )
        return False
    if any(v is not None for v in others):
        fail(
            "'surveys' takes --sessions, --clients, --answers-per-session, --start-contacts, "
            "--skip-start and --json only"
        )
    _run_surveys(clients, json_out, options)
    return True


def _run_surveys(
    clients: int | None, json_out: Path | None, options: tuple[int | bool | None, ...]
) -> None:
    from casereach.bench.survey_answers import run_surveys_suite

    sessions, per_session, start_contacts, skip_start = options
    try:
        run_surveys_suite(
            sessions=10_000 if sessions is None else int(sessions),
            clients=8 if clients is None else clients,
            answers_per_session=2 if per_session is None else int(per_session),
            start_contacts=100_000 if start_contacts is None else int(start_contacts),
            skip_start=bool(skip_start),
            json_out=json_out,
        )
    except ValueError as exc:
        fail(str(exc))


def _run_latency(
    cases: int,
    latency_ms: float,
    max_in_flight: int | None,
    rate_limit: float | None,
    json_out: Path | None,
) -> None:
    from casereach.bench.dispatch import run_latency_suite

    run_latency_suite(
        messages=cases,
        latency_ms=latency_ms,
        max_in_flight=max_in_flight,
        rate_limit_per_s=rate_limit,
        json_out=json_out,
    )


def _run_send(
    suite: str,
    n: int | None,
    clients: int | None,
    database: str | None,
    only: str | None,
    json_out: Path | None,
    peer_json: Path | None,
) -> None:
    from casereach.bench.forwarding import run_forwarding_suite
    from casereach.bench.send import run_send_suite

    if suite == "forwarding":
        run_forwarding_suite(
            n=5_000 if n is None else n,
            clients=8 if clients is None else clients,
            json_out=json_out,
        )
        return
    run_send_suite(
        n=20_000 if n is None else n,
        clients=8 if clients is None else clients,
        database=database,
        only=only,
        json_out=json_out,
        peer_json=peer_json,
    )


def _run_suite(
    suite: str,
    cases: int,
    json_out: Path | None,
    rss_rows: int,
    requests: int,
    latency_ms: float,
) -> None:
    from casereach.bench.alerts import run_alerts_suite
    from casereach.bench.dispatch import run_dispatch_suite
    from casereach.bench.inbound import run_inbound_suite
    from casereach.bench.ingest import run_bench

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
