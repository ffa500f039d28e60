"""WhatsApp messaging against the local fake of Meta's Cloud API: the 24-hour window (free
text inside, the template outside, WHATSAPP_OUTSIDE_WINDOW with none), read receipts, the
signed webhook (statuses, keywords, STOP, duplicates, tampering), templates (sync, list,
isolation) and the activation check of a WhatsApp alert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from typer.testing import CliRunner

from casereach.alerts.scheduler import run_until_idle
from casereach.cli.main import app
from casereach.gateways.actions_global import do_create_global_gateway
from casereach.gateways.models import GatewayConfig
from casereach.messaging.models import Message, SendAttempt
from casereach.testing.alerts import create_alert
from casereach.testing.cases import create_case_id as case
from casereach.testing.fake_whatsapp import FakeWhatsApp
from casereach.testing.sending import drain
from casereach.testing.world import Api, conditional_alert_body

M = "/a/{project}/api/messaging/v1/"
A = M
NUMBER = "254712345678"


@pytest.fixture
def fake() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(enforce_window=True) as server:
        yield server


def wa_gateway(api: Api, fake: FakeWhatsApp, name: str = "WA") -> dict[str, Any]:
    r = api.post(
        M + "gateways", {"name": name, "type": "whatsapp_cloud", "config": fake.gateway_config()}
    )
    assert 201 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


def hook(gw: dict[str, Any]) -> str:
    key = GatewayConfig.objects.get(pk=gw["id"]).inbound_key
    return f"/gateways/whatsapp_cloud/{key}/webhook"


def _gw_id() -> int:
    return int(GatewayConfig.objects.get(name="WA").pk)


def post(path: str, body: bytes, headers: dict[str, str]) -> Any:
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    return Client().post(path, body, content_type="application/json", **extra)


def inbound(fake: FakeWhatsApp, gw: dict[str, Any], text: str, wamid: str) -> Any:
    """A signed webhook carrying one text from NUMBER (it opens the fake's window too)."""
    fake.open_window(NUMBER)
    message = {
        "from": NUMBER,
        "id": wamid,
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": text},
    }
    body = fake.webhook_body(messages=[message])
    return post(hook(gw), body, fake.sign(body))


def statuses(fake: FakeWhatsApp, gw: dict[str, Any], wamid: str, *names: str) -> Any:
    body = fake.webhook_body(statuses=[fake.status(wamid, s, recipient=NUMBER) for s in names])
    return post(hook(gw), body, fake.sign(body))


def send_wa(api: Api, content: dict[str, Any], **target: str) -> dict[str, Any]:
    body = {"channel": "whatsapp", "content": {"whatsapp": content}, **target}
    if not target:
        body["phone_number"] = NUMBER
    r = api.post(M + "send", body)
    assert 202 == r.status, r.body
    msg: dict[str, Any] = r.body["messages"][0]
    return msg


def counts(result: dict[str, Any]) -> tuple[int, int, int, int]:
    return (result["listed"], result["added"], result["updated"], result["removed"])


def sync(api: Api, gw: dict[str, Any]) -> dict[str, Any]:
    r = api.post(M + f"gateways/{gw['id']}/templates/sync")
    assert 200 == r.status, r.body
    body: dict[str, Any] = r.body
    return body


# -- the window -----------------------------------------------------------------------------------


def test_inside_the_window_free_text_goes(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    assert 200 == inbound(fake, gw, "hello", "wamid.IN1").status_code
    msg = send_wa(api, {"text": {"*": "Your visit is on Monday"}})
    assert ("queued", "WA") == (msg["status"], msg["gateway"])
    assert 1 == drain()
    assert [("text", NUMBER)] == [(s.type, s.to) for s in fake.sent]
    assert "Your visit is on Monday" == fake.sent[0].payload["text"]["body"]
    m = Message.objects.get(id=msg["id"])
    assert ("sent", "whatsapp", fake.sent[0].wamid) == (m.status, m.channel, m.provider_id)


def test_outside_the_window_the_template_goes_with_its_params(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    fake.add_template("visit_reminder", "en_US", "Hi {{1}}, your visit is on {{2}}.")
    assert 1 == sync(api, gw)["added"]
    cid = case(api, name="Amina", phone=NUMBER, language_code="en")
    msg = send_wa(
        api,
        {"text": {"en": "Free text"}, "template": "visit_reminder", "params": ["Amina", "Monday"]},
        contact_id=cid,
    )
    assert 1 == drain()
    assert ["template"] == [s.type for s in fake.sent]
    template = fake.sent[0].payload["template"]
    assert ("visit_reminder", "en_US") == (template["name"], template["language"]["code"])
    params = [p["text"] for c in template["components"] for p in c["parameters"]]
    assert ["Amina", "Monday"] == params
    detail = api.get(M + f"messages/{msg['id']}").body
    assert "sent" == detail["status"]
    assert {"name": "visit_reminder", "language": "en_US", "params": ["Amina", "Monday"]} == (
        detail["template"]
    )


def test_outside_the_window_with_no_template_fails_once(api: Api, fake: FakeWhatsApp) -> None:
    wa_gateway(api, fake)
    msg = send_wa(api, {"text": {"*": "Free text only"}})
    assert 1 == drain()
    assert 0 == drain()  # never retried
    m = Message.objects.get(id=msg["id"])
    assert ("failed", "WHATSAPP_OUTSIDE_WINDOW", 1) == (m.status, m.error_code, m.attempts)
    assert [] == [r for r in fake.requests if r.method == "POST"]
    assert 0 == SendAttempt.objects.filter(message_id=m.id).count()


def test_an_unapproved_template_is_not_sent_outside_the_window(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    fake.add_template("visit_reminder", "en", "Hi {{1}}", status="PENDING")
    sync(api, gw)
    msg = send_wa(api, {"text": {"*": "x"}, "template": "visit_reminder", "params": ["A"]})
    assert 1 == drain()
    assert "WHATSAPP_OUTSIDE_WINDOW" == Message.objects.get(id=msg["id"]).error_code
    assert [] == fake.sent


# -- statuses ---------------------------------------------------------------------------------------


def test_read_comes_after_delivered_and_never_goes_back(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    inbound(fake, gw, "hi", "wamid.IN2")
    msg = send_wa(api, {"text": {"*": "Reminder"}})
    drain()
    wamid = fake.sent[0].wamid
    r = statuses(fake, gw, wamid, "read", "delivered", "sent")  # out of order, in one POST
    assert 200 == r.status_code, r.content
    assert (3, 1) == (r.json()["statuses"], r.json()["applied"])
    m = Message.objects.get(id=msg["id"])
    assert "read" == m.status
    assert m.read_on is not None and m.delivered_on is not None and m.sent_on is not None
    assert m.read_on == m.delivered_on  # the read came first: it stamped the delivery too
    assert m.sent_on <= m.delivered_on
    statuses(fake, gw, wamid, "delivered")
    listed = api.get(M + "messages", status="read").body["objects"]
    assert [(msg["id"], "read")] == [(o["id"], o["status"]) for o in listed]
    assert listed[0]["read_on"] is not None
    r = api.client.get(
        M.replace("{project}", "demo") + "messages?format=csv", HTTP_AUTHORIZATION=api.auth
    )
    lines = b"".join(r.streaming_content).decode().strip().splitlines()  # type: ignore[attr-defined]
    header = lines[0].split(",")
    row = next(line for line in lines if line.startswith(msg["id"])).split(",")
    assert ("read", "whatsapp") == (
        row[header.index("status")],
        row[header.index("channel")],
    )
    assert row[header.index("read_on")]
    events = api.get("/a/{project}/api/v0.5/messaging-event/").body["objects"]
    shown = [m for e in events for m in e["messages"] if m["message_id"] == msg["id"]]
    assert ["delivered"] == [m["status"] for m in shown]  # HQ has no "read"


def test_delivered_then_read_in_order(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    inbound(fake, gw, "hi", "wamid.IN3")
    msg = send_wa(api, {"text": {"*": "Reminder"}})
    drain()
    wamid = fake.sent[0].wamid
    statuses(fake, gw, wamid, "delivered")
    assert "delivered" == Message.objects.get(id=msg["id"]).status
    statuses(fake, gw, wamid, "read")
    assert "read" == Message.objects.get(id=msg["id"]).status


# -- the webhook --------------------------------------------------------------------------------------


def test_signed_inbound_reaches_a_keyword_then_stop(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    cid = case(api, phone=NUMBER, verified="yes")
    api.post(M + "keywords", {"keyword": "VISIT", "reply": {"en": "Your visit: Monday"}})
    r = inbound(fake, gw, "visit please", "wamid.K1")
    assert 200 == r.status_code, r.content
    assert "keyword:VISIT" == r.json()["messages"][0]["action"]
    again = inbound(fake, gw, "visit please", "wamid.K1")  # the provider retries
    assert [True] == [m["duplicate"] for m in again.json()["messages"]]
    assert 1 == Message.objects.filter(direction="in").count()
    m = Message.objects.get(direction="in")
    assert ("whatsapp", cid) == (m.channel, m.contact_id)
    reply = Message.objects.get(direction="out")
    assert ("whatsapp", "Your visit: Monday") == (reply.channel, reply.text)
    drain()
    assert [("text", "Your visit: Monday")] == [
        (s.type, s.payload["text"]["body"]) for s in fake.sent
    ]
    r = inbound(fake, gw, "STOP", "wamid.K2")
    assert "opt_out" == r.json()["messages"][0]["action"]
    after = send_wa(api, {"text": {"*": "still there?"}}, contact_id=cid)
    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (after["status"], after["error_code"])


def test_a_tampered_byte_is_403_and_nothing_is_stored(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    message = {"from": NUMBER, "id": "wamid.T1", "timestamp": "1", "type": "text"}
    message["text"] = {"body": "hello"}
    body = fake.webhook_body(messages=[message])
    headers = fake.sign(body)
    tampered = body.replace(b"hello", b"hellp")
    r = post(hook(gw), tampered, headers)
    assert 403 == r.status_code
    assert "error" in r.json()
    assert 403 == post(hook(gw), body, {}).status_code  # unsigned
    assert 0 == Message.objects.count()
    assert 200 == post(hook(gw), body, headers).status_code
    assert 1 == Message.objects.count()


def test_bad_bodies_and_unknown_keys(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    body = b"{not json"
    assert 400 == post(hook(gw), body, fake.sign(body)).status_code
    body = json.dumps({"object": "whatsapp_business_account", "entry": "x"}).encode()
    assert 400 == post(hook(gw), body, fake.sign(body)).status_code
    assert 401 == post("/gateways/whatsapp_cloud/no-such-key/webhook", b"{}", {}).status_code
    assert 401 == Client().get("/gateways/whatsapp_cloud/no-such-key/webhook").status_code
    sms = api.post(M + "gateways", {"name": "SMS", "type": "test"}).body
    sms_key = GatewayConfig.objects.get(pk=sms["id"]).inbound_key
    r = post(f"/gateways/test/{sms_key}/webhook", b'{"id": "x", "status": "sent"}', {})
    assert 404 == r.status_code  # SMS types take their callbacks at …/status and …/inbound
    assert 0 == Message.objects.count()


def test_subscription_check_echoes_the_challenge(api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    query = {"hub.mode": "subscribe", "hub.verify_token": fake.verify_token}
    r = Client().get(hook(gw), {**query, "hub.challenge": "1158201444"})
    assert (200, b"1158201444") == (r.status_code, r.content)
    r = Client().get(hook(gw), {**query, "hub.verify_token": "wrong", "hub.challenge": "1"})
    assert 403 == r.status_code
    assert "error" in r.json()


# -- templates -------------------------------------------------------------------------------------


def test_template_sync_is_idempotent_updates_and_marks_removed(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    first = fake.add_template("visit_reminder", "en", "Hi {{1}}, visit on {{2}}.")
    fake.add_template("visit_reminder", "sw", "Habari {{1}}")
    fake.add_template("results", "en", "Results ready", status="PENDING")
    assert (3, 3, 0, 0) == counts(sync(api, gw))
    assert (3, 0, 0, 0) == counts(sync(api, gw))  # again: nothing changes
    first.status = "PAUSED"
    fake.templates.remove(next(t for t in fake.templates if t.name == "results"))
    assert (2, 0, 1, 1) == counts(sync(api, gw))
    listed = api.get(M + f"gateways/{gw['id']}/templates").body["objects"]
    assert [
        ("results", "en", "PENDING", 0, True),
        ("visit_reminder", "en", "PAUSED", 2, False),
        ("visit_reminder", "sw", "APPROVED", 1, False),
    ] == [
        (t["name"], t["language"], t["status"], t["params"], t["removed_on"] is not None)
        for t in listed
    ]


def test_cli_syncs_a_gateways_templates(api: Api, fake: FakeWhatsApp) -> None:
    wa_gateway(api, fake)
    fake.add_template("visit_reminder", "en", "Hi {{1}}")
    result = CliRunner().invoke(app, ["gateway", "templates-sync", "WA", "--project", "demo"])
    assert 0 == result.exit_code, result.output
    assert "1 listed, 1 added, 0 updated, 0 removed" in result.stdout
    result = CliRunner().invoke(app, ["gateway", "templates-sync", "NOPE", "--project", "demo"])
    assert 1 == result.exit_code
    assert "no gateway 'NOPE'" in result.stderr
    assert ["visit_reminder"] == [
        t["name"]
        for t in api.get(M + "gateways/1/templates".replace("1", str(_gw_id()))).body["objects"]
    ]


def test_only_the_owner_syncs_a_gateways_templates(api: Api, fake: FakeWhatsApp) -> None:
    config = {"name": "WA-GLOBAL", "type": "whatsapp_cloud", "config": fake.gateway_config()}
    gw = do_create_global_gateway(config)
    fake.add_template("visit_reminder", "en", "Hi {{1}}")

    r = api.post(M + f"gateways/{gw.pk}/templates/sync")

    assert 403 == r.status, r.body
    assert "not this project's own" in r.body["error"]
    assert 200 == api.get(M + f"gateways/{gw.pk}/templates").status  # it may still read them
    result = CliRunner().invoke(app, ["gateway", "templates-sync", "WA-GLOBAL"])
    assert 0 == result.exit_code, result.output
    names = [t["name"] for t in api.get(M + f"gateways/{gw.pk}/templates").body["objects"]]
    assert ["visit_reminder"] == names


def test_another_projects_gateway_and_key(api: Api, other_api: Api, fake: FakeWhatsApp) -> None:
    gw = wa_gateway(api, fake)
    fake.add_template("visit_reminder", "en", "Hi {{1}}")
    sync(api, gw)
    assert 404 == other_api.get(M + f"gateways/{gw['id']}/templates").status
    assert 404 == other_api.post(M + f"gateways/{gw['id']}/templates/sync").status
    mine = wa_gateway(other_api, fake, name="WA2")
    assert [] == other_api.get(M + f"gateways/{mine['id']}/templates").body["objects"]
    # their own key only reaches their own gateway: a status for our message changes nothing
    inbound(fake, gw, "hi", "wamid.O1")
    msg = send_wa(api, {"text": {"*": "x"}})
    drain()
    r = statuses(fake, mine, fake.sent[0].wamid, "read")
    assert (200, 0) == (r.status_code, r.json()["applied"])
    assert "sent" == Message.objects.get(id=msg["id"]).status


# -- alerts ------------------------------------------------------------------------------------------


def test_an_alert_with_an_unapproved_template_cannot_be_activated(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    fake.add_template("anc_reminder", "en", "Hello {{1}}", status="PENDING")
    sync(api, gw)
    body = conditional_alert_body(
        active=False,
        channel="whatsapp",
        content={
            "whatsapp": {
                "text": {"en": "Hello {case.name}"},
                "template": "anc_reminder",
                "params": ["{case.name}"],
            }
        },
    )
    alert = create_alert(api, body)
    r = api.post(A + f"alerts/{alert['id']}/activate")
    assert 400 == r.status, r.body
    assert "anc_reminder" in r.body["error"] and "'en'" in r.body["error"]
    assert False is api.get(A + f"alerts/{alert['id']}").body["active"]
    dry = api.post(A + f"alerts/{alert['id']}/dry-run").body
    assert [("anc_reminder", "en")] == [
        (p["template"], p["language"]) for p in dry["whatsapp_template_problems"]
    ]
    fake.templates[0].status = "APPROVED"
    sync(api, gw)
    r = api.post(A + f"alerts/{alert['id']}/activate")
    assert 200 == r.status, r.body
    dry = api.post(A + f"alerts/{alert['id']}/dry-run").body
    assert [] == dry["whatsapp_template_problems"]


def test_an_alert_sends_its_template_with_params_from_the_case(
    api: Api, fake: FakeWhatsApp
) -> None:
    gw = wa_gateway(api, fake)
    fake.add_template("anc_reminder", "en", "Hello {{1}}, your visit is on {{2}}.")
    fake.add_template("anc_reminder", "sw", "Habari {{1}}, {{2}}.")
    sync(api, gw)
    a = case(api, name="Amina", phone=NUMBER, language_code="sw", next_visit="Monday")
    alert = create_alert(
        api,
        {
            "name": "Visit",
            "kind": "broadcast",
            "active": True,
            "channel": "whatsapp",
            "content": {
                "whatsapp": {
                    "template": "anc_reminder",
                    "params": ["{case.name}", "{case.next_visit}"],
                }
            },
            "schedule": {"type": "immediate"},
            "recipients": [{"type": "case", "id": a}],
        },
    )
    assert True is alert["active"]
    run_until_idle()
    assert 1 == drain()
    assert ["template"] == [s.type for s in fake.sent]
    template = fake.sent[0].payload["template"]
    params = [p["text"] for c in template["components"] for p in c["parameters"]]
    assert ("sw", ["Amina", "Monday"]) == (template["language"]["code"], params)
    m = Message.objects.get(direction="out")
    assert ("sent", "whatsapp", "WA") == (m.status, m.channel, m.gateway_name)
