"""``casereach worker`` and ``casereach beat``: the Celery processes, started in-process."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from casereach.scaleout import config
from casereach.scaleout.app import get_app


def worker_argv(queues: str, concurrency: int, loglevel: str) -> list[str]:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q.removeprefix(config.QUEUE_PREFIX) not in config.QUEUES]
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


def run_worker(queues: str, concurrency: int, loglevel: str = "WARNING") -> None:
    get_app().worker_main(worker_argv(queues, concurrency, loglevel))


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
