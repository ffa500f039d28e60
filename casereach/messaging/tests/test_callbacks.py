"""Provider callbacks: signatures, unknown keys, monotonic status, concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.models import Message
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
SID = "AC" + "0" * 32
TOKEN = "secret-token-1234"


def twilio_gateway(api: Api) -> dict[str, str]:
    r = api.post(
        M + "gateways",
        {
            "name": "TW",
            "type": "twilio",
            "config": {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15550001111"},
        },
    )
    assert 201 == r.status, r.body
    assert "auth_token" not in r.body["config"]
    assert ["auth_token"] == r.body["secrets_set"]
    return r.body  # type: ignore[no-any-return]


def queued_message(api: Api, gateway_name: str, provider_id: str) -> Message:
    api.put(M + "routes", {"default_gateway": gateway_name, "prefixes": []})
    r = api.post(M + "send", {"phone_number": "254712345678", "text": "x"})
    m = Message.objects.get(id=r.body["messages"][0]["id"])
    Message.objects.filter(id=m.id).update(status="sent", provider_id=provider_id)
    return m


def test_twilio_callback_signature_is_checked(api: Api) -> None:
    gw = twilio_gateway(api)
    m = queued_message(api, "TW", "SM123")
    path = gw["status_url"].replace("http://testserver", "")
    form = {"MessageSid": "SM123", "MessageStatus": "delivered", "AccountSid": SID}
    client = Client()
    r = client.post(path, form, HTTP_X_TWILIO_SIGNATURE="bad")
    assert 403 == r.status_code
    assert "sent" == Message.objects.get(id=m.id).status
    good = twilio_signature("http://testserver" + path, form, TOKEN)
    r = client.post(path, form, HTTP_X_TWILIO_SIGNATURE=good)
    assert 200 == r.status_code, r.content
    assert "delivered" == Message.objects.get(id=m.id).status


def test_twilio_21610_in_a_callback_opts_the_number_out(api: Api) -> None:
    gw = twilio_gateway(api)
    m = queued_message(api, "TW", "SM999")
    path = gw["status_url"].replace("http://testserver", "")
    form = {
        "MessageSid": "SM999",
        "MessageStatus": "undelivered",
        "ErrorCode": "21610",
        "AccountSid": SID,
    }
    sig = twilio_signature("http://testserver" + path, form, TOKEN)
    r = Client().post(path, form, HTTP_X_TWILIO_SIGNATURE=sig)
    assert 200 == r.status_code, r.content
    assert "failed" == Message.objects.get(id=m.id).status


def test_unknown_key_stores_nothing(api: Api) -> None:
    r = Client().post("/gateways/test/not-a-key/status", {"id": "x", "status": "sent"})
    assert 401 == r.status_code
    r = Client().post("/gateways/twilio/not-a-key/status", {"MessageSid": "x"})
    assert 401 == r.status_code


def test_oversized_callback_is_413(api: Api) -> None:
    r = api.post(M + "gateways", {"name": "T", "type": "test"})
    path = r.body["status_url"].replace("http://testserver", "")
    resp = Client().post(path, "x" * 70_000, content_type="text/plain")
    assert 413 == resp.status_code


@pytest.mark.django_db(transaction=True)
def test_same_callback_three_times_concurrently_applies_once(project: object) -> None:
    from casereach.projects.models import Project

    api = Api(Project.objects.get(name="demo"))
    r = api.post(M + "gateways", {"name": "T", "type": "test"})
    path = r.body["status_url"].replace("http://testserver", "")
    m = queued_message(api, "T", "test-abc")
    results: list[tuple[int, int]] = []

    def post() -> None:
        try:
            resp = Client().post(path, {"id": "test-abc", "status": "delivered"})
            results.append((resp.status_code, resp.json()["applied"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [200, 200, 200] == [status for status, _ in results]
    assert 1 == sum(applied for _, applied in results)  # stored once
    m.refresh_from_db()
    assert "delivered" == m.status
    assert 1 == Message.objects.filter(id=m.id, status="delivered").count()


def test_broken_multipart_and_too_many_fields_are_400(api: Api) -> None:
    r = api.post(M + "gateways", {"name": "T2", "type": "test"})
    path = r.body["status_url"].replace("http://testserver", "")
    client = Client()
    resp = client.post(path, "garbage", content_type="multipart/form-data")
    assert 400 == resp.status_code
    many = "&".join(f"f{i}=x" for i in range(1200))
    resp = client.post(path, many, content_type="application/x-www-form-urlencoded")
    assert 400 == resp.status_code
