"""A bench that leaves messages postponed or failed stops and names the error codes, instead
of waiting for a timeout; and the latency-hiding measurement sends every message."""

from __future__ import annotations

import pytest

from casereach.bench.dispatch import _dispatch_run, run_latency
from casereach.bench.fastprovider import Provider
from casereach.bench.outcomes import BenchStalled, check, describe

pytestmark = pytest.mark.slow


def test_describe_names_each_code_and_count() -> None:
    rows = [("queued", "DAILY_LIMIT_REACHED", 46000), ("failed", "GATEWAY_ERROR", 3)]
    assert "46,000 postponed (DAILY_LIMIT_REACHED), 3 failed (GATEWAY_ERROR)" == describe(rows)
    check([], "dispatch")  # nothing stuck: no error


def test_the_dispatch_bench_fails_loudly_when_the_daily_limit_is_hit() -> None:
    provider = Provider(workers=1)
    try:
        with pytest.raises(BenchStalled) as caught:
            _dispatch_run(provider.url, 20, daily_limit=5)
    finally:
        assert 5 == provider.stop()
    assert "bench dispatch: messages were postponed or failed instead of sent: " + (
        "15 postponed (DAILY_LIMIT_REACHED)"
    ) == str(caught.value)


def test_the_latency_measurement_sends_every_message_through_a_wide_window() -> None:
    results = run_latency(300, delay_ms=50, rate_limit_per_s=None, max_in_flight=100)
    assert 300 == results["latency_provider_requests"]
    assert 100 == results["latency_max_in_flight"]
    assert 2000.0 == results["latency_ceiling_msgs_per_s"]
    assert results["latency_msgs_per_s"] > 0
