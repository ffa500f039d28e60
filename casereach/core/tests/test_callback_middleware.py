"""Provider callbacks skip the browser-facing middleware (``ProviderCallbackMiddleware``):
their answers keep what a provider's keep-alive connection needs, the guards before it still
apply, and every other path keeps the whole chain."""

from __future__ import annotations

from django.test import Client

from casereach.testing.gateways import default_gateway, inbound_path
from casereach.testing.world import Api


def test_a_callback_answer_has_its_length_and_no_browser_headers(api: Api) -> None:
    gw = default_gateway(api)

    r = Client().post(
        inbound_path(gw["inbound_url"]), {"from": "254700000001", "to": "5550000", "text": "hi"}
    )

    assert 200 == r.status_code, r.content
    assert str(len(r.content)) == r["Content-Length"]
    assert (None, None) == (r.get("X-Frame-Options"), r.get("Vary"))
    assert not r.cookies


def test_the_guards_before_it_still_answer_callbacks(api: Api) -> None:
    gw = default_gateway(api)

    r = Client().post(
        inbound_path(gw["inbound_url"]), b"from=1&text=a\x00b", content_type="text/plain"
    )

    assert 400 == r.status_code
    assert "NUL" in r.json()["error"]


def test_an_unknown_callback_path_and_other_paths_keep_the_chain(api: Api) -> None:
    r = Client().post("/gateways/test/key/nothing-here", {"a": "1"})
    assert 404 == r.status_code
    assert "no such API path" == r.json()["error"]  # the API's JSON 404, not a page

    page = Client().get("/login/")
    assert "DENY" == page["X-Frame-Options"]
