"""kill -9 between two survey answers loses neither (issue 20): a real ``casereach serve`` on a
SQLite file, sessions started through the API, answers posted to the test gateway's real
inbound URL, the server killed while the second answers arrive, restarted, and every answer
that got no 2xx posted again with the same provider id (a provider retrying), plus every one
that did (a provider re-delivering). Each session must then hold exactly the two answers
sent, once each, in order, and have had each next question sent once.

60 sessions in CI; ``CASEREACH_SURVEY_CRASH_SESSIONS=1000`` for a larger run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_process import Serve, project_with_test_gateway, serve_env

SESSIONS = int(os.environ.get("CASEREACH_SURVEY_CRASH_SESSIONS", "60"))
API = "/a/crash/api"
PROMPTS = ["First number?", "Second number?", "Third number?"]
SURVEY = {
    "name": "Three numbers",
    "questions": [
        {"id": f"q{k + 1}", "type": "integer", "prompt": {"en": text}}
        for k, text in enumerate(PROMPTS)
    ],
    "settings": {"reask_max": 0},
}


def _number(i: int) -> str:
    return f"25471{i:07d}"


def _answer(i: int, k: int) -> tuple[str, str]:
    """Answer ``k`` (1 or 2) of session ``i``: its text and its provider id."""
    return str(i * 10 + k), f"{k}{i:07d}"


def _setup(http: httpx.Client) -> tuple[str, list[int]]:
    """The cases, the survey and one started session per case; the inbound URL and the
    session ids (session i is number i)."""
    bodies = [
        {
            "case_type": "patient",
            "case_name": f"p{i}",
            "owner_id": "o",
            "create": True,
            "properties": {
                "contact_phone_number": _number(i),
                "contact_phone_number_is_verified": "yes",
            },
        }
        for i in range(SESSIONS)
    ]
    case_ids: list[str] = []
    for at in range(0, SESSIONS, 100):
        r = http.post(f"{API}/case/v2/", json=bodies[at : at + 100])
        assert 200 == r.status_code, r.text
        case_ids += [c["case_id"] for c in r.json()["cases"]]
    r = http.post(f"{API}/surveys/v1/surveys", json=SURVEY)
    assert 201 == r.status_code, r.text
    survey_id = r.json()["id"]
    session_ids = []
    for case_id in case_ids:
        r = http.post(f"{API}/surveys/v1/surveys/{survey_id}/start", json={"contact_id": case_id})
        assert 201 == r.status_code, r.text
        session_ids.append(r.json()["id"])
    r = http.get(f"{API}/messaging/v1/gateways")
    assert 200 == r.status_code, r.text
    found = r.json()
    gateways = found["objects"] if isinstance(found, dict) else found
    inbound = next(g["inbound_url"] for g in gateways if g["name"] == "LOCAL")
    return str(inbound), session_ids


def _post(url: str, i: int, k: int) -> int:
    """Answer ``k`` of session ``i`` through the webhook; its HTTP status (0: no answer)."""
    text, provider_id = _answer(i, k)
    form = {"from": _number(i), "to": "5550000", "text": text, "id": provider_id}
    try:
        return httpx.post(url, data=form, timeout=30).status_code
    except httpx.HTTPError:
        return 0


def _post_second_answers(url: str, acked: set[int]) -> list[threading.Thread]:
    """Answer 2 of every session from four threads; ``acked`` gets the sessions answered 2xx."""

    def worker(part: int) -> None:
        for i in range(part, SESSIONS, 4):
            if 200 <= _post(url, i, 2) < 300:
                acked.add(i)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    return threads


def _outgoing(db: Path) -> dict[str, list[str]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(
            "SELECT phone_number, text FROM messaging_message WHERE direction = 'out' "
            "ORDER BY created_on, id"
        ).fetchall()
    finally:
        con.close()
    found: dict[str, list[str]] = defaultdict(list)
    for number, text in rows:
        found[number].append(text)
    return found


def _answers(http: httpx.Client, session_id: int) -> tuple[Any, list[tuple[str, str]]]:
    r = http.get(f"{API}/surveys/v1/survey-sessions/{session_id}")
    assert 200 == r.status_code, r.text
    body = r.json()
    return body["current_question"], [(a["question_id"], a["text"]) for a in body["answers"]]


@pytest.mark.slow
def test_kill_9_between_two_answers_loses_neither(tmp_path: Path) -> None:
    db = tmp_path / "survey.sqlite3"
    env = serve_env(db, CASEREACH_API_RATE="1000000")
    auth = project_with_test_gateway(env)
    serve = Serve(env)
    try:
        first = serve.start()
        serve.wait_healthy(first)
        with httpx.Client(base_url=serve.url, timeout=60, headers={"Authorization": auth}) as http:
            url, session_ids = _setup(http)
        for i in range(SESSIONS):
            assert 200 == _post(url, i, 1), f"answer 1 of session {i}"
        acked: set[int] = set()
        threads = _post_second_answers(url, acked)
        deadline = time.monotonic() + 120 + SESSIONS  # a loaded machine answers slowly
        while len(acked) < SESSIONS // 3:
            assert time.monotonic() < deadline, "the second answers never got going"
            time.sleep(0.005)
        serve.kill_9(first)
        for t in threads:
            t.join(120)
        killed_at = len(acked)
        assert killed_at < SESSIONS, "killed too late to prove anything"

        second = serve.start()
        serve.wait_healthy(second)
        # The provider retries what got no 2xx, and re-delivers what did: same provider ids.
        for i in range(SESSIONS):
            assert 200 == _post(url, i, 2), f"answer 2 of session {i} after the restart"
        with httpx.Client(base_url=serve.url, timeout=60, headers={"Authorization": auth}) as http:
            expected = [
                ("q3", [("q1", _answer(i, 1)[0]), ("q2", _answer(i, 2)[0])])
                for i in range(SESSIONS)
            ]
            assert expected == [_answers(http, sid) for sid in session_ids]
        serve.stop(second)
    finally:
        serve.close()
    outgoing = _outgoing(db)
    assert {_number(i): PROMPTS for i in range(SESSIONS)} == dict(outgoing)
    print(f"sessions {SESSIONS}; answer 2 acknowledged before the kill: {killed_at}")
