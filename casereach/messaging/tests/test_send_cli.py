"""``casereach send --file``: a JSON-lines file of sends, streamed in batches."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from casereach.testing.cli import cli_env, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


cli = run_cli


def _world(env: dict[str, str]) -> None:
    for args in (
        ("init",),
        ("project", "create", "clinic"),
        ("gateway", "add", "LOCAL", "--type", "test", "--project", "clinic", "--default"),
    ):
        r = cli(env, *args)
        assert 0 == r.returncode, r.stderr


def _messages(db: str) -> list[tuple[str, str, str | None]]:
    con = sqlite3.connect(db)
    try:
        return list(
            con.execute(
                "SELECT phone_number, status, error_code FROM messaging_message ORDER BY event_id"
            )
        )
    finally:
        con.close()


def test_a_file_is_sent_in_batches_and_bad_lines_are_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    _world(env)
    lines = [json.dumps({"phone_number": f"2547000{n:05d}", "text": f"n {n}"}) for n in range(7)]
    lines[2] = "{not json"
    lines[4] = json.dumps({"text": "nobody"})
    lines[5] = json.dumps({"contact_id": "nobody", "text": "x"})
    lines.insert(6, "")
    lines.append(json.dumps({"email_address": "a@example.org", "text": "no email gateway"}))
    path = tmp_path / "messages.jsonl"
    path.write_text("\n".join(lines) + "\n")

    r = cli(env, "send", "--file", str(path), "--project", "clinic", "--batch-size", "2")

    assert 1 == r.returncode, r.stderr
    assert [
        "line 3: Payload must be valid JSON",
        "line 5: give exactly one of contact_id, phone_number or email_address",
        "line 6: contact 'nobody' not found",
    ] == r.stderr.strip().splitlines()
    assert "4 queued, 1 failed (NO_SUITABLE_GATEWAY 1), 3 bad lines not sent" == r.stdout.strip()
    stored = _messages(env["CASEREACH_DATABASE_URL"])
    assert [f"2547000{n:05d}" for n in (0, 1, 3, 6)] + [""] == [m[0] for m in stored]
    assert ["queued"] * 4 + ["failed"] == [m[1] for m in stored]


def test_stdin_and_a_clean_file_exit_0(env: dict[str, str]) -> None:
    _world(env)
    body = "".join(
        json.dumps({"phone_number": "254700000001", "text": "hi"}) + "\n" for _ in range(3)
    )
    r = cli(env, "send", "--file", "-", "--project", "clinic", input=body)
    assert (0, "", "3 queued, 0 failed, 0 bad lines not sent") == (
        r.returncode,
        r.stderr,
        r.stdout.strip(),
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--file", "nope.jsonl", "--project", "clinic"), "error: no such file: nope.jsonl"),
        (("--file", "-", "--project", "nope"), "error: Project 'nope' not found"),
    ],
)
def test_a_bad_command_is_one_error_line(
    env: dict[str, str], args: tuple[str, ...], error: str
) -> None:
    _world(env)
    r = cli(env, "send", *args, input="")
    assert (1, [error]) == (r.returncode, r.stderr.strip().splitlines())
