"""The CommCare-compatible mobile-worker API and its effect on messaging contacts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from casereach.contacts.models import Contact, PhoneEntry
from casereach.testing.workers import create_worker as create
from casereach.testing.workers import worker_body
from casereach.testing.world import Api, case_body

USERS = "/a/{project}/api/v0.5/user/"
USERS_V1 = "/a/{project}/api/user/v1/"


def entries(number: str) -> dict[str, bool]:
    """contact id -> holder, for every phone entry of ``number``."""
    return dict(PhoneEntry.objects.filter(number=number).values_list("contact_id", "holder"))


# --- create ------------------------------------------------------------------------------


def test_create_returns_201_and_the_full_user_object(api: Api) -> None:
    resp = api.post(
        USERS,
        worker_body(
            "Amina",
            first_name="Amina",
            last_name="Odhiambo",
            email="Amina@Example.org",
            phone_numbers=["+254700000001", "254700000002"],
            groups=["g1"],
            user_data={"district": "north"},
            language="sw",
            time_zone="Africa/Nairobi",
        ),
    )
    assert resp.status == 201
    user = resp.body
    wid = user["id"]
    assert user == {
        "type": "user",
        "id": wid,
        "username": "amina@demo.commcarehq.org",
        "first_name": "Amina",
        "last_name": "Odhiambo",
        "email": "amina@example.org",
        "default_phone_number": "254700000001",
        "phone_numbers": ["254700000001", "254700000002"],
        "groups": ["g1"],
        "primary_location": None,
        "locations": [],
        "user_data": {
            "district": "north",
            "commcare_project": "demo",
            "commcare_location_id": None,
            "commcare_location_ids": [],
            "commcare_primary_case_sharing_id": None,
            "commcare_profile": "",
        },
        "eulas": "[]",
        "resource_uri": f"/a/demo/api/v0.5/user/{wid}/",
        "language": "sw",
        "time_zone": "Africa/Nairobi",
        "is_active": True,
        "verified_numbers": [],
    }
    assert resp.headers["Location"] == f"/a/demo/api/v0.5/user/{wid}/"
    assert "password" not in user


def test_create_strips_plus_and_default_phone_number_goes_first(api: Api) -> None:
    user = create(
        api,
        phone_numbers=["+254700000001", "+254700000002"],
        default_phone_number="+254700000002",
    )
    assert user["phone_numbers"] == ["254700000002", "254700000001"]
    assert user["default_phone_number"] == "254700000002"


def test_create_without_numbers_has_null_default(api: Api) -> None:
    user = create(api)
    assert user["default_phone_number"] is None
    assert user["phone_numbers"] == []


def test_create_unknown_field_is_400_with_hq_message(api: Api) -> None:
    resp = api.post(USERS, worker_body(favourite_colour="blue"))
    assert resp.status == 400
    assert (
        resp.body["error"] == "Attempted to update unknown or non-editable field 'favourite_colour'"
    )


def test_create_requires_username_and_password(api: Api) -> None:
    assert api.post(USERS, {"password": "x"}).status == 400
    resp = api.post(USERS, {"username": "nopass"})
    assert resp.status == 400
    assert resp.body["error"] == "'password' is required"


def test_username_with_hash_is_400(api: Api) -> None:
    resp = api.post(USERS, worker_body("bob#retired-1"))
    assert resp.status == 400
    assert resp.body["error"] == "'username' may not contain '#'"


def test_duplicate_username_is_409(api: Api) -> None:
    create(api, "amina")
    resp = api.post(USERS, worker_body("AMINA"))
    assert resp.status == 409
    assert "already exists" in resp.body["error"]


def test_same_username_in_another_project_is_fine(api: Api, other_api: Api) -> None:
    create(api, "amina")
    other = create(other_api, "amina")
    assert other["username"] == "amina@other.commcarehq.org"


@pytest.mark.parametrize("raw", ["{not json", "", "\xff"])
def test_malformed_json_is_400(api: Api, raw: str) -> None:
    resp = api.post(USERS, raw=raw.encode("latin-1"))
    assert resp.status == 400
    assert resp.body["error"] == "Payload must be valid JSON"


def test_non_object_body_is_400(api: Api) -> None:
    resp = api.post(USERS, [worker_body()])
    assert resp.status == 400
    assert resp.body["error"] == "Payload must be a single JSON object"


# --- auth --------------------------------------------------------------------------------


def test_no_key_is_401(api: Api) -> None:
    assert api.get(USERS, auth=None).status == 401
    assert api.post(USERS, worker_body(), auth=None).status == 401


def test_wrong_project_key_is_403(api: Api, other_api: Api) -> None:
    user = create(api)
    assert other_api.get("/a/demo/api/v0.5/user/").status == 403
    assert other_api.get(f"/a/demo/api/v0.5/user/{user['id']}/").status == 403
    assert other_api.post("/a/demo/api/v0.5/user/", worker_body("intruder")).status == 403
    assert other_api.delete(f"/a/demo/api/v0.5/user/{user['id']}/").status == 403


def test_worker_of_another_project_is_invisible(api: Api, other_api: Api) -> None:
    theirs = create(other_api, "bob")
    assert api.get(USERS + f"{theirs['id']}/").status == 400
    assert api.put(USERS + f"{theirs['id']}/", {"first_name": "x"}).status == 404
    assert api.delete(USERS + f"{theirs['id']}/").status == 404


# --- get, list, pagination ---------------------------------------------------------------


def test_get_one_and_unknown_id_is_400(api: Api) -> None:
    user = create(api, first_name="Amina")
    resp = api.get(USERS + f"{user['id']}/")
    assert resp.status == 200
    assert resp.body == user
    missing = api.get(USERS + "no-such-id/")
    assert missing.status == 400
    assert "no-such-id" in missing.body["error"]


def test_list_envelope(api: Api) -> None:
    a = create(api, "a")
    b = create(api, "b")
    resp = api.get(USERS)
    assert resp.status == 200
    assert resp.body["meta"] == {
        "limit": 20,
        "next": None,
        "offset": 0,
        "previous": None,
        "total_count": 2,
    }
    assert [u["id"] for u in resp.body["objects"]] == [a["id"], b["id"]]
    assert resp.body["objects"][0] == a


def test_list_empty_project(api: Api) -> None:
    resp = api.get(USERS)
    assert resp.status == 200
    assert resp.body == {
        "meta": {"limit": 20, "next": None, "offset": 0, "previous": None, "total_count": 0},
        "objects": [],
    }


def test_pagination_meta_and_next(api: Api) -> None:
    ids = [create(api, f"w{i}")["id"] for i in range(5)]
    first = api.get(USERS, limit="2")
    assert first.body["meta"] == {
        "limit": 2,
        "next": "/a/demo/api/v0.5/user/?limit=2&offset=2",
        "offset": 0,
        "previous": None,
        "total_count": 5,
    }
    seen = [u["id"] for u in first.body["objects"]]
    nxt = first.body["meta"]["next"]
    pages = 1
    while nxt:
        parts = urlsplit(nxt)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        page = api.get(parts.path, **query)
        assert page.status == 200
        seen += [u["id"] for u in page.body["objects"]]
        nxt = page.body["meta"]["next"]
        pages += 1
    assert pages == 3
    assert seen == ids
    last = api.get(USERS, limit="2", offset="4")
    assert last.body["meta"]["next"] is None
    assert last.body["meta"]["previous"] == "/a/demo/api/v0.5/user/?limit=2&offset=2"
    assert len(last.body["objects"]) == 1


def test_limit_is_capped_at_1000_and_reported_as_int(api: Api) -> None:
    create(api)
    resp = api.get(USERS, limit="5000")
    assert resp.status == 200
    assert resp.body["meta"]["limit"] == 1000
    assert api.get(USERS, limit="0").body["meta"]["limit"] == 1000


@pytest.mark.parametrize("params", [{"limit": "abc"}, {"limit": "-1"}, {"offset": "-3"}])
def test_bad_paging_parameters_are_400(api: Api, params: dict[str, str]) -> None:
    resp = api.get(USERS, **params)
    assert resp.status == 400
    assert "Invalid" in resp.body["error"]


def test_offset_past_the_end_is_an_empty_page(api: Api) -> None:
    create(api)
    resp = api.get(USERS, offset="10")
    assert resp.status == 200
    assert resp.body["objects"] == []
    assert resp.body["meta"]["next"] is None
    assert resp.body["meta"]["total_count"] == 1


def test_next_keeps_filters(api: Api) -> None:
    for i in range(3):
        create(api, f"w{i}", groups=["g1"])
    resp = api.get(USERS, limit="2", group="g1")
    nxt = resp.body["meta"]["next"]
    assert parse_qs(urlsplit(nxt).query) == {"limit": ["2"], "offset": ["2"], "group": ["g1"]}


def test_group_filter(api: Api) -> None:
    a = create(api, "a", groups=["g1", "g2"])
    create(api, "b", groups=["g2"])
    create(api, "c")
    resp = api.get(USERS, group="g1")
    assert resp.status == 200
    assert [u["id"] for u in resp.body["objects"]] == [a["id"]]
    assert api.get(USERS, group="g2").body["meta"]["total_count"] == 2


def test_unknown_group_is_400(api: Api) -> None:
    create(api, groups=["g1"])
    resp = api.get(USERS, group="nope")
    assert resp.status == 400
    assert resp.body["error"] == "Project demo has no group with id=nope"


def test_group_of_another_project_is_400(api: Api, other_api: Api) -> None:
    create(other_api, groups=["theirs"])
    resp = api.get(USERS, group="theirs")
    assert resp.status == 400
    assert resp.body["error"] == "Project demo has no group with id=theirs"


def test_archived_lists_inactive_workers(api: Api) -> None:
    active = create(api, "active")
    gone = create(api, "gone")
    assert api.post(USERS + f"{gone['id']}/deactivate/").status == 200
    assert [u["id"] for u in api.get(USERS).body["objects"]] == [active["id"]]
    archived = api.get(USERS, archived="true")
    assert [u["id"] for u in archived.body["objects"]] == [gone["id"]]
    assert archived.body["objects"][0]["is_active"] is False


def test_v1_twin_paths(api: Api) -> None:
    resp = api.post(USERS_V1, worker_body("twin"))
    assert resp.status == 201
    wid = resp.body["id"]
    assert api.get(USERS_V1 + f"{wid}/").body["username"] == "twin@demo.commcarehq.org"
    assert api.get(USERS_V1).body["meta"]["total_count"] == 1
    assert api.put(USERS_V1 + f"{wid}/", {"first_name": "T"}).body["first_name"] == "T"
    assert api.post(USERS_V1 + f"{wid}/deactivate/").body["is_active"] is False
    assert api.post(USERS_V1 + f"{wid}/activate/").body["is_active"] is True
    assert api.delete(USERS_V1 + f"{wid}/").status == 202


# --- update ------------------------------------------------------------------------------


def test_update_changes_only_given_fields(api: Api) -> None:
    user = create(api, first_name="Amina", email="a@example.org", user_data={"k": "v"})
    resp = api.put(
        USERS + f"{user['id']}/",
        {
            "last_name": "Otieno",
            "email": "NEW@Example.org",
            "groups": ["g9"],
            "user_data": {"district": "south"},
            "username": "ignored",
        },
    )
    assert resp.status == 200
    updated = resp.body
    assert updated["first_name"] == "Amina"
    assert updated["last_name"] == "Otieno"
    assert updated["email"] == "new@example.org"
    assert updated["groups"] == ["g9"]
    assert updated["username"] == "amina@demo.commcarehq.org"
    assert updated["user_data"]["k"] == "v"
    assert updated["user_data"]["district"] == "south"
    assert api.get(USERS + f"{user['id']}/").body == updated


def test_update_default_phone_number_reorders_and_adds(api: Api) -> None:
    user = create(api, phone_numbers=["254700000001", "254700000002"])
    path = USERS + f"{user['id']}/"
    resp = api.put(path, {"default_phone_number": "+254700000002"})
    assert resp.status == 200
    assert resp.body["phone_numbers"] == ["254700000002", "254700000001"]
    assert resp.body["default_phone_number"] == "254700000002"
    resp = api.put(path, {"default_phone_number": "254700000003"})
    assert resp.body["phone_numbers"] == ["254700000003", "254700000002", "254700000001"]


def test_update_phone_numbers_replaces_the_list(api: Api) -> None:
    user = create(api, phone_numbers=["254700000001", "254700000002"])
    resp = api.put(USERS + f"{user['id']}/", {"phone_numbers": ["+15551234567"]})
    assert resp.body["phone_numbers"] == ["15551234567"]


def test_update_unknown_field_is_400_and_changes_nothing(api: Api) -> None:
    user = create(api, first_name="Amina")
    resp = api.put(USERS + f"{user['id']}/", {"first_name": "X", "resource_uri": "/x/"})
    assert resp.status == 400
    assert resp.body["error"] == "Attempted to update unknown or non-editable field 'resource_uri'"
    assert api.get(USERS + f"{user['id']}/").body["first_name"] == "Amina"


def test_update_round_trip_of_user_data_does_not_store_system_keys(api: Api) -> None:
    user = create(api, user_data={"k": "v"})
    resp = api.put(USERS + f"{user['id']}/", {"user_data": user["user_data"]})
    assert resp.status == 200
    from casereach.workers.models import MobileWorker

    stored = MobileWorker.objects.get(pk=user["id"]).user_data
    assert stored == {"k": "v"}


def test_update_malformed_json_and_unknown_id(api: Api) -> None:
    user = create(api)
    resp = api.put(USERS + f"{user['id']}/", raw="{")
    assert resp.status == 400
    assert resp.body["error"] == "Payload must be valid JSON"
    assert api.put(USERS + "no-such-id/", {"first_name": "x"}).status == 404


# --- delete, activate, deactivate --------------------------------------------------------


def test_delete_retires_with_202(api: Api) -> None:
    user = create(api)
    path = USERS + f"{user['id']}/"
    resp = api.delete(path)
    assert resp.status == 202
    assert api.get(path).status == 400
    assert api.get(USERS).body["meta"]["total_count"] == 0
    assert api.get(USERS, archived="true").body["meta"]["total_count"] == 0
    assert api.delete(path).status == 404
    assert api.post(path + "activate/").status == 404
    # The username is free again.
    assert api.post(USERS, worker_body()).status == 201


def test_delete_unknown_is_404(api: Api) -> None:
    assert api.delete(USERS + "no-such-id/").status == 404


def test_deactivate_and_activate(api: Api) -> None:
    user = create(api)
    resp = api.post(USERS + f"{user['id']}/deactivate/")
    assert resp.status == 200
    assert resp.body == {**user, "is_active": False}
    resp = api.post(USERS + f"{user['id']}/activate/")
    assert resp.status == 200
    assert resp.body == user
    assert api.post(USERS + "no-such-id/deactivate/").status == 404


# --- contact effects ---------------------------------------------------------------------

NUMBER = "254711000111"


def test_worker_numbers_are_one_way_until_verified(api: Api) -> None:
    user = create(api, phone_numbers=[f"+{NUMBER}"])
    assert entries(NUMBER) == {user["id"]: False}
    contact = Contact.objects.get(contact_id=user["id"])
    assert contact.contact_type == "worker"
    assert contact.phone_number == NUMBER
    resp = api.put(USERS + f"{user['id']}/", {"verified_numbers": [NUMBER]})
    assert resp.status == 200
    assert resp.body["verified_numbers"] == [NUMBER]
    assert entries(NUMBER) == {user["id"]: True}


def test_contact_follows_worker_profile(api: Api) -> None:
    user = create(
        api,
        first_name="Amina",
        last_name="Odhiambo",
        phone_numbers=[NUMBER],
        language="sw",
        time_zone="america/new_york",
    )
    contact = Contact.objects.get(contact_id=user["id"])
    assert contact.name == "Amina Odhiambo"
    assert contact.lang_effective == "sw"
    assert contact.tz_effective == "America/New_York"
    assert contact.active is True


def test_second_verified_worker_waits_and_is_promoted_on_deactivation(api: Api) -> None:
    first = create(api, "first", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    second = create(api, "second", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    assert entries(NUMBER) == {first["id"]: True, second["id"]: False}
    assert api.post(USERS + f"{first['id']}/deactivate/").status == 200
    assert entries(NUMBER) == {second["id"]: True}
    assert Contact.objects.get(contact_id=first["id"]).active is False
    # Reactivating does not take the number back.
    assert api.post(USERS + f"{first['id']}/activate/").status == 200
    assert entries(NUMBER) == {first["id"]: False, second["id"]: True}


def test_retiring_the_holder_promotes_the_next_requester(api: Api) -> None:
    first = create(api, "first", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    second = create(api, "second", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    assert api.delete(USERS + f"{first['id']}/").status == 202
    assert entries(NUMBER) == {second["id"]: True}


def test_changing_the_number_releases_two_way(api: Api) -> None:
    first = create(api, "first", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    second = create(api, "second", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    resp = api.put(USERS + f"{first['id']}/", {"phone_numbers": ["254711000999"]})
    assert resp.status == 200
    assert entries(NUMBER) == {second["id"]: True}
    assert entries("254711000999") == {first["id"]: False}


def test_unverifying_releases_two_way(api: Api) -> None:
    first = create(api, "first", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    second = create(api, "second", phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    assert api.put(USERS + f"{first['id']}/", {"verified_numbers": []}).status == 200
    assert entries(NUMBER) == {first["id"]: False, second["id"]: True}


def test_case_registered_first_keeps_the_number(api: Api) -> None:
    resp = api.post("/a/{project}/api/case/v2/", case_body(phone=f"+{NUMBER}", verified="1"))
    assert resp.status == 200, resp.body
    case_id = resp.body["case"]["case_id"]
    worker = create(api, phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    assert entries(NUMBER) == {case_id: True, worker["id"]: False}


def test_worker_registered_first_keeps_the_number(api: Api) -> None:
    worker = create(api, phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    resp = api.post("/a/{project}/api/case/v2/", case_body(phone=NUMBER, verified="1"))
    assert resp.status == 200, resp.body
    case_id = resp.body["case"]["case_id"]
    assert entries(NUMBER) == {worker["id"]: True, case_id: False}
    # The worker's deactivation hands the number to the case.
    assert api.post(USERS + f"{worker['id']}/deactivate/").status == 200
    assert entries(NUMBER) == {case_id: True}


def test_ownership_spans_projects(api: Api, other_api: Api) -> None:
    ours = create(api, phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    theirs = create(other_api, phone_numbers=[NUMBER], verified_numbers=[NUMBER])
    assert entries(NUMBER) == {ours["id"]: True, theirs["id"]: False}


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_documents_v05_routes_with_inline_bodies(api: Api) -> None:
    resp = api.get("/api/openapi.json")
    assert resp.status == 200
    paths = resp.body["paths"]
    assert "/a/{project}/api/v0.5/user/" in paths
    assert "/a/{project}/api/v0.5/user/{user_id}/" in paths
    assert not [p for p in paths if "/api/user/v1/" in p]
    body = paths["/a/{project}/api/v0.5/user/"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["username", "password"]
    assert "phone_numbers" in schema["properties"]
    assert "$ref" not in str(schema)
    operation_ids = [
        op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))
