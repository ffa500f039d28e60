"""The contact profile (SPEC 3.9) over HTTP: every rule of SPEC 3 that the profile shows."""

from __future__ import annotations

from typing import Any

import pytest

from casereach.contacts.models import PhoneEntry
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as create
from casereach.testing.world import Api
from casereach.workers.actions import do_create_worker, do_set_worker_active

CASES = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"


def update(api: Api, case_id: str, body: dict[str, Any]) -> None:
    r = api.put(CASES + case_id, body)
    assert r.status == 200, r.body


def props(api: Api, case_id: str, **values: str) -> None:
    update(api, case_id, {"properties": values})


def profile(api: Api, contact_id: str) -> dict[str, Any]:
    r = api.get(f"/a/{{project}}/api/messaging/v1/contacts/{contact_id}")
    assert r.status == 200, r.body
    assert isinstance(r.body, dict)
    return r.body


def codes(p: dict[str, Any]) -> list[str]:
    return [w["code"] for w in p["warnings"]]


def settings(api: Api, **changes: Any) -> None:
    r = api.put("/a/{project}/api/messaging/v1/settings", changes)
    assert r.status == 200, r.body


# --- the contract ------------------------------------------------------------------------


def test_profile_shape_is_the_contract(api: Api) -> None:
    cid = create(
        api,
        name="Amina",
        phone="+254 (712) 345-678",
        verified="1",
        commcare_email_address=" amina@example.org ",
        time_zone="africa/nairobi",
        language_code="sw",
    )
    p = profile(api, cid)
    assert {
        "contact_id",
        "contact_type",
        "project",
        "name",
        "active",
        "opted_out",
        "phone",
        "email",
        "time_zone",
        "language",
        "gateway",
        "warnings",
        "upcoming",
    } <= set(p)
    assert p["contact_id"] == cid
    assert p["contact_type"] == "case"
    assert p["project"] == "demo"
    assert p["name"] == "Amina"
    assert p["active"] is True
    assert p["opted_out"] is False
    assert {
        k: p["phone"][k] for k in ("number", "status", "reason", "verified_requested", "held_by")
    } == {
        "number": NUMBER,
        "status": "two_way",
        "reason": None,
        "verified_requested": True,
        "held_by": None,
    }
    assert p["email"] == {"address": "amina@example.org", "status": "ok"}
    assert p["time_zone"] == {
        "effective": "Africa/Nairobi",
        "source": "contact",
        "requested": "africa/nairobi",
    }
    assert p["language"] == {"effective": "sw", "source": "contact", "requested": "sw"}
    assert p["gateway"] == {"name": None, "source": "none", "status": "no_gateway"}
    assert p["warnings"] == []
    assert p["upcoming"] == []
    assert "phones" not in p


def test_defaults_come_from_the_project(api: Api) -> None:
    cid = create(api, phone=NUMBER)
    p = profile(api, cid)
    assert p["time_zone"] == {"effective": "Africa/Nairobi", "source": "project", "requested": None}
    assert p["language"] == {"effective": "en", "source": "project", "requested": None}
    assert p["email"] == {"address": None, "status": "missing"}


def test_unknown_contact_is_404(api: Api) -> None:
    r = api.get("/a/{project}/api/messaging/v1/contacts/no-such-contact")
    assert r.status == 404
    assert "not found" in r.body["error"]


def test_another_projects_contact_is_404(api: Api, other_api: Api) -> None:
    theirs = create(other_api, phone=NUMBER)
    assert api.get(f"/a/{{project}}/api/messaging/v1/contacts/{theirs}").status == 404
    assert profile(other_api, theirs)["project"] == "other"


def test_auth(api: Api, other_api: Api) -> None:
    cid = create(api, phone=NUMBER)
    path = f"/a/demo/api/messaging/v1/contacts/{cid}"
    assert api.get(path, auth=None).status == 401
    assert api.get(path, auth="ApiKey nobody:wrong").status == 401
    r = other_api.get(path)
    assert r.status == 403
    assert "error" in r.body


# --- 3.1 phone number --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("+254 (712) 345-678", NUMBER),
        ("254.712.345.678", NUMBER),
        (" 254712345678\t", NUMBER),
        ("+1 555 123 4567", "15551234567"),
    ],
)
def test_number_is_normalised(api: Api, raw: str, number: str) -> None:
    p = profile(api, create(api, phone=raw))
    assert p["phone"]["number"] == number
    assert p["phone"]["status"] == "one_way"
    assert p["phone"]["reason"] == "not_verified"
    assert p["warnings"] == []


@pytest.mark.parametrize("raw", [None, "", "   ", "0", "+0", "( )"])
def test_missing_number(api: Api, raw: str | None) -> None:
    p = profile(api, create(api, phone=raw))
    assert p["phone"]["number"] is None
    assert p["phone"]["status"] == "none"
    assert p["phone"]["reason"] == "missing"
    assert p["phone"]["held_by"] is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12a4567", "not_digits"),
        ("call me", "not_digits"),
        ("123", "too_short"),
        ("+1-2", "too_short"),
    ],
)
def test_unusable_number_has_no_entry(api: Api, raw: str, reason: str) -> None:
    cid = create(api, phone=raw, verified="1")
    p = profile(api, cid)
    assert p["phone"]["status"] == "none"
    assert p["phone"]["reason"] == reason
    assert p["phone"]["number"] is None
    assert not PhoneEntry.objects.filter(contact_id=cid).exists()


def test_national_format_warns_but_works(api: Api) -> None:
    p = profile(api, create(api, phone="0712345678", verified="1"))
    assert p["phone"]["number"] == "0712345678"
    assert p["phone"]["status"] == "two_way"
    assert codes(p) == ["national_format"]
    assert p["warnings"][0]["message"]


def test_not_e164_warns_but_works(api: Api) -> None:
    p = profile(api, create(api, phone="1234567"))
    assert p["phone"]["number"] == "1234567"
    assert p["phone"]["status"] == "one_way"
    assert codes(p) == ["not_e164"]


def test_strict_validation_refuses_such_numbers(api: Api) -> None:
    settings(api, strict_phone_validation=True)
    national = profile(api, create(api, phone="0712345678", verified="1"))
    assert national["phone"]["status"] == "invalid"
    assert national["phone"]["reason"] == "strict_invalid"
    assert national["phone"]["number"] is None
    assert codes(national) == ["national_format"]
    not_e164 = profile(api, create(api, phone="1234567"))
    assert (not_e164["phone"]["status"], not_e164["phone"]["reason"]) == (
        "invalid",
        "strict_invalid",
    )
    good = profile(api, create(api, phone=NUMBER, verified="1"))
    assert good["phone"]["status"] == "two_way"


def test_default_country_converts_national_numbers(api: Api) -> None:
    settings(api, default_country="ke")
    p = profile(api, create(api, phone="0712 345 678", verified="yes"))
    assert p["phone"]["number"] == NUMBER
    assert p["phone"]["status"] == "two_way"
    assert codes(p) == ["converted_from_national"]


# --- 3.2 verified flag and two-way ownership ---------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", "y", "on", " on ", "\tY\n"])
def test_verified_values(api: Api, value: str) -> None:
    p = profile(api, create(api, phone=NUMBER, verified=value))
    assert p["phone"]["verified_requested"] is True
    assert p["phone"]["status"] == "two_way"


@pytest.mark.parametrize("value", ["0", "no", "", "false", "off", "2", "verified", "yes please"])
def test_not_verified_values(api: Api, value: str) -> None:
    p = profile(api, create(api, phone=NUMBER, verified=value))
    assert p["phone"]["verified_requested"] is False
    assert p["phone"]["status"] == "one_way"
    assert p["phone"]["reason"] == "not_verified"


def test_two_way_conflict_in_same_project_names_the_holder(api: Api) -> None:
    first = create(api, name="First", phone=NUMBER, verified="1")
    second = create(api, name="Second", phone="+" + NUMBER, verified="1")
    p = profile(api, second)
    assert p["phone"]["status"] == "one_way"
    assert p["phone"]["reason"] == "two_way_conflict"
    assert p["phone"]["held_by"] == {"contact_id": first, "project": "demo"}
    assert codes(p) == ["two_way_conflict"]
    assert first in p["warnings"][0]["message"]
    assert profile(api, first)["phone"]["status"] == "two_way"


def test_two_way_conflict_across_projects_hides_the_holder(api: Api, other_api: Api) -> None:
    theirs = create(other_api, phone=NUMBER, verified="1")
    mine = create(api, phone=NUMBER, verified="1")
    p = profile(api, mine)
    assert p["phone"]["status"] == "one_way"
    assert p["phone"]["reason"] == "two_way_conflict"
    assert p["phone"]["held_by"] == {"contact_id": None, "project": "another project"}
    assert theirs not in str(p)
    assert "another project" in p["warnings"][0]["message"]
    assert profile(other_api, theirs)["phone"]["status"] == "two_way"


def test_unverified_sharer_is_one_way_without_conflict(api: Api) -> None:
    create(api, phone=NUMBER, verified="1")
    p = profile(api, create(api, phone=NUMBER))
    assert (p["phone"]["status"], p["phone"]["reason"]) == ("one_way", "not_verified")
    assert p["warnings"] == []


def _three_requesters(api: Api) -> tuple[str, str, str]:
    a = create(api, name="A", phone=NUMBER, verified="1")
    b = create(api, name="B", phone=NUMBER, verified="1")
    c = create(api, name="C", phone=NUMBER, verified="1")
    assert profile(api, a)["phone"]["status"] == "two_way"
    return a, b, c


def _release_by_flag(api: Api, a: str) -> None:
    props(api, a, contact_phone_number_is_verified="0")


def _release_by_number(api: Api, a: str) -> None:
    props(api, a, contact_phone_number="254799999999")


def _release_by_close(api: Api, a: str) -> None:
    update(api, a, {"close": True})


def _release_by_delete(api: Api, a: str) -> None:
    assert api.delete(CASES + a).status == 200


@pytest.mark.parametrize(
    "release", [_release_by_flag, _release_by_number, _release_by_close, _release_by_delete]
)
def test_release_promotes_the_earliest_remaining_requester(api: Api, release: Any) -> None:
    a, b, c = _three_requesters(api)
    release(api, a)
    pb, pc = profile(api, b), profile(api, c)
    assert pb["phone"]["status"] == "two_way"
    assert pb["warnings"] == []
    assert pc["phone"]["status"] == "one_way"
    assert pc["phone"]["held_by"] == {"contact_id": b, "project": "demo"}
    assert not PhoneEntry.objects.filter(contact_id=a, number=NUMBER, holder=True).exists()
    assert PhoneEntry.objects.filter(number=NUMBER, holder=True).count() == 1


def test_released_flag_leaves_a_one_way_entry(api: Api) -> None:
    a, _, _ = _three_requesters(api)
    _release_by_flag(api, a)
    pa = profile(api, a)
    assert (pa["phone"]["status"], pa["phone"]["reason"]) == ("one_way", "not_verified")


def test_closed_contact_is_inactive_without_entry(api: Api) -> None:
    cid = create(api, phone="0712345678", verified="1")
    update(api, cid, {"close": True})
    p = profile(api, cid)
    assert p["active"] is False
    assert p["phone"]["status"] == "none"
    assert p["phone"]["number"] == "0712345678"
    assert p["phone"]["reason"] is None
    assert codes(p) == ["national_format"]
    assert not PhoneEntry.objects.filter(contact_id=cid).exists()


def test_deleted_contact_profile_is_inactive(api: Api) -> None:
    cid = create(api, phone="12", verified="1")
    assert api.delete(CASES + cid).status == 200
    p = profile(api, cid)
    assert p["active"] is False
    assert (p["phone"]["status"], p["phone"]["reason"]) == ("none", "too_short")


def test_reopen_resyncs(api: Api) -> None:
    a, b, _ = _three_requesters(api)
    update(api, a, {"close": True})
    assert profile(api, b)["phone"]["status"] == "two_way"
    update(api, a, {"reopen": True})
    pa = profile(api, a)
    assert pa["active"] is True
    assert pa["phone"]["status"] == "one_way"
    assert pa["phone"]["held_by"] == {"contact_id": b, "project": "demo"}
    solo = create(api, phone="254700000001", verified="1")
    update(api, solo, {"close": True})
    assert profile(api, solo)["phone"]["status"] == "none"
    update(api, solo, {"reopen": True})
    assert profile(api, solo)["phone"]["status"] == "two_way"


def test_explicit_transfer_moves_two_way(api: Api) -> None:
    a, b, _ = _three_requesters(api)
    r = api.post(
        f"/a/{{project}}/api/messaging/v1/phone-numbers/{NUMBER}/transfer", {"contact_id": b}
    )
    assert r.status == 200, r.body
    assert profile(api, b)["phone"]["status"] == "two_way"
    pa = profile(api, a)
    assert pa["phone"]["reason"] == "two_way_conflict"
    assert pa["phone"]["held_by"] == {"contact_id": b, "project": "demo"}


def test_older_change_never_overwrites_a_newer_one(api: Api) -> None:
    cid = create(api, phone=NUMBER, verified="1")
    props(api, cid, time_zone="America/New_York")
    update(
        api,
        cid,
        {
            "last_modified": "2020-01-01T00:00:00Z",
            "properties": {"contact_phone_number": "254700000000", "time_zone": "Asia/Tokyo"},
        },
    )
    p = profile(api, cid)
    assert p["phone"]["number"] == NUMBER
    assert p["phone"]["status"] == "two_way"
    assert p["time_zone"]["effective"] == "America/New_York"


def test_replaying_an_unchanged_case_changes_nothing(api: Api) -> None:
    cid = create(api, phone=NUMBER, verified="1")
    before = profile(api, cid)
    entry = PhoneEntry.objects.get(contact_id=cid)
    props(api, cid, contact_phone_number=NUMBER, contact_phone_number_is_verified="1")
    assert profile(api, cid) == before
    assert PhoneEntry.objects.get(contact_id=cid).registered_on == entry.registered_on


# --- 3.3 - 3.6 ---------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["africa/nairobi", "AFRICA/NAIROBI", " Africa/Nairobi "])
def test_zone_is_canonicalised(api: Api, zone: str) -> None:
    p = profile(api, create(api, time_zone=zone))
    assert p["time_zone"]["effective"] == "Africa/Nairobi"
    assert p["time_zone"]["source"] == "contact"
    assert p["warnings"] == []


def test_unknown_zone_falls_back_to_project_with_warning(api: Api) -> None:
    p = profile(api, create(api, time_zone="Mars/Olympus_Mons"))
    assert p["time_zone"] == {
        "effective": "Africa/Nairobi",
        "source": "project",
        "requested": "Mars/Olympus_Mons",
    }
    assert codes(p) == ["unknown_time_zone"]


def test_contact_zone_overrides_project(api: Api) -> None:
    p = profile(api, create(api, time_zone="America/New_York"))
    assert p["time_zone"]["effective"] == "America/New_York"


def test_unknown_language_warns_and_uses_project_default(api: Api) -> None:
    p = profile(api, create(api, language_code="fr"))
    assert p["language"] == {"effective": "en", "source": "project", "requested": "fr"}
    assert codes(p) == ["unknown_language"]


def test_language_is_compared_exactly(api: Api) -> None:
    p = profile(api, create(api, language_code="SW"))
    assert p["language"]["effective"] == "en"
    assert codes(p) == ["unknown_language"]


@pytest.mark.parametrize("address", ["not-an-email", "a@b", "a b@example.org", "@example.org"])
def test_invalid_email_warns(api: Api, address: str) -> None:
    p = profile(api, create(api, commcare_email_address=address))
    assert p["email"]["status"] == "invalid"
    assert codes(p) == ["invalid_email"]


def test_gateway_override_is_stored_and_shown(api: Api) -> None:
    cid = create(api, phone=NUMBER, contact_backend_id=" AT-KE ")
    p = profile(api, cid)
    assert p["gateway"] == {"name": "AT-KE", "source": "contact", "status": "unknown_gateway"}
    assert codes(p) == ["unknown_gateway"]
    assert PhoneEntry.objects.get(contact_id=cid).gateway == "AT-KE"
    props(api, cid, contact_backend_id="TWILIO")
    assert PhoneEntry.objects.get(contact_id=cid).gateway == "TWILIO"
    props(api, cid, contact_backend_id="")
    p = profile(api, cid)
    assert p["gateway"]["source"] == "none"
    assert p["warnings"] == []


def test_project_default_gateway(api: Api) -> None:
    # A default naming no existing gateway is skipped by routing: nothing would carry the SMS.
    settings(api, default_gateway="main-sms")
    cid = create(api, phone=NUMBER)
    assert {"name": None, "source": "none", "status": "no_gateway"} == profile(api, cid)["gateway"]
    r = api.post("/a/{project}/api/messaging/v1/gateways", {"name": "main-sms", "type": "test"})
    assert 201 == r.status, r.body
    assert {"name": "main-sms", "source": "project_default", "status": "ok"} == profile(api, cid)[
        "gateway"
    ]


def test_several_warnings_together(api: Api) -> None:
    p = profile(
        api,
        create(
            api,
            phone="0712345678",
            commcare_email_address="nope",
            time_zone="Nowhere/Land",
            language_code="xx",
        ),
    )
    assert sorted(codes(p)) == [
        "invalid_email",
        "national_format",
        "unknown_language",
        "unknown_time_zone",
    ]


# --- 3.8 mobile workers ------------------------------------------------------------------


def _worker(project: Project, **data: Any) -> str:
    worker = do_create_worker(project, {"username": "nurse", "password": "secret-pw", **data})
    return str(worker.pk)


def test_worker_profile_lists_its_phones(api: Api, project: Project) -> None:
    case = create(api, phone="254700000002", verified="1")
    wid = _worker(
        project,
        first_name="Nia",
        phone_numbers=["+254700000001", "254700000002", "123"],
        verified_numbers=["254700000001", "254700000002"],
        language="sw",
    )
    p = profile(api, wid)
    assert p["contact_type"] == "worker"
    assert p["name"] == "Nia"
    assert p["phone"]["number"] == "254700000001"
    assert p["phone"]["status"] == "two_way"
    assert p["language"]["effective"] == "sw"
    phones = {e["number"]: e for e in p["phones"]}
    assert set(phones) == {"254700000001", "254700000002"}
    assert phones["254700000001"]["status"] == "two_way"
    assert phones["254700000002"]["status"] == "one_way"
    assert phones["254700000002"]["reason"] == "two_way_conflict"
    assert phones["254700000002"]["held_by"] == {"contact_id": case, "project": "demo"}
    assert codes(p) == ["two_way_conflict"]


def test_worker_pending_and_deactivation(api: Api, project: Project) -> None:
    wid = _worker(project, phone_numbers=["254700000003"])
    assert profile(api, wid)["phone"]["reason"] == "not_verified"
    PhoneEntry.objects.filter(contact_id=wid).update(holder=True, pending=True)
    assert profile(api, wid)["phone"]["status"] == "pending"
    from casereach.workers.models import MobileWorker

    do_set_worker_active(MobileWorker.objects.get(pk=wid), False)
    p = profile(api, wid)
    assert p["active"] is False
    assert p["phone"]["status"] == "none"
    assert p["phones"] == []
