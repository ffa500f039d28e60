"""A send time read from a case property that holds none (issue 16 item 5, then item 11's rule):
the contacts it warns about in their profile (``alert_time_default``) are in the data-quality
report with that code, and no one else."""

from __future__ import annotations

from typing import Any

from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"


def a_case(api: Api, phone: str, **props: str) -> str:
    r = api.post(
        V2, case_body(case_type="mother", phone=phone, time_zone="Africa/Nairobi", **props)
    )
    assert 200 == r.status, r.body
    cid: str = r.body["case"]["case_id"]
    return cid


def alert(**over: Any) -> dict[str, Any]:
    return {
        "name": "Slot reminder",
        "kind": "conditional",
        "case_type": "mother",
        "active": True,
        "criteria": {"rules": [{"property": "edd", "op": "has_value"}]},
        "content": {"sms": {"en": "Hello {case.name}"}},
        "schedule": {
            "type": "timed",
            "events": [{"day": 1, "time_property": "slot"}],
            "repeat": {"unit": "days", "iterations": 2},
            "start": {"from": "match"},
        },
        "recipients": [{"type": "self"}],
        **over,
    }


def codes(api: Api) -> dict[str, list[str]]:
    r = api.get(M + "data-quality")
    assert 200 == r.status, r.body
    return {row["contact_id"]: row["warnings"] for row in r.body["objects"]}


def test_contacts_sent_at_noon_by_default_are_in_the_data_quality_report(api: Api) -> None:
    good = a_case(api, "254712000001", edd="x", slot="9:15")
    missing = a_case(api, "254712000002", edd="x")
    bad = a_case(api, "254712000003", edd="x", slot="after lunch")
    unmatched = a_case(api, "254712000004", slot="")  # no edd: the alert never reaches it
    assert {} == codes(api)
    r = api.post(M + "alerts", alert())
    assert 201 == r.status, r.body

    report = codes(api)
    assert {missing: ["alert_time_default"], bad: ["alert_time_default"]} == report
    rows = {row["contact_id"]: row for row in api.get(M + "data-quality").body["objects"]}
    assert "'Slot reminder'" in rows[missing]["messages"][0]
    csv = api.get(M + "data-quality", format="csv").raw.decode()
    assert bad in csv and "alert_time_default" in csv

    # The profile and the report agree, contact by contact.
    for cid in (good, missing, bad, unmatched):
        profile = api.get(M + f"contacts/{cid}").body
        assert report.get(cid, []) == [w["code"] for w in profile["warnings"]], cid

    # Fixed on the case: gone from both; the alert deactivated: gone too.
    assert 200 == api.put(V2 + missing, {"properties": {"slot": "10:30"}}).status
    assert {bad: ["alert_time_default"]} == codes(api)
    assert 200 == api.post(M + f"alerts/{r.body['id']}/deactivate").status
    assert {} == codes(api)
