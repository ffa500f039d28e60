"""The CLI as a user runs it, for tests: ``python -m casereach …`` as a real subprocess on its
own SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with a fresh SQLite file under ``tmp_path`` (and no
    ``CASEREACH_PASSWORD``, so commands that ask for one ask)."""
    env = dict(os.environ)
    env["CASEREACH_DATABASE_URL"] = str(tmp_path / "cli.sqlite3")
    env.pop("CASEREACH_PASSWORD", None)
    return env


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``casereach ARGS`` run to its end; its exit code and output, never raising on failure."""
    return subprocess.run(
        [sys.executable, "-m", "casereach", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
