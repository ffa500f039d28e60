"""The inbound webhook's fast path (raw SQL, caches, one write per row) keeps the behaviour of
the ORM path it replaced: the rows it writes, the events it closes, the gateways and settings it
reads fresh, re-deliveries, scope, and concurrent posts."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import rows
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.gateways.types.twilio.gateway import twilio_signature
from casereach.messaging import inbound
from casereach.messaging.models import (
    Keyword,
    Message,
    MessagingEvent,
    MessagingSubEvent,
    OptOut,
)
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import create_gateway as gateway
from casereach.testing.gateways import inbound_path as path_of
from casereach.testing.gateways import post_inbound as post
from casereach.testing.world import Api

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"
TOKEN = "t0k3n-0123456789abcdef0123456789ab"


def last_inbound() -> Message:
    found = Message.objects.filter(direction="in").order_by("-created_on").first()
    assert found is not None
    return found


def row(obj: Any) -> dict[str, Any]:
    """Every stored column of ``obj`` but its primary key."""
    model = type(obj)
    values = model.objects.filter(pk=obj.pk).values().get()
    values.pop(model._meta.pk.attname)
    return dict(values)


def test_raw_inserts_store_what_the_orm_stores(project: Project) -> None:
    stamp = now()
    event_fields = {
        "project": project,
        "source": "keyword",
        "source_id": "HI",
        "status": "completed",
        "triggered_by": "sms:1",
        "created_on": stamp,
    }
    by_orm, by_raw = MessagingEvent(**event_fields), MessagingEvent(**event_fields)
    by_orm.save(force_insert=True)
    assert rows.insert_instance(by_raw)
    assert by_raw.pk is not None and by_raw.pk != by_orm.pk
    assert row(by_orm) == row(by_raw)

    sub_fields = {
        "event": by_orm,
        "project": project,
        "contact_id": None,
        "recipient_name": "Amina \u00e9",
        "created_on": stamp,
        "date_last_activity": stamp + dt.timedelta(microseconds=7),
    }
    sub_orm, sub_raw = MessagingSubEvent(**sub_fields), MessagingSubEvent(**sub_fields)
    sub_orm.save(force_insert=True)
    assert rows.insert_instance(sub_raw)
    assert row(sub_orm) == row(sub_raw)

    message_fields = {
        "project": project,
        "event": by_orm,
        "subevent": sub_orm,
        "direction": "in",
        "contact_id": "c1",
        "contact_type": "case",
        "phone_number": NUMBER,
        "sender": "5550000",
        "text": "h\u00e9llo \U0001f600",
        "segments": 1,
        "encoding": "UCS2",
        "gateway_id": 42,
        "gateway_name": "G",
        "gateway_source": "inbound",
        "provider_id": None,
        "status": "received",
        "allow_opted_out": True,
        "created_on": stamp,
        "updated_on": stamp,
        "next_attempt_at": None,
        "inbound_action": "unhandled",
    }
    msg_orm, msg_raw = Message(**message_fields), Message(**message_fields)
    msg_orm.save(force_insert=True)
    assert rows.insert_instance(msg_raw)
    assert row(msg_orm) == row(msg_raw)
    # A value of an unexpected type takes the ORM's own conversion.
    odd = Message(**{**message_fields, "segments": "3", "created_on": stamp.astimezone()})
    assert rows.insert_instance(odd)
    assert (3, stamp) == (Message.objects.get(pk=odd.pk).segments, odd.created_on)


def test_raw_rows_build_what_the_orm_loads(api: Api, project: Project) -> None:
    cid = case(api, phone=NUMBER, verified="yes", language_code="sw")
    api.post(M + "keywords", {"keyword": "HI", "reply": {"sw": "Habari"}, "description": "d"})
    Project.objects.filter(pk=project.pk).update(last_indexed_on=now())
    for model, raw in [
        (Project, inbound._PROJECT),
        (Keyword, inbound._KEYWORD),
        (Contact, inbound._CONTACT),
        (PhoneEntry, inbound._ENTRY),
    ]:
        expected = model.objects.order_by("pk").first()
        assert expected is not None
        cols = raw.columns("t")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {cols} FROM {model._meta.db_table} t WHERE t.{model._meta.pk.column} = %s",
                [expected.pk],
            )
            built = raw.build(cursor.fetchone())
        for attname in raw.attnames:
            assert getattr(expected, attname) == getattr(built, attname), (model, attname)
            assert type(getattr(expected, attname)) is type(getattr(built, attname))
    assert cid == Contact.objects.get().contact_id


def test_an_event_without_replies_is_written_complete_with_increasing_stamps(
    api: Api, project: Project
) -> None:
    gw = gateway(api)
    cid = case(api, phone=NUMBER, verified="yes")
    before = Project.objects.get(pk=project.pk).last_indexed_on
    for i in range(3):
        assert 200 == post(gw, f"hello {i}", id=f"p{i}").status_code
    msgs = list(Message.objects.filter(direction="in").order_by("created_on"))
    assert ["unhandled"] * 3 == [m.inbound_action for m in msgs]
    stamps = []
    for m in msgs:
        assert m.event is not None and m.subevent is not None
        assert ("completed", "unrecognized", f"sms:{NUMBER}") == (
            m.event.status,
            m.event.source,
            m.event.triggered_by,
        )
        assert ("completed", cid, "case") == (
            m.subevent.status,
            m.subevent.contact_id,
            m.subevent.contact_type,
        )
        stamps.append(m.subevent.date_last_activity)
    assert stamps == sorted(set(stamps))
    assert before is None or before < stamps[0]
    assert stamps[-1] == Project.objects.get(pk=project.pk).last_indexed_on
    assert (1, "GSM") == (msgs[0].segments, msgs[0].encoding)


def test_an_event_whose_reply_was_refused_is_closed_in_error(api: Api) -> None:
    gw = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    api.post(M + "keywords", {"keyword": "HI", "reply": {"en": "hello"}})
    OptOut.objects.create(
        phone_number=NUMBER, project=api.project, opted_out=True, changed_on=now()
    )
    post(gw, "hi there")
    m = last_inbound()
    assert "keyword:HI" == m.inbound_action
    reply = Message.objects.get(direction="out")
    assert ("failed", "PHONE_NUMBER_OPTED_OUT") == (reply.status, reply.error_code)
    assert m.event is not None and m.subevent is not None
    assert ("error", "SUBEVENT_ERROR") == (m.event.status, m.event.error_code)
    assert ("error", "PHONE_NUMBER_OPTED_OUT") == (m.subevent.status, m.subevent.error_code)
    OptOut.objects.all().delete()
    post(gw, "hi again")
    m = last_inbound()
    assert m.event is not None and m.subevent is not None
    assert ("in_progress", "in_progress") == (m.event.status, m.subevent.status)


def test_a_suppressed_reply_leaves_the_event_completed(api: Api) -> None:
    gw = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    r = api.call(
        "PATCH",
        M + "settings",
        {"default_inbound_response": {"en": "Auto"}, "reply_loop_limit": 1},
    )
    assert 200 == r.status, r.body
    post(gw, "one")
    post(gw, "two")
    m = last_inbound()
    assert "reply suppressed" in m.error_detail
    assert m.event is not None and m.subevent is not None
    assert ("completed", "completed") == (m.event.status, m.subevent.status)


def test_settings_and_keywords_are_read_fresh_for_every_message(api: Api) -> None:
    gw = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    post(gw, "hi")
    assert "unhandled" == last_inbound().inbound_action
    r = api.call("PATCH", M + "settings", {"default_inbound_response": {"en": "Got it"}})
    assert 200 == r.status
    post(gw, "hi")
    assert "default_response" == last_inbound().inbound_action
    api.post(M + "keywords", {"keyword": "HI", "reply": {"en": "hello"}})
    post(gw, "hi")
    assert "keyword:HI" == last_inbound().inbound_action
    r = api.call("PATCH", M + "settings", {"opt_out_keywords": {"en": ["hi"]}})
    assert 200 == r.status, r.body
    post(gw, "HI")
    assert "opt_out" == last_inbound().inbound_action


def test_a_keyword_of_another_project_is_not_used(api: Api, other_api: Api) -> None:
    gw = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    other_api.post(M + "keywords", {"keyword": "HI", "reply": {"en": "other"}})
    post(gw, "hi")
    assert "unhandled" == last_inbound().inbound_action
    assert not Message.objects.filter(direction="out").exists()


def test_a_holder_outside_the_gateways_projects_is_not_matched_until_accepted(
    api: Api, other_api: Api, other_project: Project, project: Project
) -> None:
    gw = gateway(api)
    case(other_api, phone=NUMBER, verified="yes")
    post(gw, "hello", id="a")
    m = last_inbound()
    assert (None, project.pk) == (m.contact_id, m.project_id)
    assert "no contact holds this number" in m.error_detail
    r = api.put(M + f"gateways/{gw['id']}", {"shared_with": ["other"]})
    assert 200 == r.status, r.body
    post(gw, "hello", id="b")  # offered, not yet accepted
    m = last_inbound()
    assert (None, project.pk) == (m.contact_id, m.project_id)
    assert 200 == other_api.post(M + f"gateways/{gw['id']}/accept").status
    post(gw, "hello", id="c")
    m = last_inbound()
    assert m.contact_id is not None and other_project.pk == m.project_id


def test_the_callback_sees_an_edited_or_deleted_gateway_at_once(api: Api) -> None:
    config = {"account_sid": "AC" + "0" * 32, "auth_token": TOKEN, "from_number": "+15550001111"}
    gw = gateway(api, "TW", "twilio", config=config)
    path = path_of(gw["inbound_url"])
    url = "http://testserver" + path
    form = {"MessageSid": "SM1", "From": "+" + NUMBER, "To": "+15550001111", "Body": "hi"}

    def send(token: str, sid: str) -> int:
        body = {**form, "MessageSid": sid}
        sig = twilio_signature(url, body, token)
        return Client().post(path, body, HTTP_X_TWILIO_SIGNATURE=sig).status_code

    assert 200 == send(TOKEN, "SM1")
    new_token = TOKEN[::-1]
    r = api.put(M + f"gateways/{gw['id']}", {"config": {"auth_token": new_token}})
    assert 200 == r.status, r.body
    assert 403 == send(TOKEN, "SM2")  # the old token is refused at once
    assert 200 == send(new_token, "SM3")
    r = api.put(M + f"gateways/{gw['id']}", {"name": "TW2"})
    assert 200 == r.status, r.body
    assert 200 == send(new_token, "SM4")
    assert "TW2" == last_inbound().gateway_name
    assert 200 == api.call("DELETE", M + f"gateways/{gw['id']}").status
    assert 401 == send(new_token, "SM5")
    assert ["SM1", "SM3", "SM4"] == sorted(
        str(p) for p in Message.objects.filter(direction="in").values_list("provider_id", flat=True)
    )


def test_a_redelivery_that_slips_past_the_check_is_rolled_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique constraint is the last guard: whatever the second delivery did is undone."""
    gw_body = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    assert 200 == post(gw_body, "STOP", id="dup-1").status_code
    OptOut.objects.filter(phone_number=NUMBER).update(opted_out=False)
    real = inbound._find_sender

    def blind(*args: Any) -> inbound._Sender:
        found = real(*args)
        found.earlier_id = None  # as if the first copy were committed after our check
        return found

    monkeypatch.setattr(inbound, "_find_sender", blind)
    gw = GatewayConfig.objects.get(pk=gw_body["id"])
    result = inbound.do_receive(gw, InboundMessage(NUMBER, "5550000", "STOP", "dup-1"))
    first = Message.objects.get(direction="in")
    assert (True, first.id, "opt_out", "demo") == (
        result.duplicate,
        result.message_id,
        result.action,
        result.project,
    )
    assert 1 == Message.objects.filter(direction="out").count()
    assert not OptOut.objects.get(phone_number=NUMBER).opted_out  # the second STOP undone
    assert 1 == MessagingEvent.objects.count()


def test_the_common_path_takes_a_handful_of_statements(api: Api) -> None:
    gw = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    post(gw, "warm up", id="w")
    with CaptureQueriesContext(connection) as queries:
        assert 200 == post(gw, "hello", id="x").status_code
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN", "COMMIT"))
    ]
    # gateway, sender (+ project on SQLite), [advisory lock, project lock on PostgreSQL],
    # event, project stamp, sub-event, message
    assert len(statements) <= (8 if connection.vendor == "postgresql" else 6), statements


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_from_many_senders_are_each_stored_once(project: Project) -> None:
    api = Api(project)
    gw = gateway(api)
    senders = [f"2547000001{i:02d}" for i in range(6)]
    for number in senders:
        case(api, phone=number, verified="yes")
    statuses: list[int] = []

    def send(number: str) -> None:
        try:
            for k in range(4):
                # every message twice: a provider retrying while the first is in flight
                for _ in range(2):
                    statuses.append(
                        post(gw, f"m{k}", sender=number, id=f"{number}-{k}").status_code
                    )
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [200] * 48 == statuses
    stored = list(Message.objects.filter(direction="in"))
    assert 24 == len(stored)
    assert all(m.contact_id and m.inbound_action == "unhandled" for m in stored)
    stamps = list(MessagingSubEvent.objects.values_list("date_last_activity", flat=True))
    assert 24 == len(stamps) == len(set(stamps))
    assert max(stamps) == Project.objects.get(pk=project.pk).last_indexed_on


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_the_webhook_works_on_one_worker_thread_with_the_usual_answers(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casereach.messaging import callbacks

    api = Api(project)
    config = {"account_sid": "AC" + "0" * 32, "auth_token": TOKEN, "from_number": "+15550001111"}
    tw = gateway(api, "TW", "twilio", config=config)
    plain = gateway(api)
    case(api, phone=NUMBER, verified="yes")
    threads: list[str] = []
    real = callbacks.do_receive

    def recording(*args: Any) -> inbound.InboundResult:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(callbacks, "do_receive", recording)
    c = Client()
    assert 401 == c.post("/gateways/test/nope/inbound", {"from": NUMBER, "text": "x"}).status_code
    # a bad body on an unknown key is still 401: the key is checked first
    assert (
        401
        == c.post("/gateways/test/nope/inbound", b"{", content_type="application/json").status_code
    )
    path = path_of(plain["inbound_url"])
    assert 400 == c.post(path, b"{not json", content_type="application/json").status_code
    assert 400 == c.post(path, {"to": "1", "text": "x"}).status_code
    form = {"MessageSid": "SM9", "From": "+" + NUMBER, "To": "+15550001111", "Body": "hi"}
    tw_path = path_of(tw["inbound_url"])
    assert 403 == c.post(tw_path, form, HTTP_X_TWILIO_SIGNATURE="bad").status_code
    sig = twilio_signature("http://testserver" + tw_path, form, TOKEN)
    r = c.post(tw_path, form, HTTP_X_TWILIO_SIGNATURE=sig)
    assert 200 == r.status_code and b"<Response" in r.content
    r = post(plain, "hello", id="w1")
    assert 200 == r.status_code
    assert [False] == [m["duplicate"] for m in r.json()["messages"]]
    assert [True] == [m["duplicate"] for m in post(plain, "hello", id="w1").json()["messages"]]
    if connection.vendor == "sqlite":
        assert {"casereach-inbound-db"} == set(threads)
    assert 2 == Message.objects.filter(direction="in").count()


@pytest.mark.django_db(transaction=True)
def test_the_worker_hands_back_errors_and_carries_on(project: Project) -> None:
    from django.db import DatabaseError

    from casereach.messaging.inbound_worker import on_db_thread

    def broken() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError):
        on_db_thread(broken)
    with pytest.raises(ZeroDivisionError):
        on_db_thread(lambda: 1 // 0)
    assert project.pk == on_db_thread(lambda: Project.objects.get(name="demo").pk)
    gw = gateway(Api(project))
    assert 200 == post(gw, "after the errors").status_code
    assert 1 == Message.objects.filter(direction="in").count()


def _jobs(gw: GatewayConfig, *messages: tuple[str, str, str]) -> list[Any]:
    from casereach.messaging.inbound_worker import Job

    def job(sender: str, text: str, provider_id: str) -> Any:
        return Job(lambda: inbound.do_receive(gw, InboundMessage(sender, "1", text, provider_id)))

    return [job(*m) for m in messages]


@pytest.mark.django_db(transaction=True)
def test_messages_waiting_together_share_one_transaction(project: Project) -> None:
    from casereach.messaging.callbacks import UnknownKey
    from casereach.messaging.inbound_worker import Job, SqliteWorker

    api = Api(project)
    gw = GatewayConfig.objects.get(pk=gateway(api)["id"])
    for number in ("254700000201", "254700000202"):
        case(api, phone=number, verified="yes")

    def unknown() -> None:
        raise UnknownKey("unknown gateway key")

    batch = [
        *_jobs(gw, ("254700000201", "a", "b1"), ("254700000202", "b", "b2")),
        Job(unknown),  # refused before writing: the others are kept
        *_jobs(gw, ("254700000201", "a again", "b1")),  # the same id as the first
    ]
    assert SqliteWorker()._together(batch)
    first, second, refused, again = batch
    assert (False, False, True) == (
        first.result.duplicate,
        second.result.duplicate,
        again.result.duplicate,
    )
    assert first.result.message_id == again.result.message_id
    assert isinstance(refused.error, UnknownKey) and refused.result is None
    assert {"a", "b"} == set(Message.objects.filter(direction="in").values_list("text", flat=True))
    stamps = list(MessagingSubEvent.objects.values_list("date_last_activity", flat=True))
    assert 2 == len(set(stamps))


@pytest.mark.django_db(transaction=True)
def test_a_message_failing_in_a_shared_transaction_fails_alone(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casereach.messaging.inbound_worker import SqliteWorker

    api = Api(project)
    gw = GatewayConfig.objects.get(pk=gateway(api)["id"])
    case(api, phone="254700000201", verified="yes")
    real = inbound.ensure_event

    def failing(ctx: Any, *args: Any) -> None:
        real(ctx, *args)  # written, then the failure: all of it must go
        if ctx.msg.text == "boom":
            raise RuntimeError("boom")

    monkeypatch.setattr(inbound, "ensure_event", failing)
    worker = SqliteWorker()
    batch = _jobs(
        gw,
        ("254700000201", "one", "f1"),
        ("254700000201", "boom", "f2"),
        ("254700000299", "3", "f3"),
    )
    assert not worker._together(batch)
    assert not Message.objects.exists() and not MessagingEvent.objects.exists()
    assert all(job.result is None and job.error is None for job in batch)
    for job in batch:
        worker._alone(job)
    ok, failed, unknown_sender = batch
    assert isinstance(failed.error, RuntimeError)
    assert ["one", "3"] == list(
        Message.objects.filter(direction="in").order_by("created_on").values_list("text", flat=True)
    )
    assert (ok.result.action, unknown_sender.result.action) == ("unhandled", "unhandled")
    assert 2 == MessagingEvent.objects.count()  # none left by the failed one
