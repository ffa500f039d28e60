"""Phone entries (list, transfer) and the data-quality report over HTTP."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from casereach.contacts.queries import data_quality
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as create
from casereach.testing.world import Api, case_body

CASES = "/a/{project}/api/case/v2/"
V1 = "/a/{project}/api/messaging/v1"
NUMBER = "254712345678"


def bulk_create(api: Api, bodies: list[dict[str, Any]]) -> None:
    r = api.post(CASES, [{**b, "create": True} for b in bodies])
    assert r.status == 200, r.body


def numbers(api: Api, **query: Any) -> dict[str, Any]:
    r = api.get(V1 + "/phone-numbers", **query)
    assert r.status == 200, r.body
    assert isinstance(r.body, dict)
    return r.body


def transfer(api: Api, number: str, body: Any) -> Any:
    return api.post(f"{V1}/phone-numbers/{number}/transfer", body)


# --- listing -----------------------------------------------------------------------------


def test_list_shape(api: Api) -> None:
    cid = create(api, phone="+254 712 345 678", verified="1", contact_backend_id="AT-KE")
    body = numbers(api)
    assert body["meta"] == {"limit": 20, "offset": 0, "total_count": 1, "next": None}
    [row] = body["objects"]
    assert {
        "number",
        "contact_id",
        "contact_type",
        "project",
        "two_way",
        "verified_requested",
        "registered_on",
        "gateway",
    } <= set(row)
    assert row["number"] == NUMBER
    assert row["contact_id"] == cid
    assert row["contact_type"] == "case"
    assert row["project"] == "demo"
    assert row["two_way"] is True
    assert row["verified_requested"] is True
    assert row["gateway"] == "AT-KE"
    assert row["registered_on"].startswith("20")


@pytest.mark.parametrize("typed", [NUMBER, "+254712345678", "+254 712-345-678", "254 712 345 678"])
def test_number_filter_is_normalised(api: Api, typed: str) -> None:
    create(api, phone=NUMBER)
    create(api, phone="254700000000")
    body = numbers(api, number=typed)
    assert [r["number"] for r in body["objects"]] == [NUMBER]


def test_status_filters(api: Api) -> None:
    holder = create(api, name="holder", phone=NUMBER, verified="1")
    waiting = create(api, name="waiting", phone=NUMBER, verified="1")
    sharer = create(api, name="sharer", phone=NUMBER)
    other = create(api, name="other", phone="254700000000")

    def ids(status: str) -> set[str]:
        return {r["contact_id"] for r in numbers(api, status=status)["objects"]}

    assert ids("two_way") == {holder}
    assert ids("conflict") == {waiting}
    assert ids("one_way") == {waiting, sharer, other}
    assert ids("pending") == set()
    assert len(numbers(api)["objects"]) == 4
    assert {r["contact_id"] for r in numbers(api, number=NUMBER, status="one_way")["objects"]} == {
        waiting,
        sharer,
    }


def test_unknown_status_is_400(api: Api) -> None:
    r = api.get(V1 + "/phone-numbers", status="bogus")
    assert r.status == 400
    assert "bogus" in r.body["error"]


@pytest.mark.parametrize(("name", "value"), [("limit", "0"), ("limit", "x"), ("offset", "-1")])
def test_bad_paging_is_400(api: Api, name: str, value: str) -> None:
    assert api.get(V1 + "/phone-numbers", **{name: value}).status == 400


def test_paging(api: Api) -> None:
    bulk_create(api, [case_body(name=f"c{i}", phone=f"25470000{i:04d}") for i in range(5)])
    first = numbers(api, limit=2)
    assert [o["number"] for o in first["objects"]] == ["254700000000", "254700000001"]
    assert first["meta"]["total_count"] == 5
    assert first["meta"]["next"].endswith("limit=2&offset=2")
    last = numbers(api, limit=2, offset=4)
    assert [o["number"] for o in last["objects"]] == ["254700000004"]
    assert last["meta"]["next"] is None


def test_other_projects_entries_are_never_listed(api: Api, other_api: Api) -> None:
    create(other_api, phone=NUMBER, verified="1")
    mine = create(api, phone=NUMBER, verified="1")
    body = numbers(api, number=NUMBER)
    assert [r["contact_id"] for r in body["objects"]] == [mine]
    assert body["objects"][0]["two_way"] is False
    assert body["meta"]["total_count"] == 1


def test_closed_case_has_no_entry(api: Api) -> None:
    cid = create(api, phone=NUMBER)
    assert api.put(CASES + cid, {"close": True}).status == 200
    assert numbers(api)["objects"] == []


# --- transfer ----------------------------------------------------------------------------


def test_transfer_moves_ownership(api: Api) -> None:
    a = create(api, phone=NUMBER, verified="1")
    b = create(api, phone=NUMBER, verified="yes")  # waiting: a holds it
    r = transfer(api, "+254 712-345-678", {"contact_id": b})
    assert r.status == 200, r.body
    assert r.body["contact_id"] == b
    assert r.body["number"] == NUMBER
    assert r.body["two_way"] is True
    assert r.body["verified_requested"] is True
    assert {x["contact_id"] for x in numbers(api, status="two_way")["objects"]} == {b}
    assert {x["contact_id"] for x in numbers(api, status="conflict")["objects"]} == {a}
    again = transfer(api, NUMBER, {"contact_id": b})
    assert again.status == 200
    assert again.body["two_way"] is True


def test_transfer_to_an_unverified_contact_is_refused(api: Api) -> None:
    a = create(api, phone=NUMBER, verified="1")
    b = create(api, phone=NUMBER, verified="no")
    r = transfer(api, NUMBER, {"contact_id": b})
    assert 409 == r.status, r.body
    assert "not verified" in r.body["error"]
    assert {a} == {x["contact_id"] for x in numbers(api, status="two_way")["objects"]}


def test_transfer_to_contact_without_entry_is_404(api: Api) -> None:
    create(api, phone=NUMBER, verified="1")
    other = create(api, phone="254700000000")
    assert transfer(api, NUMBER, {"contact_id": other}).status == 404
    assert transfer(api, NUMBER, {"contact_id": "nobody"}).status == 404


def test_transfer_cannot_reach_into_another_project(api: Api, other_api: Api) -> None:
    theirs = create(other_api, phone=NUMBER, verified="1")
    mine = create(api, phone=NUMBER, verified="1")
    assert transfer(api, NUMBER, {"contact_id": theirs}).status == 404
    r = transfer(api, NUMBER, {"contact_id": mine})
    assert r.status == 409
    assert "another project" in r.body["error"]


@pytest.mark.parametrize("body", [{}, {"contact_id": 5}, {"contact_id": ""}, [1]])
def test_transfer_body_is_validated(api: Api, body: Any) -> None:
    create(api, phone=NUMBER, verified="1")
    r = transfer(api, NUMBER, body)
    assert r.status == 400
    assert r.body["error"]


def test_transfer_malformed_json_is_400(api: Api) -> None:
    r = api.post(f"{V1}/phone-numbers/{NUMBER}/transfer", raw="{nope")
    assert r.status == 400


# --- data quality ------------------------------------------------------------------------


def _messy_project(api: Api) -> dict[str, str]:
    return {
        "clean": create(api, name="Clean", phone=NUMBER, verified="1"),
        "conflict": create(api, name="Conflict", phone=NUMBER, verified="1"),
        "national": create(api, name="National", phone="0712000000"),
        "email": create(api, name="=Email", phone="254700000000", commcare_email_address="x@"),
        "gateway": create(api, name="Gateway", phone="254700000001", contact_backend_id="nope"),
        "bad_number_only": create(api, name="Short", phone="12"),
    }


def test_data_quality_json(api: Api, other_api: Api) -> None:
    ids = _messy_project(api)
    create(other_api, name="Elsewhere", phone="0712000000")
    closed = create(api, name="Closed", phone="0700000000")
    assert api.put(CASES + closed, {"close": True}).status == 200
    r = api.get(V1 + "/data-quality")
    assert r.status == 200, r.body
    rows = {row["contact_id"]: row for row in r.body["objects"]}
    assert r.body["meta"] == {"total_count": 5}
    assert set(rows) == {
        ids["conflict"],
        ids["national"],
        ids["email"],
        ids["gateway"],
        ids["bad_number_only"],
    }
    assert rows[ids["bad_number_only"]]["warnings"] == ["too_short"]
    assert rows[ids["conflict"]]["warnings"] == ["two_way_conflict"]
    assert rows[ids["conflict"]]["phone"] == NUMBER
    assert ids["clean"] in rows[ids["conflict"]]["messages"][0]
    assert rows[ids["national"]]["warnings"] == ["national_format"]
    assert rows[ids["national"]]["contact_type"] == "case"
    assert rows[ids["email"]]["warnings"] == ["invalid_email"]
    assert rows[ids["gateway"]]["warnings"] == ["unknown_gateway"]
    assert all(len(row["warnings"]) == len(row["messages"]) for row in rows.values())


@pytest.mark.parametrize("how", ["query", "accept"])
def test_data_quality_csv(api: Api, how: str) -> None:
    ids = _messy_project(api)
    if how == "query":
        r = api.get(V1 + "/data-quality", format="csv")
    else:
        r = api.client.get(
            "/a/demo/api/messaging/v1/data-quality",
            HTTP_AUTHORIZATION=api.auth,
            HTTP_ACCEPT="text/csv",
        )
        r.status = r.status_code
        r.raw = r.content
    assert r.status == 200
    text = r.raw.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["contact_id", "contact_type", "name", "phone", "warnings", "messages"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {
        ids["conflict"],
        ids["national"],
        ids["email"],
        ids["gateway"],
        ids["bad_number_only"],
    }
    assert by_id[ids["national"]][1:5] == ["case", "National", "0712000000", "national_format"]
    assert by_id[ids["email"]][2] == "'=Email"  # spreadsheet formulas are neutralised


def test_data_quality_unknown_format_is_400(api: Api) -> None:
    assert api.get(V1 + "/data-quality", format="xml").status == 400


def test_data_quality_is_set_based(
    api: Api, project: Project, django_assert_max_num_queries: Any
) -> None:
    bodies = []
    for i in range(60):
        extra = {"commcare_email_address": "bad"} if i % 3 == 0 else {}
        bodies.append(case_body(name=f"c{i}", phone=f"2547000{i % 20:05d}", verified="1", **extra))
    bulk_create(api, bodies)
    with django_assert_max_num_queries(7):  # 7th: alerts that read a time property (issue 16)
        rows = data_quality(project)
    assert len(rows) == 60 - 20 + 20 // 3 + 1  # 40 conflicts, plus bad emails among holders
    assert all(row["warnings"] for row in rows)


def test_messaging_api_auth(api: Api, other_api: Api) -> None:
    for path in ("phone-numbers", "data-quality"):
        assert api.get(f"/a/demo/api/messaging/v1/{path}", auth=None).status == 401
        assert other_api.get(f"/a/demo/api/messaging/v1/{path}").status == 403
    r = other_api.post(
        f"/a/demo/api/messaging/v1/phone-numbers/{NUMBER}/transfer", {"contact_id": "x"}
    )
    assert r.status == 403
    assert api.get("/a/unknown/api/messaging/v1/phone-numbers").status == 403


@pytest.mark.parametrize(
    ("raw", "code"), [("12a45", "not_digits"), ("123", "too_short"), ("07ABC", "not_digits")]
)
def test_data_quality_lists_refused_numbers(api: Api, raw: str, code: str) -> None:
    cid = create(api, name="Unusable", phone=raw)
    profile = api.get(f"{V1}/contacts/{cid}").body
    assert ("none", code) == (profile["phone"]["status"], profile["phone"]["reason"])
    [row] = api.get(V1 + "/data-quality").body["objects"]
    assert (cid, [code], raw) == (row["contact_id"], row["warnings"], row["phone"])
    assert [code] == [w["code"] for w in profile["warnings"]]


def test_data_quality_and_profiles_give_the_same_codes(api: Api) -> None:
    ids = _messy_project(api)
    ids["letters"] = create(api, name="Letters", phone="07ABC", contact_backend_id="nope")
    ids["missing"] = create(api, name="No phone")
    report = {
        row["contact_id"]: row["warnings"] for row in api.get(V1 + "/data-quality").body["objects"]
    }
    profiles = {
        cid: [w["code"] for w in api.get(f"{V1}/contacts/{cid}").body["warnings"]]
        for cid in ids.values()
    }
    assert {cid: codes for cid, codes in profiles.items() if codes} == report
    assert ["not_digits", "unknown_gateway"] == report[ids["letters"]]
    assert ["too_short"] == report[ids["bad_number_only"]]
