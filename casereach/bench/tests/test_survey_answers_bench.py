"""``casereach bench surveys`` at a tiny size: it writes every figure, and every answer is
stored once and queues its session's next question; the command refuses options of other
suites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casereach.bench.survey_answers import WARMUP, run_surveys_suite
from casereach.cli.main import app


@pytest.mark.slow
def test_bench_surveys_writes_every_figure_and_counts_the_answers(tmp_path: Path) -> None:
    out = tmp_path / "surveys.json"

    document = run_surveys_suite(
        sessions=10, clients=2, answers_per_session=2, skip_start=True, json_out=out
    )

    results = json.loads(out.read_text())["results"]
    assert json.loads(json.dumps(document))["results"] == results
    assert [] == results["problems"]
    assert 10 * 2 + WARMUP == results["answers_sent"]
    assert results["answers_sent"] == results["answers_stored"]
    assert results["answers_sent"] == results["next_questions_queued"]
    for name in ("answers_per_s", "healthz_per_s", "answers_healthz_ratio"):
        assert results[name] > 0, name
    assert "answers_healthz_ratio" in document["targets"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "inbound", "--sessions", "5"], "apply to 'surveys' only"),
        (["bench", "surveys", "--n", "5"], "'surveys' takes --sessions"),
        (["bench", "surveys", "--sessions", "0"], "must be at least 1"),
    ],
)
def test_bench_surveys_options_are_checked(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(app, argv)

    assert 1 == result.exit_code
    assert message in result.output
