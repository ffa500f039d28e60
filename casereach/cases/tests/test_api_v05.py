"""The v0.5 case list and detail (reference/commcare-api.md sections 3 and 9)."""

# Expected values come first in assertions (project convention); ruff's SIM300 would flip them.

from __future__ import annotations

import re
from typing import Any

import pytest

from casereach.testing.cases import create_case as create
from casereach.testing.cases import create_cases as create_many
from casereach.testing.world import Api, case_body

LIST = "/a/{project}/api/v0.5/case/"
V1_LIST = "/a/{project}/api/case/v1/"
V2 = "/a/{project}/api/case/v2/"

INDEXED_ON = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


def naive(z_value: str) -> str:
    """A v2 ``…ffffffZ`` timestamp as commcare-export sends it back (naive isoformat)."""
    return z_value.removesuffix("Z")


def ids(resp: Any) -> list[str]:
    return [o["id"] for o in resp.body["objects"]]


# --- envelope and object shape ---------------------------------------------------------------


def test_envelope_and_case_object(api: Api) -> None:
    made = create(api, name="Amina", external_id="ext-1", phone="+254700000001", village="Kisumu")

    resp = api.get(LIST)

    assert 200 == resp.status
    assert {"meta", "objects"} == set(resp.body)
    assert {
        "limit": 20,
        "next": None,
        "offset": 0,
        "previous": None,
        "total_count": 1,
    } == resp.body["meta"]
    [obj] = resp.body["objects"]
    assert made["case_id"] == obj["id"]
    assert obj["case_id"] == obj["id"]
    assert "demo" == obj["domain"]
    assert {
        "case_name": "Amina",
        "case_type": "patient",
        "owner_id": "owner-1",
        "external_id": "ext-1",
        "contact_phone_number": "+254700000001",
        "village": "Kisumu",
    }.items() <= obj["properties"].items()
    assert NAIVE.match(obj["properties"]["date_opened"])
    for key in ("case_name", "case_type", "owner_id"):
        assert key not in obj
    assert INDEXED_ON.match(obj["indexed_on"])
    assert naive(made["indexed_on"]) == obj["indexed_on"].removesuffix("Z")
    for key in ("date_modified", "server_date_modified", "server_date_opened"):
        assert NAIVE.match(obj[key]), key
    assert obj["closed"] is False
    assert obj["date_closed"] is None
    assert f"/a/demo/api/v0.5/case/{made['case_id']}/" == obj["resource_uri"]


def test_json_even_with_accept_star(api: Api) -> None:
    create(api)

    resp = api.client.get("/a/demo/api/v0.5/case/", HTTP_AUTHORIZATION=api.auth, HTTP_ACCEPT="*/*")

    assert 200 == resp.status_code
    assert resp["Content-Type"].startswith("application/json")
    assert 1 == resp.json()["meta"]["total_count"]


def test_commcare_export_style_lowercase_apikey_scheme(api: Api) -> None:
    create(api)

    resp = api.get(LIST, auth=f"apikey {api.username}:{api.key}", limit="5", order_by="indexed_on")

    assert 200 == resp.status
    assert 1 == len(resp.body["objects"])


def test_v1_twin_serves_the_same_list(api: Api) -> None:
    create_many(api, [case_body(name=f"c{i}") for i in range(3)])

    v05 = api.get(LIST, limit="2")
    v1 = api.get(V1_LIST, limit="2")

    assert 200 == v1.status
    assert v05.body["objects"] == v1.body["objects"]
    assert "/a/demo/api/case/v1/?limit=2&offset=2" == v1.body["meta"]["next"]


def test_other_methods_are_rejected_with_4xx(api: Api) -> None:
    for method in ("POST", "PUT", "DELETE"):
        resp = api.call(method, LIST, {"case_type": "x"})
        assert 405 == resp.status, method


# --- ordering and date ranges ----------------------------------------------------------------


def test_default_order_is_server_date_modified_ascending(api: Api) -> None:
    first = create(api, name="first")
    second = create(api, name="second")
    # updating the first case moves it to the end (server_date_modified / indexed_on)
    resp = api.put(V2 + first["case_id"], {"properties": {"x": "1"}})
    assert 200 == resp.status

    listed = api.get(LIST)

    assert [second["case_id"], first["case_id"]] == ids(listed)


def test_order_by_indexed_on_ascending_and_descending(api: Api) -> None:
    made = [create(api, name=f"c{i}")["case_id"] for i in range(4)]

    asc = api.get(LIST, order_by="indexed_on")
    desc = api.get(LIST, order_by="-indexed_on")

    assert made == ids(asc)
    stamps = [o["indexed_on"] for o in asc.body["objects"]]
    assert sorted(stamps) == stamps
    assert list(reversed(made)) == ids(desc)


def test_order_by_is_repeatable(api: Api) -> None:
    same_device_time = "2024-01-02T03:04:05.000000Z"
    bodies = [{**case_body(name=f"c{i}"), "last_modified": same_device_time} for i in range(3)]
    made = [c["case_id"] for c in create_many(api, bodies)]

    resp = api.get(LIST, order_by=["date_modified", "-server_date_modified"])

    assert 200 == resp.status
    assert list(reversed(made)) == ids(resp)


def test_unknown_order_by_is_400(api: Api) -> None:
    resp = api.get(LIST, order_by="case_name")

    assert 400 == resp.status
    assert {"error": "No matching 'case_name' field for ordering on."} == resp.body


def test_indexed_on_start_is_inclusive(api: Api) -> None:
    made = create_many(api, [case_body(name=f"c{i}") for i in range(3)])
    boundary = naive(made[1]["indexed_on"])

    resp = api.get(LIST, order_by="indexed_on", indexed_on_start=boundary)

    assert [made[1]["case_id"], made[2]["case_id"]] == ids(resp)
    assert 2 == resp.body["meta"]["total_count"]


def test_indexed_on_end_is_inclusive(api: Api) -> None:
    made = create_many(api, [case_body(name=f"c{i}") for i in range(3)])

    resp = api.get(LIST, order_by="indexed_on", indexed_on_end=naive(made[1]["indexed_on"]))

    assert [made[0]["case_id"], made[1]["case_id"]] == ids(resp)


def test_server_modified_ranges(api: Api) -> None:
    made = create_many(api, [case_body(name=f"c{i}") for i in range(3)])
    middle = naive(made[1]["server_last_modified"])

    for start in ("server_date_modified_start", "server_modified_on_start"):
        resp = api.get(LIST, **{start: middle})
        assert [made[1]["case_id"], made[2]["case_id"]] == ids(resp), start
    resp = api.get(LIST, date_modified_start=middle, date_modified_end=middle)
    assert [made[1]["case_id"]] == ids(resp)


def test_date_only_end_means_midnight(api: Api) -> None:
    made = create(api)
    day = made["indexed_on"][:10]

    same_day_end = api.get(LIST, indexed_on_end=day)
    same_day_start = api.get(LIST, indexed_on_start=day)

    assert [] == ids(same_day_end)
    assert [made["case_id"]] == ids(same_day_start)


@pytest.mark.parametrize(
    "value",
    ["2024-01-02", "2024-01-02T03:04:05", "2024-01-02T03:04:05.123456", "2024-01-02T03:04Z"],
)
def test_accepted_date_formats(api: Api, value: str) -> None:
    create(api)

    resp = api.get(LIST, indexed_on_start=value)

    assert 200 == resp.status
    assert 1 == resp.body["meta"]["total_count"]


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05+00:00",
        "2024-01-02T03:04:05.123456Z",
        "yesterday",
        "2024-13-40",
        "",
    ],
)
def test_bad_date_is_400_with_hq_message(api: Api, value: str) -> None:
    resp = api.get(LIST, indexed_on_start=value)

    assert 400 == resp.status
    assert {"error": f"Bad query parameter: Unknown date format: {value}"} == resp.body


def test_bad_date_on_any_range_param(api: Api) -> None:
    resp = api.get(LIST, server_date_modified_end="2024-01-02T03:04:05Z")

    assert 400 == resp.status
    assert {"error": "Bad query parameter: Unknown date format: 2024-01-02T03:04:05Z"} == resp.body


# --- limit, offset, next ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "applied"), [("7", 7), ("5000", 5000), ("10000", 5000), ("0", 5000)]
)
def test_limit_is_an_int_capped_at_5000(api: Api, given: str, applied: int) -> None:
    create(api)

    resp = api.get(LIST, limit=given)

    assert 200 == resp.status
    assert applied == resp.body["meta"]["limit"]
    assert isinstance(resp.body["meta"]["limit"], int)
    assert resp.body["meta"]["next"] is None


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", ""])
def test_bad_limit_is_400(api: Api, value: str) -> None:
    resp = api.get(LIST, limit=value)

    assert 400 == resp.status
    expected = {"error": f"Invalid limit '{value}' provided. Please provide a positive integer."}
    assert expected == resp.body


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_bad_offset_is_400(api: Api, value: str) -> None:
    resp = api.get(LIST, offset=value)

    assert 400 == resp.status
    assert "error" in resp.body


def test_offset_paging_with_next_and_previous(api: Api) -> None:
    made = [c["case_id"] for c in create_many(api, [case_body(name=f"c{i}") for i in range(5)])]
    create(api, case_type="household")

    page1 = api.get(LIST, type="patient", limit="2")
    assert {
        "limit": 2,
        "next": "/a/demo/api/v0.5/case/?type=patient&limit=2&offset=2",
        "offset": 0,
        "previous": None,
        "total_count": 5,
    } == page1.body["meta"]

    page2 = api.get(LIST, type="patient", limit="2", offset="2")
    assert "/a/demo/api/v0.5/case/?type=patient&limit=2&offset=4" == page2.body["meta"]["next"]
    previous = page2.body["meta"]["previous"]
    assert "/a/demo/api/v0.5/case/?type=patient&limit=2&offset=0" == previous

    page3 = api.get(LIST, type="patient", limit="2", offset="4")
    assert page3.body["meta"]["next"] is None
    assert 4 == page3.body["meta"]["offset"]

    assert made == ids(page1) + ids(page2) + ids(page3)


def test_following_next_visits_every_case_once(api: Api) -> None:
    made = [c["case_id"] for c in create_many(api, [case_body(name=f"c{i}") for i in range(7)])]
    seen: list[str] = []
    path: str | None = "/a/demo/api/v0.5/case/?limit=3&order_by=indexed_on"
    while path is not None:
        resp = api.client.get(path, HTTP_AUTHORIZATION=api.auth)
        body = resp.json()
        seen += [o["id"] for o in body["objects"]]
        path = body["meta"]["next"]

    assert made == seen


def test_next_is_null_when_page_ends_exactly_at_total(api: Api) -> None:
    create_many(api, [case_body(name=f"c{i}") for i in range(4)])

    resp = api.get(LIST, limit="4")

    assert 4 == len(resp.body["objects"])
    assert resp.body["meta"]["next"] is None


def test_offset_past_the_end_is_empty(api: Api) -> None:
    create(api)

    resp = api.get(LIST, offset="10")

    assert 200 == resp.status
    assert [] == resp.body["objects"]
    assert 1 == resp.body["meta"]["total_count"]


# --- filters ---------------------------------------------------------------------------------


def test_type_filter_is_case_insensitive_and_exact_variant_is_not(api: Api) -> None:
    patient = create(api, case_type="Patient")["case_id"]
    create(api, case_type="household")

    assert [patient] == ids(api.get(LIST, type="patient"))
    assert [patient] == ids(api.get(LIST, case_type="PATIENT"))
    assert [] == ids(api.get(LIST, **{"type.exact": "patient"}))
    assert [patient] == ids(api.get(LIST, **{"type.exact": "Patient"}))


def test_repeated_filter_values_are_ored(api: Api) -> None:
    made = [create(api, case_type=t)["case_id"] for t in ("a", "b", "c")]

    resp = api.get(LIST, type=["a", "c"])

    assert [made[0], made[2]] == ids(resp)


def test_name_external_id_owner_and_user_filters(api: Api) -> None:
    amina = create(api, name="Amina", external_id="EXT-1", owner_id="o-1")["case_id"]
    create(api, name="Baraka", external_id="ext-2", owner_id="o-2")

    assert [amina] == ids(api.get(LIST, name="amina"))
    assert [amina] == ids(api.get(LIST, case_name="AMINA"))
    assert [] == ids(api.get(LIST, **{"name.exact": "amina"}))
    assert [amina] == ids(api.get(LIST, external_id="ext-1"))
    assert [] == ids(api.get(LIST, **{"external_id.exact": "ext-1"}))
    assert [amina] == ids(api.get(LIST, **{"external_id.exact": "EXT-1"}))
    assert [amina] == ids(api.get(LIST, owner_id="o-1"))
    assert [amina] == ids(api.get(LIST, owner_id="O-1"))  # HQ lower-cases the value
    assert 2 == api.get(LIST, user_id=api.username).body["meta"]["total_count"]
    assert 2 == api.get(LIST, user_id=api.username.upper()).body["meta"]["total_count"]
    assert 0 == api.get(LIST, user_id="nobody").body["meta"]["total_count"]


def test_phone_and_custom_property_filters(api: Api) -> None:
    a = create(api, phone="+254700000001", village="Kisumu")["case_id"]
    create(api, phone="+254700000002", village="kisumu")

    assert [a] == ids(api.get(LIST, contact_phone_number="+254700000001"))
    assert [a] == ids(api.get(LIST, village="Kisumu"))
    assert [] == ids(api.get(LIST, village="nowhere"))
    # a name that looks like an ORM lookup is still just a property name
    assert [] == ids(api.get(LIST, village__contains="K"))


def test_reserved_params_are_ignored(api: Api) -> None:
    create(api)

    resp = api.get(LIST, q="x", format="json", child_cases__full="true", username="u", api_key="k")

    assert 200 == resp.status
    assert 1 == resp.body["meta"]["total_count"]


# --- closed and deleted cases ----------------------------------------------------------------


def test_closed_cases_are_listed_and_filterable(api: Api) -> None:
    open_case = create(api, name="open")["case_id"]
    closed_case = create(api, name="closed")["case_id"]
    assert 200 == api.put(V2 + closed_case, {"close": True}).status

    listed = {o["id"]: o for o in api.get(LIST).body["objects"]}

    assert {open_case, closed_case} == set(listed)
    assert listed[closed_case]["closed"] is True
    assert NAIVE.match(listed[closed_case]["date_closed"])
    assert api.username == listed[closed_case]["closed_by"]
    assert [closed_case] == ids(api.get(LIST, closed="true"))
    assert [open_case] == ids(api.get(LIST, closed="false"))
    assert 400 == api.get(LIST, closed="maybe").status


def test_deleted_cases_never_appear(api: Api) -> None:
    keep = create(api, name="keep")["case_id"]
    gone = create(api, name="gone")["case_id"]
    assert 200 == api.delete(V2 + gone).status

    resp = api.get(LIST, order_by="indexed_on", indexed_on_start="2000-01-01")

    assert [keep] == ids(resp)
    assert 1 == resp.body["meta"]["total_count"]
    detail = api.get(LIST + gone + "/")
    assert 404 == detail.status
    assert b"" == detail.raw


# --- detail ----------------------------------------------------------------------------------


def test_detail_returns_the_v05_object(api: Api) -> None:
    made = create(api, name="Amina", village="Kisumu")
    listed = api.get(LIST).body["objects"][0]

    resp = api.get(LIST + made["case_id"] + "/")
    twin = api.get(V1_LIST + made["case_id"] + "/")

    assert 200 == resp.status
    assert listed == resp.body
    assert listed == twin.body


def test_unknown_detail_is_404_with_empty_body(api: Api) -> None:
    resp = api.get(LIST + "no-such-case/")

    assert 404 == resp.status
    assert b"" == resp.raw


def test_another_projects_case_is_404(api: Api, other_api: Api) -> None:
    theirs = create(other_api)["case_id"]

    assert 404 == api.get(LIST + theirs + "/").status
    assert [] == ids(api.get(LIST))


# --- auth ------------------------------------------------------------------------------------


def test_no_key_is_401(api: Api) -> None:
    assert 401 == api.get(LIST, auth=None).status
    assert 401 == api.get(LIST + "x/", auth=None).status


def test_bad_key_is_401(api: Api) -> None:
    assert 401 == api.get(LIST, auth=f"ApiKey {api.username}:wrong").status


def test_another_projects_key_is_403(api: Api, other_api: Api) -> None:
    create(api)

    assert 403 == other_api.get("/a/demo/api/v0.5/case/").status
    assert 403 == other_api.get("/a/demo/api/v0.5/case/anything/").status
    assert 403 == api.get("/a/no-such-project/api/v0.5/case/").status


# --- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["type", "owner_id", "village", "contact_phone_number"])
def test_nul_in_a_filter_value_is_refused(api: Api, param: str) -> None:
    create(api)

    resp = api.get(LIST, **{param: "a\x00b"})

    assert 400 == resp.status
    assert "NUL" in resp.body["error"]


def test_nul_does_not_hide_other_bad_params(api: Api) -> None:
    resp = api.get(LIST, type="\x00", limit="x")

    assert 400 == resp.status


def test_nul_in_detail_id_is_refused(api: Api) -> None:
    resp = api.get(LIST + "%00/")

    assert 400 == resp.status


def test_huge_offset_and_limit_are_handled(api: Api) -> None:
    create(api)

    resp = api.get(LIST, offset=str(10**30), limit=str(10**30))

    assert 200 == resp.status
    assert [] == resp.body["objects"]
    assert 5000 == resp.body["meta"]["limit"]
    assert resp.body["meta"]["next"] is None
