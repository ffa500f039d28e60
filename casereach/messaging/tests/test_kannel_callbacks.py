"""Kannel's callbacks come by GET (its dlr-url and sms-service get-url): reports and SMS by
query, an empty answer, 405 for the types whose providers POST, and another project's
gateway changes nothing of this project's messages."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.test import Client

from casereach.messaging.models import Message
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
CONFIG = {
    "send_url": "http://127.0.0.1:9/cgi-bin/sendsms",
    "username": "casereach",
    "password": "kannel-pw",
}


def kannel_gateway(api: Api, name: str = "KANNEL") -> dict[str, str]:
    r = api.post(M + "gateways", {"name": name, "type": "kannel", "config": CONFIG})
    assert 201 == r.status, r.body
    assert "password" not in r.body["config"]
    return {k: urlsplit(r.body[k]).path for k in ("status_url", "inbound_url")}


def sent_message(api: Api, gateway_name: str) -> Message:
    api.put(M + "routes", {"default_gateway": gateway_name, "prefixes": []})
    r = api.post(M + "send", {"phone_number": "254712345678", "text": "x"})
    m = Message.objects.get(id=r.body["messages"][0]["id"])
    Message.objects.filter(id=m.id).update(status="sent")
    return m


def test_a_delivery_report_by_get_delivers_the_message_it_names(api: Api) -> None:
    urls = kannel_gateway(api)
    m = sent_message(api, "KANNEL")
    r = Client().get(urls["status_url"], {"id": m.id, "type": "8", "reply": "ACK/"})
    assert (200, {"received": 1, "applied": 0}) == (r.status_code, r.json())
    r = Client().get(urls["status_url"], {"id": m.id, "type": "1", "reply": "stat:DELIVRD"})
    assert (200, {"received": 1, "applied": 1}) == (r.status_code, r.json())
    assert "delivered" == Message.objects.get(id=m.id).status


def test_a_report_that_cannot_be_read_is_400_and_changes_nothing(api: Api) -> None:
    urls = kannel_gateway(api)
    m = sent_message(api, "KANNEL")
    r = Client().get(urls["status_url"], {"id": m.id, "type": "%d"})
    assert 400 == r.status_code, r.content
    assert "sent" == Message.objects.get(id=m.id).status


def test_an_sms_by_get_is_stored_handled_and_answered_with_nothing(api: Api) -> None:
    urls = kannel_gateway(api)
    api.post("/a/{project}/api/case/v2/", case_body(phone="254700000001", verified="yes"))
    query = {
        "from": "254700000001",
        "to": "22384",
        "text": "STOP",
        "id": "7c1a-kannel-1",
        "coding": "0",
        "charset": "UTF-8",
    }
    r = Client().get(urls["inbound_url"], query)
    assert (200, b"") == (r.status_code, r.content)
    assert r["Content-Type"].startswith("text/plain")
    m = Message.objects.get(direction="in")
    assert ("STOP", "opt_out", "7c1a-kannel-1") == (m.text, m.inbound_action, m.provider_id)
    r = Client().get(urls["inbound_url"], query)  # Kannel retrying: stored once
    assert 200 == r.status_code
    assert 1 == Message.objects.filter(direction="in").count()


def test_an_sms_with_undecoded_ucs2_is_400_naming_mo_recode(api: Api) -> None:
    urls = kannel_gateway(api)
    query = {"from": "254700000001", "to": "22384", "text": "x", "id": "k-2", "coding": "2"}
    r = Client().get(urls["inbound_url"], query)
    assert 400 == r.status_code
    assert "mo-recode" in r.json()["error"]
    assert 0 == Message.objects.filter(direction="in").count()


def test_get_on_a_type_whose_provider_posts_is_405(api: Api) -> None:
    r = api.post(M + "gateways", {"name": "HTTP", "type": "test", "config": {}})
    assert 201 == r.status, r.body
    for url in (r.body["status_url"], r.body["inbound_url"]):
        got = Client().get(urlsplit(url).path, {"id": "x", "status": "delivered"})
        assert (405, "POST") == (got.status_code, got["Allow"]), got.content
    assert 0 == Message.objects.filter(direction="in").count()


def test_unknown_kannel_key_is_401(api: Api) -> None:
    r = Client().get("/gateways/kannel/not-a-key/status", {"id": "x", "type": "1"})
    assert 401 == r.status_code
    r = Client().get("/gateways/kannel/not-a-key/inbound", {"from": "254700000001"})
    assert 401 == r.status_code


def test_another_projects_kannel_cannot_touch_this_projects_messages(
    api: Api, other_api: Api
) -> None:
    kannel_gateway(api)
    m = sent_message(api, "KANNEL")
    theirs = kannel_gateway(other_api, "THEIRS")
    for kind in ("1", "2", "16"):
        r = Client().get(theirs["status_url"], {"id": m.id, "type": kind})
        assert (200, {"received": 1, "applied": 0}) == (r.status_code, r.json())
    assert "sent" == Message.objects.get(id=m.id).status
