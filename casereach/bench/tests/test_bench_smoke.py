"""``casereach bench ingest`` end to end at a tiny size: it runs and writes every figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casereach.bench.ingest import run_bench
from casereach.cli.main import app

pytestmark = pytest.mark.slow

KEYS = (
    "import_cases_per_s",
    "bulk_api_cases_per_s",
    "floor_cases_per_s",
    "import_floor_ratio",
    "import_1m_peak_rss_mb",
)


def test_bench_ingest_writes_every_result(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    document = run_bench("ingest", cases=300, json_out=out, rss_rows=1000)

    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(document))
    assert written["suite"] == "ingest"
    for key in KEYS:
        assert written["results"][key] > 0, key
    # SQLite carries every target; PostgreSQL only its import rate (its floor is sqlite3 too).
    expected = (
        {"import_cases_per_s"}
        if written["results"]["database"] == "postgresql"
        else set(KEYS) - {"floor_cases_per_s"}
    )
    assert expected == set(written["targets"])
    assert written["results"]["bulk_api_requests"] == 3
    assert written["machine"]["cpus"] >= 1


def test_unknown_suite_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown benchmark suite 'no-such-suite'"):
        run_bench("no-such-suite", cases=10, json_out=None, rss_rows=0)


def test_bench_dispatch_writes_its_figures_and_the_gateway_bound(tmp_path: Path) -> None:
    from casereach.bench.dispatch import run_dispatch_suite

    out = tmp_path / "dispatch.json"

    document = run_dispatch_suite(messages=400, drain_rows=0, json_out=out)

    results = json.loads(out.read_text())["results"]
    assert document["results"] == results
    assert 0 == results["dispatch_not_sent"]
    for key in (
        "dispatch_msgs_per_s",
        "floor_msgs_per_s",
        "dispatch_floor_ratio",
        "gateway_path_msgs_per_s",
        "gateway_path_floor_ratio",
        "slow_tail_stream_msgs_per_s",
        "slow_tail_batches_msgs_per_s",
        "whatsapp_per_s",
        "http_per_s",
        "whatsapp_http_ratio",
    ):
        assert results[key] > 0, key
    assert 400 == results["slow_tail_messages"]
    # The WhatsApp run: two runs of each type, every message answered by the one provider.
    assert (400, 1600) == (results["whatsapp_messages"], results["whatsapp_provider_requests"])
    assert 2 == len(results["whatsapp_runs_per_s"]) == len(results["http_runs_per_s"])
    before, after = results["floor_runs_msgs_per_s"]
    assert round((before + after) / 2, 1) == pytest.approx(results["floor_msgs_per_s"], abs=0.2)


def test_bench_alerts_writes_its_figures_and_the_write_floor(tmp_path: Path) -> None:
    from casereach.bench.alerts import run_alerts_suite

    out = tmp_path / "alerts.json"

    run_alerts_suite(cases=300, json_out=out)

    results = json.loads(out.read_text())["results"]
    assert [] == results["problems"]
    assert (300, 300) == (results["messages"], results["firings"])
    for key in (
        "activation_cases_per_s",
        "due_scan_instances_per_s",
        "activation_floor_ratio",
        "due_scan_floor_ratio",
        "due_scan_write_floor_per_s",
        "due_scan_write_floor_ratio",
        "due_scan_share_of_write_floor",
    ):
        assert results[key] > 0, key


def test_bench_dispatch_whatsapp_alone_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "whatsapp.json"

    r = CliRunner().invoke(
        app, ["bench", "dispatch", "--whatsapp", "--cases", "300", "--json", str(out)]
    )

    assert 0 == r.exit_code, r.output
    document = json.loads(out.read_text())
    results = document["results"]
    assert ("dispatch-whatsapp", {"whatsapp_http_ratio": 0.8}) == (
        document["suite"],
        document["targets"],
    )
    assert (300, 1200) == (results["whatsapp_messages"], results["whatsapp_provider_requests"])
    assert results["whatsapp_http_ratio"] == pytest.approx(
        results["whatsapp_per_s"] / results["http_per_s"], abs=0.002
    )
    r = CliRunner().invoke(app, ["bench", "alerts", "--whatsapp"])
    assert (1, "error: --whatsapp applies to 'dispatch' only") == (r.exit_code, r.output.strip())
