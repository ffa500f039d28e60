"""The case changes write-back carries beyond properties, against the fake HQ's Case API v2
(casereach.testing.commcare_hq.CaseApi, which records what it receives): index changes (HQ's
id of the case an index names, once HQ has created it), a reopen (Case API v2 cannot express
one: failed with a clear error until HQ has the case open, then Retry), and deletes (never
written back). The changes are made through ``do_apply_case_changes(write_back=True)``, the
interface a keyword, a self-registration or a survey answer uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange, IndexSpec
from casereach.cases.models import CommCareWrite
from casereach.cases.writeback_send import REOPEN_ERROR, WriteBackSender
from casereach.gateways.netpolicy import make_client
from casereach.testing.commcare_hq import CaseApi, HqCase
from casereach.testing.world import Api
from casereach.testing.writeback import connected_hq, drain

M = "/a/{project}/api/messaging/v1/"
WB = "/a/{project}/api/commcare/writeback"
V2 = "/a/{project}/api/case/v2/"


@pytest.fixture
def hq(api: Api) -> Iterator[CaseApi]:
    server = connected_hq(api)
    yield server
    server.close()


@pytest.fixture
def sender() -> Iterator[WriteBackSender]:
    s = WriteBackSender(make_client, timeout_s=2, retry_base_s=0.001, concurrency=2)
    yield s
    s.close()


def from_hq(hq: CaseApi, case_id: str, case_type: str = "mother", **over: Any) -> None:
    """A case made in HQ and forwarded to casereach (not written back)."""
    hq.hq.save(HqCase(case_id, case_type, f"{case_type} {case_id}", "owner-1", **over))
    hq.deliver()


def ours(api: Api, *changes: CaseChange) -> list[str]:
    """Case changes casereach makes itself (written back); the ids of the cases."""
    result = do_apply_case_changes(api.project, list(changes), single=True, write_back=True)
    return [c.case_id for c in result.cases if c is not None]


def sent(hq: CaseApi) -> list[tuple[str, str, Any, int]]:
    prefix = f"/a/{hq.hq.domain}/api/case/v2/"
    return [(r.method, r.path.removeprefix(prefix), r.body, r.status) for r in hq.received]


PARENT = {"case_type": "household", "relationship": "child"}


def test_an_index_added_and_removed_is_written_back(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    from_hq(hq, "hq-1")
    from_hq(hq, "hh-1", "household")
    ours(
        api,
        CaseChange(op="update", case_id="hq-1", indices={"parent": IndexSpec("hh-1", **PARENT)}),
    )
    drain(sender)
    index = {"case_id": "hh-1", **PARENT}
    assert [("PUT", "hq-1/", {"indices": {"parent": index}}, 200)] == sent(hq)
    assert {"parent": index} == hq.hq.cases["hq-1"].indices
    ours(api, CaseChange(op="update", case_id="hq-1", indices={"parent": IndexSpec()}))
    drain(sender)
    assert ("PUT", "hq-1/", {"indices": {"parent": {"case_id": ""}}}, 200) == sent(hq)[-1]
    assert {} == hq.hq.cases["hq-1"].indices


def test_an_index_to_a_case_we_created_waits_for_it_and_names_hqs_id(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    from_hq(hq, "hq-1")
    (household,) = ours(
        api, CaseChange(op="create", case_type="household", case_name="Home", owner_id="o1")
    )
    ours(
        api,
        CaseChange(op="update", case_id="hq-1", indices={"parent": IndexSpec(household, **PARENT)}),
    )
    drain(sender)
    create = next(r for r in hq.received if r.method == "POST")
    assert create.case_id is not None and create.case_id != household
    index = {"case_id": create.case_id, **PARENT}
    assert ("PUT", "hq-1/", {"indices": {"parent": index}}, 200) == sent(hq)[-1]
    assert 2 == len(hq.received)  # the update waited: never sent with our id of the case
    assert {"parent": index} == hq.hq.cases["hq-1"].indices
    r = api.get(WB + "?case_id=hq-1")
    assert ["sent"] == [w["status"] for w in r.body["objects"]]


def test_a_new_case_is_created_in_hq_with_its_indices(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    from_hq(hq, "hh-1", "household")
    ours(
        api,
        CaseChange(
            op="create",
            case_type="mother",
            case_name="Amina",
            owner_id="o1",
            indices={"parent": IndexSpec("hh-1", **PARENT)},
        ),
    )
    drain(sender)
    (create,) = hq.received
    assert ("POST", 200) == (create.method, create.status)
    assert {"parent": {"case_id": "hh-1", **PARENT}} == create.body["indices"]
    assert create.case_id is not None
    assert "hh-1" == hq.hq.cases[create.case_id].indices["parent"]["case_id"]


def test_a_reopen_fails_clearly_until_hq_has_the_case_open_then_retry_sends_it(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    from_hq(hq, "hq-1")
    ours(api, CaseChange(op="update", case_id="hq-1", close=True))
    drain(sender)
    assert [("PUT", "hq-1/", {"close": True}, 200)] == sent(hq)
    assert hq.hq.cases["hq-1"].closed
    ours(api, CaseChange(op="update", case_id="hq-1", reopen=True, properties={"visit": "2"}))
    ours(api, CaseChange(op="update", case_id="hq-1", properties={"visit": "3"}))
    drain(sender)
    # The properties went as an update; Case API v2 has no reopen: HQ is asked, still closed.
    assert [
        ("PUT", "hq-1/", {"properties": {"visit": "2"}}, 200),
        ("GET", "hq-1", None, 200),
    ] == sent(hq)[1:]
    r = api.get(WB + "?case_id=hq-1&status=failed")
    (failed,) = r.body["objects"]
    assert ("reopen", {"reopen": True}, REOPEN_ERROR) == (
        failed["op"],
        failed["body"],
        failed["last_error"],
    )
    assert "cannot reopen" in failed["last_error"]
    assert {"queued": 1, "sending": 0, "sent": 2, "failed": 1} == r.body["backlog"]
    # HQ forwards its states back (closed; visit 2): our pending reopen and visit 3 hold.
    hq.deliver()
    assert (False, "3") == (
        api.get(V2 + "hq-1").body["closed"],
        api.get(V2 + "hq-1").body["properties"]["visit"],
    )
    # The admin reopens it in HQ, then presses Retry: recorded as sent, the next change follows.
    hq.hq.save(dataclasses.replace(hq.hq.cases["hq-1"], closed=False, date_modified=None))
    assert 200 == api.post(WB + f"/{failed['id']}/retry").status
    drain(sender)
    assert [("GET", "hq-1", None, 200), ("PUT", "hq-1/", {"properties": {"visit": "3"}}, 200)] == (
        sent(hq)[3:]
    )
    assert {"queued": 0, "sending": 0, "sent": 4, "failed": 0} == api.get(WB).body["backlog"]
    r = api.get(V2 + "hq-1")
    assert (False, "3") == (r.body["closed"], r.body["properties"]["visit"])


def test_a_case_open_already_is_not_reopened_and_a_delete_is_not_written_back(
    api: Api, hq: CaseApi, sender: WriteBackSender
) -> None:
    from_hq(hq, "hq-1")
    ours(api, CaseChange(op="update", case_id="hq-1", reopen=True, properties={"a": "1"}))
    assert ["update"] == [w.op for w in CommCareWrite.objects.all()]  # nothing was reopened
    r = api.call("DELETE", V2 + "hq-1")
    assert 200 == r.status, r.body
    drain(sender)
    assert [("PUT", "hq-1/", {"properties": {"a": "1"}}, 200)] == sent(hq)
    assert 1 == CommCareWrite.objects.count()


def test_an_hq_state_forwarded_before_our_index_change_reached_hq_keeps_it(
    api: Api, hq: CaseApi
) -> None:
    from_hq(hq, "hq-2", case_type="household")
    from_hq(hq, "hq-1")
    parent = IndexSpec(case_id="hq-2", case_type="household", relationship="child")
    ours(api, CaseChange(op="update", case_id="hq-1", indices={"parent": parent}))
    # Someone edits the case in HQ before our write went out; HQ forwards it, index-less.
    hq.hq.save(dataclasses.replace(hq.hq.cases["hq-1"], case_name="renamed", date_modified=None))
    hq.deliver()

    case = api.get(V2 + "hq-1").body
    assert ("renamed", "hq-2") == (case["case_name"], case["indices"]["parent"]["case_id"])
