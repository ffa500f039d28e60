"""The target of issue 19: cases forwarded by HQ (half XML, half JSON, 5% repeated, 5% out
of order) end as the same contacts as the same cases pushed through the Case API v2,
compared field by field through the contact profile.

CI runs it at 400 cases; ``CASEREACH_FORWARDING_CASES=10000`` runs the target's size.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest
from django.db import transaction

from casereach.projects import auth
from casereach.testing.commcare_hq import FakeHq, HqCase, client_sender
from casereach.testing.world import Api

V2 = "/a/{project}/api/case/v2/"
PROFILE = "/a/{project}/api/messaging/v1/contacts/"
CASES = int(os.environ.get("CASEREACH_FORWARDING_CASES", "400"))
LANGS = ["", "en", "sw", "fr"]
ZONES = ["", "Africa/Nairobi", "Not/AZone"]


class _Rollback(Exception):
    pass


def hq_states(rng: random.Random, n: int) -> list[list[HqCase]]:
    """Per case, the states HQ goes through (one or two)."""
    out = []
    for i in range(n):
        phone = rng.choice([f"2547{rng.randrange(10**8):08d}", "12", "", f"+2547{i:08d}"])
        props = {
            "contact_phone_number": phone,
            "contact_phone_number_is_verified": rng.choice(["", "1", "0"]),
            "language_code": rng.choice(LANGS),
            "time_zone": rng.choice(ZONES),
            "email": rng.choice(["", f"m{i}@example.org", "not-an-email"]),
            "visit": str(rng.randrange(5)),
        }
        first = HqCase(
            case_id=f"hq-{i:06d}",
            case_type=rng.choice(["mother", "child"]),
            case_name=f"Case {i}",
            owner_id=f"owner-{i % 7}",
            user_id="worker-1",
            external_id=f"ext-{i:06d}",
            properties=props,
        )
        states = [first]
        if rng.random() < 0.5:
            later = HqCase(
                **{
                    **first.__dict__,
                    "case_name": f"Case {i} b",
                    "properties": {**props, "visit": "9", "contact_phone_number": phone[::-1]},
                    "closed": rng.random() < 0.2,
                }
            )
            states.append(later)
        out.append(states)
    return out


def _renamed(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every string that is a case id replaced by its external id."""
    if isinstance(value, dict):
        return {k: _renamed(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


def profiles(api: Api, ids: dict[str, str]) -> dict[str, Any]:
    """external id → the contact profile, with every case id written as its external id."""
    out = {}
    for case_id, ext in ids.items():
        r = api.get(PROFILE + case_id)
        assert 200 == r.status, r.body
        out[ext] = _renamed(r.body, ids)
    return out


def through_case_api(api: Api, finals: list[HqCase]) -> dict[str, Any]:
    """The final states upserted by external id with the Case API v2 (then rolled back)."""
    seen: dict[str, Any] = {}
    try:
        with transaction.atomic():
            ids: dict[str, str] = {}
            for start in range(0, len(finals), 100):
                chunk = finals[start : start + 100]
                body = [
                    {
                        "create": None,
                        "external_id": c.external_id,
                        "case_type": c.case_type,
                        "case_name": c.case_name,
                        "owner_id": c.owner_id,
                        "properties": c.properties,
                        "close": c.closed,
                    }
                    for c in chunk
                ]
                r = api.post(V2, body)
                assert 200 == r.status, r.body
                ids.update({c["case_id"]: c["external_id"] for c in r.body["cases"]})
            seen.update(profiles(api, ids))
            raise _Rollback
    except _Rollback:
        pass
    return seen


def test_forwarded_cases_end_as_the_same_contacts_as_through_the_case_api(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tens of thousands of requests with one key: the per-key rate limit is not under test.
    monkeypatch.setattr(auth, "BUCKET", auth._Bucket(1e9, 2e9))
    rng = random.Random(19)
    per_case = hq_states(rng, CASES)
    finals = [states[-1] for states in per_case]
    expected = through_case_api(api, finals)

    hq = FakeHq(api.project.name, client_sender(api.client, api.auth), fmt="alternate")
    firsts = [states[0] for states in per_case]
    seconds = [states[1] for states in per_case if len(states) > 1]
    rng.shuffle(firsts)
    rng.shuffle(seconds)
    started = time.perf_counter()
    for state in firsts + seconds:  # HQ's changes: each case's in order
        hq.save(state)
    cancelled = hq.deliver(shuffle=0.05, repeat=0.05, rng=rng)
    elapsed = time.perf_counter() - started
    attempts = sum(len(r.attempts) for r in hq.records)
    print(
        f"\nforwarded {CASES} cases: {len(hq.records)} states, {attempts} POSTs "
        f"({sum(r.fmt == 'xml' for r in hq.records)} XML) in {elapsed:.1f}s"
    )
    assert [] == cancelled
    forwarded = profiles(api, {c.case_id: str(c.external_id) for c in finals})
    assert len(finals) == len(expected)
    assert expected == forwarded
