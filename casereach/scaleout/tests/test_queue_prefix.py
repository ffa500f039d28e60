"""CASEREACH_QUEUE_PREFIX: installations sharing one broker keep to their own queues and keys
(the live check, two prefixes on one broker, is in tests/scaleout/test_e2e.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from casereach.scaleout import config


def test_the_default_prefix_keeps_the_queue_names_and_keys_deployments_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(config.PREFIX_ENV, raising=False)
    settings = config.celery_settings("redis://127.0.0.1:6379/0")
    assert "casereach.dispatch" == settings["task_default_queue"]
    assert {"visibility_timeout": 3600} == settings["broker_transport_options"]


def test_a_prefix_names_every_queue_and_every_redis_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.PREFIX_ENV, "site-b.")
    settings = config.celery_settings("redis://127.0.0.1:6379/0")
    queues = {r["queue"] for r in settings["task_routes"].values()}
    assert {"site-b.dispatch", "site-b.schedule", "site-b.bulk"} == queues
    assert "site-b." == settings["broker_transport_options"]["global_keyprefix"]
    # RabbitMQ separates by queue name alone (a vhost per installation is the stronger way).
    amqp = config.celery_settings("amqp://guest:guest@127.0.0.1:5672//")
    assert "global_keyprefix" not in amqp["broker_transport_options"]
    assert "site-b.bulk" == amqp["task_routes"]["casereach.import_cases"]["queue"]
    assert "dispatch" == config.short_name("site-b.dispatch")


@pytest.mark.parametrize("bad", ["Site.", "site", ".site.", "site..b.", "si te.", "a" * 70 + "."])
def test_a_bad_prefix_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(config.PREFIX_ENV, bad)
    with pytest.raises(ValueError, match="CASEREACH_QUEUE_PREFIX must be"):
        config.check_broker_url("redis://127.0.0.1:6379/0")


def test_worker_with_a_bad_prefix_stops_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CASEREACH_DATABASE_URL": str(tmp_path / "prefix.sqlite3"),
        "CASEREACH_BROKER_URL": "redis://127.0.0.1:1/0",
        config.PREFIX_ENV: "Not A Prefix",
    }
    out = subprocess.run(
        [sys.executable, "-m", "casereach", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 1 == out.returncode
    assert out.stderr.startswith("error: CASEREACH_QUEUE_PREFIX must be"), out.stderr
    assert 1 == len(out.stderr.strip().splitlines())
