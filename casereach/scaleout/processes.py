"""``casereach worker`` and ``casereach beat``: the Celery processes, started in-process."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from casereach.scaleout import config
from casereach.scaleout.app import get_app


def worker_argv(queues: str, concurrency: int, loglevel: str) -> list[str]:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if config.short_name(q) not in config.QUEUES]
    if not names or unknown:
        raise ValueError(
            f"unknown queue {', '.join(unknown) or '(none)'}: choose from {', '.join(config.QUEUES)}"
        )
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    return [
        "worker",
        # Threads: the dispatcher waits on gateways, not on the CPU, and a thread pool keeps
        # one process per worker (kill -9 takes it all, the reaper re-claims its leases).
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--queues",
        ",".join(config.queue_name(q) for q in names),
        "--hostname",
        f"casereach-{os.getpid()}@{socket.gethostname()}",
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


CHILD_ENV = "CASEREACH_WORKER_CHILD"
RESTART_DELAY_S = 2.0


def run_worker(queues: str, concurrency: int, loglevel: str = "WARNING") -> None:
    """The Celery worker, in a child process that is started again whenever it dies on its
    own. Celery can give up on a broker outage ("Unrecoverable error" while restoring
    unacknowledged messages over Redis, kombu#970, kombu#582); the database holds all the
    state, so a fresh worker simply carries on. SIGTERM/SIGINT stop it for good, and the
    child dies with this process even on kill -9 (PR_SET_PDEATHSIG)."""
    if os.environ.get(CHILD_ENV):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per gateway call
        logging.getLogger("celery").addHandler(_ExitOnUnrecoverable())
        get_app().worker_main(worker_argv(queues, concurrency, loglevel))
        return
    argv = [sys.executable, "-m", "casereach", "worker", "--queues", queues]
    argv += ["--concurrency", str(concurrency), "--loglevel", loglevel]
    env = {**os.environ, CHILD_ENV: "1"}
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)
        code = child.wait()
        if stopping:  # asked to stop: pass the child's exit code on
            sys.exit(code)
        sys.stderr.write(
            f"casereach worker: the Celery worker exited with code {code}; "
            f"starting it again in {RESTART_DELAY_S:g} s\n"
        )
        sys.stderr.flush()
        time.sleep(RESTART_DELAY_S)


class _ExitOnUnrecoverable(logging.Handler):
    """Celery logs "Unrecoverable error" and then tries a clean stop, which can hang when the
    broker is gone. Leave a few seconds for that, then exit so the supervisor starts a fresh
    worker (the database leases cover whatever was in flight)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.CRITICAL and "Unrecoverable error" in record.getMessage():
            timer = threading.Timer(GRACE_S, os._exit, args=(70,))
            timer.daemon = True
            timer.start()


GRACE_S = 5.0


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_beat(loglevel: str = "WARNING") -> None:
    """Periodic kicks (dispatch, fire due schedules, reap leases). The schedule is fixed
    intervals, so its state file is per process and thrown away."""
    with tempfile.TemporaryDirectory(prefix="casereach-beat-") as tmp:
        get_app().start(
            [
                "beat",
                "--schedule",
                str(Path(tmp) / "schedule"),
                "--loglevel",
                loglevel,
                "--pidfile=",
            ]
        )
