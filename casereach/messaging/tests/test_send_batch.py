"""``POST …/send-batch``: each item recorded exactly as ``POST …/send`` records it, in one
transaction; a bad item refuses the whole batch, naming its index."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from casereach.gateways.types.test.gateway import OUTBOX
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.messaging.optouts import Scope, do_person_opt_out
from casereach.projects.models import Role
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import set_routes as routes
from casereach.testing.sending import drain
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"
OPTED = "254700000009"

# What a message row says, without what differs between two sends of the same request.
MESSAGE_FIELDS = (
    "direction",
    "channel",
    "contact_id",
    "contact_type",
    "phone_number",
    "email_address",
    "subject",
    "text",
    "language",
    "segments",
    "encoding",
    "gateway_name",
    "gateway_id",
    "gateway_source",
    "status",
    "error_code",
    "allow_opted_out",
)
EVENT_FIELDS = ("source", "content_type", "status", "error_code", "triggered_by")
SUB_FIELDS = ("contact_id", "contact_type", "recipient_name", "status", "error_code")


def _world(api: Api) -> dict[str, str]:
    """Gateways, routes, contacts and opt-outs for every outcome of the pre-send checks."""
    gateway(api, "TEST")
    gateway(api, "NEW")
    routes(api, "TEST")
    cids = {
        "ok": case(api, phone="+254 712 345 678", language_code="sw"),
        "closed": case(api, phone="254700000001"),
        "no_phone": case(api),
        "override": case(api, phone="254700000002", contact_backend_id="NOPE"),
        "opted": case(api, phone=OPTED),
        "no_email": case(api, phone="254700000003"),
        "bad_email": case(api, commcare_email_address="nope@"),
    }
    assert 200 == api.put(V2 + cids["closed"], {"close": True}).status
    with transaction.atomic():
        do_person_opt_out(OPTED, Scope(projects=(api.project.pk,)), source="test")
    return cids


def _table(c: dict[str, str]) -> list[tuple[str, dict[str, Any], str | None]]:
    """(label, item, expected error code) — the same rows whatever the path."""
    return [
        ("queued to a contact", {"contact_id": c["ok"], "content": {"sms": {"sw": "Habari"}}}, None),
        ("queued to a number", {"phone_number": "+1 (555) 123-4567", "text": "Hi"}, None),
        ("a chosen gateway", {"phone_number": NUMBER, "text": "Hi", "gateway": "new"}, None),
        ("inactive", {"contact_id": c["closed"], "text": "Hi"}, "CONTACT_IS_INACTIVE"),
        ("no phone", {"contact_id": c["no_phone"], "text": "Hi"}, "NO_PHONE_NUMBER"),
        ("override", {"contact_id": c["override"], "text": "Hi"}, "GATEWAY_NOT_FOUND"),
        ("opted out", {"contact_id": c["opted"], "text": "Hi"}, "PHONE_NUMBER_OPTED_OUT"),
        ("opted number", {"phone_number": OPTED, "text": "Hi"}, "PHONE_NUMBER_OPTED_OUT"),
        ("opted, chosen", {"phone_number": OPTED, "text": "x", "gateway": "NEW"}, "PHONE_NUMBER_OPTED_OUT"),
        ("blank", {"phone_number": NUMBER, "content": {"sms": {"*": "  "}}}, "MESSAGE_BLANK"),
        ("untranslated", {"contact_id": c["ok"], "content": {"sms": {"fr": "Salut"}}}, "NO_MESSAGE"),
        (
            "no email",
            {"contact_id": c["no_email"], "channel": "email", "text": "B"},
            "NO_EMAIL_ADDRESS",
        ),
        (
            "bad email",
            {"contact_id": c["bad_email"], "channel": "email", "text": "B"},
            "ERROR_INVALID_EMAIL_ADDRESS",
        ),
        ("no email gateway", {"email_address": "a@example.org", "text": "B"}, "NO_SUITABLE_GATEWAY"),
        ("long", {"phone_number": NUMBER, "text": "é" * 200}, None),
    ]  # fmt: skip


def _rows(message_ids: list[str]) -> list[tuple[tuple[Any, ...], ...]]:
    """Each message with its event and sub-event, minus ids and stamps."""
    out = []
    for mid in message_ids:
        m = Message.objects.get(id=mid)
        e = MessagingEvent.objects.get(pk=m.event_id)
        s = MessagingSubEvent.objects.get(pk=m.subevent_id)
        assert (e.pk, m.project_id, m.project_id) == (s.event_id, e.project_id, s.project_id)
        out.append(
            (
                tuple(getattr(m, f) for f in MESSAGE_FIELDS),
                tuple(getattr(e, f) for f in EVENT_FIELDS),
                tuple(getattr(s, f) for f in SUB_FIELDS),
            )
        )
    return out


def test_a_batch_records_each_item_as_a_single_send_does(api: Api) -> None:
    table = _table(_world(api))

    singles = []
    for _label, item, _code in table:
        r = api.post(M + "send", item)
        assert 202 == r.status, r.body
        singles.append(r.body)
    r = api.post(M + "send-batch", {"messages": [item for _, item, _ in table]})
    assert 202 == r.status, r.body
    batch = r.body["objects"]

    expected = [(label, code) for label, _, code in table]
    assert expected == [
        (label, s["messages"][0]["error_code"])
        for (label, _, _), s in zip(table, singles, strict=True)
    ]
    assert expected == [(label, b["messages"][0]["error_code"]) for (label, _, _), b in zip(table, batch, strict=True)]  # fmt: skip
    strip = [[{k: v for k, v in m.items() if k != "id"} for m in o["messages"]] for o in singles]
    assert strip == [[{k: v for k, v in m.items() if k != "id"} for m in o["messages"]] for o in batch]  # fmt: skip
    assert _rows([s["messages"][0]["id"] for s in singles]) == _rows(
        [b["messages"][0]["id"] for b in batch]
    )
    events = [b["event_id"] for b in batch]
    assert events == sorted(set(events))
    queued = 2 * sum(code is None for _, _, code in table)
    assert queued == drain()
    assert queued == len(OUTBOX)


def test_items_keep_their_order_and_every_event_is_listed(api: Api) -> None:
    gateway(api, "TEST")
    routes(api, "TEST")
    items = [{"phone_number": f"2547000{n:05d}", "text": f"reminder {n}"} for n in range(50)]

    r = api.post(M + "send-batch", {"messages": items})

    assert 202 == r.status, r.body
    ids = [o["messages"][0]["id"] for o in r.body["objects"]]
    numbers = dict(Message.objects.filter(id__in=ids).values_list("id", "phone_number"))
    assert [i["phone_number"] for i in items] == [numbers[i] for i in ids]
    assert [("queued", None, "TEST")] * 50 == [
        (m["status"], m["error_code"], m["gateway"])
        for o in r.body["objects"]
        for m in o["messages"]
    ]
    assert 50 == drain()
    assert [i["text"] for i in items] == sorted(
        (o.text for o in OUTBOX), key=lambda t: int(t.split()[1])
    )


@pytest.mark.parametrize(
    ("bad", "index", "error"),
    [
        ({"text": "x"}, 2, "messages[2]: give exactly one of contact_id, phone_number or email_address"),
        ({"phone_number": NUMBER, "text": 5}, 1, "messages[1]: text must be a string"),
        ("hello", 0, "messages[0]: Payload must be a single JSON object"),
        ({"phone_number": "12a", "text": "x"}, 2, "messages[2]: phone_number is not a usable number"),
        ({"phone_number": NUMBER, "text": "x" * 1601}, 1, "messages[1]: content.sms[*] is longer than 1600"),
        ({"contact_id": "nobody", "text": "x"}, 2, "messages[2]: contact 'nobody' not found"),
        ({"phone_number": NUMBER, "text": "x", "gateway": "NOPE"}, 1, "messages[1]: gateway 'NOPE' not found"),
        ({"phone_number": NUMBER, "text": "x", "gateway": "MAIL"}, 0, "messages[0]: gateway 'MAIL' is an email gateway"),
    ],
)  # fmt: skip
def test_a_bad_item_refuses_the_batch_naming_its_index(
    api: Api, bad: Any, index: int, error: str
) -> None:
    gateway(api, "TEST")
    mail = {"host": "127.0.0.1", "port": 25, "from_address": "clinic@example.org"}
    gateway(api, "MAIL", "email", config=mail)
    routes(api, "TEST")
    good = {"phone_number": NUMBER, "text": "fine"}
    items: list[Any] = [good, good, good]
    items[index] = bad

    r = api.post(M + "send-batch", {"messages": items})

    assert 400 == r.status, r.body
    assert error in r.body["error"]
    assert index == r.body["index"]
    assert (0, 0, 0) == (
        Message.objects.count(),
        MessagingEvent.objects.count(),
        MessagingSubEvent.objects.count(),
    )


def test_the_first_bad_item_is_named(api: Api) -> None:
    gateway(api, "TEST")
    items = [
        {"phone_number": NUMBER, "text": "fine"},
        {"contact_id": "nobody", "text": "x"},
        {"phone_number": NUMBER, "text": "x", "gateway": "NOPE"},
    ]
    r = api.post(M + "send-batch", {"messages": items})
    assert (400, 1) == (r.status, r.body["index"])
    assert "messages[1]: contact 'nobody' not found" == r.body["error"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "Payload must be a single JSON object"),
        ({}, "messages must be a list"),
        ({"messages": {"phone_number": NUMBER}}, "messages must be a list"),
        ({"messages": []}, "messages must hold 1 to 1000 items (got 0)"),
        ({"messages": [{"phone_number": NUMBER, "text": "x"}] * 1001}, "(got 1001)"),
        ({"messages": [], "colour": "red"}, "'colour' is not a valid field."),
    ],
)
def test_a_bad_batch_is_400(api: Api, body: Any, error: str) -> None:
    gateway(api, "TEST")
    r = api.post(M + "send-batch", body)
    assert 400 == r.status, r.body
    assert error in r.body["error"]
    assert 0 == Message.objects.count()


def test_a_batch_takes_up_to_1000_items(api: Api) -> None:
    gateway(api, "TEST")
    routes(api, "TEST")
    items = [{"phone_number": f"2547{n:08d}", "text": f"n {n}"} for n in range(1000)]
    r = api.post(M + "send-batch", {"messages": items})
    assert 202 == r.status, r.body
    assert 1000 == len(r.body["objects"])
    assert {"queued": 1000} == {s: Message.objects.filter(status=s).count() for s in ("queued",)}
    assert 1000 == MessagingSubEvent.objects.filter(status="in_progress").count()


def test_a_viewer_may_not_send_and_another_project_sees_nothing(api: Api, other_api: Api) -> None:
    gateway(api, "TEST")
    viewer = Api(api.project, username="viewer@example.org", role=Role.VIEWER)
    items = {"messages": [{"phone_number": NUMBER, "text": "x"}]}
    assert 403 == viewer.post(M + "send-batch", items).status
    r = other_api.post(M.replace("{project}", api.project.name) + "send-batch", items)
    assert 403 == r.status, r.body
    assert 0 == Message.objects.count()
