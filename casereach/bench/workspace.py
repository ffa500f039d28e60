"""Where a benchmark runs: a temporary directory, a database of its own per measurement (SQLite,
or a fresh PostgreSQL database when CASEREACH_DATABASE_URL names one), the real command line
in a subprocess, a served instance, and what the machine is."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import urlparse, urlunparse

import httpx
from rich.console import Console

PROJECT = "bench"


API_USER = "bench@example.org"


ZONES = ("Africa/Nairobi", "Europe/London", "America/New_York")


LANGUAGES = ("en", "sw")


# The pragmas casereach.settings gives every SQLite connection (minus foreign keys).
FLOOR_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-64000",
    "PRAGMA temp_store=MEMORY",
)


class BenchError(RuntimeError):
    """A measurement could not run (the message says which step and why)."""


def case_id() -> str:
    """A case id made the way ``casereach.cases.actions.new_case_id`` makes one (UUIDv7)."""
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | secrets.randbits(12) << 64
        | 0b10 << 62
        | secrets.randbits(62)
    )
    return str(uuid.UUID(int=value))


@dataclass
class Target:
    """Where one measurement's database lives."""

    url: str
    vendor: str


@dataclass
class Workspace:
    root: Path
    base_url: str | None  # PostgreSQL URL the user pointed at, else None (SQLite)
    created_dbs: list[str] = field(default_factory=list)
    console: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def vendor(self) -> str:
        return "postgresql" if self.base_url else "sqlite"

    def database(self, name: str) -> Target:
        if not self.base_url:
            return Target(str(self.root / f"{name}.sqlite3"), "sqlite")
        db_name = f"casereach_bench_{name}_{secrets.token_hex(4)}"
        _pg_admin(self.base_url, "CREATE DATABASE {}", db_name)
        self.created_dbs.append(db_name)
        parsed = urlparse(self.base_url)
        return Target(urlunparse(parsed._replace(path="/" + db_name)), "postgresql")

    def env(self, target: Target) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CASEREACH_BROKER_URL", None)  # the embedded default
        env["CASEREACH_DATABASE_URL"] = target.url
        env["CASEREACH_SECRET_KEY"] = "bench-" + secrets.token_hex(16)
        env.setdefault("CASEREACH_LOG_LEVEL", "WARNING")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, target: Target, *args: str, timeout: float = 600) -> str:
        """Run ``python -m casereach ARGS``; its stdout, or BenchError with its stderr."""
        proc = subprocess.run(
            [sys.executable, "-m", "casereach", *args],
            cwd=self.root,
            env=self.env(target),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise BenchError(
                f"'casereach {' '.join(args[:2])}' failed: {detail[-1] if detail else proc.returncode}"
            )
        return proc.stdout

    def fresh(self, name: str) -> Target:
        """A new database, migrated, with the bench project in it."""
        target = self.database(name)
        self.cli(target, "init")
        self.cli(target, "project", "create", PROJECT, "--languages", ",".join(LANGUAGES))
        return target

    def cleanup(self) -> None:
        if self.base_url:
            for db_name in self.created_dbs:
                try:
                    _pg_admin(self.base_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", db_name)
                except BenchError as exc:
                    self.console.print(f"[yellow]could not drop {db_name}: {exc}[/yellow]")
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_admin(url: str, statement: LiteralString, name: str) -> None:
    """Run one administrative statement naming database ``name`` (autocommit)."""
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    problem = ""
    # The maintenance database first: the one in the URL may not exist yet.
    for dbname in dict.fromkeys(("postgres", parsed.path.lstrip("/") or "postgres")):
        try:
            with psycopg.connect(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 5432,
                user=parsed.username or "postgres",
                password=parsed.password or None,
                dbname=dbname,
                autocommit=True,
            ) as conn:
                conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
                return
        except psycopg.OperationalError as exc:
            problem = str(exc).strip().splitlines()[0]
        except psycopg.Error as exc:
            raise BenchError(f"PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
    raise BenchError(f"PostgreSQL: {problem}")


def rss_mb(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS bytes.
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(ws: Workspace, target: Target) -> Iterator[str]:
    """A ``casereach serve`` subprocess on a free local port; yields its base URL."""
    port = _free_port()
    log = (ws.root / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "casereach", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ws.root,
        env=ws.env(target),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchError(f"casereach serve exited early ({proc.returncode})")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("casereach serve did not become healthy in 60 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def machine_info(vendor: str) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "database": vendor,
        "load_average_at_start": load,
    }


def postgres_base_url() -> str | None:
    """The PostgreSQL server ``CASEREACH_DATABASE_URL`` names (each run makes its own
    temporary database there), or None for the embedded SQLite default."""
    url = os.environ.get("CASEREACH_DATABASE_URL", "").strip()
    return url if url.startswith(("postgres://", "postgresql://")) else None
