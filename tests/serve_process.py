"""A real ``casereach serve`` for the kill -9 tests: the CLI to set it up, the process to
start, wait for, kill and stop (shared by the crash-safety tests so none copies it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.scaleout.harness import free_port


def cli(env: dict[str, str], *args: str) -> str:
    """``casereach <args>`` (checked); its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "casereach", *args],
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    return done.stdout


def serve_env(db: Path, **extra: str) -> dict[str, str]:
    """The environment of a server on the SQLite file ``db`` (``extra`` added)."""
    return {**os.environ, "CASEREACH_DATABASE_URL": str(db), **extra}


def project_with_test_gateway(env: dict[str, str], project: str = "crash") -> str:
    """A fresh database with ``project``, its default test gateway ``LOCAL`` and an API key;
    the ``Authorization`` header of that key."""
    cli(env, "init")
    cli(env, "project", "create", project)
    cli(env, "gateway", "add", "LOCAL", "--type", "test", "--project", project, "--default")
    made = cli(env, "apikey", "create", "--project", project, "--username", "ops@example.org")
    return f"ApiKey ops@example.org:{made.strip().splitlines()[-1]}"


class Serve:
    """``casereach serve`` processes on one port, started and stopped on demand; every one
    started is killed at ``close`` if still running."""

    def __init__(self, env: dict[str, str], port: int | None = None, quiet: bool = False) -> None:
        self.env = env
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.quiet = quiet
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **extra_env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "casereach", "serve", "--port", str(self.port)],
            env={**self.env, **extra_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if self.quiet else subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def wait_healthy(self, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b"serve stopped"
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve never answered /healthz"
            time.sleep(0.2)

    @staticmethod
    def kill_9(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        close_pipes(proc)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        close_pipes(proc)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            close_pipes(proc)


def close_pipes(proc: subprocess.Popen[bytes]) -> None:
    if proc.stderr is not None and not proc.stderr.closed:
        proc.stderr.close()
