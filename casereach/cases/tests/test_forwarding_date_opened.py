"""A forwarded case's opening date is HQ's ``date_opened`` (reference/commcare-api.md 6.1:
a date in the XML ``<update>``, a naive millisecond datetime in the JSON ``properties``), not
the time the case reached casereach; read back through the Case API v2. Other writers keep
their own stamp."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from casereach.testing.commcare_hq import FakeHq, Format, HqCase, client_sender
from casereach.testing.world import Api

V2 = "/a/{project}/api/case/v2/"
OPENED = dt.datetime(2024, 3, 5, 10, 20, 30, 123000, tzinfo=dt.UTC)
AS_SENT = {"xml": "2024-03-05T00:00:00.000000Z", "json": "2024-03-05T10:20:30.123000Z"}


def fake(api: Api, fmt: Format) -> FakeHq:
    return FakeHq(api.project.name, client_sender(api.client, api.auth), fmt=fmt)


def case(**over: object) -> HqCase:
    base = HqCase(
        "c-1", "mother", "Amina", "owner-1", properties={"edd": "2024-09-01"}, date_opened=OPENED
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def opened(api: Api, case_id: str = "c-1") -> str:
    r = api.get(V2 + case_id)
    assert 200 == r.status, r.body
    assert "date_opened" not in r.body["properties"]
    return str(r.body["date_opened"])


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_forwarded_case_is_opened_when_hq_opened_it(api: Api, fmt: Format) -> None:
    hq = fake(api, fmt)
    hq.save(case())
    assert [] == hq.deliver()
    assert AS_SENT[fmt] == opened(api)


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_later_state_with_another_opening_date_moves_it(api: Api, fmt: Format) -> None:
    hq = fake(api, fmt)
    hq.save(case())
    hq.save(case(date_opened=OPENED - dt.timedelta(days=3), case_name="Amina K"))
    assert [] == hq.deliver()
    assert AS_SENT[fmt].replace("03-05", "03-02") == opened(api)


def test_json_then_xml_of_the_same_day_keeps_hqs_time(api: Api) -> None:
    """JSON gave the time; a later XML state of the same case gives only the day."""
    hq = fake(api, "json")
    hq.save(case())
    hq.save(case(case_name="Amina K"), fmt="xml")
    assert [] == hq.deliver()
    r = api.get(V2 + "c-1")
    assert ("Amina K", AS_SENT["json"]) == (r.body["case_name"], r.body["date_opened"])


def test_other_writers_keep_their_own_stamp(api: Api) -> None:
    r = api.post(V2, {"case_type": "mother", "case_name": "B", "owner_id": "o"})
    assert 200 == r.status, r.body
    assert opened(api, r.body["case"]["case_id"]) > "2025-"
    form = (
        b'<data xmlns="http://example.org/f"><n0:case xmlns:n0="http://commcarehq.org/case/'
        b'transaction/v2" case_id="f-1"><n0:create><n0:case_type>mother</n0:case_type>'
        b"<n0:case_name>C</n0:case_name><n0:owner_id>o</n0:owner_id></n0:create><n0:update>"
        b"<n0:date_opened>2001-01-01</n0:date_opened></n0:update></n0:case>"
        b'<meta xmlns="http://openrosa.org/jr/xforms"><instanceID>i-1</instanceID></meta></data>'
    )
    r2 = api.client.post(
        f"/a/{api.project.name}/receiver/",
        form,
        content_type="text/xml",
        HTTP_AUTHORIZATION=api.auth,
    )
    assert 201 == r2.status_code, r2.content
    assert opened(api, "f-1") > "2025-"
