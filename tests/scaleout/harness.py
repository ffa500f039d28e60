"""Real processes for the scale-out tests: a fresh PostgreSQL database, a broker, a counting
HTTP provider, and ``casereach serve --no-workers`` / ``worker`` / ``beat`` subprocesses.

Nothing is faked: a broker or database that is not there fails the test with a loud message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

PG_ADMIN = os.environ.get("CASEREACH_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CASEREACH_TEST_REDIS", "redis://127.0.0.1:6379")
AMQP_URL = os.environ.get("CASEREACH_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_DB = 12  # this suite's Redis database; each cluster's keys carry its own prefix


def loud(message: str) -> None:
    bar = "!" * 78
    pytest.fail(f"\n{bar}\n!!!! {message}\n{bar}", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ok: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- the provider ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # The listen backlog is set in the constructor: assigning it afterwards changes nothing,
    # and the default 5 drops connections when a worker opens hundreds at once.
    request_queue_size = 1024


class CountingProvider:
    """An SMS provider on loopback: counts requests per Idempotency-Key, keeps the bodies."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.keys: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.delay_s = delay_s
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                key = self.headers.get("Idempotency-Key", "")
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with owner.lock:
                    owner.keys[key] += 1
                    owner.bodies.append(body)
                    owner.times.append(time.monotonic())
                out = json.dumps({"id": f"p-{key}"}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the worker was killed mid-request

            def log_message(self, *args: object) -> None:
                return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]  # resets from killed workers
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/send"

    def total(self) -> int:
        with self.lock:
            return sum(self.keys.values())

    def to(self, number: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.bodies if b.get("to") == number]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gateway_config(url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    return {
        "url": url,
        "method": "POST",
        "encoding": "json",
        "params": {"to": "{to}", "text": "{text}", "id": "{message_id}"},
        "provider_id_path": "id",
        "timeout_s": timeout_s,
    }


# -- services ------------------------------------------------------------------------------------


def require_redis(url: str = REDIS_URL) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:
        loud(
            f"Redis at {url} is not reachable ({exc}): the scale-out suite cannot run. "
            "Start it (.ci/run tries 'redis-server --daemonize yes')."
        )


def require_rabbitmq(url: str = AMQP_URL) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        loud(
            f"RabbitMQ at {url} is not reachable ({exc}): the scale-out suite cannot run. "
            "Start it (.ci/run tries 'service rabbitmq-server start')."
        )


def require_postgres(url: str = PG_ADMIN) -> None:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:
        loud(f"PostgreSQL at {url} is not reachable ({exc}): the scale-out suite cannot run.")


def broker_url(kind: str) -> str:
    """The shared broker, checked. Each cluster keeps to queues (and, on Redis, keys) under a
    prefix of its own, so a run beside another (CI and a developer, two checkouts) neither
    takes the other's kicks nor counts its workers; nothing is flushed or purged."""
    if kind == "redis":
        require_redis()
        return f"{REDIS_URL}/{REDIS_DB}"
    require_rabbitmq()
    return AMQP_URL


def fresh_prefix() -> str:
    return f"casereach-t{uuid.uuid4().hex[:10]}."


def forget_broker(url: str, prefix: str) -> None:
    """Remove one cluster's queues (RabbitMQ) or keys (Redis) once it has stopped."""
    try:
        if url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            for key in client.scan_iter(match=f"{prefix}*", count=500):
                client.delete(key)
            return
        from kombu import Connection

        with Connection(url, connect_timeout=3) as conn:
            channel = conn.channel()
            for short in ("dispatch", "schedule", "bulk"):
                try:
                    channel.queue_delete(prefix + short)
                except Exception:
                    channel = conn.channel()  # never declared: nothing to remove
    except Exception as exc:  # the broker a fault test stopped; its leftovers are harmless
        print(f"note: could not remove {prefix}* from {url}: {exc}")


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN) -> Iterator[str]:
    """A new, empty PostgreSQL database for one cluster; dropped afterwards."""
    require_postgres(admin_url)
    name = f"casereach_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sql(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as con:
        return list(con.execute(query, params).fetchall())


def statuses(db_url: str) -> dict[str, int]:
    return dict(
        sql(
            db_url,
            "SELECT status, COUNT(*) FROM messaging_message WHERE direction = 'out' GROUP BY status",
        )  # type: ignore[arg-type]
    )


# -- the cluster ----------------------------------------------------------------------------------


class Cluster:
    """``serve --no-workers``, Celery workers and beats as real subprocesses."""

    def __init__(self, db_url: str, broker: str, logs: Path, **env: str) -> None:
        self.db_url = db_url
        self.broker = broker
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,  # PYTHONPATH included: the subprocesses run this checkout
            "CASEREACH_DATABASE_URL": db_url,
            "CASEREACH_BROKER_URL": broker,
            "CASEREACH_KICK_SECONDS": "0.5",
            "CASEREACH_SECRET_KEY": "scale-out-test-secret-key-0123456789abcdef",
            "CASEREACH_QUEUE_PREFIX": fresh_prefix(),
            **env,
        }
        self.prefix = self.env["CASEREACH_QUEUE_PREFIX"]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.clients: list[Client] = []  # closed with the cluster
        self.web_url = ""

    def cli(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "casereach", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert 0 == out.returncode, f"casereach {' '.join(args)}: {out.stderr[-2000:]}"
        return out.stdout

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        # The child writes to its own copy of the descriptor; ours closes here.
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "casereach", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_worker(self, name: str, *, concurrency: int = 4, wait: bool = True) -> None:
        before = self.log(name).count(" ready.")
        self._start(name, "worker", "--concurrency", str(concurrency), "--loglevel", "INFO")
        if wait:
            wait_for(
                f"{name} to be ready",
                lambda: self.log(name).count(" ready.") > before or self._dead(name),
                90,
            )
            assert not self._dead(name), self.log(name)[-3000:]

    def start_beat(self, name: str = "beat") -> None:
        self._start(name, "beat", "--loglevel", "INFO")

    def start_web(self) -> str:
        port = free_port()
        self._start("web", "serve", "--no-workers", "--port", str(port))
        self.web_url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert not self._dead("web"), self.log("web")[-3000:]
            try:
                return httpx.get(self.web_url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the web server", up, 90)
        return self.web_url

    def _dead(self, name: str) -> bool:
        return self.procs[name].poll() is not None

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def stop(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for client in self.clients:
            client.http.close()
        for name in list(self.procs):
            self.stop(name)
        forget_broker(self.broker, self.prefix)

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)[-1500:]}" for n in self.procs)


class Client:
    """The HTTP API as one project's key holder."""

    def __init__(self, base: str, project: str, auth: str) -> None:
        self.base = base
        self.project = project
        self.http = httpx.Client(base_url=base, headers={"Authorization": auth}, timeout=30)

    def path(self, p: str) -> str:
        return p.replace("{project}", self.project)

    def get(self, p: str, **params: Any) -> httpx.Response:
        return self.http.get(self.path(p), params=params)

    def post(self, p: str, body: Any) -> httpx.Response:
        return self.http.post(self.path(p), json=body)

    def put(self, p: str, body: Any) -> httpx.Response:
        return self.http.put(self.path(p), json=body)


def make_project(cluster: Cluster, name: str) -> Client:
    cluster.cli("project", "create", name, "--time-zone", "Africa/Nairobi")
    out = cluster.cli("apikey", "create", "--project", name, "--username", f"{name}@example.org")
    key = out.strip().splitlines()[-1]
    assert re.fullmatch(r"\S+", key)
    client = Client(cluster.web_url, name, f"ApiKey {name}@example.org:{key}")
    cluster.clients.append(client)
    return client


# -- private servers the fault tests may stop (never the machine's shared ones) ----------------


class PrivateRedis:
    """A redis-server of this test's own on a free port: stopping it harms nobody else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        require_redis_soon(self.url)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def require_redis_soon(url: str) -> None:
    import redis

    def up() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
        except Exception:
            return False

    wait_for(f"redis at {url}", up, 30)


PG_BIN = Path(os.environ.get("CASEREACH_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb in a temporary directory, a free
    port, its socket in the same directory), run as the ``postgres`` user when we are root."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its parents are private to root, and the postgres
        # user must reach its data directory and socket.
        workdir = Path(tempfile.mkdtemp(prefix="casereach-pg-"))
        self.workdir = workdir
        if not (PG_BIN / "initdb").exists():
            loud(f"{PG_BIN}/initdb not found: set CASEREACH_TEST_PG_BIN to PostgreSQL's bin dir")
        self.port = free_port()
        self.dir = workdir / "pgdata"
        self.sock = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(workdir, "postgres", "postgres")
        subprocess.run(
            [
                *self.as_user,
                str(PG_BIN / "initdb"),
                "-D",
                str(self.dir),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *self.as_user,
                str(PG_BIN / "postgres"),
                "-D",
                str(self.dir),
                "-p",
                str(self.port),
                "-k",
                str(self.sock),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                psycopg.connect(self.admin_url, connect_timeout=1).close()
                return True
            except Exception:
                return False

        wait_for("the private PostgreSQL", up, 60)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are cut, committed data is kept."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pid_file = self.dir / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else self.proc.pid
        os.kill(pid, signal.SIGINT)
        self.proc.wait(60)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
