"""Query-count pins on ingest (issue 17): a batch costs the same number of statements
whatever its size — ``casereach import-cases`` (``import_cases``, one batch per file here),
the bulk case API (one POST of many cases) and the batch send (issue 18); a single send costs
a few statements."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from casereach.bench.survey_answers import survey_definition
from casereach.cases.importer import import_cases
from casereach.projects.models import Project
from casereach.surveys.tests.test_sessions import NUMBER, create_survey, sent, session, start
from casereach.testing.cases import CASES
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway, post_inbound
from casereach.testing.world import Api, case_body, make_project

GATEWAYS = "/a/{project}/api/messaging/v1/gateways"
ROUTES = "/a/{project}/api/messaging/v1/routes"
# With the savepoint around it; PostgreSQL reads the case and answers after the row lock.
SURVEY_ANSWER_MAX = {"sqlite": 16, "postgresql": 19}
SMALL, LARGE = 5, 60  # both within one IN-list chunk and one bulk request (at most 100)


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def _csv(path: Path, first: int, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["external_id", "case_type", "case_name", "owner_id", "contact_phone_number", "village"]
        )
        for n in range(first, first + count):
            writer.writerow(
                [f"ext-{n}", "patient", f"Patient {n}", "o1", f"2547123{n:05d}", "north"]
            )
    return path


def _import(project: Project, path: Path, rows: int) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        report = import_cases(project, path, batch_size=rows)
    assert (rows, 0) == (report.written, report.errors_total)
    return statements(captured)


def test_an_import_batch_costs_the_same_statements_whatever_its_size(
    db: None, tmp_path: Path
) -> None:
    warm = make_project(name="warm")
    _import(warm, _csv(tmp_path / "warm.csv", 0, 3), 3)  # one-time reads (settings, caches)

    small = _import(make_project(name="small"), _csv(tmp_path / "s.csv", 1000, SMALL), SMALL)
    large = _import(make_project(name="large"), _csv(tmp_path / "l.csv", 2000, LARGE), LARGE)

    assert len(small) == len(large), "\n".join(large)


def _bulk(api: Api, first: int, count: int) -> list[str]:
    bodies: list[dict[str, Any]] = [
        {
            **case_body(name=f"Patient {n}", external_id=f"ext-{n}", phone=f"2547124{n:05d}"),
            "create": True,
        }
        for n in range(first, first + count)
    ]
    with CaptureQueriesContext(connection) as captured:
        r = api.post(CASES, bodies)
    assert 200 == r.status, r.body
    assert count == len(r.body["cases"])
    return statements(captured)


def test_a_bulk_case_request_costs_the_same_statements_whatever_its_size(api: Api) -> None:
    _bulk(api, 0, 3)  # one-time reads (the key, settings, caches)

    small = _bulk(api, 1000, SMALL)
    large = _bulk(api, 2000, LARGE)

    assert len(small) == len(large), "\n".join(large)


# -- sends (issue 18) ----------------------------------------------------------------------------

SEND_BATCH = "/a/{project}/api/messaging/v1/send-batch"
SEND = "/a/{project}/api/messaging/v1/send"
# A single send, the whole request: the key, the project and the membership (3), the project
# lock, the gateways, the contact and its phone entry, the opt-outs, the routes (6), the
# project's clock and the three rows, each one INSERT (4), and the test's savepoint (2): 15
# to a contact, 13 to a raw number.
SINGLE_SEND_MAX = 15


def _send_world(api: Api) -> list[str]:
    """A gateway and routes, and contacts to send to (with phones, one opted out)."""
    assert 201 == api.post(GATEWAYS, {"name": "TEST", "type": "test"}).status
    assert 200 == api.put(ROUTES, {"default_gateway": "TEST", "prefixes": []}).status
    bodies = [
        {**case_body(name=f"Patient {n}", external_id=f"c-{n}", phone=f"2547125{n:05d}"), "create": True}
        for n in range(LARGE)
    ]  # fmt: skip
    r = api.post(CASES, bodies)
    assert 200 == r.status, r.body
    return [c["case_id"] for c in r.body["cases"]]


def _items(contacts: list[str], first: int, count: int) -> list[dict[str, Any]]:
    """A mix: contacts, raw numbers, an opted-out number, an email with no gateway."""
    items: list[dict[str, Any]] = []
    for n in range(first, first + count):
        if n % 3 == 0:
            items.append({"contact_id": contacts[n % len(contacts)], "text": f"hello {n}"})
        elif n % 5 == 0:
            items.append({"email_address": f"p{n}@example.org", "text": "hello"})
        else:
            items.append({"phone_number": f"2547126{n:05d}", "text": f"hello {n}"})
    return items


def _send_batch(api: Api, items: list[dict[str, Any]]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        r = api.post(SEND_BATCH, {"messages": items})
    assert 202 == r.status, r.body
    assert len(items) == len(r.body["objects"])
    return statements(captured)


def test_a_batch_send_costs_the_same_statements_whatever_its_size(api: Api) -> None:
    contacts = _send_world(api)
    _send_batch(api, _items(contacts, 0, 3))  # one-time reads (the key, settings, caches)

    small = _send_batch(api, _items(contacts, 1000, SMALL))
    large = _send_batch(api, _items(contacts, 2000, LARGE))

    assert len(small) == len(large), "\n".join(large)


@pytest.mark.parametrize(
    "item",
    [
        {"phone_number": "254712600001", "text": "hello"},
        {"contact": 0, "text": "hello"},
        {"email_address": "a@example.org", "text": "hello"},
    ],
)
def test_a_single_send_costs_a_few_statements(api: Api, item: dict[str, Any]) -> None:
    contacts = _send_world(api)
    if "contact" in item:
        item = {"contact_id": contacts[item.pop("contact")], **item}
    api.post(SEND, item)  # one-time reads

    with CaptureQueriesContext(connection) as captured:
        r = api.post(SEND, item)

    assert 202 == r.status, r.body
    assert len(statements(captured)) <= SINGLE_SEND_MAX, "\n".join(statements(captured))


def test_a_survey_answer_through_the_webhook_costs_a_few_statements(api: Api) -> None:
    # Issue 20's hot path: the answer, the next question and the inbound message, each in
    # the statements the inbound message's handling runs anyway (docs/performance.md).
    gw = default_gateway(api)
    survey = create_survey(api, survey_definition(3))  # the bench's: integer questions
    started = start(api, survey, case(api, phone=NUMBER, verified="yes"))
    post_inbound(gw, "1")  # one-time reads

    # Inside a transaction the webhook runs on this thread (not the SQLite worker's), on this
    # connection, so that its statements are the ones captured.
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        r = post_inbound(gw, "2")
    ran = statements(captured)  # before another request resets the log

    assert 200 == r.status_code, r.content
    assert [2, 3] == [len(session(api, started["id"])["answers"]), len(sent())]
    assert len(ran) <= SURVEY_ANSWER_MAX[connection.vendor], "\n".join(ran)
