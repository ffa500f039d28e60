"""Case API v2 through HTTP: shapes, status codes and CommCare's error texts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from casereach.cases.models import Case
from casereach.testing.cases import create_case as create
from casereach.testing.world import Api, case_body

V2 = "/a/{project}/api/case/v2/"
Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
KEYS = {
    "domain",
    "case_id",
    "case_type",
    "case_name",
    "external_id",
    "owner_id",
    "date_opened",
    "last_modified",
    "server_last_modified",
    "indexed_on",
    "closed",
    "date_closed",
    "properties",
    "indices",
}


def test_create_returns_form_id_and_all_fourteen_keys(api: Api) -> None:
    r = api.post(V2, case_body(name="Amina", external_id="e1", dob="1990-01-01"))
    assert 200 == r.status
    assert {"form_id", "case"} <= set(r.body)
    case = r.body["case"]
    assert KEYS == set(case)
    assert ("demo", "Amina", "patient", "owner-1", "e1") == (
        case["domain"],
        case["case_name"],
        case["case_type"],
        case["owner_id"],
        case["external_id"],
    )
    assert {"dob": "1990-01-01"} == case["properties"]
    assert {} == case["indices"]
    assert (False, None) == (case["closed"], case["date_closed"])
    for key in ("date_opened", "last_modified", "server_last_modified", "indexed_on"):
        assert Z.match(case[key]), case[key]


def test_get_one_and_many(api: Api) -> None:
    a = create(api, name="A")
    b = create(api, name="B")
    r = api.get(V2 + a["case_id"])
    assert (200, "A") == (r.status, r.body["case_name"])
    r = api.get(V2 + a["case_id"] + "/")
    assert 200 == r.status
    r = api.get(V2 + f"{a['case_id']},missing-id,{b['case_id']}")
    assert 200 == r.status
    assert (2, 1) == (r.body["matching_records"], r.body["missing_records"])
    assert [a["case_id"], "missing-id", b["case_id"]] == [c["case_id"] for c in r.body["cases"]]
    assert {"case_id": "missing-id", "error": "not found"} == r.body["cases"][1]


def test_missing_case_is_404_with_commcare_text(api: Api) -> None:
    r = api.get(V2 + "nope")
    assert (404, "Case 'nope' not found") == (r.status, r.body["error"])


def test_update_merges_properties_and_path_id_is_used(api: Api) -> None:
    case = create(api, a="1", b="2")
    r = api.put(V2 + case["case_id"], {"properties": {"b": "3", "c": "4"}, "case_name": "New"})
    assert 200 == r.status, r.body
    assert {"a": "1", "b": "3", "c": "4"} == r.body["case"]["properties"]
    assert "New" == r.body["case"]["case_name"]
    assert r.body["case"]["indexed_on"] > case["indexed_on"]


def test_update_unknown_case_is_400_not_404(api: Api) -> None:
    r = api.put(V2 + "nope", {"case_name": "x"})
    assert (400, "No case found with ID 'nope'") == (r.status, r.body["error"])


def test_put_root_updates_by_external_id_but_is_not_an_upsert(api: Api) -> None:
    create(api, external_id="ext-1")
    r = api.put(V2, {"external_id": "ext-1", "case_name": "Renamed"})
    assert (200, "Renamed") == (r.status, r.body["case"]["case_name"])
    r = api.put(V2, {"external_id": "ext-unknown", "case_name": "x"})
    assert 400 == r.status


def test_close_and_reopen(api: Api) -> None:
    case = create(api)
    r = api.put(V2 + case["case_id"], {"close": True})
    assert (True, True) == (r.body["case"]["closed"], r.body["case"]["date_closed"] is not None)
    r = api.put(V2 + case["case_id"], {"reopen": True})
    assert (False, None) == (r.body["case"]["closed"], r.body["case"]["date_closed"])


def test_upsert_by_external_id(api: Api) -> None:
    r = api.put(V2 + "ext/abc/", case_body(name="First"))
    assert (200, "abc") == (r.status, r.body["case"]["external_id"])
    first_id = r.body["case"]["case_id"]
    r = api.put(V2 + "ext/abc/", {"case_name": "Second"})
    assert (200, first_id, "Second") == (
        r.status,
        r.body["case"]["case_id"],
        r.body["case"]["case_name"],
    )
    r = api.get(V2 + "ext/abc/")
    assert (200, "Second") == (r.status, r.body["case_name"])
    r = api.put(V2 + "ext/abc/", [case_body()])
    assert (400, "Payload must be a single JSON object") == (r.status, r.body["error"])
    r = api.put(V2 + "ext/new-one/", {"case_name": "no type"})
    assert (400, "Property case_type is required.") == (r.status, r.body["error"])


def test_external_id_with_slash_round_trips(api: Api) -> None:
    r = api.put(V2 + "ext/a%2Fb/", case_body(name="Slash"))
    assert (200, "a/b") == (r.status, r.body["case"]["external_id"])


def test_external_id_with_a_line_break_round_trips(api: Api) -> None:
    # Found by the OpenAPI fuzz: Django's path converter stops at a line break, so such an
    # id answered an undocumented 404 "no such API path".
    created = create(api, external_id="a\nb")
    r = api.put(V2 + "ext/a%0Ab/", {"case_name": "Renamed"})
    assert (200, created["case_id"], "a\nb") == (
        r.status,
        r.body["case"]["case_id"],
        r.body["case"]["external_id"],
    )
    r = api.get(V2 + "ext/a%0Ab/")
    assert (200, "Renamed") == (r.status, r.body["case_name"])


def test_get_by_external_id_missing_and_duplicate(api: Api) -> None:
    r = api.get(V2 + "ext/none/")
    assert (404, "Case 'none' not found") == (r.status, r.body["error"])
    a = create(api, external_id="dup")
    b = create(api, external_id="dup")
    r = api.get(V2 + "ext/dup/")
    assert 400 == r.status
    assert r.body["error"].startswith("Multiple cases found with external_id 'dup': ")
    assert {a["case_id"], b["case_id"]} == set(r.body["error"].split(": ", 1)[1].split(", "))


def test_bulk_create_update_upsert_with_temporary_id(api: Api) -> None:
    existing = create(api, name="Existing")
    r = api.post(
        V2,
        [
            {
                "create": True,
                "temporary_id": "hh",
                **case_body(name="Household", case_type="household"),
            },
            {
                "create": True,
                **case_body(name="Child"),
                "indices": {
                    "parent": {
                        "temporary_id": "hh",
                        "case_type": "household",
                        "relationship": "child",
                    }
                },
            },
            {"create": False, "case_id": existing["case_id"], "case_name": "Updated"},
            {"create": None, "external_id": "up-1", **case_body(name="Upserted")},
        ],
    )
    assert 200 == r.status, r.body
    names = [c["case_name"] for c in r.body["cases"]]
    assert ["Household", "Child", "Updated", "Upserted"] == names
    assert r.body["cases"][0]["case_id"] == r.body["cases"][1]["indices"]["parent"]["case_id"]
    parent = r.body["cases"][0]["case_id"]
    listed = api.get(V2, **{"indices.parent": parent})
    assert ["Child"] == [c["case_name"] for c in listed.body["cases"]]


def test_bulk_is_all_or_nothing_with_row_numbers(api: Api) -> None:
    before = Case.objects.count()
    r = api.post(
        V2,
        [
            {"create": True, **case_body(name="Good")},
            {**case_body(name="No flag")},
            {"create": True, "case_id": "x", **case_body()},
        ],
    )
    assert 400 == r.status
    assert (
        "Error in row 2: A 'create' flag is required for each update.; "
        "Error in row 3: You cannot specify case_id when creating a new case"
    ) == r.body["error"]
    assert before == Case.objects.count()


def test_bulk_over_100_refused(api: Api) -> None:
    r = api.post(V2, [{"create": True, **case_body()} for _ in range(101)])
    assert (400, "You cannot submit more than 100 updates in a single request") == (
        r.status,
        r.body["error"],
    )
    assert 0 == Case.objects.count()


def test_bulk_upsert_requires_external_id(api: Api) -> None:
    r = api.post(V2, [{"create": None, **case_body()}])
    assert 400 == r.status
    assert "UPSERT" in r.body["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"case_type": "p", "case_name": "n"}, "Property owner_id is required."),
        ({**case_body(), "colour": "red"}, "'colour' is not a valid field."),
        (
            {**case_body(), "properties": {"age": 72}},
            "Error with case property 'age'. Values must be strings, received '72'",
        ),
        (
            {**case_body(), "properties": {"not good": "x"}},
            "Error with case property 'not good'. Case property names must be valid XML identifiers.",
        ),
        (
            {**case_body(), "properties": {"xmlthing": "x"}},
            "Error with case property 'xmlthing'. Case property names must be valid XML identifiers.",
        ),
        ({**case_body(), "case_name": 5}, "Property case_name must be a string."),
        ({**case_body(), "close": "yes"}, "Property close must be a boolean."),
        ({**case_body(), "create": True}, "'create' is not a valid field."),
        ({**case_body(), "case_id": "abc"}, "You cannot specify case_id when creating a new case"),
        (
            {
                **case_body(),
                "indices": {
                    "parent": {
                        "case_id": "a",
                        "external_id": "b",
                        "case_type": "x",
                        "relationship": "child",
                    }
                },
            },
            "Indices must specify case_id, external_id, or temporary ID, and only one",
        ),
        (
            {**case_body(), "indices": {"parent": {"case_id": "a", "case_type": "x"}}},
            "Property relationship is required when creating or updating case indices",
        ),
        (
            {
                **case_body(),
                "indices": {
                    "parent": {"external_id": "zzz", "case_type": "x", "relationship": "child"}
                },
            },
            "Could not find a case with external_id 'zzz'",
        ),
        ("a string", "Payload must be a single JSON object"),
        (12, "Payload must be a single JSON object"),
    ],
)
def test_bad_bodies_get_400_and_write_nothing(api: Api, body: Any, message: str) -> None:
    r = api.post(V2, body)
    assert (400, message) == (r.status, r.body["error"])
    assert 0 == Case.objects.count()


def test_malformed_json(api: Api) -> None:
    r = api.post(V2, raw="{not json")
    assert (400, "Payload must be valid JSON") == (r.status, r.body["error"])


def test_index_to_missing_case_is_400(api: Api) -> None:
    r = api.post(
        V2,
        {
            **case_body(),
            "indices": {"parent": {"case_id": "ghost", "case_type": "h", "relationship": "child"}},
        },
    )
    assert 400 == r.status
    assert r.body["error"].startswith("InvalidCaseIndex")


def test_index_removed_with_empty_id(api: Api) -> None:
    parent = create(api, name="P", case_type="household")
    child = api.post(
        V2,
        {
            **case_body(),
            "indices": {
                "parent": {
                    "case_id": parent["case_id"],
                    "case_type": "household",
                    "relationship": "child",
                }
            },
        },
    ).body["case"]
    r = api.put(V2 + child["case_id"], {"indices": {"parent": {"case_id": ""}}})
    assert {} == r.body["case"]["indices"]


def test_soft_delete(api: Api) -> None:
    case = create(api)
    r = api.delete(V2 + case["case_id"])
    assert 200 == r.status
    assert 404 == api.get(V2 + case["case_id"]).status
    assert 404 == api.delete(V2 + case["case_id"]).status
    assert 0 == api.get(V2).body["matching_records"]


def test_list_filters_and_cursor_paging(api: Api) -> None:
    for i in range(7):
        create(
            api, name=f"c{i}", case_type="patient" if i % 2 else "household", owner_id=f"o{i % 3}"
        )
    r = api.get(V2, limit="3")
    assert (7, 3) == (r.body["matching_records"], len(r.body["cases"]))
    seen = [c["case_name"] for c in r.body["cases"]]
    nxt = r.body["next"]
    while nxt:
        r = api.get(nxt.replace("http://testserver", ""))
        assert 200 == r.status
        seen += [c["case_name"] for c in r.body["cases"]]
        nxt = r.body.get("next")
    assert [f"c{i}" for i in range(7)] == seen
    assert "next" not in r.body
    r = api.get(V2, case_type="household")
    assert 4 == r.body["matching_records"]
    r = api.client.get(
        V2.replace("{project}", "demo") + "?owner_id=o0&owner_id=o1", HTTP_AUTHORIZATION=api.auth
    )
    assert 5 == r.json()["matching_records"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "5001"}, "You cannot request more than 5000 cases per request."),
        ({"limit": "abc"}, "'abc' is not a valid value for 'limit'"),
        ({"colour": "red"}, "'colour' is not a valid parameter."),
        ({"last_modified.start": "2020-01-01"}, "'start' is not a valid type of date range."),
        ({"last_modified.gt": "not a date"}, "Cannot parse datetime 'not a date'"),
    ],
)
def test_list_bad_parameters(api: Api, query: dict[str, str], message: str) -> None:
    r = api.get(V2, **query)
    assert (400, message) == (r.status, r.body["error"])


def test_list_property_and_date_filters(api: Api) -> None:
    create(api, name="A", village="x")
    create(api, name="B", village="y")
    create(api, name="C")
    assert ["A"] == [
        c["case_name"] for c in api.get(V2, **{"properties.village": "x"}).body["cases"]
    ]
    assert ["C"] == [
        c["case_name"] for c in api.get(V2, **{"properties.village": ""}).body["cases"]
    ]
    assert 3 == api.get(V2, **{"date_opened.gte": "2000-01-01"}).body["matching_records"]
    assert 0 == api.get(V2, **{"date_opened.lte": "2000-01-01"}).body["matching_records"]
    assert 3 == api.get(V2, **{"date_opened.lte": "9999-12-31"}).body["matching_records"]
    assert 0 == api.get(V2, **{"date_opened.gt": "9999-12-31"}).body["matching_records"]
    assert 3 == api.get(V2, closed="false").body["matching_records"]
    assert 0 == api.get(V2, closed="yes").body["matching_records"]


def test_fields_and_exclude(api: Api) -> None:
    case = create(api, a="1", b="2")
    r = api.get(V2 + case["case_id"], fields="case_name,properties.a")
    assert {"case_name": case["case_name"], "properties": {"a": "1"}} == r.body
    r = api.get(V2 + case["case_id"], exclude="properties")
    assert "properties" not in r.body
    r = api.get(V2 + case["case_id"], fields="case_name", exclude="case_id")
    assert 400 == r.status


def test_bulk_fetch(api: Api) -> None:
    a = create(api, external_id="x1")
    r = api.post(
        V2 + "bulk-fetch/", {"case_ids": [a["case_id"], "nope"], "external_ids": ["x1", "x2"]}
    )
    assert (2, 2) == (r.body["matching_records"], r.body["missing_records"])
    assert [a["case_id"], "nope", a["case_id"], None] == [c.get("case_id") for c in r.body["cases"]]
    r = api.post(V2 + "bulk-fetch/", {"case_id": [a["case_id"]]})
    assert 1 == r.body["matching_records"]
    r = api.post(V2 + "bulk-fetch/", {})
    assert (400, "Payload must include 'case_ids' or 'external_ids' fields") == (
        r.status,
        r.body["error"],
    )
    r = api.post(V2 + "bulk-fetch/", {"case_ids": ["x"] * 5001})
    assert (400, "You cannot request more than 5000 cases per request.") == (
        r.status,
        r.body["error"],
    )


def test_auth(api: Api, other_api: Api) -> None:
    case = create(api)
    assert 401 == api.get(V2, auth=None).status
    assert 401 == api.get(V2, auth="ApiKey admin@example.org:wrong").status
    assert 401 == api.get(V2, auth="Basic Zm9vOmJhcg==").status
    assert 200 == api.get(V2, auth=f"apikey {api.username}:{api.key}").status
    assert 200 == api.get(V2, auth=f"APIKEY {api.username}:{api.key}").status
    assert 401 == api.get(V2, auth=f"ApiKey someone-else:{api.key}").status
    r = other_api.get(V2.replace("{project}", "demo") + case["case_id"])
    assert 403 == r.status
    assert "error" in r.body
    assert 403 == other_api.post(V2.replace("{project}", "demo"), case_body()).status
    assert 403 == api.get("/a/no-such-project/api/case/v2/").status
    assert 1 == Case.objects.count()


def test_indexed_on_strictly_increasing(api: Api) -> None:
    api.post(V2, [{"create": True, **case_body(name=str(i))} for i in range(50)])
    stamps = list(Case.objects.order_by("indexed_on").values_list("indexed_on", flat=True))
    assert len(stamps) == len(set(stamps))


def test_stale_update_is_ignored_and_replay_is_a_no_op(api: Api) -> None:
    case = create(api, weight="1")
    newer = api.put(
        V2 + case["case_id"],
        {"properties": {"weight": "2"}, "last_modified": "2030-01-01T00:00:00Z"},
    )
    assert "2" == newer.body["case"]["properties"]["weight"]
    old = api.put(
        V2 + case["case_id"],
        {"properties": {"weight": "1"}, "last_modified": "2029-01-01T00:00:00Z"},
    )
    assert "2" == old.body["case"]["properties"]["weight"]
    same = api.put(V2 + case["case_id"], {"properties": {"weight": "2"}})
    assert newer.body["case"]["indexed_on"] == same.body["case"]["indexed_on"]
