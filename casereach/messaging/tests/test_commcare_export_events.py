"""The real commcare-export CLI (1.16.0) reading the messaging-event API of a live server.

commcare-export has no built-in messaging query; a user query file names the data source
``messaging-event`` (one row per sub-event) or ``messaging-event.messages[*]`` (one row per
message). It pages with ``DatePaginator('date_last_activity')``: ``order_by=date_last_activity``
and, after each page, an inclusive ``date_last_activity.gte`` taken from the page's last object,
dropping the repeated object by ``id``; it stops when ``meta.next`` is null (reference 4.6).
A small ``--batch-size`` forces many such pages.

The SQL output upserts by ``id``, so duplicates are checked on a CSV export (which writes every
emitted row) and through the client's own debug log. commcare-export's SQL writer knows only
PostgreSQL, MySQL, MSSQL and Oracle, so the SQL test writes to a scratch PostgreSQL database
(``CASEREACH_EXPORT_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``, is
used only to create and drop it) and is skipped when no server answers there. The CLI runs
with a socket guard that refuses any non-loopback connection.
"""

# Expected values come first in assertions (project convention).

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from casereach.messaging.actions import SendRequest, do_apply_status, do_send
from casereach.messaging.models import Message, MessagingSubEvent
from casereach.projects.models import Project
from casereach.testing.cases import create_case_id
from casereach.testing.commcare_export import (
    CLI,
    USER,
    CommCareExport,
    csv_rows,
    received,
    sql_rows,
)
from casereach.testing.gateways import default_gateway
from casereach.testing.sending import drain
from casereach.testing.world import Api, make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXPORT = CommCareExport(source="messaging-event", batch_size=5, timeout_s=180)
run_export, fetches = EXPORT.run, EXPORT.fetches

EVENT_FIELDS = [
    ("id", "id"),
    ("date", "date"),
    ("date_last_activity", "date_last_activity"),
    ("content_type", "content_type"),
    ("status", "status"),
    ("source_type", "source.type"),
    ("recipient_id", "recipient.recipient_id"),
    ("recipient_type", "recipient.type"),
    ("recipient_name", "recipient.name"),
    ("case_id", "case_id"),
    ("error_code", "error.code"),
    ("domain", "domain"),
]
MESSAGE_FIELDS = [
    ("id", "message_id"),
    ("content", "content"),
    ("phone_number", "phone_number"),
    ("status", "status"),
    ("direction", "direction"),
    ("backend", "backend"),
    ("error_message", "error_message"),
]


def write_query(path: Path, *, messages: bool = True) -> Path:
    """Sheet "events" iterates ``messaging-event``; sheet "messages" iterates
    ``messaging-event.messages[*]`` filtered to ``content_type=sms``."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "events"
    sheet.append(["Data Source", "Field", "Source Field"])
    for i, (field, source) in enumerate(EVENT_FIELDS):
        sheet.append(["messaging-event" if i == 0 else None, field, source])
    if messages:
        sheet = book.create_sheet("messages")
        sheet.append(["Data Source", "Filter Name", "Filter Value", "Field", "Source Field"])
        for i, (field, source) in enumerate(MESSAGE_FIELDS):
            if i == 0:
                sheet.append(["messaging-event.messages[*]", "content_type", "sms", field, source])
            else:
                sheet.append([None, None, None, field, source])
    book.save(path)
    return path


def add_sends(project: Project, cases: list[str], first: int, count: int) -> None:
    """Sends ``first``…``first+count-1``: mostly to cases with a phone, every 4th to a raw
    number, every 5th to the case with no phone (NO_PHONE_NUMBER), every 7th an email with no
    email gateway (NO_SUITABLE_GATEWAY)."""
    for n in range(first, first + count):
        text = f"Message {n:03d}"
        if n % 7 == 0:
            req = SendRequest(channel="email", email_address=f"p{n}@example.org", body={"*": text})
        elif n % 5 == 0:
            req = SendRequest(contact_id=cases[0], sms={"*": text})
        elif n % 4 == 0:
            req = SendRequest(phone_number=f"2547009{n:05d}", sms={"*": text})
        else:
            req = SendRequest(contact_id=cases[1 + n % (len(cases) - 1)], sms={"*": text})
        do_send(project, req)
    drain()


def setup_world(project: Project) -> tuple[Api, list[str]]:
    api = Api(project)
    default_gateway(api)
    cases = []
    for i in range(6):
        phone = None if i == 0 else f"2547120000{i:02d}"
        cases.append(create_case_id(api, name=f"Patient {i}", phone=phone))
    return api, cases


def expected_events(project: Project) -> dict[str, dict[str, Any]]:
    """Sub-event id (as text, as the export stores it) → the fields the export should hold."""
    out: dict[str, dict[str, Any]] = {}
    subs = MessagingSubEvent.objects.filter(project=project).select_related("event")
    for sub in subs:
        failed = sub.status == "error"
        out[str(sub.pk)] = {
            "content_type": sub.event.content_type,
            "status": "error" if failed else "completed",
            "source_type": "other",
            "recipient_id": sub.contact_id,
            "recipient_type": "case" if sub.contact_id else "unknown",
            "case_id": sub.contact_id,
            "error_code": sub.error_code,
            "domain": project.name,
            "date_last_activity": sub.date_last_activity.replace(tzinfo=None).isoformat(),
        }
    return out


def assert_events_match(project: Project, rows: list[dict[str, Any]]) -> None:
    expected = expected_events(project)
    by_id = {str(r["id"]): r for r in rows}
    assert sorted(expected) == sorted(by_id)
    for sub_id, want in expected.items():
        row = by_id[sub_id]
        got = {k: (row[k] or None) for k in want}
        assert want == got, sub_id
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?", row["date"])


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
def test_commcare_export_sql_full_then_incremental(
    live_server: Any, tmp_path: Path, export_db: str
) -> None:
    project = make_project(name="events-demo")
    _, cases = setup_world(project)
    key = Api(project, username=USER).key
    add_sends(project, cases, 1, 23)
    query = write_query(tmp_path / "query.xlsx")
    sql_out = ("--output-format", "sql", "--output", export_db.replace("://", "+psycopg://", 1))

    first = run_export(live_server.url, project, key, query, tmp_path, *sql_out)

    assert 23 == MessagingSubEvent.objects.filter(project=project).count()
    events = sql_rows(export_db, "events")
    assert 23 == len(events), first.stderr[-3000:]
    assert_events_match(project, events)
    counts = Counter((r["status"], r["error_code"]) for r in events)
    assert {
        ("completed", None): 16,
        ("error", "NO_PHONE_NUMBER"): 4,  # 5, 10, 15, 20
        ("error", "NO_SUITABLE_GATEWAY"): 3,  # 7, 14, 21
    } == dict(counts)

    sms = Message.objects.filter(project=project, channel="sms")
    messages = {r["id"]: r for r in sql_rows(export_db, "messages")}
    assert sorted(sms.values_list("id", flat=True)) == sorted(messages)
    for m in sms:
        row = messages[m.id]
        assert (m.text, m.phone_number or None, "outgoing") == (
            row["content"],
            row["phone_number"],
            row["direction"],
        )
        if m.status == "failed":
            assert ("error", None) == (row["status"], row["backend"])
            assert row["error_message"]
        else:
            assert ("sent", "TEST", None) == (row["status"], row["backend"], row["error_message"])

    # 23 events in pages of 5 that each repeat the previous page's last one: >= 5 requests per
    # sheet, each after the first resuming from an inclusive date_last_activity.gte
    requests = fetches(first)
    assert len(requests) >= 10, first.stderr[-3000:]
    assert all("'order_by': 'date_last_activity'" in r for r in requests)
    assert all("'limit': '5'" in r for r in requests), requests
    assert any("'content_type': ['sms']" in r for r in requests)
    resumed = [r for r in requests if "date_last_activity.gte" in r]
    assert len(resumed) >= 8, requests

    # second run: 5 new sends, and one old message is delivered (its activity moves forward)
    add_sends(project, cases, 24, 5)
    old = Message.objects.filter(project=project, channel="sms", status="sent").order_by(
        "created_on"
    )[0]
    assert do_apply_status(old.id, "delivered")

    second = run_export(live_server.url, project, key, query, tmp_path, *sql_out)

    events = sql_rows(export_db, "events")
    assert 28 == len(events)
    assert_events_match(project, events)
    messages = {r["id"]: r for r in sql_rows(export_db, "messages")}
    assert sorted(sms.values_list("id", flat=True)) == sorted(messages)
    assert "delivered" == messages[old.id]["status"]
    # it resumed from the checkpoint: the first page holds the old last event plus what changed
    requests = fetches(second)
    assert "date_last_activity.gte" in requests[0], second.stderr[-3000:]
    assert "5 of -1" == received(second)[0], second.stderr[-3000:]
    assert len(requests) < len(fetches(first))


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
def test_commcare_export_emits_every_event_exactly_once(live_server: Any, tmp_path: Path) -> None:
    project = make_project(name="events-csv")
    _, cases = setup_world(project)
    key = Api(project, username=USER).key
    add_sends(project, cases, 1, 23)
    query = write_query(tmp_path / "query.xlsx")
    archive = tmp_path / "out.zip"

    proc = run_export(
        live_server.url,
        project,
        key,
        query,
        tmp_path,
        "--output-format",
        "csv",
        "--output",
        str(archive),
    )

    rows = csv_rows(archive, "events")
    counts = Counter(r["id"] for r in rows)
    assert {1} == set(counts.values()), [i for i, c in counts.items() if c > 1]
    assert_events_match(project, rows)
    messages = csv_rows(archive, "messages")
    assert sorted(
        Message.objects.filter(project=project, channel="sms").values_list("id", flat=True)
    ) == sorted(r["id"] for r in messages)
    assert len(fetches(proc)) >= 10
