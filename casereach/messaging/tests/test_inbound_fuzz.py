"""Hypothesis over every inbound URL: whatever arrives, the answer is 200 or a 4xx JSON
error, never a 500, and a refused request stores nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging.models import Message
from casereach.testing.inbound_tables import fuzz_inputs, invalid_utf8_inputs
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
FORM = "application/x-www-form-urlencoded"
TOKEN = "t0k3n-0123456789abcdef0123456789ab"
SID = "AC" + "1" * 32

KANNEL_VALID = {"from": "254700000001", "to": "22384", "text": "hi", "id": "k1", "charset": "UTF-8"}

# type → (config, a valid request's fields, the fields that matter, accepted content types)
TYPES: dict[str, tuple[dict[str, Any], dict[str, str], list[str], list[str]]] = {
    "test": (
        {},
        {"from": "254700000001", "to": "5550000", "text": "hello", "id": "m1"},
        ["from", "to", "text", "id"],
        [FORM, "application/json"],
    ),
    "http": (
        {"url": "https://provider.example.org/send", "params": {"to": "{to}", "text": "{text}"}},
        {"from": "254700000001", "to": "5550000", "text": "hello", "id": "m1"},
        ["from", "to", "text", "id"],
        [FORM, "application/json"],
    ),
    "twilio": (
        {"account_sid": SID, "auth_token": TOKEN, "from_number": "+15550001111"},
        {"MessageSid": "SM1", "From": "+254700000001", "To": "+15550001111", "Body": "hi"},
        ["MessageSid", "From", "To", "Body"],
        [FORM],
    ),
    "africastalking": (
        {"username": "sandbox", "api_key": "k" * 20},
        {"from": "+254700000001", "to": "22384", "text": "hello", "id": "at-1", "date": "x"},
        ["from", "to", "text", "id"],
        [FORM],
    ),
    "kannel": (
        {"send_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": "p"},
        KANNEL_VALID,
        ["from", "to", "text", "id"],
        [FORM],
    ),
}


def _post(path: str, form: dict[str, str], body: bytes, content_type: str) -> Any:
    if form and not body:
        body = urlencode(form, errors="surrogatepass").encode("ascii")
        content_type = FORM
    headers: dict[str, str] = {}
    if "twilio" in path:
        # Signed as Twilio would sign what it sent, so that parsing is what gets exercised.
        headers["HTTP_X_TWILIO_SIGNATURE"] = twilio_signature(
            "http://testserver" + path, form if content_type == FORM else {}, TOKEN
        )
    return Client().generic("POST", path, body, content_type=content_type, **headers)


@pytest.mark.parametrize("gw_type", sorted(TYPES))
def test_inbound_urls_never_fail_with_500(api: Api, gw_type: str) -> None:
    config, valid, key_fields, content_types = TYPES[gw_type]
    r = api.post(M + "gateways", {"name": "G", "type": gw_type, "config": config})
    assert 201 == r.status, r.body
    path = r.body["inbound_url"].replace("http://testserver", "")
    outcomes: set[int] = set()

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.one_of(
            fuzz_inputs(valid, key_fields, content_types),
            invalid_utf8_inputs(valid, key_fields, json_too="application/json" in content_types),
        )
    )
    def check(request: tuple[dict[str, str], bytes, str]) -> None:
        form, body, content_type = request
        before = Message.objects.filter(direction="in").count()
        resp = _post(path, form, body, content_type)
        outcomes.add(resp.status_code)
        assert resp.status_code in (200, 400, 403, 413), (resp.status_code, resp.content)
        if resp.status_code != 200:
            assert "error" in resp.json()
            assert before == Message.objects.filter(direction="in").count()

    check()
    # The strategy reaches both sides: some requests are stored, some refused.
    assert 200 in outcomes and 400 in outcomes, outcomes


def test_kannel_get_inbound_never_fails_with_500(api: Api) -> None:
    """Kannel calls by GET: the same property with the fields in the query string."""
    config, valid, key_fields, _ = TYPES["kannel"]
    r = api.post(M + "gateways", {"name": "K", "type": "kannel", "config": config})
    assert 201 == r.status, r.body
    path = r.body["inbound_url"].replace("http://testserver", "")
    outcomes: set[int] = set()

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(fuzz_inputs(valid, key_fields, [FORM]))
    def check(request: tuple[dict[str, str], bytes, str]) -> None:
        form, body, _ = request
        query = urlencode(form, errors="surrogatepass") if form else body.decode("latin-1")
        before = Message.objects.filter(direction="in").count()
        resp = Client().get(path + "?" + query)
        outcomes.add(resp.status_code)
        assert resp.status_code in (200, 400), (resp.status_code, resp.content)
        if resp.status_code != 200:
            assert "error" in resp.json()
            assert before == Message.objects.filter(direction="in").count()

    check()
    assert 200 in outcomes and 400 in outcomes, outcomes
