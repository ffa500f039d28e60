"""Gateways and routes through the messaging API, and inbound webhooks (tests only)."""

from __future__ import annotations

from typing import Any

from django.test import Client

from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
NUMBER = "254712345678"


def create_gateway(
    api: Api, name: str = "TEST", gw_type: str = "test", **config: Any
) -> dict[str, Any]:
    """A project gateway (a test gateway unless ``gw_type`` says otherwise); the API's body."""
    r = api.post(M + "gateways", {"name": name, "type": gw_type, **config})
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def set_routes(api: Api, default: str | None, **prefixes: str) -> None:
    """The project's routes: ``default`` and ``{"+254": "NAME"}``-style prefixes."""
    body = {
        "default_gateway": default,
        "prefixes": [{"prefix": p[1:], "gateway": g} for p, g in prefixes.items()],
    }
    r = api.put(M + "routes", body)
    assert 200 == r.status, r.body


def default_gateway(api: Api, name: str = "TEST", **config: Any) -> dict[str, Any]:
    """A test gateway that is the project's default route."""
    gw = create_gateway(api, name, **config)
    set_routes(api, name)
    return gw


def inbound_path(url: str) -> str:
    """The path of a gateway's inbound URL (``gw["inbound_url"]``), as the test client wants it."""
    return url.replace("http://testserver", "")


def post_inbound(gw: dict[str, Any], text: str, sender: str = NUMBER, **extra: str) -> Any:
    """An SMS from ``sender`` through the gateway's inbound URL; the Django response."""
    form = {"from": sender, "to": "5550000", "text": text, **extra}
    return Client().post(inbound_path(str(gw["inbound_url"])), form)
