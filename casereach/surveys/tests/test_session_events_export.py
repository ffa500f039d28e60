"""The real commcare-export CLI reading survey sessions from the messaging-event API: one
``sms-survey`` row per session with its form, and each SMS of the sessions once on a
``messaging-event.messages[*]`` sheet filtered to ``content_type=sms-survey``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from casereach.surveys.tests.test_session_events import TWO
from casereach.testing.cases import create_case_id
from casereach.testing.commcare_export import CLI, USER, CommCareExport, csv_rows
from casereach.testing.gateways import default_gateway
from casereach.testing.gateways import post_inbound as inbound
from casereach.testing.sending import drain
from casereach.testing.world import Api, make_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXPORT = CommCareExport(source="messaging-event", batch_size=2, timeout_s=180)
S = "/a/{project}/api/surveys/v1/surveys"
EVENTS = [
    ("id", "id"),
    ("content_type", "content_type"),
    ("status", "status"),
    ("form_name", "form.form_name"),
    ("submission", "form.form_submission_id"),
    ("session", "survey_session_id"),
]
MESSAGES = [("id", "message_id"), ("content", "content"), ("direction", "direction")]


def _query(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "events"
    sheet.append(["Data Source", "Field", "Source Field"])
    for i, (field, source) in enumerate(EVENTS):
        sheet.append(["messaging-event" if i == 0 else None, field, source])
    sheet = book.create_sheet("messages")
    sheet.append(["Data Source", "Filter Name", "Filter Value", "Field", "Source Field"])
    for i, (field, source) in enumerate(MESSAGES):
        first = ("messaging-event.messages[*]", "content_type", "sms-survey")
        sheet.append([*(first if i == 0 else (None, None, None)), field, source])
    book.save(path)
    return path


@pytest.mark.skipif(CLI is None, reason="commcare-export is not installed")
def test_commcare_export_reads_one_row_per_session_and_each_sms_once(
    live_server: Any, tmp_path: Path
) -> None:
    project = make_project(name="survey-export", languages=["en", "sw"])
    api = Api(project)
    gw = default_gateway(api)
    survey = api.post(S, TWO)
    assert 201 == survey.status, survey.body
    sessions = []
    for i in range(3):
        number = f"25471200010{i}"
        contact = create_case_id(api, name=f"P{i}", phone=number, verified="yes")
        r = api.post(f"{S}/{survey.body['id']}/start", {"contact_id": contact})
        assert 201 == r.status, r.body
        sessions.append(r.body["id"])
        drain()
        for text in ["12", "3"][: i + 1]:  # session 0 answers one question, 1 and 2 both
            inbound(gw, text, sender=number)
        drain()
    key = Api(project, username=USER).key
    archive = tmp_path / "out.zip"

    EXPORT.run(
        live_server.url, project, key, _query(tmp_path / "q.xlsx"), tmp_path,
        "--output-format", "csv", "--output", str(archive),
    )  # fmt: skip

    rows = sorted(csv_rows(archive, "events"), key=lambda r: int(r["session"]))
    assert [
        ("sms-survey", "in-progress", "Two numbers", "", str(sessions[0])),
        ("sms-survey", "completed", "Two numbers", str(sessions[1]), str(sessions[1])),
        ("sms-survey", "completed", "Two numbers", str(sessions[2]), str(sessions[2])),
    ] == [
        (r["content_type"], r["status"], r["form_name"], r["submission"], r["session"])
        for r in rows
    ]
    messages = csv_rows(archive, "messages")
    # Per session: the questions out, the answers in, the closing; each exactly once.
    assert 3 + 5 + 5 == len(messages) == len({m["id"] for m in messages})
    assert {"incoming": 5, "outgoing": 8} == {
        d: sum(m["direction"] == d for m in messages) for d in ("incoming", "outgoing")
    }
