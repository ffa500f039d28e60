"""Starting a survey from a broadcast (issue 20, "Starting one"): the same immediate broadcast to
the same ``n`` cases, once with plain SMS content and once with survey content, on the same
machine in one run. Target: survey starts at ≥ 0.5 of the plain-SMS rate.

Set-up, not timed, on a fresh database in a temporary directory (SQLite, or PostgreSQL when
``CASEREACH_DATABASE_URL`` names a server): ``casereach init``, the bench project, then
``casereach import-cases`` of ``n`` open ``mother`` cases, each on its own phone number (the
alerts suite's CSV). The measured work runs in one subprocess with Django configured:

- a test gateway, the project's default route, and a one-question survey in both languages;
- plain SMS: ``do_create_alert`` of the active immediate broadcast to the case group (its
  activation writes one due schedule instance per case: not timed, reported), then the
  scheduler (``run_until_idle``) until every message is queued in the outbox → messages/s;
- survey: the same broadcast with ``{"type": "survey", "survey_id": …}``, activated the same
  way, then the scheduler until every session is active and its question 1 is queued in the
  outbox → survey starts/s.

``survey_start_ratio`` is the second rate over the first. Checks (a failed one is listed in
``problems``): n queued plain messages, n active sessions, n queued question-1 messages of
source ``survey_broadcast``, nothing still due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from casereach.bench.alerts import CASE_TYPE, import_mothers, write_csv
from casereach.bench.workspace import (
    PROJECT,
    BenchError,
    Target,
    Workspace,
    machine_info,
    postgres_base_url,
)

TARGET_RATIO = 0.5
WORKER_TIMEOUT_S = 4 * 3600
SURVEY: dict[str, Any] = {
    "name": "Bench weekly check",
    "questions": [
        {
            "id": "ok",
            "type": "single_select",
            "prompt": {
                "en": "Hello {case.name}. Are you well?",
                "sw": "Habari {case.name}. Uko salama?",
            },
            "choices": [
                {"value": "yes", "label": {"en": "Yes", "sw": "Ndiyo"}},
                {"value": "no", "label": {"en": "No", "sw": "Hapana"}},
            ],
            "case_property": "feels_well",
        }
    ],
}


def broadcast(name: str, content: dict[str, Any]) -> dict[str, Any]:
    """The immediate broadcast both measurements fire: every open case of the type."""
    return {
        "name": name,
        "kind": "broadcast",
        "active": True,
        "channel": "sms",
        "content": content,
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "case_group", "case_type": CASE_TYPE}],
    }


# --- the measured work (in a subprocess with Django configured) -------------------------------


def _fire(project: Any, body: dict[str, Any]) -> tuple[Any, float, float]:
    """Create the broadcast active, then fire it; (alert, activation s, firing s)."""
    from casereach.alerts.actions import do_create_alert
    from casereach.alerts.scheduler import run_until_idle
    from casereach.core.timeutil import now

    started = time.perf_counter()
    alert = do_create_alert(project, body)
    activated = time.perf_counter()
    run_until_idle(at=now())
    return alert, activated - started, time.perf_counter() - activated


def _setup(project: Any) -> int:
    """The gateway, the route and the survey; the survey's id."""
    from casereach.gateways.actions import do_create_gateway, do_set_routes
    from casereach.surveys.actions import do_create_survey

    do_create_gateway(project, {"name": "BENCH", "type": "test"})
    do_set_routes(project, {"default_gateway": "BENCH"}, {"bench"})
    project.refresh_from_db()
    return int(do_create_survey(project, dict(SURVEY)).pk)


def worker() -> dict[str, Any]:
    """Plain SMS, then the survey, with their checks; the JSON-able figures."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casereach.settings")
    import django

    django.setup()
    from casereach.alerts.models import ScheduleInstance
    from casereach.core.timeutil import now
    from casereach.messaging.models import Message
    from casereach.projects.queries import get_project_by_name
    from casereach.surveys.models import SurveySession

    project = get_project_by_name(PROJECT)
    survey_id = _setup(project)
    plain_body = broadcast("Bench plain", {"sms": {"en": "Hello {case.name}", "sw": "Habari"}})
    _, plain_activation_s, plain_s = _fire(project, plain_body)
    survey_body = broadcast("Bench survey", {"type": "survey", "survey_id": survey_id})
    _, survey_activation_s, survey_s = _fire(project, survey_body)
    outbox = Message.objects.filter(direction="out", status="queued")
    return {
        "plain_activation_seconds": plain_activation_s,
        "plain_sms_seconds": plain_s,
        "survey_activation_seconds": survey_activation_s,
        "survey_start_seconds": survey_s,
        "plain_messages_queued": outbox.filter(event__source="immediate_broadcast").count(),
        "sessions_active": SurveySession.objects.filter(status="active").count(),
        "start_sessions": SurveySession.objects.count(),
        "survey_messages_queued": outbox.filter(event__source="survey_broadcast").count(),
        "failed_messages": Message.objects.filter(status="failed").count(),
        "instances_still_due": ScheduleInstance.objects.filter(
            active=True, next_due__lte=now()
        ).count(),
    }


def worker_main() -> None:
    """Entry point of the worker subprocess: the figures as one JSON line on stdout."""
    sys.stdout.write(json.dumps(worker()) + "\n")


_WORKER = "from casereach.bench.survey_start import worker_main; worker_main()"


def _run_worker(ws: Workspace, target: Target) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER],
        cwd=ws.root,
        env=ws.env(target),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"the survey-start worker failed: {proc.stderr.strip()[-800:]}")
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(
            f"the survey-start worker printed no result: {proc.stderr[-500:]}"
        ) from None
    return result


# --- the suite --------------------------------------------------------------------------------


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def problems_of(n: int, r: dict[str, Any]) -> list[str]:
    found = []
    for key, what in (
        ("plain_messages_queued", "plain messages queued"),
        ("sessions_active", "active survey sessions"),
        ("survey_messages_queued", "question-1 messages queued"),
    ):
        if r[key] != n:
            found.append(f"{r[key]:,} {what} for {n:,} cases")
    if r["failed_messages"]:
        found.append(f"{r['failed_messages']:,} messages failed")
    if r["instances_still_due"]:
        found.append(f"{r['instances_still_due']:,} schedule instances still due")
    return found


def measure(ws: Workspace, n: int) -> dict[str, Any]:
    say = ws.console.print
    results: dict[str, Any] = {"n": n, "database": ws.vendor, "machine": machine_info(ws.vendor)}
    csv_path = ws.root / "mothers.csv"
    say(f"set-up: {n:,} '{CASE_TYPE}' cases, each on its own number → {csv_path.name}")
    write_csv(csv_path, n)
    target = ws.fresh("surveys")
    results["setup_import_seconds"] = import_mothers(ws, target, csv_path)
    say("plain SMS broadcast, then the same broadcast starting a survey (one process)")
    ours = _run_worker(ws, target)
    plain_s, survey_s = float(ours["plain_sms_seconds"]), float(ours["survey_start_seconds"])
    results.update({k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()})
    results["plain_sms_per_s"] = _rate(n, plain_s)
    results["survey_start_per_s"] = _rate(n, survey_s)
    ratio = results["survey_start_per_s"] / results["plain_sms_per_s"]
    results["survey_start_ratio"] = round(ratio, 3) if results["plain_sms_per_s"] else 0.0
    results["target_ratio"] = TARGET_RATIO
    try:
        results["load_average_at_end"] = list(os.getloadavg())
    except OSError:
        results["load_average_at_end"] = []
    results["problems"] = problems_of(n, ours)
    return results


def run(n: int = 100_000, *, json_out: Path | None = None) -> dict[str, Any]:
    """Measure both rates for ``n`` cases (see the module); the figures, with at least
    ``survey_start_per_s``, ``plain_sms_per_s`` and ``survey_start_ratio``, the machine's
    load average at start and end, and ``problems`` (empty when every check passed).
    ``json_out``: also written there."""
    if n < 1:
        raise ValueError("n must be at least 1")
    ws = Workspace(
        root=Path(tempfile.mkdtemp(prefix="casereach-bench-surveys-")), base_url=postgres_base_url()
    )
    try:
        results = measure(ws, n)
    finally:
        ws.cleanup()
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2) + "\n")
    return results
