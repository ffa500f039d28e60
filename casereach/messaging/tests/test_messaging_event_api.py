"""The CommCare-compatible messaging-event API (reference/commcare-api.md section 4), fed by real
sends through the messaging API, the test gateway and the dispatcher."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from casereach.messaging.errors import describe
from casereach.messaging.models import Message, MessagingSubEvent
from casereach.testing.cases import create_case_id as case
from casereach.testing.gateways import default_gateway as setup_gateway
from casereach.testing.sending import drain, send
from casereach.testing.world import Api, Response

EV = "/a/{project}/api/v0.5/messaging-event/"
EV1 = "/a/{project}/api/messaging-event/v1/"
V2 = "/a/{project}/api/case/v2/"
M = "/a/{project}/api/messaging/v1/"
USERS = "/a/{project}/api/v0.5/user/"
NUMBER = "254712345678"
RAW_NUMBER = "254700000001"

EVENT_KEYS = [
    "id",
    "content_type",
    "date",
    "date_last_activity",
    "case_id",
    "domain",
    "error",
    "form",
    "messages",
    "recipient",
    "source",
    "status",
]
SMS_KEYS = [
    "message_id",
    "date",
    "date_modified",
    "type",
    "direction",
    "content",
    "status",
    "backend",
    "phone_number",
]
# casereach's extra fields, after CommCare's (docs/costs.md).
COST_KEYS = ["estimated_cost", "actual_cost", "cost_currency"]
NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?")
NAIVE_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?")


def get(api: Api, path: str = EV, **query: str) -> Response:
    """GET with query parameters (``Api.get`` would take ``content_type`` as its own)."""
    resp = api.client.get(
        path.replace("{project}", api.project.name), query, HTTP_AUTHORIZATION=api.auth
    )
    try:
        body = json.loads(resp.content) if resp.content else None
    except ValueError:
        body = None
    return Response(resp.status_code, body, dict(resp.headers), resp.content)


def events(api: Api, path: str = EV, **query: str) -> list[dict[str, Any]]:
    r = get(api, path, **query)
    assert 200 == r.status, r.body
    objects: list[dict[str, Any]] = r.body["objects"]
    return objects


def sub_of(message_id: str) -> int:
    sub_id = Message.objects.get(id=message_id).subevent_id
    assert sub_id is not None
    return sub_id


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    """Four sends: to a case (sent), to a raw number (sent), to a case with no phone
    (NO_PHONE_NUMBER) and an email with no email gateway (NO_SUITABLE_GATEWAY)."""
    setup_gateway(api)
    amina = case(api, name="Amina", phone=NUMBER)
    baraka = case(api, name="Baraka")
    sent = send(api, contact_id=amina, text="Hello Amina")
    raw = send(api, phone_number="+254 700 000 001", text="Clinic at 9")
    no_phone = send(api, contact_id=baraka, text="Hello Baraka")
    email = send(api, email_address="nurse@example.org", text="Report due")
    assert 2 == drain()
    return {
        "amina": amina,
        "baraka": baraka,
        "sent": sent["id"],
        "raw": raw["id"],
        "no_phone": no_phone["id"],
        "email": email["id"],
    }


# --- shape ------------------------------------------------------------------------------------


def test_list_envelope_and_event_objects(api: Api, world: dict[str, Any]) -> None:
    r = api.get(EV)
    assert 200 == r.status, r.body
    assert ["objects", "meta"] == list(r.body)
    assert {"limit": 20, "next": None} == r.body["meta"]
    objs = r.body["objects"]
    assert 4 == len(objs)
    for obj in objs:
        assert EVENT_KEYS == list(obj)
        assert NAIVE.fullmatch(obj["date"]), obj["date"]
        assert NAIVE.fullmatch(obj["date_last_activity"]), obj["date_last_activity"]
        assert "demo" == obj["domain"]
        assert obj["form"] is None
        assert {"source_id": None, "type": "other"} == {
            k: v for k, v in obj["source"].items() if k != "name"
        }
    by_id = {o["id"]: o for o in objs}
    assert {sub_of(world[k]) for k in ("sent", "raw", "no_phone", "email")} == set(by_id)

    # date_last_activity is the stored value, exact to the microsecond, ascending by default
    stored = dict(MessagingSubEvent.objects.values_list("id", "date_last_activity"))
    for obj in objs:
        parsed = dt.datetime.fromisoformat(obj["date_last_activity"]).replace(tzinfo=dt.UTC)
        assert stored[obj["id"]] == parsed
    stamps = [o["date_last_activity"] for o in objs]
    assert sorted(stamps, key=dt.datetime.fromisoformat) == stamps

    sent = by_id[sub_of(world["sent"])]
    assert (
        "sms",
        "completed",
        None,
        world["amina"],
        {"recipient_id": world["amina"], "type": "case", "name": "Amina"},
        {"source_id": None, "type": "other", "name": "sms"},
    ) == (
        sent["content_type"],
        sent["status"],
        sent["error"],
        sent["case_id"],
        sent["recipient"],
        sent["source"],
    )
    [msg] = sent["messages"]
    assert [*SMS_KEYS, *COST_KEYS] == list(msg)
    m = Message.objects.get(id=world["sent"])
    assert (m.pk, "sms", "outgoing", "Hello Amina", "sent", "TEST", NUMBER) == (
        msg["message_id"],
        msg["type"],
        msg["direction"],
        msg["content"],
        msg["status"],
        msg["backend"],
        msg["phone_number"],
    )
    assert NAIVE_MS.fullmatch(msg["date"]), msg["date"]
    assert m.created_on.replace(tzinfo=None).isoformat()[:23] == msg["date"][:23]
    assert NAIVE.fullmatch(msg["date_modified"]), msg["date_modified"]

    raw = by_id[sub_of(world["raw"])]
    assert (None, {"recipient_id": None, "type": "unknown", "name": "unknown"}) == (
        raw["case_id"],
        raw["recipient"],
    )
    assert [(RAW_NUMBER, "sent")] == [(x["phone_number"], x["status"]) for x in raw["messages"]]

    failed = by_id[sub_of(world["no_phone"])]
    info = describe("NO_PHONE_NUMBER")
    assert info is not None
    assert "error" == failed["status"]
    assert {"code": "NO_PHONE_NUMBER", "message": info.description, "message_detail": None} == (
        failed["error"]
    )
    [fmsg] = failed["messages"]
    assert [*SMS_KEYS, "error_message", *COST_KEYS] == list(fmsg)
    assert ("error", info.description, None, "Hello Baraka") == (
        fmsg["status"],
        fmsg["error_message"],
        fmsg["phone_number"],
        fmsg["content"],
    )

    email = by_id[sub_of(world["email"])]
    assert ("email", "error", "NO_SUITABLE_GATEWAY") == (
        email["content_type"],
        email["status"],
        email["error"]["code"],
    )
    assert {"source_id": None, "type": "other", "name": "email"} == email["source"]
    [emsg] = email["messages"]
    assert [
        "message_id",
        "date",
        "date_modified",
        "type",
        "direction",
        "content",
        "status",
        "backend",
        "email_address",
        "error_message",
        *COST_KEYS,
    ] == list(emsg)
    assert ("email", "outgoing", "email", "nurse@example.org", "Report due") == (
        emsg["type"],
        emsg["direction"],
        emsg["backend"],
        emsg["email_address"],
        emsg["content"],
    )


def test_mobile_worker_recipient(api: Api) -> None:
    setup_gateway(api)
    r = api.post(
        USERS,
        {
            "username": "juma",
            "password": "s3cret-pass",
            "first_name": "Juma",
            "phone_numbers": ["254700000009"],
        },
    )
    assert 201 == r.status, r.body
    worker_id = r.body["id"]
    send(api, contact_id=worker_id, text="Shift at 8")
    drain()
    [obj] = events(api)
    assert (None, {"recipient_id": worker_id, "type": "mobile-worker", "name": "Juma"}) == (
        obj["case_id"],
        obj["recipient"],
    )
    assert 1 == len(events(api, contact_id=worker_id))
    assert [] == events(api, case_id=worker_id)


def test_in_progress_until_dispatched_then_activity_moves_forward(api: Api) -> None:
    setup_gateway(api)
    msg = send(api, phone_number=NUMBER, text="Hi")
    [before] = events(api)
    assert ("in-progress", "queued") == (before["status"], before["messages"][0]["status"])
    assert [before["id"]] == [o["id"] for o in events(api, status="in-progress")]
    drain()
    [after] = events(api)
    assert ("completed", "sent") == (after["status"], after["messages"][0]["status"])
    assert (before["id"], before["date"]) == (after["id"], after["date"])
    assert dt.datetime.fromisoformat(after["date_last_activity"]) > dt.datetime.fromisoformat(
        before["date_last_activity"]
    )
    # a delivery report moves it forward again
    from casereach.messaging.actions import do_apply_status

    assert do_apply_status(msg["id"], "delivered")
    [delivered] = events(api)
    assert "delivered" == delivered["messages"][0]["status"]
    assert dt.datetime.fromisoformat(delivered["date_last_activity"]) > dt.datetime.fromisoformat(
        after["date_last_activity"]
    )
    # commcare-export's incremental request picks it up again
    assert [after["id"]] == [
        o["id"]
        for o in events(
            api,
            order_by="date_last_activity",
            **{"date_last_activity.gt": after["date_last_activity"]},
        )
    ]


def test_detail_and_v1_twins(api: Api, world: dict[str, Any]) -> None:
    listed = events(api)
    assert listed == events(api, EV1)
    for obj in listed:
        for base in (EV, EV1):
            r = api.get(f"{base}{obj['id']}/")
            assert 200 == r.status, r.body
            assert obj == r.body
    top = max(o["id"] for o in listed)
    for missing in (str(top + 1000), "abc", "99999999999999999999999", "-1"):
        r = api.get(f"{EV}{missing}/")
        assert (404, b"") == (r.status, r.raw), missing


def test_schema_lists_only_the_v05_routes(api: Api) -> None:
    r = api.get("/api/openapi.json")
    assert 200 == r.status
    paths = r.body["paths"]
    assert {"get"} == set(paths["/a/{project}/api/v0.5/messaging-event/"])
    assert {"get"} == set(paths["/a/{project}/api/v0.5/messaging-event/{event_id}/"])
    assert not [p for p in paths if "/messaging-event/v1" in p]


def test_other_methods_are_405(api: Api, world: dict[str, Any]) -> None:
    for method in ("POST", "PUT", "DELETE"):
        for path in (EV, EV1, f"{EV}1/"):
            r = api.call(method, path, {})
            assert (405, {"error": "Request method not allowed"}) == (r.status, r.body), path


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"sent", "raw", "no_phone", "email"}),
        ({"source": "other"}, {"sent", "raw", "no_phone", "email"}),
        ({"source": "keyword"}, set()),
        ({"source": "broadcast,reminder,nonsense"}, set()),
        ({"source": "keyword,other"}, {"sent", "raw", "no_phone", "email"}),
        ({"content_type": "sms"}, {"sent", "raw", "no_phone"}),
        ({"content_type": "email"}, {"email"}),
        ({"content_type": "sms,email"}, {"sent", "raw", "no_phone", "email"}),
        ({"content_type": "ivr-survey"}, set()),
        ({"status": "error"}, {"no_phone", "email"}),
        ({"status": "completed"}, {"sent", "raw"}),
        ({"status": "in-progress"}, set()),
        ({"status": "email-delivered"}, set()),
        ({"error_code": "NO_PHONE_NUMBER"}, {"no_phone"}),
        ({"error_code": "NO_PHONE"}, set()),
        ({"case_id": "@amina"}, {"sent"}),
        ({"case_id": "@baraka"}, {"no_phone"}),
        ({"case_id": "nope"}, set()),
        ({"contact_id": "@amina"}, {"sent"}),
        ({"phone_number": NUMBER}, {"sent"}),
        ({"phone_number": "+" + NUMBER}, {"sent"}),
        ({"phone_number": "0000001"}, {"raw"}),
        ({"phone_number": "2547"}, {"sent", "raw"}),
        ({"email_address": "nurse@example.org"}, {"email"}),
        ({"email_address": "other@example.org"}, set()),
        ({"status": "completed", "content_type": "sms", "phone_number": "0000001"}, {"raw"}),
        ({"format": "json"}, {"sent", "raw", "no_phone", "email"}),
    ],
)
def test_filters(
    api: Api, world: dict[str, Any], query: dict[str, str], expected: set[str]
) -> None:
    query = {k: world[v[1:]] if v.startswith("@") else v for k, v in query.items()}
    got = {o["id"] for o in events(api, **query)}
    assert {sub_of(world[k]) for k in expected} == got


def test_nul_in_a_cursor_matches_nothing(api: Api, world: dict[str, Any]) -> None:
    """The middleware refuses NUL in the query string; a cursor could still carry one."""
    assert 400 == get(api, error_code="A\x00B").status
    for name in ("error_code", "case_id", "contact_id"):
        inner = urlencode(
            {
                name: "A\x00B",
                "last_date_last_activity": "2000-01-01T00:00:00",
                "last_object_id": "0",
            }
        )
        cursor = base64.urlsafe_b64encode(inner.encode()).decode()
        assert [] == events(api, cursor=cursor)
    inner = urlencode({"last_date_last_activity": "2000-01-01T00:00:00", "last_object_id": "0"})
    cursor = base64.urlsafe_b64encode(inner.encode()).decode()
    assert 4 == len(events(api, cursor=cursor))


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"limit": "0"}, "Invalid limit '0' provided. Please provide a positive integer."),
        ({"limit": "-5"}, "Invalid limit '-5' provided. Please provide a positive integer."),
        ({"limit": "ten"}, "Invalid limit 'ten' provided. Please provide a positive integer."),
        ({"order_by": "date"}, "No matching 'date' field for ordering"),
        ({"order_by": "id"}, "No matching 'id' field for ordering"),
        ({"status": "done"}, "'done' is an invalid value for the 'status' filter"),
        ({"status": "error,completed"}, None),
        ({"source": "api"}, "'api' is an invalid value for the 'source' filter"),
        ({"source": ""}, None),
        ({"content_type": "sms-text"}, None),
        ({"phone_number": "call me"}, "'call me' is invalid value for the 'phone_number' filter"),
        ({"phone_number": ""}, None),
        ({"email_address": "nurse"}, "'nurse' is invalid value for the 'email_address' filter"),
        ({"date.gte": "yesterday"}, "Cannot parse datetime 'yesterday'"),
        ({"date_last_activity.gte": "2024-13-01"}, "Cannot parse datetime '2024-13-01'"),
        ({"date_last_activity.after": "2024-01-01"}, "'after' is not a valid type of date range."),
        ({"contact": "x"}, "'contact' is not a valid filter"),
        ({"offset": "20"}, "'offset' is not a valid filter"),
        ({"cursor": "!!!"}, "Invalid cursor '!!!'"),
        ({"cursor": "bGltaXQ9Mg"}, None),  # base64 of "limit=2": no position
    ],
)
def test_bad_filters_are_400(
    api: Api, world: dict[str, Any], query: dict[str, str], error: str | None
) -> None:
    r = get(api, EV, **query)
    assert 400 == r.status, r.body
    assert ["error"] == list(r.body)
    if error is not None:
        assert error == r.body["error"]


def test_limit_is_capped_at_1000(api: Api, world: dict[str, Any]) -> None:
    r = api.get(EV, limit="5000")
    assert (1000, None, 4) == (
        r.body["meta"]["limit"],
        r.body["meta"]["next"],
        len(r.body["objects"]),
    )


# --- dates and ordering -----------------------------------------------------------------------


def test_date_last_activity_bounds(api: Api, world: dict[str, Any]) -> None:
    objs = events(api)
    ids = [o["id"] for o in objs]
    second = objs[1]["date_last_activity"]

    def between(**query: str) -> list[int]:
        return [
            o["id"] for o in events(api, **{f"date_last_activity.{k}": v for k, v in query.items()})
        ]

    assert ids[1:] == between(gte=second)  # inclusive: commcare-export relies on it
    assert ids[2:] == between(gt=second)
    assert ids[:1] == between(lt=second)  # exclusive end, as commcare-export's ".lt" until
    assert ids[:2] == between(lte=second)
    assert ids[1:3] == between(gte=second, lt=objs[3]["date_last_activity"])
    # an explicit UTC offset names the same instant
    assert ids[1:] == between(gte=second + "+00:00")
    shifted = dt.datetime.fromisoformat(second) + dt.timedelta(hours=3)
    assert ids[1:] == between(gte=shifted.isoformat() + "+03:00")


def test_date_filters_on_the_creation_date(api: Api, world: dict[str, Any]) -> None:
    ids = [o["id"] for o in events(api)]
    today = dt.datetime.now(dt.UTC).date()
    # (the whole test runs well inside one UTC day unless it straddles midnight)
    days = {o["date"][:10] for o in events(api)}
    if days != {today.isoformat()}:
        pytest.skip("the sends straddled midnight UTC")
    day = today.isoformat()
    assert ids == [o["id"] for o in events(api, **{"date.gte": day})]
    assert ids == [o["id"] for o in events(api, **{"date.lte": day})]  # the whole day
    assert [] == events(api, **{"date.lt": day})
    assert [] == events(api, **{"date.gt": (today + dt.timedelta(days=1)).isoformat()})
    assert ids == [o["id"] for o in events(api, **{"date_last_activity.lte": day})]


def test_descending_order(api: Api, world: dict[str, Any]) -> None:
    ids = [o["id"] for o in events(api)]
    assert ids[::-1] == [o["id"] for o in events(api, order_by="-date_last_activity")]
    assert ids == [o["id"] for o in events(api, order_by="date_last_activity")]


# --- paging -----------------------------------------------------------------------------------


def follow(api: Api, url: str) -> Any:
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.netloc, url
    resp = api.client.get(f"{parts.path}?{parts.query}", HTTP_AUTHORIZATION=api.auth)
    assert 200 == resp.status_code, resp.content
    return resp.json()


@pytest.mark.parametrize("order_by", ["date_last_activity", "-date_last_activity"])
def test_cursor_pages_cover_everything_once(api: Api, world: dict[str, Any], order_by: str) -> None:
    expected = [o["id"] for o in events(api, order_by=order_by)]
    r = api.get(EV, limit="3", order_by=order_by)
    body = r.body
    seen = [o["id"] for o in body["objects"]]
    assert 3 == body["meta"]["limit"]
    assert body["meta"]["next"] is not None
    assert "cursor=" in body["meta"]["next"]
    body = follow(api, body["meta"]["next"])
    seen += [o["id"] for o in body["objects"]]
    assert {"limit": 3, "next": None} == body["meta"]
    assert expected == seen


def test_cursor_keeps_the_filters(api: Api, world: dict[str, Any]) -> None:
    body = get(api, EV, limit="1", content_type="sms").body
    seen = [o["id"] for o in body["objects"]]
    while body["meta"]["next"]:
        body = follow(api, body["meta"]["next"])
        seen += [o["id"] for o in body["objects"]]
    assert [o["id"] for o in events(api, content_type="sms")] == seen
    assert 3 == len(seen)


def test_exact_last_page_has_no_next(api: Api, world: dict[str, Any]) -> None:
    assert {"limit": 4, "next": None} == api.get(EV, limit="4").body["meta"]
    assert api.get(EV, limit="3").body["meta"]["next"] is not None
    assert {"limit": 20, "next": None} == api.get(EV, source="keyword").body["meta"]


def test_commcare_export_style_paging(api: Api, world: dict[str, Any]) -> None:
    """What commcare-export sends: order_by + limit, then date_last_activity.gte = the last
    object's value; the repeated object comes back first and is dropped by id."""
    expected = [o["id"] for o in events(api)]
    query: dict[str, str] = {"order_by": "date_last_activity", "limit": "2"}
    seen: list[int] = []
    last_ids: set[int] = set()
    for _ in range(10):
        body = api.get(EV, **query).body
        assert 2 == body["meta"]["limit"]
        objs = body["objects"]
        seen += [o["id"] for o in objs if o["id"] not in last_ids]
        if not body["meta"]["next"]:
            break
        last_ids = {o["id"] for o in objs}
        query["date_last_activity.gte"] = objs[-1]["date_last_activity"]
    assert expected == seen


# --- auth, isolation, queries -----------------------------------------------------------------


def test_auth(api: Api, other_api: Api, world: dict[str, Any]) -> None:
    assert 401 == api.get(EV, auth=None).status
    assert 401 == api.get(f"{EV}1/", auth=None).status
    assert 401 == api.get(EV, auth="ApiKey admin@example.org:wrong").status
    assert 403 == other_api.get("/a/demo/api/v0.5/messaging-event/").status
    assert 403 == other_api.get("/a/demo/api/messaging-event/v1/").status
    sub_id = sub_of(world["sent"])
    assert 403 == other_api.get(f"/a/demo/api/v0.5/messaging-event/{sub_id}/").status
    # the other project sees none of ours, not even by id
    assert [] == events(other_api)
    assert 404 == other_api.get(f"{EV}{sub_id}/").status


def test_apikey_scheme_in_lower_case(api: Api, world: dict[str, Any]) -> None:
    r = api.get(EV, auth=f"apikey {api.username}:{api.key}")
    assert (200, 4) == (r.status, len(r.body["objects"]))


def test_a_page_is_a_fixed_number_of_queries(api: Api) -> None:
    setup_gateway(api)
    send(api, phone_number=NUMBER, text="one")
    drain()
    with CaptureQueriesContext(connection) as small:
        assert 1 == len(events(api))
    for i in range(15):
        send(api, phone_number=f"25470000{i:04d}", text=f"n{i}")
    drain()
    with CaptureQueriesContext(connection) as big:
        assert 16 == len(events(api))
    assert len(small.captured_queries) == len(big.captured_queries), [
        q["sql"] for q in big.captured_queries
    ]
