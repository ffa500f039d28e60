"""``casereach bench send`` at a tiny size: it writes every figure, checks every message arrived
exactly once, and fails loudly, naming the error code, when messages are put off."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casereach.bench.send import run_send_suite
from casereach.bench.send_report import load_peer
from casereach.bench.sendprovider import CountingProvider, marker_index

pytestmark = pytest.mark.slow

FIGURES = (
    "healthz_per_s",
    "send_single_per_s",
    "single_healthz_ratio",
    "serve_drain_msgs_per_s",
    "serve_drain_incl_startup_msgs_per_s",
    "latency300_msgs_per_s",
    "e2e_batch_msgs_per_s",
    "send_batch_per_s",
)


def test_bench_send_writes_every_figure_and_checks_each_message(tmp_path: Path) -> None:
    out = tmp_path / "send.json"

    document = run_send_suite(n=40, clients=2, json_out=out)

    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(document))
    assert "send" == written["suite"]
    results = written["results"]
    assert [] == results["problems"]
    for key in FIGURES:
        assert results[key] > 0, key
    assert ("send-batch", "send-batch") == (results["drain_queued_by"], results["e2e_sent_by"])
    assert 1 == results["send_batch_requests"]
    for phase in ("drain", "latency300", "e2e"):
        assert {
            "expected": 40,
            "requests": 40,
            "unique": 40,
            "duplicates": 0,
            "missing": 0,
            "unmatched": 0,
            "exactly_once": True,
        } == results[f"{phase}_check"], phase
    assert {"sent": 40} == results["drain_outbox_after"]
    assert {"queued": 40} == results["drain_outbox_before"]
    assert {"sent": 40} == results["e2e_outbox"]
    assert {"single_healthz_ratio", "latency300_msgs_per_s"} <= set(written["targets"])


def test_bench_send_fails_naming_the_code_when_messages_are_put_off(tmp_path: Path) -> None:
    out = tmp_path / "send.json"

    with pytest.raises(ValueError, match="DAILY_LIMIT_REACHED") as caught:
        run_send_suite(n=30, clients=2, only="drain", json_out=out, daily_limit=10)

    assert "20 postponed or retrying" in str(caught.value)
    problems = json.loads(out.read_text())["results"]["problems"]
    assert 1 == len(problems)
    assert "DAILY_LIMIT_REACHED x 20" in problems[0]


def test_the_counting_provider_reports_duplicates_and_missing(tmp_path: Path) -> None:
    provider = CountingProvider(tmp_path, "p", 5, workers=1)
    try:
        with socket.create_connection(("127.0.0.1", provider.port)) as conn:
            for i in (0, 1, 1, 3, 99):
                conn.sendall(
                    f"GET /send?text=Reminder+pbm{i}e%3A+hi HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                )
                assert conn.recv(4096).startswith(b"HTTP/1.1 200 OK")
            conn.sendall(b"POST /send HTTP/1.1\r\nContent-Length: 7\r\n\r\nno mark")
            assert conn.recv(4096).startswith(b"HTTP/1.1 200 OK")
        deadline = time.monotonic() + 5
        while provider.totals().requests < 6 and time.monotonic() < deadline:
            time.sleep(0.01)

        tally = provider.tally(5)
    finally:
        provider.stop()

    assert (6, 3, 1, 2, 2) == (
        tally.requests,
        tally.unique,
        tally.duplicates,
        tally.missing,
        tally.unmatched,
    )
    assert ([2, 4], [1]) == (tally.missing_sample, tally.duplicate_sample)
    assert not tally.exactly_once
    assert "1 duplicates (e.g. [1]), 2 missing (e.g. [2, 4])" in tally.problem()


def test_marker_index() -> None:
    assert 12 == marker_index(b"GET /send?text=Reminder+pbm12e%3A")
    assert marker_index(b"GET /send?text=pbme") is None
    assert marker_index(b"GET /send?text=hello") is None


def test_peer_json_without_kannel_figures_is_refused(tmp_path: Path) -> None:
    peer = tmp_path / "peer.json"
    peer.write_text(json.dumps({"n": 10, "systems": {"kannel": {"failure": "x"}}}))

    with pytest.raises(ValueError, match="has no Kannel enqueue_msgs_per_s"):
        load_peer(peer)


def test_peer_json_gives_the_kannel_figures(tmp_path: Path) -> None:
    peer = tmp_path / "peer.json"
    kannel = {"enqueue_msgs_per_s": 12011.2, "drain_msgs_per_s": 11533.0, "e2e_msgs_per_s": 6770}
    peer.write_text(json.dumps({"n": 20000, "systems": {"kannel": kannel}}))

    assert {
        "file": str(peer),
        "n": 20000,
        "kannel_enqueue_msgs_per_s": 12011.2,
        "kannel_drain_msgs_per_s": 11533.0,
        "kannel_e2e_msgs_per_s": 6770.0,
    } == load_peer(peer)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("ingest", "--only", "drain"), "--n, --clients, --database, --only and --peer-json"),
        (("send", "--only", "drain,nope"), "--only takes phases among accept, drain, latency300"),
        (("send", "--database", "sqlite:///x.db"), "--database takes a postgres:// URL"),
        (("send", "--n", "0"), "--n and --clients must be at least 1"),
    ],
)
def test_bad_send_options_are_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    env = {**os.environ, "CASEREACH_DATABASE_URL": str(tmp_path / "x.sqlite3")}

    r = subprocess.run(
        [sys.executable, "-m", "casereach", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert 1 == r.returncode
    assert 1 == len(r.stderr.strip().splitlines()), r.stderr
    assert r.stderr.startswith(f"error: {error}"), r.stderr
