"""CommCare's routing order end to end, global routes included: contact override → project
prefix → project default → global prefix → global default; an inactive gateway is skipped."""

from __future__ import annotations

from casereach.gateways.actions import do_create_gateway, do_set_global_routes, do_update_gateway
from casereach.gateways.models import GatewayConfig
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
KE, US = "254712345678", "15551230000"


def gateway_of(api: Api, to: str) -> tuple[str, str]:
    r = api.post(M + "send", {"phone_number": to, "text": "x"})
    assert 202 == r.status, r.body
    return r.body["messages"][0]["gateway"], r.body["messages"][0].get("gateway_source", "")


def test_every_step_of_the_order(api: Api) -> None:
    for name in ("G-DEFAULT", "G-KE"):
        do_create_gateway(None, {"name": name, "type": "test"})
    do_set_global_routes(
        {"default_gateway": "G-DEFAULT", "prefixes": [{"prefix": "254", "gateway": "G-KE"}]}
    )
    assert "G-KE" == gateway_of(api, KE)[0]  # global prefix
    assert "G-DEFAULT" == gateway_of(api, US)[0]  # global default
    for name in ("P-DEFAULT", "P-US"):
        assert 201 == api.post(M + "gateways", {"name": name, "type": "test"}).status
    r = api.put(M + "routes", {"default_gateway": "P-DEFAULT", "prefixes": []})
    assert 200 == r.status, r.body
    assert "P-DEFAULT" == gateway_of(api, KE)[0]  # the project default beats global prefixes
    r = api.put(
        M + "routes",
        {"default_gateway": "P-DEFAULT", "prefixes": [{"prefix": "1", "gateway": "P-US"}]},
    )
    assert 200 == r.status, r.body
    assert "P-US" == gateway_of(api, US)[0]  # project prefix
    do_update_gateway(GatewayConfig.objects.get(name="P-DEFAULT"), {"is_active": False})
    assert "G-KE" == gateway_of(api, KE)[0]  # an inactive gateway is skipped
