"""/healthz, /metrics and ``casereach doctor`` in the embedded mode, and the scale-out CLI's
answers to a bad configuration (no broker needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from casereach.messaging.dispatch import Dispatcher
from casereach.testing.provider import ProviderServer, Reply
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casereach", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CASEREACH_BROKER_URL"}
    env["CASEREACH_DATABASE_URL"] = str(tmp_path / "doctor.sqlite3")
    return env


def test_healthz_without_broker_reports_the_database(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASEREACH_BROKER_URL", raising=False)
    r = Client().get("/healthz")
    assert 200 == r.status_code
    assert "broker" not in r.json()
    assert "ok" == r.json()["status"]


def test_healthz_is_503_when_the_broker_is_unreachable(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASEREACH_BROKER_URL", "redis://127.0.0.1:1/0")
    r = Client().get("/healthz")
    assert 503 == r.status_code
    body = r.json()
    assert "error" == body["status"]
    assert body["broker"].startswith("cannot reach the broker at redis://127.0.0.1:1/0")


def test_metrics_count_the_outbox_and_gateway_calls(api: Api) -> None:
    with ProviderServer() as provider:
        provider.script("/send", Reply(200, {"id": "p-1"}), Reply(200, {"id": "p-2"}))
        cfg = {
            "url": provider.url + "/send",
            "params": {"to": "{to}", "text": "{text}"},
            "provider_id_path": "id",
        }
        assert (
            201 == api.post(M + "gateways", {"name": "HTTP", "type": "http", "config": cfg}).status
        )
        api.put(M + "routes", {"default_gateway": "HTTP", "prefixes": []})
        for number in ("254712345678", "254712345679", "254712345670"):
            assert 202 == api.post(M + "send", {"phone_number": number, "text": "Hi"}).status
        before = Client().get("/metrics").content.decode()
        assert 'casereach_outbox_messages{status="queued"} 3' in before
        assert "casereach_outbox_due 3" in before
        d = Dispatcher(batch_size=2, concurrency=2)
        try:
            d.run_once()
        finally:
            d.close()
    r = Client().get("/metrics")
    assert 200 == r.status_code
    assert r["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.content.decode()
    assert 'casereach_outbox_messages{status="sent"} 2' in text
    assert 'casereach_outbox_messages{status="queued"} 1' in text
    assert 'casereach_gateway_sends_total{gateway="HTTP",outcome="sent"} 2' in text
    assert 'casereach_gateway_send_duration_seconds_count{gateway="HTTP",outcome="sent"} 2' in text
    assert (
        'casereach_gateway_send_duration_seconds_bucket{gateway="HTTP",outcome="sent",le="+Inf"} 2'
        in text
    )
    assert "casereach_lease_reclaims_total 0" in text
    assert "casereach_schedule_due 0" in text
    assert "casereach_inbound_queued 0" in text


def test_doctor_names_missing_migrations_then_passes(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    before = cli("doctor", env=env)
    assert 1 == before.returncode
    assert "run 'casereach init'" in before.stdout
    assert 0 == cli("init", env=env).returncode
    after = cli("doctor", env=env)
    assert 0 == after.returncode, after.stdout
    assert "ok   broker     not configured" in after.stdout


def test_doctor_says_the_broker_is_unreachable(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "CASEREACH_BROKER_URL": "redis://127.0.0.1:1/0"}
    assert 0 == cli("init", env=env).returncode
    out = cli("doctor", env=env)
    assert 1 == out.returncode
    assert "FAIL broker     cannot reach the broker at redis://127.0.0.1:1/0" in out.stdout


def test_worker_and_beat_refuse_to_start_without_a_broker(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    for command in ("worker", "beat"):
        out = cli(command, env=env)
        assert 1 == out.returncode
        assert "error: CASEREACH_BROKER_URL is not set" in out.stderr


def test_worker_rejects_an_unknown_queue_and_a_bad_broker_scheme(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "CASEREACH_BROKER_URL": "redis://127.0.0.1:1/0"}
    out = cli("worker", "--queues", "dispatch,nonsense", env=env)
    assert 1 == out.returncode
    assert "error: unknown queue nonsense" in out.stderr
    env["CASEREACH_BROKER_URL"] = "http://127.0.0.1/"
    out = cli("worker", env=env)
    assert 1 == out.returncode
    assert "must start with redis:// or amqp://" in out.stderr
