"""Bad input anywhere gets a 4xx, never a 500 (on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest

from casereach.cases.models import Case
from casereach.testing.world import Api, case_body

V2 = "/a/{project}/api/case/v2/"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/a/%00/api/case/v2/", None),
        ("GET", V2 + "a%00b", None),
        ("GET", V2 + "?owner_id=%00", None),
        ("POST", V2, {**case_body(), "case_name": "nul\u0000name"}),
        ("POST", V2, {**case_body(), "properties": {"p": "x\u0000"}}),
        ("POST", V2 + "bulk-fetch/", {"case_ids": ["a\u0000"]}),
    ],
)
def test_nul_is_refused_with_400(api: Api, method: str, path: str, body: object) -> None:
    r = api.call(method, path, body)
    assert 400 == r.status
    assert "NUL" in r.body["error"]
    assert 0 == Case.objects.count()


def test_property_names_are_never_orm_lookups(api: Api) -> None:
    api.post(V2, case_body(name="A", phone="+254 712-345-678"))
    r = api.get(V2, **{"properties.a__contains": "x"})
    assert (200, 0) == (r.status, r.body["matching_records"])
    r = api.get(V2, **{"properties.contact_phone_number": "+254 712-345-678"})
    assert (200, ["A"]) == (r.status, [c["case_name"] for c in r.body["cases"]])
    r = api.get(V2, query='a__contains="x"')
    assert 200 == r.status


CASE_ID = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", V2, {**case_body(), "case_name": "\ud800"}),
        ("POST", V2, {**case_body(), "properties": {"a": "x\udfff"}}),
        ("POST", V2, [case_body(), {**case_body(), "case_name": "\udbff"}]),
        ("PUT", V2 + CASE_ID, {"external_id": "\udfff"}),
        ("POST", V2 + "bulk-fetch/", {"case_ids": ["\ud800"]}),
        ("POST", "/a/{project}/api/v0.5/user/", {"username": "\ud800", "password": "pw12345678"}),
        ("POST", "/a/{project}/api/messaging/v1/send", {"phone_number": "\ud800", "text": "x"}),
        (
            "POST",
            "/a/{project}/api/messaging/v1/send-batch",
            {"messages": [{"phone_number": "254712345678", "text": "\udfff"}]},
        ),
        ("PUT", "/a/{project}/api/messaging/v1/settings", {"default_time_zone": "\ud800"}),
    ],
)
def test_an_unpaired_surrogate_is_refused_with_400(
    api: Api, method: str, path: str, body: object
) -> None:
    r = api.call(method, path, body)
    assert 400 == r.status, r.body
    assert "error" in r.body
    assert 0 == Case.objects.count()


def test_a_paired_surrogate_is_text(api: Api) -> None:
    r = api.post(V2, {**case_body(), "case_name": "Amina \U0001f600"})
    assert 200 == r.status, r.body
    assert "Amina \U0001f600" == r.body["case"]["case_name"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", V2),
        ("DELETE", V2),
        ("GET", V2 + "bulk-fetch/"),
        ("PUT", "/gateways/test/some-key/inbound"),
        ("GET", "/gateways/twilio/some-key/status"),
    ],
)
def test_a_method_a_path_does_not_take_is_a_405_json_error(
    api: Api, method: str, path: str
) -> None:
    r = api.call(method, path)
    assert 405 == r.status, r.raw[:200]
    assert "application/json" == r.headers["Content-Type"].split(";")[0]
    assert f"method {method} not allowed" == r.body["error"]
    assert r.headers["Allow"]


@pytest.mark.parametrize(
    "path",
    ["/a/{project}/api/nonexistent/", "/gateways/test/some-key/inbound/extra", "/api/nothing"],
)
def test_an_unknown_api_path_is_a_404_json_error(api: Api, path: str) -> None:
    r = api.get(path)
    assert 404 == r.status, r.raw[:200]
    assert "application/json" == r.headers["Content-Type"].split(";")[0]
    assert "no such API path" == r.body["error"]


def test_an_unknown_ui_path_keeps_the_html_page(api: Api) -> None:
    r = api.get("/no-such-page")
    assert 404 == r.status
    assert "text/html" == r.headers["Content-Type"].split(";")[0]
