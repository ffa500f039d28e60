"""Text that is not valid UTF-8 is refused at every entry — JSON bodies, query strings,
every gateway type's inbound and status webhooks — and no stored text can break STOP
(issue 15, item 4; SPEC 10)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from casereach.gateways.registry import GATEWAY_TYPES
from casereach.messaging.models import Keyword, Message, OptOut
from casereach.projects.models import Project
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"
ENCODED_SURROGATE = b"\xed\xa0\x80"  # U+D800 written as UTF-8 bytes: not UTF-8


@pytest.fixture
def gw(api: Api) -> dict[str, Any]:
    r = api.post(M + "gateways", {"name": "TEST", "type": "test"})
    assert 201 == r.status, r.body
    assert 200 == api.put(M + "routes", {"default_gateway": "TEST", "prefixes": []}).status
    body: dict[str, Any] = r.body
    return body


def path_of(url: str) -> str:
    return url.replace("http://testserver", "")


def stop(gw: dict[str, Any], text: str = "STOP") -> Any:
    return Client().post(
        path_of(gw["inbound_url"]), {"from": NUMBER, "to": "5550000", "text": text}
    )


def test_raw_encoded_surrogate_is_refused_on_settings_keywords_and_send(
    api: Api, gw: dict[str, Any]
) -> None:
    before = api.get(M + "settings").body
    for method, path, raw in [
        ("PATCH", M + "settings", b'{"opt_out_reply": {"en": "bye %s"}}'),
        ("PUT", M + "settings", b'{"help_text": {"en": "%s"}}'),
        ("POST", M + "keywords", b'{"keyword": "WT", "reply": {"en": "ok %s"}}'),
        ("POST", M + "send", b'{"phone_number": "+254712345678", "text": "hi %s"}'),
    ]:
        r = api.call(method, path, raw=raw.replace(b"%s", ENCODED_SURROGATE))
        assert 400 == r.status, (path, r.body)
        assert "Payload must be valid JSON" == r.body["error"]
        assert "not valid UTF-8" in r.body["detail"]
    assert before == api.get(M + "settings").body
    assert 0 == Keyword.objects.count()
    assert 0 == Message.objects.count()
    assert 200 == stop(gw).status_code
    assert OptOut.objects.filter(phone_number=NUMBER, opted_out=True).exists()


def test_a_surrogate_escape_is_refused_with_where_it_is(api: Api) -> None:
    r = api.call("PATCH", M + "settings", raw=b'{"opt_out_reply": {"en": "bye \\ud800"}}')
    assert 400 == r.status
    assert "opt_out_reply.en" in r.body["detail"]
    r = api.call("PATCH", M + "settings", raw=b'{"opt_out_reply": {"en": "\\ud83d\\ude00"}}')
    assert 200 == r.status, r.body  # a pair is one character


@pytest.mark.parametrize(
    "query",
    ["phone_number=%ED%A0%80", "status=%FF", "x=caf%E9", "%C3=1"],
)
def test_a_query_string_that_is_not_utf8_is_a_400(api: Api, query: str) -> None:
    path = M.replace("{project}", api.project.name) + "messages?" + query
    resp = api.client.get(path, HTTP_AUTHORIZATION=api.auth)
    assert 400 == resp.status_code
    assert "the query string is not valid UTF-8" in resp.json()["error"]


FORMS = {
    "raw byte": (b"from=254712345678&to=5550000&text=STOP\xed\xa0\x80&id=1", "form"),
    "percent-escape": (b"from=254712345678&to=5550000&text=STOP%ED%A0%80&id=1", "form"),
    "multipart": (
        b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nSTOP\xff\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
    "json raw byte": (b'{"from": "254712345678", "text": "STOP\xed\xa0\x80"}', "application/json"),
    "json escape": (b'{"from": "254712345678", "text": "STOP\\udfff"}', "application/json"),
}


@pytest.mark.parametrize("endpoint", ["inbound", "status"])
@pytest.mark.parametrize("label", sorted(FORMS))
def test_every_gateway_webhook_refuses_text_that_is_not_utf8(
    api: Api, gw: dict[str, Any], endpoint: str, label: str
) -> None:
    body, content_type = FORMS[label]
    media = "application/x-www-form-urlencoded" if content_type == "form" else content_type
    for gw_type in GATEWAY_TYPES:
        key = path_of(gw["inbound_url"]).split("/")[3] if gw_type == "test" else "no-such-key"
        resp = Client().generic(
            "POST", f"/gateways/{gw_type}/{key}/{endpoint}", body, content_type=media
        )
        assert 400 == resp.status_code, (gw_type, resp.content[:200])
        assert "not valid" in str(resp.json())
    assert 0 == Message.objects.count()
    assert 0 == OptOut.objects.count()


def plant_settings(project: Project, values: dict[str, Any]) -> None:
    """Write settings around every check, as a bad migration or a hand edit would."""
    Project.objects.filter(pk=project.pk).update(settings={**project.settings, **values})


def bad_text() -> Any:
    """A stored text that cannot be sent: a lone surrogate where the database keeps one
    (SQLite); PostgreSQL's jsonb refuses those, so there the text has the wrong type."""
    return "bye \ud800" if connection.vendor == "sqlite" else ["bye"]


@pytest.mark.parametrize(
    "planted",
    [
        "opt_out_reply",
        "opt_out_keywords",
        "languages",
        "everything",
    ],
)
def test_stop_opts_out_whatever_the_stored_settings_hold(
    api: Api, project: Project, gw: dict[str, Any], planted: str, caplog: Any
) -> None:
    values: dict[str, Any] = {
        "opt_out_reply": {"en": bad_text()},
        "opt_out_keywords": {"en": [bad_text()]},
        "languages": [bad_text()],
    }
    plant_settings(project, values if planted == "everything" else {planted: values[planted]})
    resp = stop(gw)
    assert 200 == resp.status_code, resp.content[:300]
    assert OptOut.objects.filter(phone_number=NUMBER, opted_out=True).exists()
    assert ["opt_out"] == [m["action"] for m in resp.json()["messages"]]
    assert any("skipped" in r.getMessage() for r in caplog.records)


def test_a_keyword_with_a_bad_stored_reply_is_received_without_it(
    api: Api, gw: dict[str, Any]
) -> None:
    r = api.post("/a/{project}/api/case/v2/", case_body(phone="+254712345678", verified="yes"))
    assert 200 == r.status, r.body
    r = api.post(M + "keywords", {"keyword": "WT", "reply": {"en": "thanks"}})
    assert 201 == r.status, r.body
    Keyword.objects.filter(keyword="WT").update(reply={"en": bad_text(), "*": bad_text()})
    resp = stop(gw, "WT 5")
    assert 200 == resp.status_code, resp.content[:300]
    assert ["keyword:WT"] == [m["action"] for m in resp.json()["messages"]]
    assert 200 == stop(gw).status_code
    assert OptOut.objects.filter(phone_number=NUMBER, opted_out=True).exists()
