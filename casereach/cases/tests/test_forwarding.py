"""CommCare HQ's Data Forwarding into ``/a/{project}/api/commcare/case-forwarding/``, posted
by the fake HQ (casereach.testing.commcare_hq) and read back through the Case API v2 and the
contact profile."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from casereach.testing.commcare_hq import (
    FORWARDING,
    FakeHq,
    Format,
    HqCase,
    Send,
    case_json,
    case_xml,
    client_sender,
)
from casereach.testing.world import Api

V2 = "/a/{project}/api/case/v2/"
PROFILE = "/a/{project}/api/messaging/v1/contacts/"
PHONE = "254712345678"


def hq(api: Api, fmt: Format = "xml", send: Send | None = None) -> FakeHq:
    return FakeHq(
        api.project.name, send or client_sender(api.client, api.auth), fmt=fmt, max_attempts=3
    )


def mother(case_id: str = "c-1", **over: Any) -> HqCase:
    base = HqCase(
        case_id=case_id,
        case_type="mother",
        case_name="Amina",
        owner_id="owner-1",
        user_id="user-1",
        external_id="ext-1",
        properties={"contact_phone_number": PHONE, "edd": "2025-06-01"},
    )
    return dataclasses.replace(base, **over)


def post(api: Api, body: bytes, content_type: str = "application/json", **headers: str) -> Any:
    """A forwarding POST with the key of ``api``: (status, JSON body)."""
    r = api.client.post(
        FORWARDING.replace("{project}", api.project.name),
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=api.auth,
        **headers,
    )
    return r.status_code, r.json()


def case_of(api: Api, case_id: str) -> dict[str, Any]:
    r = api.get(V2 + case_id)
    assert 200 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def seen(api: Api, case_id: str) -> dict[str, Any]:
    """What the Case API v2 and the contact profile show of a case."""
    case = case_of(api, case_id)
    profile = api.get(PROFILE + case_id)
    assert 200 == profile.status, profile.body
    return {
        "case_name": case["case_name"],
        "case_type": case["case_type"],
        "owner_id": case["owner_id"],
        "external_id": case["external_id"],
        "closed": case["closed"],
        "properties": case["properties"],
        "indices": {
            k: (v["case_id"], v["case_type"], v["relationship"]) for k, v in case["indices"].items()
        },
        "contact_active": profile.body["active"],
        "contact_name": profile.body["name"],
        "contact_number": profile.body["phone"]["number"],
    }


def expected(case: HqCase, **over: Any) -> dict[str, Any]:
    out = {
        "case_name": case.case_name,
        "case_type": case.case_type,
        "owner_id": case.owner_id,
        "external_id": case.external_id,
        "closed": case.closed,
        "properties": case.properties,
        "indices": {
            k: (v["case_id"], v["case_type"], v.get("relationship", "child"))
            for k, v in case.indices.items()
        },
        "contact_active": not case.closed,
        "contact_name": case.case_name,
        "contact_number": case.properties.get("contact_phone_number"),
    }
    return {**out, **over}


STATES = [
    pytest.param(mother(), id="open case"),
    pytest.param(mother(closed=True), id="closed case"),
    pytest.param(mother(external_id=None, properties={}), id="no external id, no properties"),
    pytest.param(
        mother(indices={"parent": {"case_id": "household-9", "case_type": "household"}}),
        id="index to a case never forwarded",
    ),
    pytest.param(
        mother(
            indices={
                "host": {"case_id": "site-1", "case_type": "site", "relationship": "extension"}
            }
        ),
        id="extension index",
    ),
    pytest.param(
        mother(
            case_name='Zoë <&> "q"', properties={"note": "a < b & c", "contact_phone_number": PHONE}
        ),
        id="escaped text",
    ),
]


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize("state", STATES)
def test_a_forwarded_state_becomes_the_case_and_its_contact(
    api: Api, fmt: Format, state: HqCase
) -> None:
    fake = hq(api, fmt)
    fake.save(state)
    assert [] == fake.deliver()
    assert [200] == fake.records[0].attempts
    assert expected(state) == seen(api, state.case_id)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_each_later_state_replaces_the_earlier_one(api: Api, fmt: Format) -> None:
    fake = hq(api, fmt)
    first = mother(indices={"parent": {"case_id": "h-1", "case_type": "household"}})
    fake.save(first)
    later = mother(
        case_name="Amina K",
        external_id=None,
        properties={"contact_phone_number": "254700000002", "edd": ""},
        closed=True,
    )
    fake.save(later)  # the index is gone from the state: removed
    reopened = dataclasses.replace(later, closed=False)
    fake.save(reopened)
    assert [] == fake.deliver()
    assert expected(reopened) == seen(api, "c-1")


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_repeated_or_older_state_changes_nothing_and_is_a_success(api: Api, fmt: Format) -> None:
    fake = hq(api, fmt)
    old = fake.save(mother())
    new = fake.save(mother(case_name="Amina K"))
    assert [] == fake.deliver()
    before = case_of(api, "c-1")
    for record in (new, old, new):
        assert 200 == fake.attempt(record)
    assert before == case_of(api, "c-1")
    body, headers = old.payload(api.project.name)
    status, answer = post(
        api, body, headers["Content-Type"], HTTP_SERVER_MODIFIED_ON=headers["server-modified-on"]
    )
    assert (200, "stale") == (status, answer["outcome"])


def test_out_of_order_states_end_as_the_newest(api: Api) -> None:
    fake = hq(api, "alternate")
    states = [mother(case_name=f"Amina {n}", properties={"visit": str(n)}) for n in range(6)]
    for state in states:
        fake.save(state)
    records, fake.queue = fake.queue, []
    for record in reversed(records):  # newest first, then every older one
        assert 200 == fake.attempt(record)
    assert expected(states[-1], contact_number=None) == seen(api, "c-1")


def test_without_server_time_the_device_time_still_keeps_the_newest(api: Api) -> None:
    xml_new = case_xml(dataclasses.replace(mother(case_name="new"), date_modified=_t(2)))
    xml_old = case_xml(dataclasses.replace(mother(case_name="old"), date_modified=_t(1)))
    for body in (xml_new, xml_old):
        assert 200 == post(api, body, "text/xml")[0]
    assert "new" == case_of(api, "c-1")["case_name"]


def test_a_failed_post_is_retried_until_delivered(api: Api) -> None:
    real = client_sender(api.client, api.auth)
    calls: list[str] = []

    def flaky(path: str, body: bytes, headers: dict[str, str]) -> int:
        calls.append(path)
        if len(calls) == 1:
            raise OSError("connection reset")
        return real(path, body, headers)

    fake = hq(api, "json", send=flaky)
    fake.save(mother())
    assert [] == fake.deliver()
    assert [0, 200] == fake.records[0].attempts
    assert "Amina" == case_of(api, "c-1")["case_name"]


def _t(n: int) -> Any:
    import datetime as dt

    return dt.datetime(2025, 3, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n)


MALFORMED: list[Any] = [
    pytest.param(b"", "text/xml", id="empty xml"),
    pytest.param(b"<case", "text/xml", id="not well-formed"),
    pytest.param(b"<form/>", "text/xml", id="not a case element"),
    pytest.param(
        b'<case xmlns="http://commcarehq.org/case/transaction/v2"/>', "text/xml", id="no case_id"
    ),
    pytest.param(
        b'<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="new-1"><update><x>1</x></update></case>',
        "text/xml",
        id="update of an unknown case",
    ),
    pytest.param(
        b'<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="c-1" date_modified="soon"><create/></case>',
        "text/xml",
        id="bad date_modified",
    ),
    pytest.param(
        b'<!DOCTYPE case [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="c-1"><create>'
        b"<case_name>&b;</case_name></create></case>",
        "text/xml",
        id="entity expansion",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE case SYSTEM "file:///etc/passwd">'
        b'<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="c-1"/>',
        "text/xml",
        id="external DTD",
    ),
    pytest.param(b"{", "application/json", id="not JSON"),
    pytest.param(b"[]", "application/json", id="not an object"),
    pytest.param(b'{"properties": {}}', "application/json", id="no case_id"),
    pytest.param(
        b'{"case_id": "c-1", "closed": "no"}', "application/json", id="closed not a boolean"
    ),
    pytest.param(
        b'{"case_id": "c-1", "properties": {"a b": "1"}}',
        "application/json",
        id="bad property name",
    ),
    pytest.param(
        b'{"case_id": "c-1", "properties": {"n": 1}}', "application/json", id="number value"
    ),
    pytest.param(
        b'{"case_id": "c-1", "indices": {"parent": "x"}}', "application/json", id="bad index"
    ),
    pytest.param(
        b'{"case_id": "c-1", "server_date_modified": "x"}', "application/json", id="bad time"
    ),
    pytest.param(b"hello", "text/plain", id="neither"),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
def test_a_malformed_body_is_a_4xx_json_error_and_changes_nothing(
    api: Api, body: bytes, content_type: str
) -> None:
    fake = hq(api, "json")
    fake.save(mother())
    assert [] == fake.deliver()
    before = case_of(api, "c-1")
    status, answer = post(api, body, content_type)
    assert 400 == status, answer
    assert isinstance(answer["error"], str) and answer["error"]
    assert before == case_of(api, "c-1")
    assert 404 == api.get(V2 + "new-1").status


def test_a_bad_server_modified_on_header_is_a_400(api: Api) -> None:
    body = case_json(
        dataclasses.replace(mother(), date_modified=_t(1), server_modified_on=_t(1)), "demo"
    )
    assert 400 == post(api, body, HTTP_SERVER_MODIFIED_ON="yesterday")[0]
    assert 404 == api.get(V2 + "c-1").status


def test_an_oversized_body_is_refused(api: Api) -> None:
    body = (
        b'<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="c-1">'
        + b" " * (6 * 1024 * 1024)
        + b"</case>"
    )
    assert 413 == post(api, body, "text/xml")[0]
    assert 404 == api.get(V2 + "c-1").status


def test_another_projects_key_is_refused_and_its_case_ids_are_not_taken(
    api: Api, other_api: Api
) -> None:
    fake = hq(api, "xml")
    fake.save(mother())
    assert [] == fake.deliver()
    before = case_of(api, "c-1")
    body, headers = fake.records[0].payload(api.project.name)
    wrong_key = client_sender(other_api.client, other_api.auth)
    assert 403 == wrong_key(FORWARDING.replace("{project}", api.project.name), body, headers)
    own = FORWARDING.replace("{project}", other_api.project.name)
    later = dataclasses.replace(fake.cases["c-1"], case_name="taken", server_modified_on=_t(900))
    assert 400 == wrong_key(own, case_json(later, "other"), {"Content-Type": "application/json"})
    assert before == case_of(api, "c-1")


def test_a_viewer_key_may_not_forward(api: Api) -> None:
    from casereach.projects.models import Role

    viewer = Api(api.project, "viewer@example.org", role=Role.VIEWER)
    fake = hq(viewer, "json")
    fake.save(mother())
    cancelled = fake.deliver()
    assert [[403, 403, 403]] == [r.attempts for r in cancelled]
    assert cancelled[0].cancelled
    assert 404 == api.get(V2 + "c-1").status


def test_the_answer_names_the_case_and_the_outcome(api: Api) -> None:
    state = dataclasses.replace(mother(), date_modified=_t(1), server_modified_on=_t(1))
    assert (200, {"case_id": "c-1", "outcome": "applied"}) == post(api, case_json(state, "demo"))
    state2 = dataclasses.replace(state, server_modified_on=_t(2))
    assert (200, {"case_id": "c-1", "outcome": "unchanged"}) == post(api, case_json(state2, "demo"))
    assert json.loads(case_json(state2, "demo"))["properties"]["external_id"] == "ext-1"
