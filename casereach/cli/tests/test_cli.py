"""The CLI as a user runs it: real subprocesses on a fresh SQLite file."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from casereach.testing.cli import cli_env, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


cli = run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_init_project_and_apikey(env: dict[str, str], tmp_path: Path) -> None:
    r = cli(env, "init")
    assert 0 == r.returncode, r.stderr
    assert (tmp_path / "cli.sqlite3").exists()
    r = cli(
        env, "project", "create", "clinic", "--time-zone", "africa/nairobi", "--languages", "en,sw"
    )
    assert 0 == r.returncode, r.stderr
    r = cli(env, "project", "create", "clinic")
    assert 1 == r.returncode
    assert ["error: project 'clinic' already exists"] == r.stderr.strip().splitlines()
    for languages in ("", "en,,sw"):
        r = cli(env, "project", "create", "other", "--languages", languages)
        assert 1 == r.returncode
        assert [f"error: --languages {languages!r} has an empty language code"] == (
            r.stderr.strip().splitlines()
        )
    r = cli(env, "project", "create", "Bad Name")
    assert 1 == r.returncode
    assert 1 == len(r.stderr.strip().splitlines())
    assert "Traceback" not in r.stderr
    r = cli(env, "apikey", "create", "--project", "clinic", "--username", "ops@example.org")
    assert 0 == r.returncode, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert 48 == len(key)
    r = cli(env, "apikey", "create", "--project", "nope", "--username", "x")
    assert (1, "error: Project 'nope' not found") == (r.returncode, r.stderr.strip())


def test_commands_before_init_fail_in_one_line(env: dict[str, str]) -> None:
    r = cli(env, "project", "create", "clinic")
    assert 1 == r.returncode
    assert 1 == len(r.stderr.strip().splitlines())
    assert "casereach init" in r.stderr


def test_user_create_password_sources(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    assert 0 == cli(env, "project", "create", "clinic").returncode
    r = cli(env, "user", "create", "--project", "clinic", "--username", "pm")
    assert 1 == r.returncode
    assert "password" in r.stderr
    r = cli(env, "user", "create", "--project", "clinic", "--username", "pm", "--password", "short")
    assert (1, "error: password must be at least 8 characters") == (r.returncode, r.stderr.strip())
    env2 = {**env, "CASEREACH_PASSWORD": "long-enough-secret"}
    r = cli(env2, "user", "create", "--project", "clinic", "--username", "pm", "--admin")
    assert 0 == r.returncode, r.stderr
    assert "(admin)" in r.stdout


def test_serve_health_api_and_sigterm(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    assert 0 == cli(env, "project", "create", "clinic").returncode
    key = cli(env, "apikey", "create", "--project", "clinic", "--username", "u").stdout.split()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "casereach", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert (200, "ok") == (health.status_code, health.json()["status"])
        r = httpx.post(
            base + "/a/clinic/api/case/v2/",
            json={"case_type": "p", "case_name": "n", "owner_id": "o"},
            headers={"Authorization": f"ApiKey u:{key}"},
        )
        assert 200 == r.status_code
        assert 401 == httpx.get(base + "/a/clinic/api/case/v2/").status_code
        assert "Server" in r.headers
        assert "WSGIServer" not in r.headers["Server"]  # not Django's development server
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert 0 == proc.returncode, err
    assert "casereach stopped" in out


# Opens 1,100 descriptors first, as a dispatcher holding hundreds of provider connections
# does, so that the server's sockets are numbered past select()'s limit of 1023.
MANY_FDS = """
import os, sys
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
from casereach.cli.main import run
sys.argv = ["casereach", "serve", "--no-workers", "--port", sys.argv[1]]
run()
"""


def test_serve_answers_on_sockets_numbered_past_1023(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", MANY_FDS, str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        statuses: list[int] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while not statuses:
                try:
                    statuses = [client.get("/healthz").status_code for _ in range(3)]
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.2)
        assert [200, 200, 200] == statuses
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert 0 == proc.returncode, err


def _demo_key(r: subprocess.CompletedProcess[str]) -> str:
    assert 0 == r.returncode, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("API key: ApiKey demo@example.org:"), r.stdout
    return last.rsplit(":", 1)[1]


def test_demo_reuses_its_key_and_revokes_the_old_one_when_it_makes_a_new(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = cli(env, "demo", "--no-serve")
    key = _demo_key(first)
    kept = tmp_path / "cli.sqlite3.demo-key"
    assert f"API key (new, kept in {kept}):" in first.stdout
    assert 0o600 == kept.stat().st_mode & 0o777
    again = cli(env, "demo", "--no-serve")
    assert key == _demo_key(again)
    assert f"API key (reused, kept in {kept}):" in again.stdout
    kept.unlink()  # lost: the next run makes a new key and switches the old one off
    third = cli(env, "demo", "--no-serve")
    new_key = _demo_key(third)
    assert key != new_key
    assert "1 earlier demo key(s) revoked" in third.stdout
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "casereach", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/a/demo/api/case/v2/"
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        statuses = [
            httpx.get(url, headers={"Authorization": f"ApiKey demo@example.org:{k}"}).status_code
            for k in (key, new_key)
        ]
        assert [401, 200] == statuses
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_gateway_add_and_list(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    assert 0 == cli(env, "project", "create", "clinic").returncode
    r = cli(env, "gateway", "add", "LOCAL", "--type", "test", "--project", "clinic", "--default")
    assert 0 == r.returncode, r.stderr
    assert "/gateways/test/" in r.stdout
    r = cli(
        env, "gateway", "add", "G", "--type", "test", "--global", "--config", 'fail_numbers=["1"]'
    )
    assert 0 == r.returncode, r.stderr
    r = cli(
        env, "gateway", "add", "BAD", "--type", "test", "--project", "clinic", "--config", "nope=1"
    )
    assert 1 == r.returncode
    assert r.stderr.startswith("error: invalid test gateway config")
    r = cli(env, "gateway", "add", "X", "--type", "test")
    assert (1, "error: give exactly one of --project NAME or --global") == (
        r.returncode,
        r.stderr.strip(),
    )
    r = cli(env, "gateway", "list", "--project", "clinic")
    assert 0 == r.returncode
    assert ["G", "LOCAL"] == sorted(line.split("\t")[1] for line in r.stdout.strip().splitlines())


def test_a_system_administrator_accepts_and_declines_a_shared_gateway(
    env: dict[str, str],
) -> None:
    assert 0 == cli(env, "init").returncode
    for name in ("clinic", "other"):
        assert 0 == cli(env, "project", "create", name).returncode
    r = cli(
        env,
        "gateway",
        "add",
        "SH",
        "--type",
        "test",
        "--project",
        "clinic",
        "--shared-with",
        "other",
    )
    assert 0 == r.returncode, r.stderr
    assert "offered to other: casereach gateway accept" in r.stdout

    def listed() -> list[str]:
        r = cli(env, "gateway", "list", "--project", "other")
        return [line.split("\t")[1] for line in r.stdout.strip().splitlines()]

    assert [] == listed()  # an offer, not yet accepted
    r = cli(env, "gateway", "accept", "sh", "--project", "other")
    assert (0, "project other accepted gateway SH") == (r.returncode, r.stdout.strip()[:33])
    assert ["SH"] == listed()
    r = cli(env, "gateway", "decline", "SH", "--project", "other")
    assert 0 == r.returncode, r.stderr
    assert [] == listed()
    r = cli(env, "gateway", "accept", "SH", "--project", "other")
    assert (1, "error: no gateway 'SH' is offered to project other") == (
        r.returncode,
        r.stderr.strip(),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CASEREACH_DISPATCH_THREADS", "lots"),
        ("CASEREACH_DISPATCH_THREADS", "0"),
        ("CASEREACH_DISPATCH_BATCH", "-5"),
        ("CASEREACH_DISPATCH_BATCH", "100000"),
    ],
)
def test_serve_refuses_a_bad_dispatch_size_in_one_line(
    env: dict[str, str], name: str, value: str
) -> None:
    assert 0 == cli(env, "init").returncode
    env[name] = value

    r = cli(env, "serve", "--port", str(free_port()))

    assert 1 == r.returncode
    assert [f"error: {name} must be a whole number from 1 to"] == [
        line[: len(name) + 40] for line in r.stderr.strip().splitlines()
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--port", "99999"), "Invalid value for '--port'"),
        (("serve", "--port", "notaport"), "Invalid value for '--port'"),
        (("import-cases", "cases.csv"), "Missing option '--project'"),
        (("bogus",), "No such command 'bogus'"),
    ],
)
def test_a_usage_error_is_one_error_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    r = cli(env, *args)
    assert 2 == r.returncode
    lines = r.stderr.strip().splitlines()
    assert 1 == len(lines), r.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in r.stderr


def test_a_command_group_run_bare_shows_its_help(env: dict[str, str]) -> None:
    r = cli(env, "project")
    assert (0, "") == (r.returncode, r.stderr)
    assert "casereach project [OPTIONS] COMMAND" in r.stdout


@pytest.mark.parametrize("bad", [b"caf\xe9", b"\xed\xa0\x80", b"\xff"])
def test_an_argument_that_is_not_utf8_is_one_error_line(env: dict[str, str], bad: bytes) -> None:
    assert 0 == cli(env, "init").returncode
    r = subprocess.run(
        [sys.executable.encode(), b"-m", b"casereach", b"project", b"create", b"p" + bad],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert 2 == r.returncode
    assert [b"error: argument 3 is not valid UTF-8 text"] == r.stderr.strip().splitlines()
    assert "" == cli(env, "gateway", "list").stderr  # nothing half-made


def test_global_gateways_and_routes_are_managed(env: dict[str, str]) -> None:
    assert 0 == cli(env, "init").returncode
    for name in ("G-KE", "G-ALL"):
        assert 0 == cli(env, "gateway", "add", name, "--type", "test", "--global").returncode
    r = cli(env, "gateway", "routes", "--default", "G-ALL", "--prefix", "254=G-KE")
    assert (0, "default\tG-ALL\n254\tG-KE\n") == (r.returncode, r.stdout), r.stderr
    r = cli(env, "gateway", "routes", "--prefix", "255=NOPE")
    assert (1, "error: no global gateway named 'NOPE'") == (r.returncode, r.stderr.strip())

    r = cli(env, "gateway", "rename", "g-ke", "G-KENYA", "--global")
    assert 0 == r.returncode, r.stderr
    assert "default\tG-ALL\n254\tG-KENYA\n" == cli(env, "gateway", "routes").stdout

    assert 0 == cli(env, "gateway", "deactivate", "G-KENYA", "--global").returncode
    rows = [line.split("\t") for line in cli(env, "gateway", "list", "--global").stdout.split("\n")]
    assert [["G-ALL", "active"], ["G-KENYA", "inactive"]] == [[r[1], r[4]] for r in rows if r[0]]

    r = cli(env, "gateway", "delete", "G-KENYA", "--global")
    assert 1 == r.returncode
    assert "the global routes name G-KENYA (prefix 254); change them first" in r.stderr
    assert 0 == cli(env, "gateway", "routes", "--prefix", "254=").returncode
    assert 0 == cli(env, "gateway", "delete", "G-KENYA", "--global").returncode
    r = cli(env, "gateway", "delete", "G-KENYA", "--global")
    assert (1, "error: no gateway named 'G-KENYA' in the global gateways") == (
        r.returncode,
        r.stderr.strip(),
    )
    assert "default\tG-ALL\n" == cli(env, "gateway", "routes").stdout
