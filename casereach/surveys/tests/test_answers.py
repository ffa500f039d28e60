"""The answer engine: replies per type, constraints, and properties of the parser."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.surveys.answers import Answer, Invalid, parse
from casereach.surveys.spec import Question

CHOICES = [
    {"value": "yes", "label": {"en": "Yes", "sw": "Ndiyo"}},
    {"value": "no", "label": {"en": "No", "sw": "Hapana"}},
    {"value": "not_sure", "label": {"en": "Not sure", "sw": "Sijui"}},
    {"value": "cafe", "label": {"en": "Café", "sw": "Kahawa"}},
]


def question(kind: str, **over: Any) -> Question:
    data: dict[str, Any] = {"id": "q", "type": kind, "prompt": {"en": "?"}, **over}
    if kind.endswith("select") and "choices" not in over:
        data["choices"] = CHOICES
    return Question.model_validate(data)


def ok(value: str, display: str | None = None) -> Answer:
    return Answer(value, value if display is None else display)


@pytest.mark.parametrize(
    ("kind", "over", "reply", "expected"),
    [
        ("integer", {}, "12", ok("12")),
        ("integer", {}, "  12 ", ok("12")),
        ("integer", {}, "007", ok("7")),
        ("integer", {}, "-3", ok("-3")),
        ("integer", {}, "12.5", Invalid("the reply is not a whole number")),
        ("integer", {}, "twelve", Invalid("the reply is not a whole number")),
        (
            "integer",
            {"constraints": {"min": 0, "max": 60}},
            "61",
            Invalid("the number must be at most 60"),
        ),
        ("integer", {"constraints": {"min": 0}}, "-1", Invalid("the number must be at least 0")),
        ("decimal", {}, "12.5", ok("12.5")),
        ("decimal", {}, "12,5", ok("12.5")),
        ("decimal", {}, "12.50", ok("12.5")),
        ("decimal", {}, "-0.0", ok("0")),
        ("decimal", {}, "3", ok("3")),
        ("decimal", {}, "1,234.5", Invalid("the reply is not a number")),
        (
            "decimal",
            {"constraints": {"min": 0.5}},
            "0.4",
            Invalid("the number must be at least 0.5"),
        ),
        ("date", {}, "2026-03-31", ok("2026-03-31")),
        ("date", {}, "31/3/2026", ok("2026-03-31")),
        ("date", {}, "31.03.2026", ok("2026-03-31")),
        ("date", {}, "5-1-2027", ok("2027-01-05")),
        (
            "date",
            {},
            "31/02/2026",
            Invalid("the reply is not a date (use e.g. 2026-03-31 or 31/3/2026)"),
        ),
        (
            "date",
            {},
            "31/3/26",
            Invalid("the reply is not a date (use e.g. 2026-03-31 or 31/3/2026)"),
        ),
        (
            "date",
            {"constraints": {"max": "2026-12-31"}},
            "1/1/2027",
            Invalid("the date must be on or before 2026-12-31"),
        ),
        ("single_select", {}, "2", ok("no", "No")),
        ("single_select", {}, "2.", ok("no", "No")),
        ("single_select", {}, " yes ", ok("yes", "Yes")),
        ("single_select", {}, "NDIYO", ok("yes", "Yes")),
        ("single_select", {}, "cafe", ok("cafe", "Café")),
        ("single_select", {}, "not   SURE", ok("not_sure", "Not sure")),
        ("single_select", {}, "5", Invalid("the reply is not one of the 4 choices")),
        ("single_select", {}, "maybe", Invalid("the reply is not one of the 4 choices")),
        ("multi_select", {}, "1 3", ok("yes not_sure", "Yes, Not sure")),
        ("multi_select", {}, "3,1", ok("yes not_sure", "Yes, Not sure")),
        ("multi_select", {}, "not sure, cafe", ok("not_sure cafe", "Not sure, Café")),
        ("multi_select", {}, "1 1 yes", ok("yes", "Yes")),
        ("multi_select", {}, "1 7", Invalid("'7' is not one of the 4 choices")),
        ("phone", {}, "+254 712 345 678", ok("254712345678", "+254712345678")),
        ("phone", {}, "0712345678", ok("254712345678", "+254712345678")),
        ("phone", {}, "12ab", Invalid("the reply is not a phone number (not_digits)")),
        ("text", {}, "  at  the clinic ", ok("at the clinic")),
        ("text", {"constraints": {"regex": "[A-Z]{2}\\d{4}"}}, "AB1234", ok("AB1234")),
        (
            "text",
            {"constraints": {"regex": "[A-Z]{2}\\d{4}"}},
            "AB12345",
            Invalid("the reply does not have the expected form"),
        ),
        ("text", {}, "   ", Invalid("an answer is required")),
        ("text", {"constraints": {"required": False}}, "   ", ok("")),
        ("integer", {"constraints": {"required": False}}, "", ok("")),
    ],
)
def test_replies(kind: str, over: dict[str, Any], reply: str, expected: Answer | Invalid) -> None:
    assert expected == parse(question(kind, **over), reply, "en", default_country="KE")


def test_labels_in_the_contacts_language_are_shown() -> None:
    assert ok("yes", "Ndiyo") == parse(question("single_select"), "yes", "sw")


KINDS = ["text", "integer", "decimal", "date", "single_select", "multi_select", "phone"]


@given(kind=st.sampled_from(KINDS), text=st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_any_text(kind: str, text: str) -> None:
    result = parse(question(kind), text, "en", default_country="KE")
    assert isinstance(result, Answer | Invalid)


CONSTRAINED = [
    question("text", constraints={"regex": "[A-Z]{2}\\d{4}", "required": False}),
    question("integer", constraints={"min": -5, "max": 60}),
    question("decimal", constraints={"min": 0.5, "max": 8}),
    question("date", constraints={"min": "2020-01-01", "max": "2030-12-31"}),
    question("multi_select", constraints={"required": False}),
]


@given(index=st.integers(0, len(CONSTRAINED) - 1), text=st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_never_raises_with_constraints(index: int, text: str) -> None:
    result = parse(CONSTRAINED[index], text, "sw")
    assert isinstance(result, Answer | Invalid)


@given(
    kind=st.sampled_from(["integer", "decimal", "single_select", "multi_select", "date"]),
    text=st.from_regex(r"\s*[-+]?[0-9.,/ ]{1,25}\s*", fullmatch=True),
)
@settings(max_examples=300, deadline=None)
def test_never_raises_on_number_like_text(kind: str, text: str) -> None:
    assert isinstance(parse(question(kind), text, "en"), Answer | Invalid)


@given(number=st.integers(min_value=-(10**17), max_value=10**17))
def test_integer_round_trip(number: int) -> None:
    assert ok(str(number)) == parse(question("integer"), str(number), "en")


@given(
    number=st.decimals(
        min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=6, allow_nan=False
    )
)
def test_decimal_round_trip(number: Decimal) -> None:
    first = parse(question("decimal"), format(number, "f"), "en")
    assert isinstance(first, Answer)
    assert number == Decimal(first.value)
    assert first == parse(question("decimal"), first.value, "en")
    assert first == parse(question("decimal"), first.value.replace(".", ","), "en")
