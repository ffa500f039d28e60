"""The raw-row layer writes what the ORM writes and reads back what the ORM loads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection

from casereach.core import rows
from casereach.core.timeutil import now
from casereach.messaging.models import Keyword, Message, MessagingEvent, MessagingSubEvent
from casereach.projects.models import Project


def stored(model: Any, pk: Any) -> dict[str, Any]:
    values = dict(model.objects.filter(pk=pk).values().get())
    values.pop(model._meta.pk.attname)
    return values


class EventDraft(rows.Draft):
    model = MessagingEvent


class SubEventDraft(rows.Draft):
    model = MessagingSubEvent


class MessageDraft(rows.Draft):
    model = Message


class KeywordDraft(rows.Draft):
    model = Keyword


def test_drafts_store_what_the_orm_stores(project: Project) -> None:
    stamp = now()
    event = MessagingEvent.objects.create(project=project, source="alert", created_on=stamp)
    drafts = [EventDraft(project_id=project.pk, source="alert", created_on=stamp) for _ in "ab"]
    rows.insert(drafts)
    assert drafts[0].pk is not None and drafts[1].pk == drafts[0].pk + 1
    assert stored(MessagingEvent, event.pk) == stored(MessagingEvent, drafts[1].pk)

    later = stamp + dt.timedelta(microseconds=3)
    sub = MessagingSubEvent.objects.create(
        event=event, project=project, created_on=stamp, date_last_activity=later
    )
    sub_draft = SubEventDraft(
        event_id=event.pk, project_id=project.pk, created_on=stamp, date_last_activity=later
    )
    rows.insert([sub_draft])
    assert stored(MessagingSubEvent, sub.pk) == stored(MessagingSubEvent, sub_draft.pk)

    fields = {"project_id": project.pk, "text": "h\u00e9", "allow_opted_out": True}
    fields |= {"created_on": stamp, "updated_on": stamp, "next_attempt_at": None}
    msg = Message.objects.create(id="a" * 32, **fields)
    msg_draft = MessageDraft(id="b" * 32, **fields)
    rows.insert([msg_draft])
    assert stored(Message, msg.pk) == stored(Message, msg_draft.id)

    kw = Keyword.objects.create(
        project=project, keyword="A", reply={"en": "hi"}, created_on=stamp, updated_on=stamp
    )
    kw_draft = KeywordDraft(
        project_id=project.pk, keyword="B", reply={"en": "hi"}, created_on=stamp, updated_on=stamp
    )
    rows.insert([kw_draft])
    mine = Keyword.objects.get(pk=kw_draft.pk)
    assert (kw.reply, kw.fields, kw.error_reply) == (mine.reply, mine.fields, mine.error_reply)


def test_a_draft_reads_the_model_defaults() -> None:
    draft = MessageDraft()
    assert ("queued", "out", 0) == (draft.status, draft.direction, draft.attempts)
    with pytest.raises(AttributeError):
        draft.no_such_field  # noqa: B018


def test_conflicts_are_skipped_on_request(project: Project) -> None:
    stamp = now()
    first = MessageDraft(id="c" * 32, project_id=project.pk, created_on=stamp, updated_on=stamp)
    rows.insert([first])
    again = MessageDraft(id="c" * 32, project_id=project.pk, text="x", created_on=stamp)
    again.updated_on = stamp
    rows.insert([again], skip_conflicts=["id"])
    assert "" == Message.objects.get(pk="c" * 32).text
    with pytest.raises(ValueError, match="auto ids"):
        rows.insert([EventDraft(project_id=project.pk)], skip_conflicts=["id"])


def test_raw_rows_decode_a_raw_read(project: Project) -> None:
    Project.objects.filter(pk=project.pk).update(last_indexed_on=now())
    expected = Project.objects.get(pk=project.pk)
    raw = rows.RawRows(Project)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {raw.columns('p')} FROM projects_project p WHERE p.id = %s", [project.pk]
        )
        built = raw.build(cursor.fetchone())
    for attname in raw.attnames:
        assert getattr(expected, attname) == getattr(built, attname)
    with pytest.raises(ValueError, match="unknown fields"):
        rows.RawRows(Project, "nope")


def test_built_and_packed_rows_are_the_table_row() -> None:
    t = rows.table(Keyword)
    stamp = now()
    values = {"project_id": 1, "keyword": "K", "reply": {"en": "hi"}, "created_on": stamp}
    values["updated_on"] = stamp
    row = t.row(values)
    build = t.builder("keyword", "project_id", "reply", "created_on", "updated_on")
    assert row == build("K", 1, {"en": "hi"}, stamp, stamp)
    assert row == t.pack([{**t.defaults, **values}[a] for a in t.attnames])
    with pytest.raises(ValueError, match="unknown"):
        t.builder("nope")
    with pytest.raises(ValueError, match="columns"):
        t.pack([1])


def test_rows_inserted_updated_and_decoded_as_the_orm_does(project: Project) -> None:
    stamp = now()
    kw = Keyword.objects.create(
        project=project, keyword="A", reply={"en": "hi"}, created_on=stamp, updated_on=stamp
    )
    new = rows.table(Keyword).builder("project_id", "keyword", "reply", "created_on", "updated_on")

    def build(project_id: int, keyword: str, reply: dict[str, str], at: dt.datetime) -> Any:
        return new(project_id, keyword, reply, at, at)

    rows.insert_rows(Keyword, [build(project.pk, "B", {"en": "hi"}, stamp)])
    # B again (and A) clash with keyword_per_project: skipped.
    again = [build(project.pk, "B", {"en": "x"}, stamp), build(project.pk, "A", {}, stamp)]
    rows.insert_rows(Keyword, again, skip_conflicts=("project_id", "keyword"))
    b = Keyword.objects.get(project=project, keyword="B")
    assert ({"en": "hi"}, [], {}) == (b.reply, b.fields, b.error_reply)

    later = stamp + dt.timedelta(seconds=5)
    kw.reply, kw.updated_on, b.description = {"fr": "salut"}, later, "bee"
    rows.update(Keyword, [kw, b], fields=("reply", "updated_on", "description"))
    kw.refresh_from_db()
    assert ({"fr": "salut"}, later) == (kw.reply, kw.updated_on)
    assert "bee" == Keyword.objects.get(pk=b.pk).description

    decode = rows.decoder(Keyword, "updated_on", "reply", "id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {decode.columns('k')} FROM messaging_keyword k WHERE k.id = %s", [kw.pk]
        )
        assert (later, {"fr": "salut"}, kw.pk) == decode(cursor.fetchone())
    msg = Message.objects.create(
        id="d" * 32, project=project, allow_opted_out=True, created_on=stamp, updated_on=stamp
    )
    flags = rows.decoder(Message, "allow_opted_out", "next_attempt_at")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {flags.columns()} FROM messaging_message WHERE id = %s", [msg.id])
        assert [(True, None)] == flags.all(cursor.fetchall())
    with pytest.raises(ValueError, match="unknown"):
        rows.update(Keyword, [kw], fields=("nope",))


def test_a_batch_of_auto_id_drafts_stores_every_value_in_order(project: Project) -> None:
    # PostgreSQL writes these through array literals: quoting, NULLs and order must hold.
    stamp = now()
    awkward = ['a"b', "c\\d", "{e,f}", "NULL", "", " g ", "h\u00e9\U0001f600", "i'j"]
    drafts = [
        EventDraft(
            project_id=project.pk,
            source="alert",
            source_id=text,
            triggered_by=text[::-1],
            error_code=None if n % 2 else text,
            created_on=stamp + dt.timedelta(microseconds=n),
        )
        for n, text in enumerate(awkward)
    ]
    rows.insert(drafts)
    got = {
        e.pk: (e.source_id, e.triggered_by, e.error_code, e.created_on)
        for e in MessagingEvent.objects.filter(pk__in=[d.pk for d in drafts])
    }
    expected = [
        (text, text[::-1], None if n % 2 else text, stamp + dt.timedelta(microseconds=n))
        for n, text in enumerate(awkward)
    ]
    assert expected == [got[d.pk] for d in drafts]
    assert sorted(got) == [d.pk for d in drafts]
