"""Question order with show_if, rendering, and playing a survey against replies."""

from __future__ import annotations

from typing import Any

from casereach.alerts.templates import RenderContext
from casereach.surveys.answers import Answer
from casereach.surveys.flow import next_question, properties_to_write, question_text
from casereach.surveys.preview import play
from casereach.surveys.spec import SurveySpec, survey_problems
from casereach.testing.surveys import survey_body

AMINA = RenderContext(case_name="Amina")


def spec(body: dict[str, Any] | None = None) -> SurveySpec:
    parsed, found = survey_problems(body or survey_body(), ["en", "sw"])
    assert [] == found
    assert parsed is not None
    return parsed


def ids_in_order(s: SurveySpec, answers: dict[str, Answer | None]) -> str | None:
    q = next_question(s, answers, {})
    return None if q is None else q.id


def test_show_if_decides_the_next_question() -> None:
    s = spec()
    assert "took" == ids_in_order(s, {})
    assert "why_not" == ids_in_order(s, {"took": Answer("no", "No")})
    assert "days" == ids_in_order(s, {"took": Answer("yes", "Yes")})
    answers: dict[str, Answer | None] = {"took": Answer("yes", "Yes"), "days": Answer("40", "40")}
    assert "visit" == ids_in_order(s, answers)
    answers["visit"] = Answer("2027-01-05", "2027-01-05")
    assert None is ids_in_order(s, answers)


def test_a_skipped_question_counts_as_missing_in_conditions() -> None:
    s = spec()
    answers: dict[str, Answer | None] = {"took": Answer("yes", "Yes"), "days": None}
    assert "visit" == ids_in_order(s, answers)  # weight needs days < 29


def test_case_properties_in_show_if() -> None:
    body = survey_body()
    body["questions"][2]["show_if"] = {
        "any": [
            {"ref": "case.delivered", "op": "eq", "value": "yes"},
            {"ref": "case.edd", "op": "lt", "value": "2026-01-01"},
        ]
    }
    s = spec(body)
    yes: dict[str, Answer | None] = {"took": Answer("yes", "Yes")}
    assert "days" == next_question(s, yes, {"delivered": "yes"}).id  # type: ignore[union-attr]
    assert "days" == next_question(s, yes, {"edd": "2025-12-01"}).id  # type: ignore[union-attr]
    assert "visit" == next_question(s, yes, {"edd": "2026-02-01"}).id  # type: ignore[union-attr]


def test_choices_are_appended_unless_the_prompt_lists_them() -> None:
    body = survey_body()
    s = spec(body)
    assert "Hello Amina. Did you take your medicine today? 1 Yes 2 No" == question_text(
        s.questions[0], "en", AMINA, {}
    )
    body["questions"][0]["prompt"]["en"] = "Medicine today? Reply YES or NO"
    s = spec(body)
    assert "Medicine today? Reply YES or NO" == question_text(s.questions[0], "en", AMINA, {})
    body["questions"][0]["prompt"]["en"] = "Yesterday or now?"  # not whole words
    s = spec(body)
    assert "Yesterday or now? 1 Yes 2 No" == question_text(s.questions[0], "en", AMINA, {})


def test_unanswered_answer_placeholder_renders_unknown() -> None:
    t = play(spec(), ["1", "20", "", "NO DATE"], language="en", ctx=AMINA)
    assert "waiting" == t.status
    assert "visit" == t.current_question
    assert {} == t.properties  # write_mode end: nothing until the end


def test_the_whole_survey_in_swahili_with_an_invalid_answer_and_a_skip() -> None:
    replies = ["3", "hapana", "9", "9", "70", "12", "3,25", "5/1/2027", "extra"]
    t = play(spec(), replies, language="sw", ctx=AMINA)
    assert "completed" == t.status
    assert [
        ("survey", "Habari Amina. Umekunywa dawa leo? 1 Ndiyo 2 Hapana"),
        ("contact", "3"),
        ("survey", "Tafadhali jibu 1 au 2. 1 Ndiyo 2 Hapana"),
        ("contact", "hapana"),
        ("survey", "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha"),
        ("contact", "9"),
        ("survey", "Kwa nini? 1 Nilisahau 2 Madhara 3 Imeisha"),
        ("contact", "9"),
        ("survey", "Ni siku ngapi tangu kujifungua?"),
        ("contact", "70"),
        ("survey", "Tafadhali tuma namba kutoka 0 hadi 60."),
        ("contact", "12"),
        ("survey", "Uzito wa mtoto kwa kilo?"),
        ("contact", "3,25"),
        ("survey", "Amina, ziara yako ijayo ni lini? (siku/mwezi/mwaka)"),
        ("contact", "5/1/2027"),
        ("survey", "Asante Amina. Ziara ijayo: 2027-01-05."),
    ] == [(m["from"], m["text"]) for m in t.messages]
    assert ["why_not"] == t.as_json()["skipped"]
    assert {
        "took_medicine": "no",
        "days_since_birth": "12",
        "baby_weight": "3.25",
        "next_visit": "2027-01-05",
    } == t.properties
    assert 1 == t.unused_replies


def test_too_many_invalid_replies_fail_the_survey() -> None:
    t = play(spec(), ["x", "y", "z", "w", "1"], language="en", ctx=AMINA)
    assert "failed" == t.status
    assert ["invalid"] * 4 == [m["result"] for m in t.messages if m["from"] == "contact"]
    assert 1 == t.unused_replies
    assert {} == t.properties


def test_per_answer_writes_what_was_accepted_even_when_it_fails() -> None:
    body = survey_body(settings={"write_mode": "per_answer"})
    t = play(spec(body), ["1", "x", "x", "x", "x"], language="en", ctx=AMINA)
    assert "failed" == t.status
    assert {"took_medicine": "yes"} == t.properties


def test_properties_skip_blank_and_skipped_answers() -> None:
    s = spec()
    answers: dict[str, Answer | None] = {
        "took": Answer("yes", "Yes"),
        "days": None,
        "weight": Answer("", ""),
    }
    assert {"took_medicine": "yes"} == properties_to_write(s, answers)
