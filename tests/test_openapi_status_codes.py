"""Every status code an operation really answers is one its OpenAPI entry documents, with the
content type it is sent as and a body that fits the documented schema."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import pytest
from django.test import Client

from casereach.api.links import LINKS
from casereach.api.main import api as ninja_api
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.callbacks import MAX_CALLBACK_BYTES
from casereach.projects.models import Project
from casereach.testing.gateways import inbound_path as path_of
from casereach.testing.world import Api, Response, case_body

M = "/a/{project}/api/messaging/v1"
V2 = "/a/{project}/api/case/v2"
USERS = "/a/{project}/api/v0.5/user/"
INBOUND = "/gateways/{gateway_type}/{inbound_key}/inbound"
STATUS = "/gateways/{gateway_type}/{inbound_key}/status"
NUMBER = "254712345678"
TWILIO_TOKEN = "t0k3n-0123456789abcdef0123456789ab"
ERROR_CODES = {"400", "401", "403", "404", "409", "413", "429"}


@functools.cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(ninja_api.get_openapi_schema(), default=str))
    return doc


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
    ]


def documented(method: str, path: str, r: Response) -> Response:
    """``r`` (the answer to ``method`` on the templated ``path``) is documented: its status
    code, its content type and, where the document has one, a body that fits the schema."""
    op = document()["paths"][path][method.lower()]
    code = str(r.status)
    assert code in op["responses"], (method, path, code, sorted(op["responses"]), r.body)
    content = op["responses"][code].get("content")
    if not r.raw:
        assert not content, (method, path, code, "documents a body but none was sent")
        return r
    assert content, (method, path, code, "sends a body but documents none")
    media = r.headers.get("Content-Type", "").split(";", 1)[0].strip()
    assert media in content, (method, path, code, media, sorted(content))
    schema = content[media].get("schema")
    if media == "application/json" and schema is not None:
        jsonschema.validate(r.body, {**schema, "components": document()["components"]})
    return r


def raw_post(path: str, data: Any = None, **kw: Any) -> Response:
    """A webhook call: no API key, a form body (or ``data`` as it is with content_type)."""
    resp = Client().post(path, data if data is not None else {}, **kw)
    content = resp.content
    try:
        parsed = json.loads(content) if content else None
    except ValueError:
        parsed = None
    return Response(resp.status_code, parsed, dict(resp.headers), content)


def csv_get(api: Api, path: str) -> Response:
    """A streamed CSV download (Api reads ``content``, which streaming answers lack)."""
    resp = Client().get(
        path.replace("{project}", api.project.name), {"format": "csv"}, HTTP_AUTHORIZATION=api.auth
    )
    content = b"".join(resp.streaming_content) if resp.streaming else resp.content
    return Response(resp.status_code, None, dict(resp.headers), content)


def gateway(api: Api, name: str, gw_type: str = "test", **kw: Any) -> dict[str, Any]:
    r = documented(
        "POST", M + "/gateways", api.post(M + "/gateways", {"name": name, "type": gw_type, **kw})
    )
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def a_case(api: Api, **kw: Any) -> str:
    r = documented("POST", V2 + "/", api.post(V2 + "/", case_body(**kw)))
    assert 200 == r.status, r.body
    cid: str = r.body["case"]["case_id"]
    return cid


# --- the messaging API ------------------------------------------------------------------------


def test_test_phone(api: Api) -> None:
    path = M + "/test-phone"
    r = documented("POST", path, api.post(path, {"from": NUMBER, "text": "hi"}))
    assert 400 == r.status  # no test gateway yet
    gateway(api, "TEST")
    r = documented("POST", path, api.post(path, {"from": NUMBER, "text": "hi"}))
    assert 201 == r.status, r.body
    r = documented("POST", path, api.post(path, {"from": NUMBER, "text": "hi", "nope": 1}))
    assert 400 == r.status
    r = documented("GET", path, api.get(path, number=NUMBER))
    assert 200 == r.status, r.body
    r = documented("POST", path, api.post(path, {"from": NUMBER, "text": "hi"}, auth=None))
    assert 401 == r.status


def test_keywords(api: Api, other_api: Api) -> None:
    body = {"keyword": "VISIT", "reply": {"en": "Thanks"}}
    r = documented("POST", M + "/keywords", api.post(M + "/keywords", body))
    assert 201 == r.status, r.body
    kid = r.body["id"]
    assert 409 == documented("POST", M + "/keywords", api.post(M + "/keywords", body)).status
    assert 400 == documented("POST", M + "/keywords", api.post(M + "/keywords", [1])).status
    assert 200 == documented("GET", M + "/keywords", api.get(M + "/keywords")).status
    one = M + "/keywords/{keyword_id}"
    at = one.replace("{keyword_id}", str(kid))
    assert 200 == documented("GET", one, api.get(at)).status
    r = documented("PATCH", one, api.call("PATCH", at, {"description": "visits"}))
    assert 200 == r.status, r.body
    r = documented("GET", one, other_api.get(at.replace("{project}", api.project.name)))
    assert 403 == r.status
    assert 204 == documented("DELETE", one, api.delete(at)).status
    assert 404 == documented("DELETE", one, api.delete(at)).status
    assert 404 == documented("PUT", one, api.put(at, body)).status
    assert 400 == documented("GET", one, api.get(one.replace("{keyword_id}", "x"))).status


def test_opt_outs(api: Api) -> None:
    path = M + "/opt-outs"
    r = documented("POST", path, api.post(path, {"phone_number": NUMBER, "opted_out": True}))
    assert 404 == r.status  # not a number of this project
    a_case(api, phone=NUMBER)
    r = documented("POST", path, api.post(path, {"phone_number": NUMBER, "opted_out": True}))
    assert 200 == r.status, r.body
    r = documented("POST", path, api.post(path, {"phone_number": NUMBER, "opted_out": "no"}))
    assert 400 == r.status
    assert 200 == documented("GET", path, api.get(path)).status
    assert 200 == documented("GET", path, csv_get(api, path)).status
    assert 400 == documented("GET", path, api.get(path, opted_out="maybe")).status


def test_send_and_the_message_log(api: Api) -> None:
    gateway(api, "TEST")
    path = M + "/send"
    r = documented("POST", path, api.post(path, {"phone_number": NUMBER, "text": "hello"}))
    assert 202 == r.status, r.body
    message_id = r.body["messages"][0]["id"]
    assert 400 == documented("POST", path, api.post(path, {"text": "hello"})).status
    r = documented("POST", path, api.post(path, {"contact_id": "nobody", "text": "hello"}))
    assert 404 == r.status
    assert 200 == documented("GET", M + "/messages", api.get(M + "/messages")).status
    r = documented("GET", M + "/messages", csv_get(api, M + "/messages"))
    assert 200 == r.status
    one = M + "/messages/{message_id}"
    assert 200 == documented("GET", one, api.get(one.replace("{message_id}", message_id))).status
    assert 404 == documented("GET", one, api.get(one.replace("{message_id}", "nope"))).status
    assert 200 == documented("GET", M + "/error-codes", api.get(M + "/error-codes")).status


def test_send_batch(api: Api, other_api: Api) -> None:
    gateway(api, "TEST")
    path = M + "/send-batch"
    items = [{"phone_number": NUMBER, "text": "hello"}, {"contact_id": "nobody", "text": "x"}]
    r = documented("POST", path, api.post(path, {"messages": items[:1]}))
    assert 202 == r.status, r.body
    r = documented("POST", path, api.post(path, {"messages": items}))
    assert (400, 1) == (r.status, r.body["index"])
    assert 400 == documented("POST", path, api.post(path, {"messages": "x"})).status
    r = other_api.post(path.replace("{project}", api.project.name), {"messages": items[:1]})
    assert 403 == documented("POST", path, r).status
    assert 401 == documented("POST", path, api.post(path, {"messages": []}, auth=None)).status


def test_gateways_and_routes(api: Api) -> None:
    gw = gateway(api, "TEST")
    r = documented(
        "POST", M + "/gateways", api.post(M + "/gateways", {"name": "TEST", "type": "test"})
    )
    assert 409 == r.status
    r = documented(
        "POST", M + "/gateways", api.post(M + "/gateways", {"name": "X", "type": "nope"})
    )
    assert 400 == r.status
    assert 200 == documented("GET", M + "/gateways", api.get(M + "/gateways")).status
    assert 200 == documented("GET", M + "/gateway-types", api.get(M + "/gateway-types")).status
    one = M + "/gateways/{gateway_id}"
    at = one.replace("{gateway_id}", str(gw["id"]))
    assert 200 == documented("GET", one, api.get(at)).status
    assert 200 == documented("PUT", one, api.put(at, {"is_active": True})).status
    routes = {"default_gateway": "TEST", "prefixes": []}
    assert 200 == documented("PUT", M + "/routes", api.put(M + "/routes", routes)).status
    assert 400 == documented("PUT", M + "/routes", api.put(M + "/routes", [])).status
    assert 200 == documented("GET", M + "/routes", api.get(M + "/routes")).status
    assert 200 == documented("DELETE", one, api.delete(at)).status
    assert 404 == documented("DELETE", one, api.delete(at)).status


def test_settings(api: Api) -> None:
    path = M + "/settings"
    assert 200 == documented("GET", path, api.get(path)).status
    assert 200 == documented("PATCH", path, api.call("PATCH", path, {})).status
    assert 400 == documented("PUT", path, api.put(path, {"no_such_setting": 1})).status
    assert 401 == documented("GET", path, api.get(path, auth="ApiKey nobody:nothing")).status


# --- CommCare-compatible APIs -----------------------------------------------------------------


def test_case_v2(api: Api, other_api: Api) -> None:
    cid = a_case(api, external_id="ext-1")
    r = documented("POST", V2 + "/", api.post(V2 + "/", {"case_type": "x"}))
    assert 400 == r.status
    bulk = [{**case_body(name="B"), "create": True}]
    assert 200 == documented("POST", V2 + "/", api.post(V2 + "/", bulk)).status
    one = V2 + "/{case_id}"
    at = one.replace("{case_id}", cid)
    r = documented("PUT", one, api.put(at, {"properties": {"visit": "1"}}))
    assert 200 == r.status, r.body
    assert 400 == documented("PUT", one, api.put(one.replace("{case_id}", "nope"), {})).status
    assert 200 == documented("GET", one, api.get(at)).status
    assert 200 == documented("GET", one, api.get(f"{at},nope")).status
    r = documented("GET", V2 + "/", other_api.get(V2.replace("{project}", api.project.name) + "/"))
    assert 403 == r.status
    assert 200 == documented("GET", V2 + "/", api.get(V2 + "/")).status
    ext = V2 + "/ext/{external_id}/"
    assert 200 == documented("GET", ext, api.get(ext.replace("{external_id}", "ext-1"))).status
    assert 404 == documented("GET", ext, api.get(ext.replace("{external_id}", "ext-2"))).status
    assert 200 == documented("DELETE", one, api.delete(at)).status
    assert 404 == documented("DELETE", one, api.delete(at)).status


def test_users(api: Api) -> None:
    body = {"username": "nurse", "password": "pw"}
    r = documented("POST", USERS, api.post(USERS, body))
    assert 201 == r.status, r.body
    assert 409 == documented("POST", USERS, api.post(USERS, body)).status
    assert 400 == documented("POST", USERS, api.post(USERS, {"username": "x"})).status
    one = USERS + "{user_id}/"
    assert (
        202 == documented("DELETE", one, api.delete(one.replace("{user_id}", r.body["id"]))).status
    )
    assert 404 == documented("DELETE", one, api.delete(one.replace("{user_id}", "nope"))).status


FORWARDING = "/a/{project}/api/commcare/case-forwarding/"
RECEIVER = "/a/{project}/receiver/"
CASE_XML = (
    '<case xmlns="http://commcarehq.org/case/transaction/v2" case_id="hq-1">'
    "<create><case_type>mother</case_type><case_name>A</case_name><owner_id>o</owner_id>"
    "</create></case>"
)


def raw_api_post(api: Api, path: str, body: bytes, content_type: str, **kw: Any) -> Response:
    resp = Client().post(
        path.replace("{project}", api.project.name),
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=kw.pop("auth", api.auth),
    )
    try:
        parsed = json.loads(resp.content) if resp.content else None
    except ValueError:
        parsed = None
    return Response(resp.status_code, parsed, dict(resp.headers), resp.content)


def test_case_forwarding(api: Api, other_api: Api) -> None:
    xml = CASE_XML.encode()
    r = documented("POST", FORWARDING, raw_api_post(api, FORWARDING, xml, "text/xml"))
    assert (200, "applied") == (r.status, r.body["outcome"])
    json_body = b'{"case_id": "hq-1", "properties": {"case_name": "B"}}'
    r = documented("POST", FORWARDING, raw_api_post(api, FORWARDING, json_body, "application/json"))
    assert 200 == r.status, r.body
    r = documented("POST", FORWARDING, raw_api_post(api, FORWARDING, b"<case", "text/xml"))
    assert 400 == r.status
    big = b"<x>" + b" " * (6 * 1024 * 1024) + b"</x>"
    assert (
        413 == documented("POST", FORWARDING, raw_api_post(api, FORWARDING, big, "text/xml")).status
    )
    r = raw_api_post(other_api, FORWARDING.replace("{project}", api.project.name), xml, "text/xml")
    assert 403 == documented("POST", FORWARDING, r).status
    r = raw_api_post(api, FORWARDING, xml, "text/xml", auth="ApiKey nobody:nothing")
    assert 401 == documented("POST", FORWARDING, r).status


def test_form_receiver(api: Api, other_api: Api) -> None:
    form = f"<data><meta><instanceID>i-1</instanceID></meta>{CASE_XML}</data>".encode()
    assert 201 == documented("POST", RECEIVER, raw_api_post(api, RECEIVER, form, "text/xml")).status
    assert 201 == documented("POST", RECEIVER, raw_api_post(api, RECEIVER, form, "text/xml")).status
    bad = b'<data><case xmlns="http://commcarehq.org/case/transaction/v2" case_id="nope"><close/></case></data>'
    assert 422 == documented("POST", RECEIVER, raw_api_post(api, RECEIVER, bad, "text/xml")).status
    assert (
        400 == documented("POST", RECEIVER, raw_api_post(api, RECEIVER, b"<d", "text/xml")).status
    )
    big = b"<x>" + b" " * (6 * 1024 * 1024) + b"</x>"
    assert 413 == documented("POST", RECEIVER, raw_api_post(api, RECEIVER, big, "text/xml")).status
    r = raw_api_post(other_api, RECEIVER.replace("{project}", api.project.name), form, "text/xml")
    assert 403 == documented("POST", RECEIVER, r).status
    r = raw_api_post(api, RECEIVER, form, "text/xml", auth="ApiKey nobody:nothing")
    assert 401 == documented("POST", RECEIVER, r).status


SEND_SMS = "/a/{project}/sms/api/send_sms/"


def form_post(api: Api, form: dict[str, str], **kw: Any) -> Response:
    resp = Client().post(
        SEND_SMS.replace("{project}", api.project.name),
        form,
        HTTP_AUTHORIZATION=kw.pop("auth", api.auth),
    )
    media = resp.headers.get("Content-Type", "")
    parsed = json.loads(resp.content) if media.startswith("application/json") else None
    return Response(resp.status_code, parsed, dict(resp.headers), resp.content)


def test_commcare_send_sms(api: Api, other_api: Api) -> None:
    """HQ's send-SMS API: plain-text answers, its statuses and messages."""
    no_phone = a_case(api)
    answers = []
    for form in [
        {"phone_number": NUMBER, "text": "hi"},  # no gateway yet: recorded, not sent
        {"text": "hi"},
        {"phone_number": NUMBER},
        {"contact_id": "nobody", "text": "hi"},
        {"contact_id": no_phone, "text": "hi"},
        {"phone_number": "12", "text": "hi"},
        {"phone_number": NUMBER, "text": "hi", "backend_id": "NOPE"},
    ]:
        r = documented("POST", SEND_SMS, form_post(api, form))
        assert r.headers["Content-Type"].startswith("text/plain"), r.raw
        answers.append((r.status, r.raw.decode()))
    assert [
        (200, "ERROR: NO_SUITABLE_GATEWAY"),
        (400, "Not enough arguments."),
        (400, "Not enough arguments."),
        (400, "Contact not found."),
        (400, "Contact has no phone number."),
    ] == answers[:5]
    assert [400, 400] == [status for status, _ in answers[5:]], answers
    assert "gateway 'NOPE' not found (or not active) for this project" == answers[6][1]
    gateway(api, "TEST")
    with_phone = a_case(api, phone=NUMBER)
    for form in [
        {"phone_number": NUMBER, "text": "hi", "backend_id": "TEST"},
        {"contact_id": with_phone, "text": "hi", "backend_id": "TEST"},
    ]:
        r = documented("POST", SEND_SMS, form_post(api, form))
        assert (200, b"OK") == (r.status, r.raw)
    r = form_post(api, {"phone_number": NUMBER, "text": "hi"}, auth=other_api.auth)
    assert 403 == documented("POST", SEND_SMS, r).status
    r = documented("POST", SEND_SMS, form_post(api, {"text": "x"}, auth="ApiKey nobody:nothing"))
    assert 401 == r.status
    assert r.headers["WWW-Authenticate"].startswith("Digest ")


# --- provider webhooks ------------------------------------------------------------------------


def test_webhooks_with_a_bad_and_a_good_key(api: Api) -> None:
    gw = gateway(api, "TEST")
    form = {"from": NUMBER, "to": "5550000", "text": "hi"}
    r = documented("POST", INBOUND, raw_post("/gateways/test/wrong-key/inbound", form))
    assert 401 == r.status
    r = documented("POST", STATUS, raw_post("/gateways/test/wrong-key/status", form))
    assert 401 == r.status
    r = documented("POST", INBOUND, raw_post(path_of(gw["inbound_url"]), form))
    assert 200 == r.status, r.body
    too_big = b"x" * (MAX_CALLBACK_BYTES + 1)
    r = raw_post(path_of(gw["inbound_url"]), too_big, content_type="application/octet-stream")
    assert 413 == documented("POST", INBOUND, r).status
    if gw["status_url"]:
        r = raw_post(path_of(gw["status_url"]), too_big, content_type="application/octet-stream")
        assert 413 == documented("POST", STATUS, r).status


def test_twilio_webhook_answers_documented_twiml(api: Api) -> None:
    config = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": TWILIO_TOKEN,
        "from_number": "+15550001111",
    }
    gw = gateway(api, "TW", "twilio", config=config)
    path = path_of(gw["inbound_url"])
    form = {"MessageSid": "SM9", "From": "+" + NUMBER, "To": "+15550001111", "Body": "hi"}
    assert 403 == documented("POST", INBOUND, raw_post(path, form)).status
    sig = twilio_signature("http://testserver" + path, form, TWILIO_TOKEN)
    r = documented("POST", INBOUND, raw_post(path, form, HTTP_X_TWILIO_SIGNATURE=sig))
    assert 200 == r.status
    assert r.headers["Content-Type"].startswith("text/xml")


# --- the document as a whole ------------------------------------------------------------------


def test_no_operation_documents_only_a_bare_200() -> None:
    bare = [
        (method, path)
        for method, path, op in operations()
        if set(op["responses"]) == {"200"} and "content" not in op["responses"]["200"]
    ]
    assert [] == bare


def test_every_operation_documents_its_errors() -> None:
    missing = [
        (method, path)
        for method, path, op in operations()
        if not ERROR_CODES & set(op["responses"])
    ]
    assert [] == missing
    for method, path, op in operations():
        codes = set(op["responses"])
        if path.startswith("/gateways/"):
            # GET on …/status and …/inbound: for the types whose provider calls so (Kannel),
            # 405 for the others; …/webhook: 404 for a type that takes no webhooks (SMS types)
            webhook = path.endswith("/webhook")
            extra = {"404"} if webhook else {"405"} if method == "get" else set()
            assert {"200", "400", "401", "403", "413"} | extra == codes, (method, path)
        else:
            assert {"401", "403"} <= codes, (method, path)


def test_creating_posts_document_201() -> None:
    for method, path in [
        ("post", M + "/test-phone"),
        ("post", M + "/keywords"),
        ("post", M + "/gateways"),
        ("post", M + "/alerts"),
        ("post", USERS),
    ]:
        responses = document()["paths"][path][method]["responses"]
        assert "201" in responses and "200" not in responses, (method, path)


def test_every_documented_json_answer_has_a_schema() -> None:
    for method, path, op in operations():
        for code, response in op["responses"].items():
            for media, entry in (response.get("content") or {}).items():
                assert "schema" in entry, (method, path, code, media)


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        (M + "/keywords/{keyword_id}", {"204", "400", "401", "403", "404", "429"}),
    ],
)
def test_delete_without_a_body(path: str, codes: set[str]) -> None:
    responses = document()["paths"][path]["delete"]["responses"]
    assert codes == set(responses)
    assert "content" not in responses["204"]


def test_other_projects_are_403(api: Api, other_project: Project) -> None:
    path = M + "/keywords"
    r = api.get(path.replace("{project}", other_project.name))
    assert 403 == documented("GET", path, r).status


def test_links_name_real_operations_and_their_path_parameters() -> None:
    by_id = {op["operationId"]: (path, op) for _, path, op in operations()}
    count = 0
    for link in LINKS:
        path, source = by_id[link.source]
        links = source["responses"][link.status]["links"]
        for target in link.targets:
            target_path, _ = by_id[target]
            entry = links[target]
            assert target == entry["operationId"]
            assert {"project", link.parameter} == set(entry["parameters"]), (path, target)
            assert "{" + link.parameter + "}" in target_path, (path, target)
            count += 1
    assert 27 <= count
    served = Client().get("/api/openapi.json").json()
    assert document()["paths"] == served["paths"]


def test_the_test_phone_conversation_documents_its_query() -> None:
    # The view requires ?number= (400 without it); the document did not name it.
    params = document()["paths"][M + "/test-phone"]["get"]["parameters"]
    by_name = {p["name"]: p for p in params if p["in"] == "query"}
    assert {"number", "limit"} == set(by_name)
    assert by_name["number"]["required"]
