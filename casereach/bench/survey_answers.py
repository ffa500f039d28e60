"""``casereach bench surveys``: SMS survey answers through the inbound webhook against
``GET /healthz`` on the same ``casereach serve`` (issue 20: ≥ 0.4, 10,000 concurrent sessions).

Set-up, not timed, on a fresh SQLite file: ``casereach init``, the bench project and an API
key; ``casereach import-cases`` of N + warm-up cases, each with a verified number (a two-way
holder); ``casereach serve --no-workers``; through its API an ``http`` gateway pointed at the
local fast provider (``casereach.bench.fastprovider``) and routed to, and a survey of
``--answers-per-session`` + 1 integer questions (at least 3). Then one ACTIVE session per
case, on question 1, written straight into the database (a bench may; the rows are those
``surveys.sessions`` writes when a session starts, minus the first question's message).

Timed: ``--clients`` keep-alive connections in a closed loop POST answers, in the inbound
bench's form format, to the gateway's real inbound URL: round r answers question r of every
session, so a session's answers arrive in order, N apart. Each answer is stored and queues the
session's next question (an outgoing SMS). Then as many ``GET /healthz`` on the same server
with the same connections: the two alternate in ``ROUNDS`` parts (a fifth of the answers, as
many ``/healthz``, and so on), each side's rate its requests over its summed time, so that a
drift of the shared machine's speed during the run weighs on both sides alike
(``ratio_per_round`` shows each part's ratio). Afterwards every answer must be stored exactly once (the
``SurveyAnswer`` rows) and every answer must have queued its next question; otherwise the run
fails.

With ``casereach.bench.survey_start`` present (the broadcast-start bench), its ``run(n)`` is
called too (``--start-contacts``, ``--skip-start``) and its figures merged in."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import importlib
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from casereach.bench.fastprovider import Provider
from casereach.bench.forwarding import _cpu_s, _load
from casereach.bench.httpload import LoadRun, closed_loop, form_post, get
from casereach.bench.sendserver import Instance
from casereach.bench.workspace import PROJECT, BenchError, Workspace, machine_info

TARGET_RATIO = 0.4
WARMUP = 200  # sessions answered once before any clock starts
ROUNDS = 5  # answers and /healthz measured in this many alternating parts
SENDER_TO = "5550000"
SURVEY = "Bench follow-up"
SURVEYS_API = f"/a/{PROJECT}/api/surveys/v1"


def phone_number(i: int) -> str:
    """Bench case ``i``'s number (E.164 digits, unique for i < 10,000,000)."""
    return f"25472{i:07d}"


def survey_definition(questions: int) -> dict[str, Any]:
    """``questions`` integer questions in both bench languages, each answered by ``7``."""
    return {
        "name": SURVEY,
        "questions": [
            {
                "id": f"q{k}",
                "type": "integer",
                "prompt": {"en": f"Question {k}: how many?", "sw": f"Swali {k}: ngapi?"},
                "constraints": {"min": 0, "max": 100},
            }
            for k in range(1, questions + 1)
        ],
    }


# --- set-up ------------------------------------------------------------------------------------


def _import_cases(ws: Workspace, inst: Instance, count: int) -> None:
    path = ws.root / "survey-cases.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "external_id",
                "case_type",
                "case_name",
                "owner_id",
                "contact_phone_number",
                "contact_phone_number_is_verified",
            ]
        )
        for i in range(count):
            out.writerow(
                [f"srv-{i:07d}", "patient", f"Person {i}", "owner-1", phone_number(i), "yes"]
            )
    ws.cli(inst.target, "import-cases", str(path), "--project", PROJECT)


def _set_up_api(inst: Instance, provider_url: str, questions: int) -> tuple[str, int]:
    """The gateway (routed to) and the survey; (the inbound webhook's path, survey id)."""
    inst.configure(provider_url)
    gateways = inst.call("GET", "/gateways")["objects"]
    gateway = next((g for g in gateways if g.get("name") == "FAKE"), None)
    if gateway is None or not isinstance(gateway.get("inbound_url"), str):
        raise BenchError(f"the bench gateway has no inbound_url: {str(gateways)[:300]}")
    resp = inst.client.post(f"{SURVEYS_API}/surveys", json=survey_definition(questions))
    if resp.status_code != 201:
        raise BenchError(f"POST surveys answered {resp.status_code}: {resp.text[:300]}")
    return urlparse(gateway["inbound_url"]).path, int(resp.json()["id"])


def _start_sessions(inst: Instance, survey_id: int, count: int) -> None:
    """One ACTIVE session on question 1 per bench case, written in one transaction."""
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    db = sqlite3.connect(inst.target.url)
    try:
        project_id, name, version, definition = db.execute(
            "SELECT project_id, name, version, definition FROM surveys_survey WHERE id = ?",
            [survey_id],
        ).fetchone()
        gateway_id, gateway_name = db.execute(
            "SELECT id, name FROM gateways_gatewayconfig WHERE name = 'FAKE' AND project_id = ?",
            [project_id],
        ).fetchone()
        holders = db.execute(
            "SELECT pe.contact_id, pe.number FROM contacts_phoneentry pe "
            "WHERE pe.project_id = ? AND pe.holder ORDER BY pe.number",
            [project_id],
        ).fetchall()
        if len(holders) != count:
            raise BenchError(f"{len(holders):,} two-way holders for {count:,} bench cases")
        rows = [
            (
                project_id,
                survey_id,
                name,
                version,
                definition,
                contact,
                contact,
                gateway_id,
                gateway_name,
                number,
                "en",
                "active",
                "",
                "q1",
                0,
                0,
                at,
                at,
                "bench",
            )
            for contact, number in holders
        ]
        with db:
            db.executemany(
                "INSERT INTO surveys_surveysession (project_id, survey_id, survey_name, "
                "survey_version, definition, contact_id, case_id, gateway_id, gateway_name, "
                "phone_number, language, status, detail, current_question, retries, "
                "reask_count, created_on, started_on, triggered_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    finally:
        db.close()


def _stored(inst: Instance) -> dict[str, int]:
    """What the database holds after the run."""
    db = sqlite3.connect(inst.target.url)
    try:
        answers, distinct = db.execute(
            "SELECT count(*), count(DISTINCT session_id || ':' || question_id) "
            "FROM surveys_surveyanswer"
        ).fetchone()
        (questions,) = db.execute(
            "SELECT count(*) FROM messaging_message m JOIN messaging_messagingevent e "
            "ON e.id = m.event_id WHERE m.direction = 'out' AND e.source = 'survey_part'"
        ).fetchone()
        (inbound,) = db.execute(
            "SELECT count(*) FROM messaging_message WHERE direction = 'in'"
        ).fetchone()
    finally:
        db.close()
    return {"answers": answers, "distinct": distinct, "questions": questions, "inbound": inbound}


# --- the measurement ---------------------------------------------------------------------------


def _answers(path: str, sessions: int, rounds: int, offset: int = 0) -> list[bytes]:
    """Round r answers every session's question r (session i: case ``offset + i``)."""
    return [
        form_post(
            path,
            {
                "from": phone_number(offset + i),
                "to": SENDER_TO,
                "text": "7",
                "id": f"srv-{offset + i:07d}-{r}",
            },
        )
        for r in range(rounds)
        for i in range(sessions)
    ]


def _timed(inst: Instance, requests: list[bytes], clients: int) -> tuple[LoadRun, float]:
    pid = inst.proc.pid if inst.proc is not None else None
    cpu = _cpu_s(pid)
    run = asyncio.run(closed_loop(inst.port, lambda i: requests[i], len(requests), clients))
    return run, _cpu_s(pid) - cpu


def _merged(runs: list[LoadRun]) -> LoadRun:
    """Runs in turn as one: their requests, seconds, latencies and outcomes added up."""
    total = LoadRun(connections=runs[0].connections)
    for run in runs:
        total.sent += run.sent
        total.seconds += run.seconds
        total.latencies += run.latencies
        total.statuses.update(run.statuses)
        total.errors.update(run.errors)
    return total


def _measure(inst: Instance, path: str, o: dict[str, Any], r: dict[str, Any]) -> None:
    """Answers and ``/healthz`` in ``ROUNDS`` alternating parts (answers in order: part k is
    the k-th slice of the rounds), each total the sum of its parts: a machine whose speed
    drifts during the run (another tenant, the CPU's clock) weighs on both sides alike."""
    n, per, clients = o["sessions"], o["answers_per_session"], o["clients"]
    warm = _answers(path, WARMUP, 1, offset=n)
    run = asyncio.run(closed_loop(inst.port, lambda i: warm[i], len(warm), clients))
    asyncio.run(closed_loop(inst.port, lambda i: get("/healthz"), WARMUP, clients))
    if run.failures():
        raise BenchError(f"answers warm-up: {run.failures()}")
    requests = _answers(path, n, per)
    size = -(-len(requests) // ROUNDS)
    answer_runs, health_runs, cpu_answers, cpu_health = [], [], 0.0, 0.0
    for k in range(0, len(requests), size):
        part, cpu = _timed(inst, requests[k : k + size], clients)
        answer_runs.append(part)
        cpu_answers += cpu
        if part.failures():
            raise BenchError(f"answers: {part.failures()}")
        part, cpu = _timed(inst, [get("/healthz")] * part.sent, clients)
        health_runs.append(part)
        cpu_health += cpu
        if part.failures():
            raise BenchError(f"GET /healthz: {part.failures()}")
    answers, health = _merged(answer_runs), _merged(health_runs)
    r["answers_per_s"] = round(answers.rate, 1)
    r["answers_p50_ms"] = answers.percentile_ms(50)
    r["answers_p99_ms"] = answers.percentile_ms(99)
    r["healthz_per_s"] = round(health.rate, 1)
    r["healthz_p50_ms"] = health.percentile_ms(50)
    r["healthz_p99_ms"] = health.percentile_ms(99)
    r["answers_healthz_ratio"] = round(answers.rate / health.rate, 3) if health.rate else None
    r["ratio_per_round"] = [
        round(a.rate / h.rate, 3) if h.rate else None
        for a, h in zip(answer_runs, health_runs, strict=True)
    ]
    # The server's CPU per request: less sensitive to other load on the machine than rates.
    r["answer_server_cpu_ms"] = round(cpu_answers / answers.sent * 1000, 3)
    r["healthz_server_cpu_ms"] = round(cpu_health / health.sent * 1000, 3)
    _verify(inst, n * per + WARMUP, r)


def _verify(inst: Instance, expected: int, r: dict[str, Any]) -> None:
    held = _stored(inst)
    r.update(
        answers_sent=expected,
        answers_stored=held["answers"],
        inbound_stored=held["inbound"],
        next_questions_queued=held["questions"],
    )
    if held["answers"] != expected or held["distinct"] != expected:
        raise BenchError(
            f"{expected:,} answers sent, {held['answers']:,} SurveyAnswer rows stored "
            f"({held['distinct']:,} distinct): every answer must be stored once"
        )
    if held["inbound"] != expected:
        raise BenchError(f"{expected:,} answers sent, {held['inbound']:,} inbound messages")
    if held["questions"] != expected:
        raise BenchError(f"{expected:,} answers sent, {held['questions']:,} next questions queued")


def _answers_run(ws: Workspace, o: dict[str, Any], r: dict[str, Any]) -> None:
    n, per = o["sessions"], o["answers_per_session"]
    inst = Instance(ws, "surveys")
    provider = Provider(workers=1)
    try:
        ws.console.print(f"set-up: {n + WARMUP:,} cases (import-cases), gateway, survey")
        _import_cases(ws, inst, n + WARMUP)
        inst.serve(workers=False)
        path, survey_id = _set_up_api(inst, provider.url, max(3, per + 1))
        _start_sessions(inst, survey_id, n + WARMUP)
        r["load_average_before"] = _load()
        ws.console.print(f"answers: {n * per:,} POSTs, {o['clients']} connections; then healthz")
        _measure(inst, path, o, r)
    finally:
        r["load_average_after"] = _load()
        inst.close()
        provider.stop()


# --- the suite ---------------------------------------------------------------------------------


def _start_bench(o: dict[str, Any], r: dict[str, Any]) -> None:
    """The broadcast-start figures of ``casereach.bench.survey_start``, when it exists."""
    if o["skip_start"]:
        return
    try:
        module = importlib.import_module("casereach.bench.survey_start")
    except ModuleNotFoundError as exc:
        if exc.name != "casereach.bench.survey_start":
            raise
        r["survey_start"] = "not measured: casereach.bench.survey_start is not installed"
        return
    figures = module.run(o["start_contacts"])
    r.update(figures)
    target = getattr(module, "TARGET_RATIO", None)  # the start's own target, when it names one
    if isinstance(target, int | float):
        r["survey_start_target"] = target


def _targets(r: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key, target in (
        ("answers_healthz_ratio", TARGET_RATIO),
        ("survey_start_ratio", r.get("survey_start_target")),
    ):
        value = r.get(key)
        if key in r and target is not None:
            targets[key] = {
                "target": target,
                "met": bool(value is not None and value >= target),
            }
    return targets


def run_surveys_suite(
    *,
    sessions: int = 10_000,
    clients: int = 8,
    answers_per_session: int = 2,
    start_contacts: int = 100_000,
    skip_start: bool = False,
    json_out: Path | None = None,
) -> dict[str, Any]:
    """Measure, print, optionally write JSON; ValueError (after writing) when a check failed."""
    if min(sessions, clients, answers_per_session) < 1 or start_contacts < 1:
        raise ValueError(
            "--sessions, --clients, --answers-per-session and --start-contacts must be at least 1"
        )
    ws = Workspace(Path(tempfile.mkdtemp(prefix="casereach-bench-surveys-")), None)
    options = {
        "sessions": sessions,
        "clients": clients,
        "answers_per_session": answers_per_session,
        "start_contacts": start_contacts,
        "skip_start": skip_start,
    }
    r: dict[str, Any] = {"database": ws.vendor, **options, "problems": []}
    document = {"suite": "surveys", "results": r, "machine": machine_info(ws.vendor)}
    try:
        _answers_run(ws, options, r)
    except BenchError as exc:
        r["problems"].append(str(exc))
    finally:
        ws.cleanup()
    try:
        _start_bench(options, r)
    except (BenchError, ValueError) as exc:
        r["problems"].append(f"survey start: {exc}")
    document["targets"] = _targets(r)
    ws.console.print(json.dumps(r, indent=2))
    if json_out is not None:
        json_out.write_text(json.dumps(document, indent=2) + "\n")
        ws.console.print(f"results written to {json_out}")
    if r["problems"]:
        raise ValueError("bench surveys: " + "; ".join(r["problems"]))
    return document
