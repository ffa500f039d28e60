"""Cases through the case API v2, as a CommCare client makes them (tests only)."""

from __future__ import annotations

from typing import Any

from casereach.testing.world import Api, case_body

CASES = "/a/{project}/api/case/v2/"
NUMBER = "254712345678"


def create_case(api: Api, **kw: Any) -> dict[str, Any]:
    """One case from ``case_body(**kw)``; the case object the API answered with."""
    r = api.post(CASES, case_body(**kw))
    assert 200 == r.status, r.body
    case: dict[str, Any] = r.body["case"]
    return case


def create_case_id(api: Api, **kw: Any) -> str:
    """One case from ``case_body(**kw)``; its id."""
    return str(create_case(api, **kw)["case_id"])


def create_cases(api: Api, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases from full bodies in one bulk request; the case objects, in order."""
    r = api.post(CASES, [{**b, "create": True} for b in bodies])
    assert 200 == r.status, r.body
    cases: list[dict[str, Any]] = r.body["cases"]
    return cases


def mother_case_id(api: Api, **kw: Any) -> str:
    """A case of type ``mother`` (unless ``case_type`` says otherwise); its id."""
    kw.setdefault("case_type", "mother")
    return create_case_id(api, **kw)


def mother_with_phone(api: Api, **props: str) -> str:
    """A ``mother`` case on ``NUMBER`` with ``props``; its id."""
    return create_case_id(api, case_type="mother", phone=NUMBER, **props)
