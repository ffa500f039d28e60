"""Write-back of casereach's own case changes to CommCare HQ (Case API v2), against the fake
HQ (casereach.testing.commcare_hq.CaseApi): keyword updates and self-registration reach HQ,
one at a time per case and in order under failures; unknown outcomes are retried as the same
request first; HQ's echo changes nothing; failures are listed and retried; the key is never
read back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from casereach.cases.models import Case, CommCareWrite
from casereach.cases.writeback_send import WriteBackSender
from casereach.gateways.netpolicy import make_client
from casereach.testing.commcare_hq import (
    FORWARDING,
    CaseApi,
    FakeHq,
    HqCase,
    client_sender,
)
from casereach.testing.gateways import create_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.world import Api
from casereach.testing.writeback import HQ_KEY, connected_hq, drain

M = "/a/{project}/api/messaging/v1/"
WB = "/a/{project}/api/commcare/writeback"
V2 = "/a/{project}/api/case/v2/"
PHONE = "254712345678"


@pytest.fixture
def hq(api: Api) -> Iterator[CaseApi]:
    server = connected_hq(api, slow_s=1.5)
    yield server
    server.close()


@pytest.fixture
def sender() -> Iterator[WriteBackSender]:
    s = WriteBackSender(make_client, timeout_s=0.5, retry_base_s=0.001, concurrency=2)
    yield s
    s.close()


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    g = create_gateway(api)
    r = api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []})
    assert 200 == r.status, r.body
    return g


def hq_case(hq: CaseApi, case_id: str = "hq-1") -> None:
    """A case made in HQ and forwarded to casereach (as Data Forwarding does)."""
    hq.hq.save(
        HqCase(
            case_id=case_id,
            case_type="mother",
            case_name="Amina",
            owner_id="owner-1",
            properties={"contact_phone_number": PHONE, "contact_phone_number_is_verified": "yes"},
        )
    )
    hq.deliver()


def weight_keyword(api: Api) -> None:
    r = api.post(
        M + "keywords",
        {"keyword": "weight", "reply": {"en": "ok"}, "fields": [{"property": "weight"}]},
    )
    assert 201 == r.status, r.body


def writes(hq: CaseApi) -> list[tuple[str, str, Any, int]]:
    return [(r.method, r.path, r.body, r.status) for r in hq.received]


def test_a_keyword_update_is_put_to_hq_and_its_echo_changes_nothing(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any]
) -> None:
    hq_case(hq)
    assert [] == hq.received  # a forwarded case is not written back
    weight_keyword(api)
    inbound(gw, "WEIGHT 3.2", sender=PHONE)
    drain(sender)
    path = f"/a/{api.project.name}/api/case/v2/hq-1/"
    assert [("PUT", path, {"properties": {"weight": "3.2"}}, 200)] == writes(hq)
    assert "3.2" == hq.hq.cases["hq-1"].properties["weight"]
    # HQ forwards the case back: recognised as our own write, nothing written, nothing queued.
    echo = hq.hq.queue[-1]
    body, headers = echo.payload(hq.hq.domain)
    r = api.client.post(
        FORWARDING.replace("{project}", api.project.name),
        body,
        content_type=headers["Content-Type"],
        HTTP_AUTHORIZATION=api.auth,
        HTTP_SERVER_MODIFIED_ON=headers["server-modified-on"],
    )
    assert (200, "echo") == (r.status_code, r.json()["outcome"])
    assert 1 == CommCareWrite.objects.count()
    drain(sender)
    assert 1 == len(hq.received)


def test_self_registration_creates_the_case_in_hq_and_later_changes_follow_it(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any]
) -> None:
    r = api.call(
        "PATCH",
        M + "settings",
        {"self_registration": {"enabled": True, "case_type": "mother", "owner_id": "o1"}},
    )
    assert 200 == r.status, r.body
    inbound(gw, f"JOIN {api.project.name}", sender="254700000003")
    drain(sender)
    (ours,) = Case.objects.filter(project=api.project)
    (create,) = hq.received
    assert ("POST", 200) == (create.method, create.status)
    assert {
        "case_type": "mother",
        "case_name": "+254700000003",
        "owner_id": "o1",
        "external_id": ours.case_id,
        "properties": {
            "contact_phone_number": "254700000003",
            "contact_phone_number_is_verified": "yes",
        },
    } == create.body
    hq_id = create.case_id
    assert hq_id is not None and hq_id != ours.case_id
    # The echo carries HQ's id: it lands on our case, no second case appears.
    hq.deliver()
    assert [ours.case_id] == [c.case_id for c in Case.objects.filter(project=api.project)]
    weight_keyword(api)
    inbound(gw, "WEIGHT 4", sender="254700000003")
    drain(sender)
    last = hq.received[-1]
    assert ("PUT", f"/a/{api.project.name}/api/case/v2/{hq_id}/", 200) == (
        last.method,
        last.path,
        last.status,
    )
    assert "4" == hq.hq.cases[hq_id].properties["weight"]


@pytest.mark.parametrize("fault", ["drop", "timeout", "drop-before", "500"])
def test_a_failed_call_is_retried_as_the_same_request_before_the_next_change(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any], fault: Any
) -> None:
    hq_case(hq)
    weight_keyword(api)
    hq.faults = [fault]
    inbound(gw, "WEIGHT 1", sender=PHONE)
    inbound(gw, "WEIGHT 2", sender=PHONE)
    inbound(gw, "WEIGHT 3", sender=PHONE)
    drain(sender)
    bodies = [r.body["properties"]["weight"] for r in hq.received]
    assert ["1", "1", "2", "3"] == bodies
    assert [0 if fault != "500" else 500, 200, 200, 200] == [r.status for r in hq.received]
    assert "3" == hq.hq.cases["hq-1"].properties["weight"]
    first = CommCareWrite.objects.order_by("id").first()
    assert first is not None
    assert (2, 0 if fault == "500" else 1) == (first.attempts, first.unknown_outcomes)


def test_writes_of_different_cases_do_not_wait_for_each_other(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any]
) -> None:
    hq_case(hq, "hq-1")
    hq.hq.save(
        HqCase(
            "hq-2",
            "mother",
            "Zawadi",
            "o",
            properties={
                "contact_phone_number": "254700000009",
                "contact_phone_number_is_verified": "yes",
            },
        )
    )
    hq.deliver()
    weight_keyword(api)
    inbound(gw, "WEIGHT 1", sender=PHONE)
    inbound(gw, "WEIGHT 2", sender="254700000009")
    claimed = sender.run_once()
    assert 2 == claimed
    assert {"hq-1", "hq-2"} == {r.path.rstrip("/").rsplit("/", 1)[1] for r in hq.received}


def test_a_refused_write_is_listed_holds_later_ones_and_is_retried(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any]
) -> None:
    hq_case(hq)
    weight_keyword(api)
    del hq.hq.cases["hq-1"]  # HQ no longer has it: 400 No case found
    inbound(gw, "WEIGHT 1", sender=PHONE)
    inbound(gw, "WEIGHT 2", sender=PHONE)
    drain(sender)
    case_id = "hq-1"
    r = api.get(WB + f"?case_id={case_id}&status=failed")
    assert 200 == r.status, r.body
    (failed,) = r.body["objects"]
    assert ("failed", 1, 400) == (failed["status"], failed["attempts"], failed["last_status"])
    assert "No case found with ID 'hq-1'" in failed["last_error"]
    assert {"queued": 1, "sending": 0, "sent": 0, "failed": 1} == r.body["backlog"]
    assert 1 == len(hq.received)  # the second waits behind the first
    hq.hq.save(HqCase("hq-1", "mother", "Amina", "owner-1"))
    r = api.post(WB + f"/{failed['id']}/retry")
    assert (200, "queued") == (r.status, r.body["status"])
    drain(sender)
    assert ["1", "1", "2"] == [x.body["properties"]["weight"] for x in hq.received]
    assert {"queued": 0, "sending": 0, "sent": 2, "failed": 0} == api.get(WB).body["backlog"]
    r = api.post(WB + f"/{failed['id']}/retry")
    assert 409 == r.status, r.body
    assert 404 == api.post(WB + "/999999/retry").status
    assert 400 == api.get(WB + "?status=lost").status


def test_the_api_key_is_stored_encrypted_and_never_read_back(api: Api, hq: CaseApi) -> None:
    r = api.get(M + "settings")
    assert 200 == r.status
    assert {"api_key": None, "api_key_set": True} == {
        k: r.body["commcare"][k] for k in ("api_key", "api_key_set")
    }
    api.project.refresh_from_db()
    assert HQ_KEY not in str(api.project.settings)
    # Changing the URL alone keeps the key; "" removes it.
    r = api.call("PATCH", M + "settings", {"commcare": {**r.body["commcare"], "url": hq.url + "/"}})
    assert 200 == r.status, r.body
    assert (hq.url, None, True) == (
        r.body["commcare"]["url"],
        r.body["commcare"]["api_key"],
        r.body["commcare"]["api_key_set"],
    )
    assert HQ_KEY not in str(r.body)
    r = api.call("PATCH", M + "settings", {"commcare": {"url": hq.url, "api_key": ""}})
    assert (200, False) == (r.status, r.body["commcare"]["api_key_set"])
    r = api.call("PATCH", M + "settings", {"commcare": {"url": "ftp://x"}})
    assert 400 == r.status


def test_changes_from_hq_and_the_case_api_are_not_written_back(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    hq_case(hq)
    r = api.put(f"/a/{api.project.name}/api/case/v2/hq-1", {"properties": {"x": "1"}})
    assert 200 == r.status, r.body
    drain(sender)
    assert [] == hq.received
    assert 0 == CommCareWrite.objects.count()


def test_nothing_is_queued_without_a_connection(api: Api, gw: dict[str, Any]) -> None:
    fake = FakeHq(api.project.name, client_sender(api.client, api.auth), real_clock=True)
    fake.save(
        HqCase(
            "hq-1",
            "mother",
            "A",
            "o",
            properties={"contact_phone_number": PHONE, "contact_phone_number_is_verified": "yes"},
        )
    )
    fake.deliver()
    weight_keyword(api)
    inbound(gw, "WEIGHT 1", sender=PHONE)
    assert "1" == Case.objects.get(case_id="hq-1").properties["weight"]
    assert 0 == CommCareWrite.objects.count()


def test_an_hq_case_indexed_to_a_case_we_created_points_at_ours(
    api: Api, hq: CaseApi, sender: WriteBackSender, gw: dict[str, Any]
) -> None:
    r = api.call(
        "PATCH",
        M + "settings",
        {"self_registration": {"enabled": True, "case_type": "mother", "owner_id": "o1"}},
    )
    assert 200 == r.status, r.body
    inbound(gw, f"JOIN {api.project.name}", sender="254700000004")
    drain(sender)
    hq.deliver()
    (mother,) = Case.objects.filter(project=api.project)
    (create,) = [w for w in hq.received if w.method == "POST"]
    # A child made in HQ under the mother HQ knows by its own id, forwarded to us.
    parent = {"case_id": create.case_id, "case_type": "mother", "relationship": "child"}
    hq.hq.save(HqCase("hq-child", "child", "Baby", "o1", indices={"parent": parent}))
    hq.deliver()

    child = api.get(V2 + "hq-child")
    assert 200 == child.status, child.body
    assert mother.case_id == child.body["indices"]["parent"]["case_id"]
