"""``casereach bench forwarding`` at a tiny size: it writes every figure and checks that every
forwarded case arrived (counted through the Case API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casereach.bench.forwarding import WARMUP, run_forwarding_suite

pytestmark = pytest.mark.slow


def test_bench_forwarding_writes_every_figure_and_counts_the_cases(tmp_path: Path) -> None:
    out = tmp_path / "forwarding.json"

    document = run_forwarding_suite(n=20, clients=2, json_out=out)

    results = json.loads(out.read_text())["results"]
    assert json.loads(json.dumps(document))["results"] == results
    assert [] == results["problems"]
    assert 20 + WARMUP == results["cases_counted"]
    for name in ("forwarding_cases_per_s", "healthz_per_s", "forwarding_healthz_ratio"):
        assert results[name] > 0, name
    assert "forwarding_healthz_ratio" in document["targets"]
