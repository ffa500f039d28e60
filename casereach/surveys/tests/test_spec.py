"""Survey definitions: what is refused, with the path of every problem."""

from __future__ import annotations

from typing import Any

import pytest

from casereach.surveys.spec import survey_problems
from casereach.testing.surveys import survey_body

LANGS = ["en", "sw"]


def problems(body: dict[str, Any]) -> list[str]:
    return survey_problems(body, LANGS)[1]


def with_question(index: int, **over: Any) -> dict[str, Any]:
    body = survey_body()
    body["questions"][index].update(over)
    return body


def test_the_example_is_valid() -> None:
    spec, found = survey_problems(survey_body(), LANGS)
    assert [] == found
    assert spec is not None
    assert ["took", "why_not", "days", "weight", "visit"] == [q.id for q in spec.questions]
    assert 240 == spec.settings.reask_after_minutes
    assert 7 * 24 * 60 == spec.settings.expire_after_minutes
    assert 2 == spec.settings.reask_max


@pytest.mark.parametrize(
    ("label", "change", "expected"),
    [
        (
            "choice label blank",
            lambda b: b["questions"][0]["choices"][0]["label"].update(sw=" "),
            "questions[0].choices[0].label[sw]: is blank",
        ),
        (
            "prompt lacks a project language",
            lambda b: b["questions"][2]["prompt"].pop("sw"),
            "questions[2].prompt[sw]: missing (every project language needs a text)",
        ),
        (
            "prompt in a language the project lacks",
            lambda b: b["questions"][2]["prompt"].update(fr="Combien?"),
            "questions[2].prompt[fr]: 'fr' is not one of the project's languages (en, sw)",
        ),
        (
            "duplicate id",
            lambda b: b["questions"][3].update(id="days"),
            "questions[3].id: 'days' repeats an earlier question's id",
        ),
        (
            "show_if on a later question",
            lambda b: b["questions"][1].update(
                show_if={"ref": "answer.visit", "op": "eq", "value": "x"}
            ),
            "questions[1].show_if.ref: answer.visit is not an earlier question (show_if may "
            "only use the answers to questions before this one)",
        ),
        (
            "show_if on itself",
            lambda b: b["questions"][2].update(
                show_if={"all": [{"ref": "answer.days", "op": "gt", "value": 1}]}
            ),
            "questions[2].show_if.all[0].ref: answer.days is not an earlier question (show_if "
            "may only use the answers to questions before this one)",
        ),
        (
            "bad op",
            lambda b: b["questions"][2].update(
                show_if={"ref": "case.edd", "op": "like", "value": "x"}
            ),
            "questions[2].show_if.op: must be one of eq, ne, in, gt, lt",
        ),
        (
            "answer placeholder of a later question",
            lambda b: b["questions"][0]["prompt"].update(en="{answer.days}?"),
            "questions[0].prompt[en]: {answer.days} does not name an earlier question (a text "
            "may show the answers to questions before it)",
        ),
        (
            "template syntax",
            lambda b: b["closing"].update(en="Thanks {case.name"),
            "closing[en]: unclosed placeholder {case.name at 8: missing '}' (there is no brace "
            "escaping; literal braces are not allowed)",
        ),
        (
            "slow regex",
            lambda b: b["questions"].append(
                {
                    "id": "code",
                    "type": "text",
                    "prompt": {"en": "Code?", "sw": "Namba?"},
                    "constraints": {"regex": "(a+)+$"},
                }
            ),
            "questions[5].constraints.regex: regex: nested repetition like (a+)+ can take "
            "exponential time; rewrite it without a repeat inside a repeat (a fixed count such "
            "as {4} inside is fine)",
        ),
        (
            "min above max",
            lambda b: b["questions"][2].update(constraints={"min": 10, "max": 2}),
            "questions[2].constraints: min is above max",
        ),
        (
            "date bound not a date",
            lambda b: b["questions"][4].update(constraints={"min": "31/12/2026"}),
            "questions[4].constraints.min: '31/12/2026' is not a date: use YYYY-MM-DD",
        ),
        (
            "choices on a number",
            lambda b: b["questions"][2].update(choices=b["questions"][0]["choices"]),
            "questions[2].choices: only single_select and multi_select have choices",
        ),
        (
            "numeric label",
            lambda b: b["questions"][0]["choices"][1]["label"].update(en="2"),
            "questions[0].choices[1].label[en]: '2' reads as a choice number",
        ),
        (
            "label repeated up to accents and case",
            lambda b: b["questions"][0]["choices"][1]["label"].update(sw="NDIYÓ"),
            "questions[0].choices[1].label[sw]: 'NDIYÓ' is also choice 1's label",
        ),
        (
            "numbered label",
            lambda b: b["questions"][0]["choices"][0]["label"].update(sw="(3)"),
            "questions[0].choices[0].label[sw]: '(3)' reads as a choice number",
        ),
        (
            "comma in a multi_select label",
            lambda b: b["questions"][1]["choices"][0]["label"].update(en="Forgot, busy"),
            "questions[1].choices[0].label[en]: a multi_select label cannot contain ',' or ';' "
            "(they separate the choices in a reply)",
        ),
        (
            "placeholder in a label",
            lambda b: b["questions"][0]["choices"][0]["label"].update(en="Yes {case.name}"),
            "questions[0].choices[0].label[en]: a label is plain text, without placeholders",
        ),
        (
            "bad case property",
            lambda b: b["questions"][2].update(case_property="xml_days"),
            "questions[2].case_property: 'xml_days' is not a valid case property name",
        ),
        (
            "property written twice",
            lambda b: b["questions"][3].update(case_property="days_since_birth"),
            "questions[3].case_property: 'days_since_birth' is also written by questions[2]",
        ),
        (
            "no reply needs a wait",
            lambda b: b["settings"].update(
                no_reply={"action": "set_property", "property": "unreached", "value": "yes"}
            ),
            "settings.no_reply: needs settings.expect_reply_within_minutes",
        ),
    ],
)
def test_refused_with_the_path(label: str, change: Any, expected: str) -> None:
    body = survey_body()
    change(body)
    found = problems(body)
    assert expected in found, (label, found)


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"id": "2x"}, "questions[2].id: must be an identifier"),
        ({"type": "photo"}, "questions[2].type: Input should be"),
        ({"max_retries": 11}, "questions[2].max_retries: Input should be less than or equal to 10"),
        ({"colour": "red"}, "questions[2].colour: Extra inputs are not permitted"),
        (
            {"constraints": {"min": True}},
            "questions[2].constraints.min: must be a number, or a date as YYYY-MM-DD",
        ),
    ],
)
def test_shape_errors_name_the_path(over: dict[str, Any], expected: str) -> None:
    found = problems(with_question(2, **over))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported() -> None:
    body = survey_body()
    body["questions"][0]["prompt"]["en"] = ""
    body["questions"][2]["constraints"] = {"regex": "x"}
    body["closing"]["sw"] = "{case.__class__}"
    assert [
        "questions[0].prompt[en]: is blank",
        "questions[2].constraints.regex: only text questions take a regex",
        "closing[sw]: unknown placeholder {case.__class__} at 1: names starting with '__' are "
        "not allowed ('__class__')",
    ] == problems(body)


def test_unknown_placeholders_are_refused_not_rendered_as_unknown() -> None:
    body = survey_body()
    body["closing"]["en"] = "Bye {contact.name}"
    found = problems(body)
    assert 1 == len(found)
    assert found[0].startswith("closing[en]: unknown placeholder {contact.name}:")
    assert found[0].endswith("or {answer.<question id>} for an earlier answer")
