"""A refused save or activation changes nothing: no alert row, no activation half done."""

from __future__ import annotations

from typing import Any

from casereach.alerts.models import Alert, ScheduleInstance
from casereach.testing.world import Api, case_body

M = "/a/{project}/api/messaging/v1/"
V2 = "/a/{project}/api/case/v2/"


def broadcast(*recipients: dict[str, Any], active: bool = True) -> dict[str, Any]:
    return {
        "name": "Clinic closed",
        "kind": "broadcast",
        "active": active,
        "content": {"sms": {"en": "Clinic closed, {recipient.name}"}},
        "schedule": {"type": "immediate"},
        "recipients": list(recipients),
    }


def a_case(api: Api) -> str:
    r = api.post(V2, case_body(case_type="mother", phone="254712345678"))
    assert 200 == r.status, r.body
    cid: str = r.body["case"]["case_id"]
    return cid


def test_an_active_broadcast_to_an_unknown_worker_is_refused_and_not_stored(api: Api) -> None:
    r = api.post(M + "alerts", broadcast({"type": "worker", "id": "nobody"}))
    assert (400, "recipient worker 'nobody' not found") == (r.status, r.body["error"])
    assert 0 == Alert.objects.count()
    assert [] == api.get(M + "alerts").body["objects"]


def test_an_inactive_broadcast_to_an_unknown_case_is_refused_at_save(api: Api) -> None:
    known = a_case(api)
    body = broadcast({"type": "case", "id": known}, {"type": "case", "id": "gone"}, active=False)
    r = api.post(M + "alerts", body)
    assert (400, "recipient case 'gone' not found") == (r.status, r.body["error"])
    assert 0 == Alert.objects.count()


def test_an_edit_naming_an_unknown_worker_changes_nothing(api: Api) -> None:
    cid = a_case(api)
    r = api.post(M + "alerts", broadcast({"type": "case", "id": cid}))
    assert 201 == r.status, r.body
    alert_id, version = r.body["id"], r.body["version"]
    r = api.call("PATCH", M + f"alerts/{alert_id}", {"recipients": [{"type": "worker", "id": "x"}]})
    assert 400 == r.status, r.body
    after = api.get(M + f"alerts/{alert_id}").body
    assert (version, [{"type": "case", "id": cid}]) == (
        after["version"],
        [{k: v for k, v in x.items() if v is not None} for x in after["recipients"]],
    )
    assert 1 == ScheduleInstance.objects.count()
