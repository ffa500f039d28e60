"""Gateways and routes over the API: contract shapes, write-only secrets, bad configs."""

from __future__ import annotations

from typing import Any

import pytest

from casereach.gateways.models import GatewayConfig
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
HTTP_CONFIG = {
    "url": "https://sms.example.org/send",
    "params": {"to": "{to}", "text": "{text}", "ref": "{message_id}"},
    "password": "basic-secret",
    "username": "casereach",
}


def test_create_returns_contract_shape_without_secrets(api: Api) -> None:
    r = api.post(
        M + "gateways",
        {
            "name": "KE-HTTP",
            "type": "http",
            "config": HTTP_CONFIG,
            "shared_with": ["other"],
            "rate_limit_per_s": 10,
        },
    )
    assert 400 == r.status  # "other" does not exist yet
    r = api.post(
        M + "gateways",
        {"name": "KE-HTTP", "type": "http", "config": HTTP_CONFIG, "rate_limit_per_s": 10},
    )
    assert 201 == r.status, r.body
    body = r.body
    assert {"id", "name", "type", "inbound_url", "status_url", "config"} <= set(body)
    assert ("KE-HTTP", "http", 10.0) == (body["name"], body["type"], body["rate_limit_per_s"])
    assert "password" not in body["config"]
    assert ["password"] == body["secrets_set"]
    key = GatewayConfig.objects.get(pk=body["id"]).inbound_key
    assert body["inbound_url"].endswith(f"/gateways/http/{key}/inbound")
    assert body["status_url"].endswith(f"/gateways/http/{key}/status")
    assert "basic-secret" not in str(api.get(M + "gateways").raw)
    assert "basic-secret" not in GatewayConfig.objects.get(pk=body["id"]).secrets


def test_update_keeps_secrets_not_sent(api: Api) -> None:
    gw = api.post(M + "gateways", {"name": "G", "type": "http", "config": HTTP_CONFIG}).body
    r = api.put(M + f"gateways/{gw['id']}", {"config": {"url": "https://other.example.org/x"}})
    assert 200 == r.status, r.body
    assert ("https://other.example.org/x", ["password"]) == (
        r.body["config"]["url"],
        r.body["secrets_set"],
    )
    assert 400 == api.put(M + f"gateways/{gw['id']}", {"type": "twilio"}).status


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "X", "type": "http", "config": {"params": {"to": "{to}"}}}, "url"),
        (
            {"name": "X", "type": "http", "config": {**HTTP_CONFIG, "url": "ftp://example.org"}},
            "url",
        ),
        (
            {"name": "X", "type": "http", "config": {**HTTP_CONFIG, "params": {"to": "{phone}"}}},
            "phone",
        ),
        ({"name": "X", "type": "twilio", "config": {"auth_token": "abcd"}}, "account_sid"),
        ({"name": "X", "type": "smpp", "config": {"host": "h"}}, "system_id"),
        ({"name": "X", "type": "nope"}, "type must be one of"),
        ({"name": "bad name!", "type": "test"}, "name"),
        ({"type": "test"}, "name"),
        ({"name": "X", "type": "test", "colour": "red"}, "'colour' is not a valid field."),
        ({"name": "X", "type": "test", "rate_limit_per_s": -1}, "rate_limit_per_s"),
        ({"name": "X", "type": "test", "config": "x"}, "config"),
        ([], "single JSON object"),
    ],
)
def test_bad_gateway_configs_are_refused(api: Api, body: Any, fragment: str) -> None:
    r = api.post(M + "gateways", body)
    assert 400 == r.status, r.body
    assert fragment in r.body["error"]
    assert 0 == GatewayConfig.objects.count()


def test_duplicate_name_is_409_case_insensitively(api: Api) -> None:
    assert 201 == api.post(M + "gateways", {"name": "Main", "type": "test"}).status
    assert 409 == api.post(M + "gateways", {"name": "MAIN", "type": "test"}).status


def test_routes_round_trip_and_validation(api: Api) -> None:
    api.post(M + "gateways", {"name": "A", "type": "test"})
    body = {"default_gateway": "A", "prefixes": [{"prefix": "254", "gateway": "A"}]}
    r = api.put(M + "routes", body)
    assert (200, body) == (r.status, r.body)
    assert body == api.get(M + "routes").body
    for bad in (
        {"default_gateway": "NOPE", "prefixes": []},
        {"default_gateway": None, "prefixes": [{"prefix": "25x", "gateway": "A"}]},
        {
            "default_gateway": None,
            "prefixes": [{"prefix": "254", "gateway": "A"}, {"prefix": "254", "gateway": "A"}],
        },
        {"prefixes": "254"},
        {"default_gateway": 5},
    ):
        assert 400 == api.put(M + "routes", bad).status, bad
    assert body == api.get(M + "routes").body


def test_other_projects_cannot_touch_a_gateway(api: Api, other_api: Api) -> None:
    gw = api.post(M + "gateways", {"name": "MINE", "type": "test"}).body
    other = M.replace("{project}", "other")
    assert 404 == other_api.get(other + f"gateways/{gw['id']}").status
    assert 404 == other_api.put(other + f"gateways/{gw['id']}", {"is_active": False}).status
    assert 404 == other_api.delete(other + f"gateways/{gw['id']}").status
    assert 403 == other_api.get(M.replace("{project}", "demo") + "gateways").status
    assert 200 == api.delete(M + f"gateways/{gw['id']}").status


def test_gateway_types_list_every_type(api: Api) -> None:
    types = [t["type"] for t in api.get(M + "gateway-types").body["objects"]]
    assert [
        "test",
        "http",
        "twilio",
        "africastalking",
        "smpp",
        "email",
        "whatsapp_cloud",
        "turn",
    ] == types


WHATSAPP_CONFIGS = {
    "whatsapp_cloud": {
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "access_token": "EAAG-secret-token-1",
        "app_secret": "app-secret-value-2",
        "verify_token": "verify-token-value-3",
    },
    "turn": {
        "number": "+27 86 000 0001",
        "access_token": "turn-secret-token-1",
        "hook_secret": "hook-secret-value-2",
    },
}


@pytest.mark.parametrize("gw_type", sorted(WHATSAPP_CONFIGS))
def test_whatsapp_gateways_are_created_with_write_only_secrets(
    api: Api, other_api: Api, gw_type: str
) -> None:
    config = WHATSAPP_CONFIGS[gw_type]
    listed = {t["type"]: t for t in api.get(M + "gateway-types").body["objects"]}
    assert "whatsapp" == listed[gw_type]["channel"]
    r = api.post(M + "gateways", {"name": "WA", "type": gw_type, "config": config})
    assert 201 == r.status, r.body
    shown = api.get(M + f"gateways/{r.body['id']}").body
    for name in listed[gw_type]["secret_fields"]:
        assert config[name] not in str(shown), name
    assert gw_type == shown["type"]
    bad = {**config, "access_token": "short"}
    refused = api.post(M + "gateways", {"name": "WA2", "type": gw_type, "config": bad})
    assert 400 == refused.status
    assert "access_token" in str(refused.body)
    other = M.replace("{project}", "other")
    assert 404 == other_api.get(other + f"gateways/{r.body['id']}").status
    assert 1 == GatewayConfig.objects.filter(type=gw_type).count()


def test_webhook_urls_are_on_the_public_url_when_it_is_set(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URLs an admin pastes into the provider's console are the ones signatures are
    checked against: CASEREACH_PUBLIC_URL's, not the host the API call came to."""
    monkeypatch.setenv("CASEREACH_PUBLIC_URL", "https://sms.example.org/")
    r = api.post(M + "gateways", {"name": "KE", "type": "http", "config": HTTP_CONFIG})
    assert 201 == r.status, r.body
    key = GatewayConfig.objects.get(pk=r.body["id"]).inbound_key
    assert (
        f"https://sms.example.org/gateways/http/{key}/inbound",
        f"https://sms.example.org/gateways/http/{key}/status",
    ) == (r.body["inbound_url"], r.body["status_url"])
    listed = api.get(M + "gateways").body["objects"]
    assert [r.body["inbound_url"]] == [g["inbound_url"] for g in listed]


def test_a_type_without_webhooks_shows_no_webhook_urls(api: Api) -> None:
    """SMPP receives messages and receipts on its session: no URL to paste anywhere."""
    smpp = {"host": "smsc.example.org", "system_id": "casereach"}
    r = api.post(M + "gateways", {"name": "SMSC", "type": "smpp", "config": smpp})
    assert 201 == r.status, r.body
    assert (None, None) == (r.body["inbound_url"], r.body["status_url"])
    r = api.post(M + "gateways", {"name": "KE", "type": "http", "config": HTTP_CONFIG})
    assert None not in (r.body["inbound_url"], r.body["status_url"])


@pytest.mark.parametrize(
    ("gw_type", "config", "fragment"),
    [
        ("smpp", {"host": "127.0.0.1", "system_id": "x"}, "host: Value error, host 127.0.0.1"),
        ("smpp", {"host": "10.1.2.3", "system_id": "x"}, "host: Value error, host 10.1.2.3"),
        ("email", {"host": "169.254.169.254", "from_address": "a@example.org"}, "host: "),
        ("email", {"host": "0x7f.1", "from_address": "a@example.org"}, "host: "),
        ("http", {**HTTP_CONFIG, "url": "http://127.0.0.1.:8080/send"}, "url: "),
        ("http", {**HTTP_CONFIG, "url": "http://localhost.:8080/send"}, "url: "),
        ("http", {**HTTP_CONFIG, "url": "http://100.64.0.1/send"}, "url: "),
    ],
)
def test_private_hosts_refused_when_the_operator_forbids_them(
    api: Api, monkeypatch: pytest.MonkeyPatch, gw_type: str, config: Any, fragment: str
) -> None:
    monkeypatch.setenv("CASEREACH_GATEWAY_ALLOW_PRIVATE", "0")
    r = api.post(M + "gateways", {"name": "G", "type": gw_type, "config": config})
    assert 400 == r.status, r.body
    assert fragment in r.body["error"]
    assert "CASEREACH_GATEWAY_ALLOW_PRIVATE forbids" in r.body["error"]
    assert 0 == GatewayConfig.objects.count()
    monkeypatch.delenv("CASEREACH_GATEWAY_ALLOW_PRIVATE")
    gw = api.post(M + "gateways", {"name": "G", "type": gw_type, "config": config}).body
    monkeypatch.setenv("CASEREACH_GATEWAY_ALLOW_PRIVATE", "0")
    r = api.put(M + f"gateways/{gw['id']}", {"config": config})
    assert 400 == r.status, r.body


SECRET_HTTP = {
    "url": "https://sms.example.org/send",
    "params": {"to": "{to}", "text": "{text}", "key": "param-secret-1"},
    "headers": {"X-Api-Token": "header-secret-1", "X-Plain": "shown"},
    "secret_params": ["key"],
    "secret_headers": ["x-api-token"],
}


def _stored_secrets(gateway_id: int) -> tuple[str, str]:
    """The values a send would use (through the gateway interface)."""
    from casereach.gateways.queries import instantiate

    gateway = instantiate(GatewayConfig.objects.get(pk=gateway_id))
    cfg = gateway.config
    return cfg.params["key"], cfg.headers["X-Api-Token"]  # type: ignore[attr-defined]


def test_secret_params_and_headers_are_write_only(api: Api) -> None:
    r = api.post(M + "gateways", {"name": "S", "type": "http", "config": SECRET_HTTP})
    assert 201 == r.status, r.body
    gw_id = r.body["id"]
    shown = api.get(M + f"gateways/{gw_id}")
    for raw in (str(r.raw), str(shown.raw), str(api.get(M + "gateways").raw)):
        assert "param-secret-1" not in raw
        assert "header-secret-1" not in raw
    assert {"to": "{to}", "text": "{text}", "key": "***"} == shown.body["config"]["params"]
    assert {"X-Api-Token": "***", "X-Plain": "shown"} == shown.body["config"]["headers"]
    assert "param-secret-1" not in str(GatewayConfig.objects.get(pk=gw_id).config)
    assert ("param-secret-1", "header-secret-1") == _stored_secrets(gw_id)

    # Sending back what GET showed, blanks, or leaving the values out keeps them.
    for config in (
        shown.body["config"],
        {"params": {**SECRET_HTTP["params"], "key": ""}, "headers": {"X-Api-Token": ""}},
        {"params": {"to": "{to}", "text": "{text}"}, "headers": {}},
        {"url": "https://sms.example.org/v2"},
    ):
        r = api.put(M + f"gateways/{gw_id}", {"config": config})
        assert 200 == r.status, r.body
        assert ("param-secret-1", "header-secret-1") == _stored_secrets(gw_id), config
        assert "***" == r.body["config"]["params"]["key"]
    # A new value replaces the stored one and is not shown either.
    r = api.put(
        M + f"gateways/{gw_id}",
        {"config": {"params": {**SECRET_HTTP["params"], "key": "param-secret-2"}}},
    )
    assert 200 == r.status, r.body
    assert "param-secret-2" not in str(r.raw)
    assert ("param-secret-2", "header-secret-1") == _stored_secrets(gw_id)
    # No longer listed as secret: the stored value is dropped, a given value is shown.
    r = api.put(
        M + f"gateways/{gw_id}",
        {"config": {"secret_params": [], "params": {**SECRET_HTTP["params"], "key": "open"}}},
    )
    assert 200 == r.status, r.body
    assert "open" == r.body["config"]["params"]["key"]
