"""Issue 15, items 1-3: project B can neither silence nor write project A's contacts — not
through its test phone, its own gateways, a gateway it shares without A's consent, nor the
opt-outs endpoint. A is ``demo`` (``api``), B is ``other`` (``other_api``); every step goes
through the HTTP API or a gateway's inbound URL, as the audit did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from casereach.cases.models import Case
from casereach.gateways.actions import do_create_gateway, do_set_global_routes
from casereach.projects.models import Project, Role
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import set_routes as routes
from casereach.testing.sending import drain, send
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
B = "/a/other/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"  # A's contact's number
HTTP_CONFIG = {"url": "https://b.example.org/send", "params": {"to": "{to}", "text": "{text}"}}


def inbound(gw: dict[str, Any], text: str, sender: str = NUMBER) -> int:
    path = str(gw["inbound_url"]).replace("http://testserver", "")
    return Client().post(path, {"from": sender, "to": "5550000", "text": text}).status_code


def profile(api: Api, cid: str) -> dict[str, Any]:
    r = api.get(M + f"contacts/{cid}")
    assert 200 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def status_of(api: Api, mid: str) -> tuple[str, str | None]:
    rows = {m["id"]: m for m in api.get(M + "messages").body["objects"]}
    return rows[mid]["status"], rows[mid]["error_code"]


@pytest.fixture
def a_contact(api: Api) -> str:
    """A has a test gateway as its default route and a two-way contact on NUMBER."""
    gateway(api, "A-TEST")
    routes(api, "A-TEST")
    return case(api, phone=NUMBER, verified="yes")


# -- 1. B's test phone and B's own gateways -------------------------------------------------------


def test_b_test_phone_stop_does_not_opt_out_a_contact(
    api: Api, other_api: Api, a_contact: str
) -> None:
    gateway(other_api, "B-TEST")
    r = other_api.post(B + "test-phone", {"from": NUMBER, "text": "STOP"})
    assert (201, "opt_out") == (r.status, r.body["action"])  # in B's own scope

    p = profile(api, a_contact)
    assert p["opted_out"] is False
    assert [] == api.get(M + "opt-outs").body["objects"]
    assert [] == p["opt_outs"]
    msg = send(api, contact_id=a_contact, text="Clinic tomorrow")
    assert ("queued", None) == (msg["status"], msg["error_code"])
    drain(concurrency=1)
    assert ("sent", None) == status_of(api, msg["id"])
    # A's admin may still opt the number out and back in (no person's STOP in A's scope).
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": True})
    assert 200 == r.status, r.body
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert (200, False) == (r.status, r.body["opted_out"])
    # B's list shows its own scope only.
    rows = other_api.get(B + "opt-outs").body["objects"]
    assert [(NUMBER, "other", False)] == [
        (o["phone_number"], o["project"], o["can_opt_in"]) for o in rows
    ]


def test_b_test_phone_start_does_not_undo_a_stop_sent_in_a(
    api: Api, other_api: Api, a_contact: str
) -> None:
    a_gw = api.get(M + "gateways").body["objects"][0]
    assert 200 == inbound(a_gw, "STOP")  # the person's own STOP, through A's gateway
    gateway(other_api, "B-TEST")
    r = other_api.post(B + "test-phone", {"from": NUMBER, "text": "START"})
    assert (201, "opt_in") == (r.status, r.body["action"])

    p = profile(api, a_contact)
    assert p["opted_out"] is True
    assert [("project", False, "keyword:A-TEST")] == [
        (o["scope"], o["can_opt_in"], o["source"]) for o in p["opt_outs"]
    ]
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert 409 == r.status, r.body
    msg = send(api, contact_id=a_contact, text="x")
    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (msg["status"], msg["error_code"])
    # Only the person's START through A's gateway undoes it.
    assert 200 == inbound(a_gw, "START")
    assert profile(api, a_contact)["opted_out"] is False


def test_stop_posted_to_a_gateway_b_owns_does_not_opt_out_a_contact(
    api: Api, other_api: Api, a_contact: str
) -> None:
    b_gw = gateway(other_api, "B-HTTP", "http", config=HTTP_CONFIG)
    assert 200 == inbound(b_gw, "STOP")
    assert profile(api, a_contact)["opted_out"] is False
    msg = send(api, contact_id=a_contact, text="x")
    assert ("queued", None) == (msg["status"], msg["error_code"])


def test_the_dispatcher_refuses_by_the_sending_projects_scope(
    api: Api, other_api: Api, a_contact: str
) -> None:
    """Queued before the STOP: the dispatcher checks again, in A's scope only."""
    gateway(other_api, "B-TEST")
    routes(other_api, "B-TEST")
    a_msg = send(api, contact_id=a_contact, text="for A")
    b_msg = send(other_api, phone_number=NUMBER, text="for B")
    r = other_api.post(B + "test-phone", {"from": NUMBER, "text": "STOP"})
    assert 201 == r.status
    drain(concurrency=1)
    assert ("sent", None) == status_of(api, a_msg["id"])
    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == status_of(other_api, b_msg["id"])


# -- 2. sharing is an offer ------------------------------------------------------------------------


def test_a_gateway_b_shares_is_invisible_and_unusable_until_a_accepts(
    api: Api, other_api: Api, a_contact: str
) -> None:
    r = api.post(
        M + "keywords",
        {"keyword": "WT", "fields": [{"property": "weight", "type": "decimal"}]},
    )
    assert 201 == r.status, r.body
    b_gw = gateway(other_api, "B-SHARED", "http", config=HTTP_CONFIG, shared_with=["demo"])

    assert "B-SHARED" not in [g["name"] for g in api.get(M + "gateways").body["objects"]]
    assert 404 == api.get(M + f"gateways/{b_gw['id']}").status
    assert 200 == inbound(b_gw, "WT 99")
    assert "weight" not in Case.objects.get(case_id=a_contact).properties
    r = api.put(M + "routes", {"default_gateway": "B-SHARED", "prefixes": []})
    assert 400 == r.status
    overridden = case(api, phone="254712000001", contact_backend_id="B-SHARED")
    assert "unknown_gateway" == profile(api, overridden)["gateway"]["status"]
    msg = send(api, contact_id=overridden, text="x")
    assert ("failed", "GATEWAY_NOT_FOUND") == (msg["status"], msg["error_code"])
    assert [{"project": "demo", "accepted": False, "accepted_on": None}] == b_gw["shares"]
    offers = api.get(M + "gateway-offers").body["objects"]
    assert [(b_gw["id"], "B-SHARED", "other")] == [
        (o["id"], o["name"], o["project"]) for o in offers
    ]

    r = api.post(M + f"gateways/{b_gw['id']}/accept")
    assert (200, "shared") == (r.status, r.body["scope"])
    assert "config" not in r.body  # the owner's settings stay private
    assert [] == api.get(M + "gateway-offers").body["objects"]
    assert "B-SHARED" in [g["name"] for g in api.get(M + "gateways").body["objects"]]
    assert 200 == inbound(b_gw, "WT 99")
    assert "99" == Case.objects.get(case_id=a_contact).properties["weight"]
    assert "ok" == profile(api, overridden)["gateway"]["status"]

    r = api.post(M + f"gateways/{b_gw['id']}/decline")
    assert (200, True) == (r.status, r.body["declined"])
    assert "B-SHARED" not in [g["name"] for g in api.get(M + "gateways").body["objects"]]
    assert "unknown_gateway" == profile(api, overridden)["gateway"]["status"]


def test_b_cannot_accept_or_decline_for_a_and_a_cannot_accept_what_is_not_offered(
    api: Api, other_api: Api
) -> None:
    b_gw = gateway(other_api, "B-SHARED", shared_with=["demo"])
    b_private = gateway(other_api, "B-PRIVATE")
    assert (
        403
        == other_api.post(M.replace("{project}", "demo") + f"gateways/{b_gw['id']}/accept").status
    )
    assert 404 == other_api.post(B + f"gateways/{b_gw['id']}/accept").status  # not offered to B
    assert 404 == api.post(M + f"gateways/{b_private['id']}/accept").status
    assert 404 == api.post(M + "gateways/999999/decline").status
    for huge in ("9223372036854775808", "99999999999999999999999"):
        assert 404 == api.post(M + f"gateways/{huge}/accept").status
        assert 404 == api.post(M + f"gateways/{huge}/decline").status


def test_a_stop_through_an_accepted_gateway_applies_to_owner_and_acceptor(
    api: Api, other_api: Api, a_contact: str
) -> None:
    b_gw = gateway(other_api, "B-SHARED", shared_with=["demo"])
    assert 200 == api.post(M + f"gateways/{b_gw['id']}/accept").status
    assert 200 == inbound(b_gw, "STOP")
    assert profile(api, a_contact)["opted_out"] is True
    assert [NUMBER] == [o["phone_number"] for o in other_api.get(B + "opt-outs").body["objects"]]
    # Withdrawing the offer leaves the person's STOP in A's scope where it was.
    r = other_api.put(B + f"gateways/{b_gw['id']}", {"shared_with": []})
    assert (200, []) == (r.status, r.body["shared_with"])
    assert profile(api, a_contact)["opted_out"] is True


# -- 3. B's opt-out endpoint acts on B only ------------------------------------------------------


def test_b_opting_out_a_number_it_knows_does_not_touch_a(
    api: Api, other_api: Api, a_contact: str
) -> None:
    case(other_api, phone=NUMBER)
    r = other_api.post(B + "opt-outs", {"phone_number": NUMBER, "opted_out": True})
    assert 200 == r.status, r.body
    assert profile(api, a_contact)["opted_out"] is False
    assert [] == api.get(M + "opt-outs").body["objects"]
    msg = send(api, contact_id=a_contact, text="x")
    assert ("queued", None) == (msg["status"], msg["error_code"])
    # and A's own opt-out is A's: B cannot opt the number back in for A.
    assert 200 == api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": True}).status
    r = other_api.post(B + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert 200 == r.status
    assert profile(api, a_contact)["opted_out"] is True


# -- global gateways: the gateway's scope ----------------------------------------------------------


def test_a_stop_through_a_global_gateway_binds_every_project_sending_through_it(
    api: Api, other_api: Api
) -> None:
    shared = do_create_gateway(None, {"name": "GLOBAL", "type": "test"})
    do_set_global_routes({"default_gateway": "GLOBAL", "prefixes": []})
    a_cid = case(api, phone=NUMBER, verified="yes")
    case(other_api, phone=NUMBER)
    key = shared.inbound_key
    r = Client().post(
        f"/gateways/test/{key}/inbound", {"from": NUMBER, "to": "5550000", "text": "STOP"}
    )
    assert 200 == r.status_code

    p = profile(api, a_cid)
    assert p["opted_out"] is True
    for client in (api, other_api):
        msg = send(client, phone_number=NUMBER, text="x")
        assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (msg["status"], msg["error_code"])
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert 409 == r.status and "GLOBAL" in r.body["error"]
    # A project that sends through its own gateway is not bound by it.
    gateway(api, "A-OWN")
    routes(api, "A-OWN")
    assert profile(api, a_cid)["opted_out"] is False
    msg = send(api, contact_id=a_cid, text="x")
    assert ("queued", None) == (msg["status"], msg["error_code"])
    assert [("gateway", "GLOBAL", False)] == [
        (o["scope"], o["gateway"], o["can_opt_in"]) for o in profile(api, a_cid)["opt_outs"]
    ]


def test_b_test_phone_on_a_global_test_gateway_acts_as_b_own_gateway(
    api: Api, other_api: Api
) -> None:
    do_create_gateway(None, {"name": "GLOBAL-TEST", "type": "test"})
    a_cid = case(api, phone=NUMBER, verified="yes")
    r = api.post(
        M + "keywords", {"keyword": "WT", "fields": [{"property": "weight", "type": "decimal"}]}
    )
    assert 201 == r.status, r.body
    r = other_api.post(B + "test-phone", {"from": NUMBER, "text": "WT 99"})
    assert (201, None) == (r.status, r.body["contact_id"])
    assert "weight" not in Case.objects.get(case_id=a_cid).properties
    r = other_api.post(B + "test-phone", {"from": NUMBER, "text": "STOP"})
    assert (201, "opt_out") == (r.status, r.body["action"])
    assert profile(api, a_cid)["opted_out"] is False
    assert [NUMBER] == [o["phone_number"] for o in other_api.get(B + "opt-outs").body["objects"]]


def test_only_an_admin_of_the_receiving_project_accepts_or_declines(
    project: Project, api: Api, other_api: Api
) -> None:
    b_gw = gateway(other_api, "B-SHARED", shared_with=["demo"])
    member = Api(project, "member@example.org", role=Role.MEMBER)
    for op in ("accept", "decline"):
        r = member.post(M + f"gateways/{b_gw['id']}/{op}")
        assert (403, "admin") == (r.status, r.body["detail"]["required_role"])
    assert "B-SHARED" not in [g["name"] for g in api.get(M + "gateways").body["objects"]]
    viewer = Api(project, "viewer@example.org", role=Role.VIEWER)
    assert ["B-SHARED"] == [o["name"] for o in viewer.get(M + "gateway-offers").body["objects"]]
    assert 200 == api.post(M + f"gateways/{b_gw['id']}/accept").status


def test_one_module_writes_the_opt_out_table() -> None:
    """messaging.optouts is the only writer of OptOut (issue 15): no other module names the
    model's manager or its table."""
    root = Path(__file__).resolve().parents[2]
    writers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "tests" not in path.parts
        and "migrations" not in path.parts
        and path.name != "optouts.py"
        and ("OptOut.objects" in path.read_text() or "messaging_optout" in path.read_text())
    )
    assert [] == writers


def test_deleting_a_global_gateway_keeps_its_stops_in_the_projects_that_used_it(
    api: Api, other_api: Api
) -> None:
    from casereach.gateways.actions_global import do_delete_global_gateway

    shared = do_create_gateway(None, {"name": "GLOBAL", "type": "test"})
    do_set_global_routes({"default_gateway": "GLOBAL", "prefixes": []})
    a_cid = case(api, phone=NUMBER, verified="yes")
    b_cid = case(other_api, phone=NUMBER)  # B never messaged the number
    first = send(api, contact_id=a_cid, text="Clinic tomorrow")
    assert ("queued", None) == (first["status"], first["error_code"])
    r = Client().post(
        f"/gateways/test/{shared.inbound_key}/inbound",
        {"from": NUMBER, "to": "5550000", "text": "STOP"},
    )
    assert 200 == r.status_code

    do_set_global_routes({"default_gateway": "", "prefixes": []})
    do_delete_global_gateway(shared)
    do_create_gateway(None, {"name": "GLOBAL-2", "type": "test"})
    do_set_global_routes({"default_gateway": "GLOBAL-2", "prefixes": []})

    msg = send(api, contact_id=a_cid, text="x")
    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (msg["status"], msg["error_code"])
    assert [("project", False)] == [
        (o["scope"], o["can_opt_in"]) for o in profile(api, a_cid)["opt_outs"]
    ]
    # The person's own STOP: A's admin cannot opt them back in; START through a gateway can.
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert 409 == r.status, r.body
    assert profile(other_api, b_cid)["opted_out"] is False
    msg = send(other_api, contact_id=b_cid, text="x")
    assert ("queued", None) == (msg["status"], msg["error_code"])
