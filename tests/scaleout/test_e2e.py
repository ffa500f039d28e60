"""End to end in the scale-out mode (SPEC 8): PostgreSQL, a real broker (Redis, then
RabbitMQ), ``serve --no-workers``, 2 Celery worker processes and — as if by mistake — 2 beats.

contacts → outbound send → a conditional alert firing → an inbound reply, all through the
HTTP API and a local ``http`` provider that counts idempotency keys.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaleout.harness import (
    Client,
    Cluster,
    CountingProvider,
    broker_url,
    forget_broker,
    fresh_database,
    gateway_config,
    make_project,
    sql,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.scaleout
M = "/a/{project}/api/messaging/v1/"
CASES = "/a/{project}/api/case/v2/"
NUMBERS = ["254711000001", "254711000002", "254711000003"]


class World:
    def __init__(self, cluster: Cluster, provider: CountingProvider, api: Client) -> None:
        self.cluster = cluster
        self.provider = provider
        self.api = api
        self.inbound_url = ""


@pytest.fixture(scope="module", params=["redis", "amqp"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    kind: str = request.param
    broker = broker_url(kind)
    provider = CountingProvider()
    with fresh_database() as db_url:
        cluster = Cluster(db_url, broker, tmp_path_factory.mktemp(f"logs-{kind}"))
        try:
            cluster.cli("init")
            cluster.start_web()
            cluster.start_worker("worker-1")
            cluster.start_worker("worker-2")
            cluster.start_beat("beat-1")
            cluster.start_beat("beat-2")  # by mistake: the database claims must make it harmless
            doctor = cluster.cli("doctor")
            assert "ok   workers    2 worker(s) alive" in doctor, doctor
            api = make_project(cluster, f"e2e{kind}")
            w = World(cluster, provider, api)
            r = api.post(
                M + "gateways",
                {"name": "PROVIDER", "type": "http", "config": gateway_config(provider.url)},
            )
            assert 201 == r.status_code, r.text
            w.inbound_url = r.json()["inbound_url"]
            r = api.put(M + "routes", {"default_gateway": "PROVIDER", "prefixes": []})
            assert 200 == r.status_code, r.text
            yield w
        except BaseException:
            print(cluster.tail())
            raise
        finally:
            cluster.stop_all()
            provider.close()


def message(api: Client, mid: str) -> dict[str, Any]:
    r = api.get(M + f"messages/{mid}")
    assert 200 == r.status_code, r.text
    body: dict[str, Any] = r.json()
    return body


def test_contacts_from_cases(world: World) -> None:
    api = world.api
    cases = [
        {
            "case_type": "mother",
            "case_name": f"Mother {i}",
            "owner_id": "clinic-1",
            "external_id": f"M-{i}",
            "create": True,
            "properties": {
                "contact_phone_number": number,
                "contact_phone_number_is_verified": "1",
                "risk": "high" if i < 2 else "low",
            },
        }
        for i, number in enumerate(NUMBERS)
    ]
    r = api.post(CASES, cases)
    assert r.status_code in (200, 201), r.text
    listed = api.get(CASES, limit=10).json()
    assert 3 == len(listed["cases"])
    for case in listed["cases"]:
        profile = api.get(M + f"contacts/{case['case_id']}")
        assert 200 == profile.status_code, profile.text
        body = profile.json()
        assert (True, True) == (body["active"], body["phone"]["number"] in NUMBERS), body


def test_outbound_send_goes_out_once_through_a_worker(world: World) -> None:
    r = world.api.post(M + "send", {"phone_number": "254722000001", "text": "Clinic open"})
    assert 202 == r.status_code, r.text
    mid = r.json()["messages"][0]["id"]
    wait_for("the send", lambda: message(world.api, mid)["status"] == "sent", 60)
    assert 1 == world.provider.keys[mid]
    assert [{"to": "254722000001", "text": "Clinic open", "id": mid}] == world.provider.to(
        "254722000001"
    )


def test_conditional_alert_fires_once_per_case_with_two_beats(world: World) -> None:
    api = world.api
    alert = {
        "name": "High risk",
        "kind": "conditional",
        "case_type": "mother",
        "criteria": {
            "match": "all",
            "rules": [{"property": "risk", "op": "equal", "value": "high"}],
        },
        "content": {"sms": {"en": "{case.name}, please visit the clinic."}},
        "schedule": {"type": "alert", "events": [{"wait_minutes": 0}]},
        "recipients": [{"type": "self"}],
        "active": True,
    }
    r = api.post(M + "alerts", alert)
    assert 201 == r.status_code, r.text
    # The bulk evaluation is a worker's task: the API answers before it ran.
    assert "queued" == r.json()["progress"]["state"]
    wait_for("the alert's messages", lambda: len(world.provider.to(NUMBERS[1])) >= 1, 60)
    wait_for("the alert's messages", lambda: len(world.provider.to(NUMBERS[0])) >= 1, 60)
    time.sleep(3)  # both beats keep kicking: nothing more may go out
    assert [["Mother 0, please visit the clinic."], ["Mother 1, please visit the clinic."], []] == [
        [b["text"] for b in world.provider.to(n)] for n in NUMBERS
    ]
    firings = sql(world.cluster.db_url, "SELECT COUNT(*), COUNT(DISTINCT key) FROM alerts_firing")
    assert [(2, 2)] == firings
    progress = api.get(M + f"alerts/{r.json()['id']}").json()["progress"]
    assert ("done", progress["total"]) == (progress["state"], progress["processed"])


def test_inbound_reply_is_sent_by_a_worker(world: World) -> None:
    import httpx

    before = len(world.provider.to(NUMBERS[2]))
    r = httpx.post(
        world.inbound_url, json={"from": NUMBERS[2], "to": "5555", "text": "help", "id": "in-1"}
    )
    assert r.status_code in (200, 202, 204), r.text
    # The web replica only stored it: a worker handles it (messaging/inbound_queue.py).
    assert ["queued"] == [m["action"] for m in r.json()["messages"]]
    wait_for("the HELP reply", lambda: len(world.provider.to(NUMBERS[2])) > before, 60)
    inbound = world.api.get(M + "messages", direction="in").json()
    rows = inbound.get("messages", inbound.get("objects", []))
    assert [NUMBERS[2]] == [m["phone_number"] for m in rows]


def test_rate_limit_holds_across_both_workers(world: World) -> None:
    api = world.api
    r = api.post(
        M + "gateways",
        {
            "name": "SLOWLANE",
            "type": "http",
            "config": gateway_config(world.provider.url),
            "rate_limit_per_s": 4,
        },
    )
    assert 201 == r.status_code, r.text
    assert 200 == api.put(M + "routes", {"default_gateway": "SLOWLANE", "prefixes": []}).status_code
    try:
        ids = []
        for i in range(24):
            r = api.post(M + "send", {"phone_number": f"25473300{i:04d}", "text": "rate"})
            ids.append(r.json()["messages"][0]["id"])
        wait_for("24 rate-limited sends", lambda: all(world.provider.keys[m] for m in ids), 90)
        stamps = sorted(
            t
            for t, b in zip(world.provider.times, world.provider.bodies, strict=True)
            if b.get("id") in set(ids)
        )
        # A bucket of 4 segments/s holding 4: 24 sends need at least (24 - 4) / 4 = 5 s.
        span = stamps[-1] - stamps[0]
        print(f"24 sends at 4/s over 2 workers took {span:.1f} s")
        assert span >= 4.5
        assert {"sent"} == {message(api, m)["status"] for m in ids}
    finally:
        api.put(M + "routes", {"default_gateway": "PROVIDER", "prefixes": []})


def test_import_runs_on_a_worker(world: World, tmp_path: Path) -> None:
    data = tmp_path / "more.csv"
    data.write_text(
        "external_id,case_type,case_name,owner_id,contact_phone_number\n"
        "Q-1,mother,Queued One,clinic-2,254744000001\n"
        "Q-2,mother,Queued Two,clinic-2,254744000002\n"
    )
    out = world.cluster.cli("import-cases", str(data), "--project", world.api.project, "--queue")
    assert out.startswith("import queued for a worker: task ")

    def landed() -> list[str]:
        cases = world.api.get(CASES, limit=100).json()["cases"]
        return sorted(c["case_name"] for c in cases if c["owner_id"] == "clinic-2")

    wait_for("the queued import", lambda: len(landed()) == 2, 60)
    assert ["Queued One", "Queued Two"] == landed()


def test_everything_ended_and_metrics_agree(world: World) -> None:
    wait_for("an empty outbox", lambda: set(statuses(world.cluster.db_url)) <= {"sent"}, 60)
    import httpx

    text = httpx.get(world.cluster.web_url + "/metrics").text
    sent = statuses(world.cluster.db_url)["sent"]
    assert f'casereach_outbox_messages{{status="sent"}} {sent}' in text
    assert "casereach_outbox_due 0" in text
    health = httpx.get(world.cluster.web_url + "/healthz").json()
    assert {"status": "ok", "database": "postgresql", "broker": "ok"} == health
    assert [] == [k for k, n in world.provider.keys.items() if n > 1]


def test_another_installation_on_the_same_broker_sees_none_of_our_workers(world: World) -> None:
    other = {**world.cluster.env, "CASEREACH_QUEUE_PREFIX": "other-site."}
    out = subprocess.run(
        [sys.executable, "-m", "casereach", "doctor"],
        env=other,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    forget_broker(world.cluster.broker, "other-site.")
    assert 1 == out.returncode, out.stdout + out.stderr
    assert "no worker consumes this installation's queues (other-site.*)" in out.stdout
    ours = world.cluster.cli("doctor")
    assert "ok   workers    2 worker(s) alive" in ours, ours
