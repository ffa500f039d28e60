"""The v2 list's ``query`` parameter (a safe subset of case-search XPath)."""

from __future__ import annotations

import pytest

from casereach.testing.world import Api, case_body

V2 = "/a/{project}/api/case/v2/"


@pytest.fixture
def cases(api: Api) -> Api:
    api.post(V2, case_body(name="Mattie Ross", alias="Mattie", tags="rifle horse"))
    api.post(V2, case_body(name="Rooster Cogburn", alias="Rooster", tags="horse"))
    api.post(V2, case_body(name="LaBoeuf", case_type="ranger", alias="Texan", age="35"))
    return api


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('(alias="Rooster" or name="Mattie Ross")', ["Mattie Ross", "Rooster Cogburn"]),
        ("alias = 'Texan'", ["LaBoeuf"]),
        ('@case_type="ranger"', ["LaBoeuf"]),
        ('alias!="Texan" and @status="open"', ["Mattie Ross", "Rooster Cogburn"]),
        ('not(alias="Texan")', ["Mattie Ross", "Rooster Cogburn"]),
        ('selected(tags, "rifle")', ["Mattie Ross"]),
        ('selected(tags, "horse rifle")', ["Mattie Ross", "Rooster Cogburn"]),
        ('selected-all(tags, "horse rifle")', ["Mattie Ross"]),
        ('age="35"', ["LaBoeuf"]),
        ('age=""', ["Mattie Ross", "Rooster Cogburn"]),
        ('alias > "R"', ["Rooster Cogburn", "LaBoeuf"]),
    ],
)
def test_query_matches(cases: Api, query: str, names: list[str]) -> None:
    r = cases.get(V2, query=query)
    assert 200 == r.status, r.body
    assert sorted(names) == sorted(c["case_name"] for c in r.body["cases"])


@pytest.mark.parametrize(
    "query",
    [
        'alias="x" or',
        "(alias='x'",
        "alias ~ 'x'",
        "",
        '"x"="y"',
        "a=b",
        "@unknown='x'",
        "(" * 40 + "a='x'" + ")" * 40,
    ],
)
def test_bad_query_is_400(cases: Api, query: str) -> None:
    r = cases.get(V2, query=query)
    assert 400 == r.status
    assert r.body["error"].startswith("Bad query: ")
