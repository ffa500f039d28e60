"""kill -9 while fallback chains move on (issue 21): a real ``casereach serve`` on a SQLite
file sends a batch of messages whose SMS a real local provider refuses for good (HTTP 400),
so each chain moves on to email over a real SMTP server. The server is killed while the
chains are moving on, restarted, and once every chain has settled each logical message must
have exactly one SMS attempt and one email attempt — none twice, none missing.

60 messages in CI; ``CASEREACH_FALLBACK_CRASH_MESSAGES=1000`` for a larger run.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from casereach.testing.provider import ProviderServer, Reply
from tests.serve_process import Serve, project_with_test_gateway, serve_env

MESSAGES = int(os.environ.get("CASEREACH_FALLBACK_CRASH_MESSAGES", "60"))
API = "/a/crash/api"
M = f"{API}/messaging/v1"


class Mailbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.rcpts.extend(envelope.rcpt_tos)
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.rcpts)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _setup(http: httpx.Client, provider: ProviderServer, smtp_port: int) -> list[str]:
    """The gateways, the channel order and the contacts; the contact ids."""
    cfg = {
        "url": provider.url + "/send",
        "params": {"to": "{to}", "text": "{text}", "key": "{message_id}"},
        "timeout_s": 5,
    }
    r = http.post(f"{M}/gateways", json={"name": "HTTP", "type": "http", "config": cfg})
    assert 201 == r.status_code, r.text
    mail = {"host": "127.0.0.1", "port": smtp_port, "from_address": "clinic@example.org"}
    r = http.post(f"{M}/gateways", json={"name": "MAIL", "type": "email", "config": mail})
    assert 201 == r.status_code, r.text
    r = http.put(f"{M}/routes", json={"default_gateway": "HTTP", "prefixes": []})
    assert 200 == r.status_code, r.text
    r = http.put(f"{M}/settings", json={"channel_order": ["sms", "email"]})
    assert 200 == r.status_code, r.text
    bodies = [
        {
            "case_type": "patient",
            "case_name": f"p{i}",
            "owner_id": "o",
            "create": True,
            "properties": {
                "contact_phone_number": f"25471{i:07d}",
                "commcare_email_address": f"p{i}@example.org",
            },
        }
        for i in range(MESSAGES)
    ]
    ids: list[str] = []
    for at in range(0, MESSAGES, 100):
        r = http.post(f"{API}/case/v2/", json=bodies[at : at + 100])
        assert 200 == r.status_code, r.text
        ids += [c["case_id"] for c in r.json()["cases"]]
    return ids


def _attempts(db: Path) -> list[tuple[str, str, str, str]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(
            "SELECT chain_id, channel, status, contact_id FROM messaging_message "
            "WHERE direction = 'out' AND chain_id IS NOT NULL ORDER BY chain_id, chain_step"
        ).fetchall()
    finally:
        con.close()
    return [tuple(r) for r in rows]


def _settled(db: Path) -> bool:
    rows = _attempts(db)
    chains: dict[str, list[str]] = defaultdict(list)
    for chain_id, channel, status, _ in rows:
        chains[chain_id].append(f"{channel}:{status}")
    return len(chains) == MESSAGES and all(
        c[-1] == "email:sent" and c[0] == "sms:failed" for c in chains.values()
    )


@pytest.mark.slow
def test_kill_9_while_chains_move_on_loses_and_doubles_none(tmp_path: Path) -> None:
    db = tmp_path / "fallback.sqlite3"
    env = serve_env(db, CASEREACH_API_RATE="1000000", CASEREACH_LEASE_SECONDS="3")
    auth = project_with_test_gateway(env)
    mailbox = Mailbox()
    smtp_port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    serve = Serve(env)
    try:
        with ProviderServer() as provider:
            for _ in range(MESSAGES * 3):  # refused for good, slowly enough to kill mid-way
                provider.script("/send", Reply(400, "unknown subscriber", delay_s=0.02))
            first = serve.start()
            serve.wait_healthy(first)
            headers = {"Authorization": auth}
            with httpx.Client(base_url=serve.url, timeout=60, headers=headers) as http:
                contacts = _setup(http, provider, smtp_port)
                items = [{"contact_id": c, "text": f"visit {i}"} for i, c in enumerate(contacts)]
                r = http.post(f"{M}/send-batch", json={"messages": items})
                assert 202 == r.status_code, r.text
            deadline = time.monotonic() + 120
            while mailbox.count() < max(1, MESSAGES // 4):
                assert time.monotonic() < deadline, "the chains never moved on"
                time.sleep(0.005)
            serve.kill_9(first)
            killed_at = mailbox.count()
            assert killed_at < MESSAGES, "killed too late to prove anything"

            second = serve.start()
            serve.wait_healthy(second)
            deadline = time.monotonic() + 180
            while not _settled(db):
                assert time.monotonic() < deadline, "the chains never settled after the restart"
                time.sleep(0.2)
            serve.stop(second)
    finally:
        serve.close()
        controller.stop()
    rows = _attempts(db)
    per_chain = Counter((chain_id, channel) for chain_id, channel, _, _ in rows)
    chains = {chain_id for chain_id, _, _, _ in rows}
    assert MESSAGES == len(chains)
    assert {1} == set(per_chain.values()), "an attempt twice on one channel"
    assert {(c, ch) for c in chains for ch in ("sms", "email")} == set(per_chain)
    assert set(contacts) == {contact for _, _, _, contact in rows}
    doubled = sum(n - 1 for n in Counter(mailbox.rcpts).values() if n > 1)
    print(
        f"messages {MESSAGES}; emails before the kill: {killed_at}; "
        f"emails the SMTP server got twice (accepted in the batch the kill cut short, so "
        f"retried with the same id as every unknown outcome is): {doubled}"
    )
