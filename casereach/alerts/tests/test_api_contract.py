"""The alert operations' OpenAPI contract against real answers: status codes, response
schemas, query parameters; the message log's ``?alert=``; 405 as JSON on API paths."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from casereach.alerts.models import Alert
from casereach.alerts.queries import upcoming
from casereach.alerts.scheduler import run_until_idle
from casereach.alerts.serializers import serialize_alert
from casereach.api.main import api as ninja_api
from casereach.testing.cases import mother_case_id as case
from casereach.testing.world import Api, conditional_alert_body

M = "/a/{project}/api/messaging/v1/"
DOC_M = "/a/{project}/api/messaging/v1"
UPCOMING_FIELDS = {
    "alert_id",
    "alert_name",
    "due_utc",
    "due_local",
    "time_zone",
    "language",
    "text",
    "channel",
    "first_channel",
    "error_code",
    "warning",
}


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(ninja_api.get_openapi_schema(), default=str))
    return doc


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = document()["paths"][DOC_M + path][method]
    return op


def assert_conforms(method: str, path: str, status: int, body: Any) -> None:
    """The body validates against the documented schema of ``status``, and every documented
    property is there."""
    doc = document()
    response = doc["paths"][DOC_M + path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": doc["components"]})
    ref = schema["$ref"].rsplit("/", 1)[-1]
    documented = set(doc["components"]["schemas"][ref]["properties"])
    assert set() == documented - set(body), ref


def broadcast(cid: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Clinic closed",
        "kind": "broadcast",
        "active": True,
        "content": {"sms": {"en": "Clinic closed, {recipient.name}"}},
        "schedule": {"type": "immediate"},
        "recipients": [{"type": "case", "id": cid}],
    }
    body.update(over)
    return body


def conditional(**over: Any) -> dict[str, Any]:
    return conditional_alert_body(
        **{**{"content": {"sms": {"en": "Hello {case.name}", "sw": "Habari {case.name}"}}}, **over}
    )


ERROR_CODES = {"400", "401", "403", "429"}
EXPECTED_RESPONSES = {
    ("get", "/alerts"): {"200"} | ERROR_CODES,
    ("post", "/alerts"): {"201"} | ERROR_CODES,
    ("get", "/alerts/{alert_id}"): {"200", "404"} | ERROR_CODES,
    ("put", "/alerts/{alert_id}"): {"200", "404"} | ERROR_CODES,
    ("patch", "/alerts/{alert_id}"): {"200", "404"} | ERROR_CODES,
    ("delete", "/alerts/{alert_id}"): {"204", "404"} | ERROR_CODES,
    ("post", "/alerts/{alert_id}/activate"): {"200", "404"} | ERROR_CODES,
    ("post", "/alerts/{alert_id}/deactivate"): {"200", "404"} | ERROR_CODES,
    ("post", "/alerts/{alert_id}/dry-run"): {"200", "404"} | ERROR_CODES,
    ("get", "/contacts/{contact_id}/upcoming"): {"200", "404"} | ERROR_CODES,
}


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED_RESPONSES))
def test_each_operation_documents_its_real_status_codes(method: str, path: str) -> None:
    responses = operation(method, path)["responses"]
    assert EXPECTED_RESPONSES[(method, path)] == set(responses)
    for code, response in responses.items():
        if code == "204":
            assert "content" not in response
        else:
            assert "schema" in response["content"]["application/json"], code


def test_the_hand_read_query_parameters_are_declared() -> None:
    def query(method: str, path: str) -> dict[str, Any]:
        return {
            p["name"]: p["schema"]
            for p in operation(method, path)["parameters"]
            if p["in"] == "query"
        }

    assert {"days": {"type": "integer", "minimum": 1, "maximum": 90, "default": 7}} == query(
        "post", "/alerts/{alert_id}/dry-run"
    )
    assert {"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}} == query(
        "get", "/contacts/{contact_id}/upcoming"
    )
    assert {"type": "string", "enum": ["broadcast", "conditional"]} == query("get", "/alerts")[
        "kind"
    ]
    path_params = {p["name"] for p in operation("post", "/alerts/{alert_id}/dry-run")["parameters"]}
    assert {"project", "alert_id", "days"} == path_params


def test_the_five_worked_examples_stay_in_the_document() -> None:
    expected = {
        "immediate broadcast",
        "weekly broadcast",
        "conditional alert, daily at 09:00 from a date property",
        "conditional alert schedule with waits",
        "weekly survey to every case of a type",
    }
    for method, path in (("post", "/alerts"), ("put", "/alerts/{alert_id}")):
        body = operation(method, path)["requestBody"]["content"]["application/json"]
        assert expected == set(body["examples"])


def test_real_answers_match_the_document_and_lose_no_field(api: Api) -> None:
    cid = case(api, phone="254700000001", edd="2027-01-10", language_code="sw")
    r = api.post(M + "alerts", conditional())
    assert 201 == r.status, r.body
    assert_conforms("post", "/alerts", 201, r.body)
    alert_id = r.body["id"]
    # The answer is exactly what the serializer builds: the schema filtered nothing out.
    stored = Alert.objects.get(pk=alert_id)
    assert json.loads(json.dumps(serialize_alert(stored))) == r.body

    r = api.get(M + f"alerts/{alert_id}")
    assert 200 == r.status, r.body
    assert_conforms("get", "/alerts/{alert_id}", 200, r.body)
    assert json.loads(json.dumps(serialize_alert(stored))) == r.body

    r = api.get(M + "alerts")
    assert 200 == r.status, r.body
    assert_conforms("get", "/alerts", 200, r.body)
    assert [json.loads(json.dumps(serialize_alert(stored, full=False)))] == r.body["objects"]

    r = api.put(M + f"alerts/{alert_id}", {"name": "ANC reminders v2"})
    assert 200 == r.status, r.body
    assert_conforms("put", "/alerts/{alert_id}", 200, r.body)

    r = api.call("PATCH", M + f"alerts/{alert_id}", {"name": "ANC reminders v3"})
    assert 200 == r.status, r.body
    assert_conforms("patch", "/alerts/{alert_id}", 200, r.body)

    r = api.get(M + f"contacts/{cid}/upcoming", limit=3)
    assert 200 == r.status, r.body
    assert_conforms("get", "/contacts/{contact_id}/upcoming", 200, r.body)
    assert 3 == len(r.body["objects"])
    assert [UPCOMING_FIELDS] * 3 == [set(row) for row in r.body["objects"]]
    assert json.loads(json.dumps(upcoming(api.project, cid, 3))) == r.body["objects"]

    r = api.post(M + f"alerts/{alert_id}/deactivate")
    assert 200 == r.status, r.body
    assert_conforms("post", "/alerts/{alert_id}/deactivate", 200, r.body)

    r = api.post(M + f"alerts/{alert_id}/dry-run?days=3")
    assert 200 == r.status, r.body
    assert_conforms("post", "/alerts/{alert_id}/dry-run", 200, r.body)
    assert 4 == len(r.body["per_day"])

    r = api.post(M + f"alerts/{alert_id}/activate")
    assert 200 == r.status, r.body
    assert_conforms("post", "/alerts/{alert_id}/activate", 200, r.body)

    r = api.delete(M + f"alerts/{alert_id}")
    assert (204, b"") == (r.status, r.raw)

    r = api.get(M + f"alerts/{alert_id}")
    assert 404 == r.status
    assert_conforms("get", "/alerts/{alert_id}", 404, r.body)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "days must be between 1 and 90"),
        ("91", "days must be between 1 and 90"),
        ("abc", "days must be an integer"),
        ("", "days must be an integer"),
    ],
)
def test_dry_run_days_bounds_are_unchanged(api: Api, value: str, message: str) -> None:
    cid = case(api, phone="254700000001")
    alert_id = api.post(M + "alerts", broadcast(cid, active=False)).body["id"]
    r = api.post(M + f"alerts/{alert_id}/dry-run?days={value}")
    assert (400, {"error": message, "detail": None}) == (r.status, r.body)
    assert 200 == api.post(M + f"alerts/{alert_id}/dry-run?days=90").status
    assert 200 == api.post(M + f"alerts/{alert_id}/dry-run").status


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "limit must be between 1 and 100"),
        ("101", "limit must be between 1 and 100"),
        ("1.5", "limit must be an integer"),
    ],
)
def test_upcoming_limit_bounds_are_unchanged(api: Api, value: str, message: str) -> None:
    cid = case(api, phone="254700000001")
    r = api.get(M + f"contacts/{cid}/upcoming", limit=value)
    assert (400, {"error": message, "detail": None}) == (r.status, r.body)
    assert {"objects": []} == api.get(M + f"contacts/{cid}/upcoming", limit=100).body
    r = api.get(M + "contacts/nobody/upcoming")
    assert (404, "contact 'nobody' not found") == (r.status, r.body["error"])


def test_the_message_log_filters_by_the_alert_that_sent(api: Api) -> None:
    first = case(api, phone="254700000001")
    second = case(api, phone="254700000002", edd="2027-01-10")
    sent = api.post(M + "alerts", broadcast(first)).body["id"]
    other = api.post(M + "alerts", broadcast(second, name="Other")).body["id"]
    waits = {"type": "alert", "events": [{"wait_minutes": 0}], "iterations": 1}
    cond = api.post(M + "alerts", conditional(schedule=waits)).body
    run_until_idle()

    r = api.get(M + "messages", alert=str(sent))
    assert 200 == r.status, r.body
    assert [("254700000001", first)] == [
        (m["phone_number"], m["contact_id"]) for m in r.body["objects"]
    ]
    assert 1 == r.body["meta"]["total_count"]
    r = api.get(M + "messages", alert=str(other))
    assert [second] == [m["contact_id"] for m in r.body["objects"]]
    r = api.get(M + "messages", alert=str(cond["id"]))
    assert [second] == [m["contact_id"] for m in r.body["objects"]]
    # the filter combines with the others, and an alert that sent nothing matches nothing
    r = api.get(M + "messages", alert=str(sent), contact_id=second)
    assert [] == r.body["objects"]
    r = api.get(M + "messages", alert="999999")
    assert (200, []) == (r.status, r.body["objects"])
    assert 3 == api.get(M + "messages").body["meta"]["total_count"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "alerts", "GET, POST"),
        ("OPTIONS", "alerts", "GET, POST"),
        ("DELETE", "alerts/1/dry-run", "POST"),
        ("POST", "messages", "GET"),
    ],
)
def test_an_unsupported_method_is_a_405_json_error(
    api: Api, method: str, path: str, allowed: str
) -> None:
    for auth in ("default", None):
        r = api.call(method, M + path, auth=auth)
        assert 405 == r.status
        assert "application/json" == r.headers["Content-Type"].split(";")[0]
        assert {
            "error": f"method {method} not allowed",
            "detail": {"allowed": allowed.split(", ")},
        } == r.body
        assert allowed == r.headers["Allow"]
