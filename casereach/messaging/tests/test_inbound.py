"""Inbound SMS through the real inbound URLs: matching, STOP/START/HELP, keywords,
structured SMS, verification, self-registration, loops, duplicates and bad input."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from casereach.cases.models import Case
from casereach.gateways.types.test.gateway import OUTBOX
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.models import Message, OptOut
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import inbound_path as path_of
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.sending import drain
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"


def settings(api: Api, **values: Any) -> None:
    r = api.call("PATCH", M + "settings", values)
    assert 200 == r.status, r.body


def last_inbound() -> Message:
    return Message.objects.filter(direction="in").order_by("-created_on").first()  # type: ignore[return-value]


def replies() -> list[Message]:
    return list(Message.objects.filter(direction="out").order_by("created_on", "id"))


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    g = gateway(api)
    r = api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []})
    assert 200 == r.status
    return g


def test_reply_from_a_shared_number_goes_to_the_two_way_holder_only(
    api: Api, gw: dict[str, Any]
) -> None:
    case(api, name="one-way A", phone=NUMBER)
    holder = case(api, name="holder", phone=NUMBER, verified="yes")
    case(api, name="one-way B", phone="+" + NUMBER)
    r = inbound(gw, "hello", id="p1")
    assert 200 == r.status_code, r.content
    m = last_inbound()
    assert (holder, "case", "demo", "unhandled") == (
        m.contact_id,
        m.contact_type,
        m.project.name if m.project else None,
        m.inbound_action,
    )


def test_stop_is_consumed_confirmed_and_blocks_the_next_send(api: Api, gw: dict[str, Any]) -> None:
    cid = case(api, phone=NUMBER, verified="yes")
    settings(api, default_inbound_response={"en": "We got your message"})
    api.post(M + "keywords", {"keyword": "STOPX", "reply": {"en": "not this"}})
    r = inbound(gw, "  stop ")
    assert 200 == r.status_code
    assert "opt_out" == last_inbound().inbound_action
    sent = replies()
    assert 1 == len(sent)  # the confirmation only: no keyword, no default response
    assert sent[0].allow_opted_out and "unsubscribed" in sent[0].text
    assert 1 == drain()
    assert [NUMBER] == [o.to for o in OUTBOX]
    r = api.post(M + "send", {"contact_id": cid, "text": "reminder"})
    assert "PHONE_NUMBER_OPTED_OUT" == r.body["messages"][0]["error_code"]


@pytest.mark.parametrize(
    "text", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "revoke", "OptOut"]
)
def test_every_opt_out_word_opts_out_even_unknown_senders(
    api: Api, gw: dict[str, Any], text: str
) -> None:
    inbound(gw, text, sender="254700000099")
    assert OptOut.objects.get(phone_number="254700000099").opted_out
    assert "opt_out" == last_inbound().inbound_action


def test_stop_please_does_not_opt_out(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER, verified="yes")
    inbound(gw, "STOP PLEASE")
    assert not OptOut.objects.filter(phone_number=NUMBER).exists()
    assert "unhandled" == last_inbound().inbound_action


def test_project_words_and_confirmation_in_the_contacts_language(
    api: Api, gw: dict[str, Any]
) -> None:
    case(api, phone=NUMBER, verified="yes", language_code="sw")
    settings(
        api,
        opt_out_keywords={"sw": ["acha"]},
        opt_out_reply={"en": "Bye", "sw": "Kwaheri"},
        opt_in_reply={"en": "Welcome back", "sw": "Karibu tena"},
    )
    inbound(gw, "Acha")
    assert OptOut.objects.get(phone_number=NUMBER).opted_out
    inbound(gw, "start")
    assert not OptOut.objects.get(phone_number=NUMBER).opted_out
    assert [("Kwaheri", "sw"), ("Karibu tena", "sw")] == [(m.text, m.language) for m in replies()]


def test_yes_opts_in_silently_and_continues(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER, verified="yes")
    settings(api, default_inbound_response={"en": "Thanks"})
    inbound(gw, "STOP")
    inbound(gw, "yes")
    assert not OptOut.objects.get(phone_number=NUMBER).opted_out
    assert "opt_in_silent+default_response" == last_inbound().inbound_action
    assert ["Thanks"] == [m.text for m in replies()][1:]


def test_help_replies_with_the_project_help_text(api: Api, gw: dict[str, Any]) -> None:
    settings(api, help_text={"en": "Call 0800 for help"})
    inbound(gw, "info", sender="254700000001")
    assert "help" == last_inbound().inbound_action
    assert ["Call 0800 for help"] == [m.text for m in replies()]


def test_confirmation_goes_through_the_gateway_that_received_it(
    api: Api, gw: dict[str, Any]
) -> None:
    other = gateway(api, name="OTHER")
    case(api, phone=NUMBER, verified="yes")
    inbound(other, "STOP")
    assert 1 == drain()
    m = replies()[0]
    assert ("sent", "OTHER", "inbound") == (m.status, m.gateway_name, m.gateway_source)


def test_redeliveries_are_stored_once(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER, verified="yes")
    for _ in range(3):
        r = inbound(gw, "STOP", id="prov-1")
        assert 200 == r.status_code
    assert 1 == Message.objects.filter(direction="in").count()
    assert 1 == len(replies())


@pytest.mark.django_db(transaction=True)
def test_three_concurrent_twilio_posts_store_one_message_and_one_confirmation(
    project: Project,
) -> None:
    api = Api(project)
    r = api.post(
        M + "gateways",
        {
            "name": "TW",
            "type": "twilio",
            "config": {
                "account_sid": "AC" + "0" * 32,
                "auth_token": "t0k3n-0123456789abcdef0123456789ab",
                "from_number": "+15550001111",
            },
        },
    )
    assert 201 == r.status, r.body
    path = path_of(r.body["inbound_url"])
    form = {"MessageSid": "SM1", "From": "+" + NUMBER, "To": "+15550001111", "Body": "STOP"}
    sig = twilio_signature("http://testserver" + path, form, "t0k3n-0123456789abcdef0123456789ab")
    statuses: list[int] = []

    def post() -> None:
        try:
            statuses.append(Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=sig).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [200, 200, 200] == statuses
    assert 1 == Message.objects.filter(direction="in").count()
    assert 1 == Message.objects.filter(direction="out").count()


def test_twilio_inbound_answers_empty_twiml_and_checks_the_signature(api: Api) -> None:
    r = api.post(
        M + "gateways",
        {
            "name": "TW",
            "type": "twilio",
            "config": {
                "account_sid": "AC" + "0" * 32,
                "auth_token": "t0k3n-0123456789abcdef0123456789ab",
                "from_number": "+15550001111",
            },
        },
    )
    assert 201 == r.status, r.body
    path = path_of(r.body["inbound_url"])
    form = {"MessageSid": "SM2", "From": "+" + NUMBER, "To": "+15550001111", "Body": "hi"}
    good = twilio_signature("http://testserver" + path, form, "t0k3n-0123456789abcdef0123456789ab")
    url = "http://testserver" + path
    token = "t0k3n-0123456789abcdef0123456789ab"
    for signed_url, signed_form, signed_token in [
        (url[:-1] + "X", form, token),  # one byte of the URL
        (url + "?", form, token),
        (url, {**form, "Body": "hj"}, token),  # one byte of a parameter
        (url, form, token[:-1] + "c"),  # one byte of the token
    ]:
        sig = twilio_signature(signed_url, signed_form, signed_token)
        resp = Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=sig)
        assert 403 == resp.status_code, (signed_url, signed_form)
    resp = Client().post(path, {**form, "Body": "hj"}, HTTP_X_TWILIO_SIGNATURE=good)
    assert 403 == resp.status_code
    assert 0 == Message.objects.filter(direction="in").count()
    resp = Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=good)
    assert 200 == resp.status_code
    assert resp["Content-Type"].startswith("text/xml")
    assert b"<Response" in resp.content
    assert 1 == Message.objects.filter(direction="in").count()


def test_keyword_reply_and_structured_update(api: Api, gw: dict[str, Any]) -> None:
    cid = case(api, phone=NUMBER, verified="yes", language_code="sw")
    r = api.post(
        M + "keywords",
        {
            "keyword": "weight",
            "reply": {"en": "Weight saved", "sw": "Uzito umehifadhiwa"},
            "fields": [
                {"property": "weight", "type": "decimal", "required": True},
                {"property": "visit", "type": "choice", "choices": ["clinic", "home"]},
            ],
        },
    )
    assert 201 == r.status, r.body
    inbound(gw, "WEIGHT 3,2 home")
    assert "keyword:WEIGHT" == last_inbound().inbound_action
    props = Case.objects.get(case_id=cid).properties
    assert ("3.2", "home") == (props["weight"], props["visit"])
    assert ["Uzito umehifadhiwa"] == [m.text for m in replies()]
    inbound(gw, "weight visit=clinic weight=abc")
    assert "keyword_error:WEIGHT" == last_inbound().inbound_action
    assert "weight must be a number, not 'abc'" in replies()[-1].text
    assert "3.2" == Case.objects.get(case_id=cid).properties["weight"]


def test_keywords_only_for_active_two_way_holders(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER)  # one-way
    api.post(M + "keywords", {"keyword": "HI", "reply": {"en": "hello"}})
    settings(api, default_inbound_response={"en": "Unknown sender"})
    inbound(gw, "hi")
    assert "default_response" == last_inbound().inbound_action
    assert ["Unknown sender"] == [m.text for m in replies()]


def test_keyword_validation(api: Api) -> None:
    for body, fragment in [
        ({"keyword": "STOP", "reply": {"en": "x"}}, "reserved"),
        ({"keyword": "two words", "reply": {"en": "x"}}, "one word"),
        ({"keyword": "X"}, "needs a reply"),
        ({"keyword": "X", "fields": [{"property": "a", "type": "choice"}]}, "needs choices"),
        ({"keyword": "X", "reply": {"en": 3}}, "must be a string"),
        ({"keyword": "X", "reply": {"en": "x"}, "extra": 1}, "unknown fields"),
    ]:
        r = api.post(M + "keywords", body)
        assert 400 == r.status, body
        assert fragment in r.body["error"], r.body
    assert 201 == api.post(M + "keywords", {"keyword": "X", "reply": {"en": "x"}}).status
    assert 409 == api.post(M + "keywords", {"keyword": "x", "reply": {"en": "y"}}).status
    assert [] == [k for k in api.get(M + "keywords").body["objects"] if k["keyword"] != "X"]


def test_auto_reply_loop_is_cut_off(api: Api, gw: dict[str, Any]) -> None:
    settings(api, default_inbound_response={"en": "Auto"}, reply_loop_limit=3, reply_loop_minutes=5)
    case(api, phone=NUMBER, verified="yes")
    for i in range(6):
        inbound(gw, f"bot says {i}")
    assert 3 == len(replies())
    assert "reply suppressed" in last_inbound().error_detail


def test_worker_verification_workflow(api: Api, gw: dict[str, Any]) -> None:
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "nurse", "password": "pw", "phone_numbers": ["+" + NUMBER]},
    )
    assert 201 == r.status, r.body
    wid = r.body["id"]
    verify = M + f"workers/{wid}/verify"
    assert "started" == api.post(verify).body["result"]
    assert "resent_pending" == api.post(verify).body["result"]
    assert 2 == len(replies())
    case(api, phone=NUMBER, verified="yes")  # must wait: the number is reserved
    inbound(gw, "ok 123")
    assert "verification" == last_inbound().inbound_action
    assert wid == last_inbound().contact_id
    assert "already_verified" == api.post(verify).body["result"]
    r = api.post(
        "/a/{project}/api/v0.5/user/",
        {"username": "nurse2", "password": "pw", "phone_numbers": ["+" + NUMBER]},
    )
    assert "already_in_use" == api.post(M + f"workers/{r.body['id']}/verify").body["result"]
    assert 404 == api.post(M + "workers/nope/verify").status


def test_opt_out_list_and_admin_opt_in_rules(api: Api, gw: dict[str, Any]) -> None:
    case(api, phone=NUMBER, verified="yes")
    case(api, phone="254700000002")
    inbound(gw, "STOP")
    r = api.post(M + "opt-outs", {"phone_number": "254700000002", "opted_out": True})
    assert 200 == r.status, r.body
    rows = api.get(M + "opt-outs").body["objects"]
    assert {(NUMBER, False), ("254700000002", True)} == {
        (o["phone_number"], o["can_opt_in"]) for o in rows
    }
    r = api.post(M + "opt-outs", {"phone_number": NUMBER, "opted_out": False})
    assert 409 == r.status
    r = api.post(M + "opt-outs", {"phone_number": "254700000002", "opted_out": False})
    assert 200 == r.status and r.body["opted_out"] is False
    resp = Client().get(
        M.replace("{project}", "demo") + "opt-outs?format=csv", HTTP_AUTHORIZATION=api.auth
    )
    csv = b"".join(resp.streaming_content).decode()  # type: ignore[arg-type]
    assert csv.startswith("phone_number,opted_out") and NUMBER in csv


def test_a_project_changes_opt_outs_only_for_numbers_it_knows(
    api: Api, other_api: Api, gw: dict[str, Any]
) -> None:
    case(api, phone="254700000005")
    r = other_api.post(M + "opt-outs", {"phone_number": "254700000005", "opted_out": True})
    assert 404 == r.status, r.body
    assert "error" in r.body
    assert not OptOut.objects.filter(phone_number="254700000005").exists()
    r = api.post(M + "opt-outs", {"phone_number": "254700000005", "opted_out": True})
    assert 200 == r.status, r.body
    r = other_api.post(M + "opt-outs", {"phone_number": "254700000005", "opted_out": False})
    assert 404 == r.status, r.body
    assert OptOut.objects.get(phone_number="254700000005").opted_out
    assert [] == other_api.get(M + "opt-outs").body["objects"]


def test_numbers_a_project_sent_to_are_in_its_opt_out_list(
    api: Api, other_api: Api, gw: dict[str, Any]
) -> None:
    r = api.post(M + "send", {"phone_number": "254700000006", "text": "Ad hoc"})
    assert 202 == r.status, r.body
    r = api.post(M + "opt-outs", {"phone_number": "254700000006", "opted_out": True})
    assert 200 == r.status, r.body
    assert ["254700000006"] == [o["phone_number"] for o in api.get(M + "opt-outs").body["objects"]]
    assert [] == other_api.get(M + "opt-outs").body["objects"]


def test_self_registration_with_join(api: Api, gw: dict[str, Any]) -> None:
    inbound(gw, "JOIN demo", sender="254700000003")
    assert "unhandled" == last_inbound().inbound_action  # not allowed yet
    settings(api, self_registration={"enabled": True, "case_type": "mother", "owner_id": "o1"})
    inbound(gw, "join DEMO", sender="254700000003")
    m = last_inbound()
    assert "self_registration" == m.inbound_action
    c = Case.objects.get(case_id=m.contact_id)
    assert ("mother", "o1") == (c.case_type, c.owner_id)
    profile = api.get(M + f"contacts/{c.case_id}/profile")
    if profile.status == 200:
        assert "two_way" in str(profile.body)


def test_test_phone_join_answers_with_the_new_contact(api: Api, gw: dict[str, Any]) -> None:
    settings(api, self_registration={"enabled": True, "case_type": "mother", "owner_id": "o1"})
    r = api.post(M + "test-phone", {"from": "+254700000007", "text": "join demo"})
    assert 201 == r.status, r.body
    assert "self_registration" == r.body["action"]
    assert last_inbound().contact_id == r.body["contact_id"]
    assert "mother" == Case.objects.get(case_id=r.body["contact_id"]).case_type


def test_test_phone_conversation(api: Api, gw: dict[str, Any]) -> None:
    settings(api, help_text={"en": "Help is here"})
    r = api.post(M + "test-phone", {"from": "+254700000004", "text": "HELP"})
    assert 201 == r.status, r.body
    assert ("help", "Help is here") == (r.body["action"], r.body["replies"][0]["text"])
    drain()
    conv = api.get(M + "test-phone", number="254700000004").body["objects"]
    assert [("in", "HELP"), ("out", "Help is here")] == [(m["direction"], m["text"]) for m in conv]
    assert "sent" == conv[1]["status"]


def test_unmatched_on_a_global_gateway_has_no_project_but_stop_works(api: Api) -> None:
    from casereach.gateways.actions import do_create_gateway

    g = do_create_gateway(None, {"name": "GLOBAL", "type": "test"})
    r = Client().post(
        f"/gateways/test/{g.inbound_key}/inbound",
        {"from": "254711111111", "to": "12345", "text": "STOP"},
    )
    assert 200 == r.status_code, r.content
    m = last_inbound()
    assert (None, "opt_out") == (m.project_id, m.inbound_action)
    assert 1 == drain()
    assert "sent" == replies()[0].status


def test_bad_inbound_input_stores_nothing(api: Api, gw: dict[str, Any]) -> None:
    path = path_of(gw["inbound_url"])
    c = Client()
    assert 401 == c.post("/gateways/test/wrong-key/inbound", {"from": "1", "text": "x"}).status_code
    assert 413 == c.post(path, {"from": NUMBER, "to": "1", "text": "x" * 70_000}).status_code
    for resp in [
        c.post(path, {"to": "1", "text": "x"}),
        c.post(path, b"\xff\xfe=\xff", content_type="application/x-www-form-urlencoded"),
        c.post(path, b"<xml/>", content_type="text/xml"),
        c.post(path, b"{not json", content_type="application/json"),
        c.post(path, {"from": "abc", "to": "1", "text": "x"}),
    ]:
        assert 400 == resp.status_code, resp.content
        assert "error" in resp.json()
    assert 0 == Message.objects.filter(direction="in").count()


def test_inbound_appears_in_the_messaging_event_api(api: Api, gw: dict[str, Any]) -> None:
    cid = case(api, phone=NUMBER, verified="yes")
    inbound(gw, "hello there")
    r = api.get("/a/{project}/api/v0.5/messaging-event/")
    assert 200 == r.status, r.body
    events = [e for e in r.body["objects"] if e["recipient"]["recipient_id"] == cid]
    assert 1 == len(events), r.body
    msgs = events[0]["messages"]
    assert [("incoming", "hello there")] == [(m["direction"], m["content"]) for m in msgs]


@pytest.mark.parametrize("gw_type", ["test", "http", "twilio", "africastalking"])
def test_stop_through_each_types_own_url_and_format(api: Api, gw_type: str) -> None:
    from casereach.messaging.tests.test_inbound_fuzz import TOKEN, TYPES

    config, valid, _, _ = TYPES[gw_type]
    r = api.post(M + "gateways", {"name": "G", "type": gw_type, "config": config})
    assert 201 == r.status, r.body
    path = path_of(r.body["inbound_url"])
    sender_field = "From" if gw_type == "twilio" else "from"
    text_field = "Body" if gw_type == "twilio" else "text"
    cid = case(api, phone="254700000001", verified="yes")
    form = {**valid, sender_field: "+254700000001", text_field: " Stop "}
    headers = {}
    if gw_type == "twilio":
        headers["HTTP_X_TWILIO_SIGNATURE"] = twilio_signature(
            "http://testserver" + path, form, TOKEN
        )
    resp = Client().post(path, form, **headers)
    assert 200 == resp.status_code, resp.content
    m = last_inbound()
    assert (cid, "opt_out", "G") == (m.contact_id, m.inbound_action, m.gateway_name)
    assert OptOut.objects.get(phone_number="254700000001").opted_out
    reply = replies()[0]
    assert ("G", "inbound", "254700000001") == (
        reply.gateway_name,
        reply.gateway_source,
        reply.phone_number,
    )
