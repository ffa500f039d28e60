"""The dry run and a contact's upcoming sends show the channel each contact gets first."""

from __future__ import annotations

from casereach.alerts.models import ScheduleInstance
from casereach.messaging.models import Message
from casereach.testing.alerts import create_alert as create
from casereach.testing.cases import mother_case_id as case
from casereach.testing.world import Api, conditional_alert_body

M = "/a/{project}/api/messaging/v1/"


def gateways(api: Api) -> None:
    assert 201 == api.post(M + "gateways", {"name": "T", "type": "test"}).status
    api.put(M + "routes", {"default_gateway": "T", "prefixes": []})
    mail = {"host": "127.0.0.1", "port": 2525, "from_address": "clinic@example.org"}
    r = api.post(M + "gateways", {"name": "MAIL", "type": "email", "config": mail})
    assert 201 == r.status, r.body


def test_dry_run_and_upcoming_show_the_first_channel(api: Api) -> None:
    gateways(api)
    assert 200 == api.put(M + "settings", {"channel_order": ["sms", "email"]}).status
    case(api, edd="x", phone="254700000001", commcare_email_address="a@example.org")
    emailed = case(api, edd="x", commcare_email_address="b@example.org")
    case(api, edd="x", phone="254700000003", contact_channel_order="email,sms")
    case(api, edd="x")  # no number, no address
    alert = create(api, conditional_alert_body(active=False))

    out = api.post(M + f"alerts/{alert['id']}/dry-run?days=1").body

    assert {"email": 1, "sms": 2} == out["first_channel_contacts"]
    assert {"NO_PHONE_NUMBER": 1} == out["unreachable_by_reason"]
    assert 0 == ScheduleInstance.objects.count() + Message.objects.count()

    assert 200 == api.put(M + f"alerts/{alert['id']}", {"active": True}).status, "activate"
    rows = api.get(M + f"contacts/{emailed}/upcoming", limit=2).body["objects"]
    assert [("sms", "email"), ("sms", "email")] == [
        (r["channel"], r["first_channel"]) for r in rows
    ]


def test_without_a_channel_order_the_first_channel_is_the_alerts(api: Api) -> None:
    gateways(api)
    case(api, edd="x", phone="254700000001", commcare_email_address="a@example.org")
    alert = create(api, conditional_alert_body(active=False))

    out = api.post(M + f"alerts/{alert['id']}/dry-run?days=1").body

    assert {"sms": 1} == out["first_channel_contacts"]
