"""The request caches (projects.cache): the API key, role, project, gateways and routes an API
request looks up are kept per process, yet every change applies on the very next request, in
this process and in another one (a second ``serve`` sharing the database)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.cli.tests.test_cli import cli, free_port
from casereach.gateways.actions import do_create_gateway, do_set_routes, do_update_gateway
from casereach.gateways.actions_global import do_replace_global_routes
from casereach.gateways.models import GatewayConfig
from casereach.projects.actions import do_revoke_api_keys, do_set_role
from casereach.projects.models import Project, Role
from casereach.testing.world import Api

SEND = "/a/{project}/api/messaging/v1/send"


def _send(api: Api) -> Any:
    return api.post(SEND, {"phone_number": "+254700000001", "text": "hi"})


def _gateway(project: Project | None, name: str) -> GatewayConfig:
    return do_create_gateway(project, {"name": name, "type": "test"})


def test_a_revoked_key_gets_401_on_the_next_request(api: Api, project: Project) -> None:
    assert 202 == _send(api).status  # the key is now cached
    do_revoke_api_keys(project, prefix=api.key[:8])
    r = _send(api)
    assert (401, "invalid API key") == (r.status, r.body["error"])


def test_a_new_role_applies_on_the_next_request(project: Project) -> None:
    api = Api(project, "m@example.org", role=Role.MEMBER)
    assert 202 == _send(api).status
    do_set_role(project, "m@example.org", Role.VIEWER)
    r = _send(api)
    assert (403, "viewer") == (r.status, r.body["detail"]["role"])
    do_set_role(project, "m@example.org", Role.MEMBER)
    assert 202 == _send(api).status


def test_route_and_gateway_changes_apply_on_the_next_send(api: Api, project: Project) -> None:
    a, b = _gateway(project, "A"), _gateway(project, "B")
    do_set_routes(project, {"default_gateway": "A"}, {"a", "b"})
    assert "A" == _send(api).body["messages"][0]["gateway"]
    do_set_routes(project, {"default_gateway": "B"}, {"a", "b"})
    assert "B" == _send(api).body["messages"][0]["gateway"]
    do_set_routes(
        project,
        {"default_gateway": "B", "prefixes": [{"prefix": "254", "gateway": "A"}]},
        {"a", "b"},
    )
    assert "A" == _send(api).body["messages"][0]["gateway"]
    do_update_gateway(a, {"is_active": False})  # the prefix route's gateway is skipped
    assert "B" == _send(api).body["messages"][0]["gateway"]
    do_update_gateway(b, {"is_active": False})
    assert ("failed", "NO_SUITABLE_GATEWAY") == (
        _send(api).body["messages"][0]["status"],
        _send(api).body["messages"][0]["error_code"],
    )


def test_global_route_changes_apply_on_the_next_send(api: Api) -> None:
    _gateway(None, "G1")
    _gateway(None, "G2")
    do_replace_global_routes({"default_gateway": "G1"})
    assert "G1" == _send(api).body["messages"][0]["gateway"]
    do_replace_global_routes({"default_gateway": "G2"})
    assert "G2" == _send(api).body["messages"][0]["gateway"]


def test_a_cached_request_reads_one_row_before_the_send(api: Api, project: Project) -> None:
    _gateway(project, "A")
    do_set_routes(project, {"default_gateway": "A"}, {"a"})
    _send(api)
    with CaptureQueriesContext(connection) as queries:
        assert 202 == _send(api).status
    before_send = []
    for q in queries.captured_queries:
        if q["sql"].startswith(("BEGIN", "SAVEPOINT")):
            break
        before_send.append(q["sql"])
    assert 1 == len(before_send), before_send
    assert "projects_configgeneration" in before_send[0]
    reads = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in reads if "projects_apikey" in s or "projects_membership" in s]
    assert not [s for s in reads if "gateways_gatewayconfig" in s or "gateways_globalroutes" in s]


def test_a_missing_generation_row_only_turns_the_cache_off(api: Api, project: Project) -> None:
    from casereach.projects.models import ConfigGeneration

    ConfigGeneration.objects.all().delete()  # e.g. a flushed database
    assert 202 == _send(api).status
    do_revoke_api_keys(project, prefix=api.key[:8])
    assert 401 == _send(api).status


# --- two processes -------------------------------------------------------------------------


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "casereach", "serve", "--port", str(port), "--no-workers"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/healthz", timeout=2)
            return proc, base
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise
            time.sleep(0.2)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    e = dict(os.environ)
    e["CASEREACH_DATABASE_URL"] = str(tmp_path / "cache.sqlite3")
    e["CASEREACH_API_RATE"] = "1000"
    return e


def test_changes_by_another_process_apply_on_the_next_request(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    assert 0 == cli(env, "project", "create", "clinic").returncode
    for name in ("A", "B"):
        r = cli(env, "gateway", "add", name, "--type", "test", "--project", "clinic")
        assert 0 == r.returncode, r.stderr
    key = cli(env, "apikey", "create", "--project", "clinic", "--username", "u").stdout.split()[-1]
    proc, base = _serve(env)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"ApiKey u:{key}"}) as c:
            put = c.put("/a/clinic/api/messaging/v1/routes", json={"default_gateway": "A"})
            assert 200 == put.status_code, put.text

            def send() -> httpx.Response:
                body = {"phone_number": "+254700000001", "text": "hi"}
                return c.post("/a/clinic/api/messaging/v1/send", json=body)

            assert "A" == send().json()["messages"][0]["gateway"]
            assert "A" == send().json()["messages"][0]["gateway"]  # cached now
            r = cli(env, "gateway", "deactivate", "A", "--project", "clinic")
            assert 0 == r.returncode, r.stderr
            failed = send().json()["messages"][0]
            assert ("failed", "NO_SUITABLE_GATEWAY") == (failed["status"], failed["error_code"])
            assert 0 == cli(env, "user", "role", "--project", "clinic", "--username", "u",
                            "--role", "viewer").returncode  # fmt: skip
            assert 403 == send().status_code
            assert 0 == cli(env, "apikey", "revoke", "--project", "clinic", "--prefix",
                            key[:8]).returncode  # fmt: skip
            assert 401 == send().status_code
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
