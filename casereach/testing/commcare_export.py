"""The real commcare-export CLI against a live test server (tests only).

``CommCareExport.run`` runs the CLI with a socket guard (``LOCAL_ONLY``, loaded through
``PYTHONPATH``) that refuses any non-loopback connection, so the export can only ever talk to
the live test server and the local PostgreSQL it writes to; proxies and our own settings are
left out of its environment. commcare-export 1.16.0's SQL writer knows only PostgreSQL, MySQL,
MSSQL and Oracle, so SQL outputs go to ``scratch_database()`` (the root conftest's
``export_db`` fixture).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from casereach.projects.models import Project

CLI = shutil.which("commcare-export")
USER = "exporter@example.org"

LOCAL_ONLY = """
import ipaddress
import socket

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _check(address):
    if isinstance(address, tuple):
        host = address[0]
        try:
            local = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise OSError(f"commcare-export test: non-local connection to {address!r} refused")


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
"""


@dataclass(frozen=True)
class CommCareExport:
    """How one test module runs the CLI: the data source it reads (as the client's debug log
    names it), the page size it asks for and how long a run may take."""

    source: str
    batch_size: int
    timeout_s: int

    def run(
        self,
        server: str,
        project: Project,
        key: str,
        query: Path,
        workdir: Path,
        *output: str,
        auth_mode: str | None = "apikey",
        username: str = USER,
    ) -> subprocess.CompletedProcess[str]:
        """One export of ``query`` as ``username`` (``key`` its API key, or with
        ``auth_mode=None``, commcare-export's default HTTP Digest, an API key or the web
        password); fails the test on an error or a traceback."""
        guard = workdir / "guard"
        guard.mkdir(exist_ok=True)
        (guard / "sitecustomize.py").write_text(LOCAL_ONLY)
        env = {
            k: v
            for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
            and not k.startswith(("DJANGO_", "CASEREACH_"))
        }
        env["PYTHONPATH"] = str(guard)
        env["NO_PROXY"] = "localhost,127.0.0.1"
        assert CLI is not None
        cmd = [
            CLI,
            *("--commcare-hq", server, "--project", project.name),
            *(("--auth-mode", auth_mode) if auth_mode else ()),
            *("--username", username, "--password", key, "--query", str(query)),
            *("--batch-size", str(self.batch_size), "--no-logfile", "--verbose"),
            *output,
        ]
        timeout = self.timeout_s
        try:
            proc = subprocess.run(
                cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"commcare-export timed out after {timeout}s; stderr:\n{exc.stderr!r}")
        if proc.returncode != 0 or "Traceback" in proc.stderr:
            sys.stderr.write(proc.stderr)
            pytest.fail(f"commcare-export exited {proc.returncode}; stderr:\n{proc.stderr[-5000:]}")
        return proc

    def fetches(self, proc: subprocess.CompletedProcess[str]) -> list[str]:
        """The client's own debug lines: one per request it sent."""
        return re.findall(rf"Fetching '{re.escape(self.source)}' batch: (.*)", proc.stderr)


def received(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r"Received (\d+ of -?\d+)", proc.stderr)


def sql_rows(url: str, table: str = "cases") -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as con:
        return list(con.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))))


def csv_rows(archive: Path, sheet: str = "cases") -> list[dict[str, str]]:
    with zipfile.ZipFile(archive) as zf:
        text = zf.read(f"{sheet}.csv").decode()
    return list(csv.DictReader(io.StringIO(text)))


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new PostgreSQL database (its URL) for the SQL output and its checkpoints, dropped
    after. ``CASEREACH_EXPORT_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
    is used only to create and drop it; the test is skipped when no server answers there."""
    admin = os.environ.get(
        "CASEREACH_EXPORT_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"cc_export_{uuid.uuid4().hex[:12]}"
    try:
        con = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL for commcare-export's SQL writer at {admin}: {exc}")
    with con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            info = con.info
            yield f"postgresql://{info.user}@{info.host}:{info.port}/{name}"
        finally:
            con.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
