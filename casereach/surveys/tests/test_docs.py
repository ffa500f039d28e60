"""docs/surveys.md stays true: its full example is the one the tests use, and it is valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

from casereach.surveys.conditions import parse_condition
from casereach.surveys.spec import survey_problems
from casereach.testing.surveys import FIVE_QUESTIONS

DOC = Path(__file__).resolve().parents[3] / "docs" / "surveys.md"


def test_the_full_example_is_the_tested_one() -> None:
    section = DOC.read_text().split("## A full example", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block is not None
    example = json.loads(block.group(1))
    assert FIVE_QUESTIONS == example
    assert [] == survey_problems(example, ["en", "sw"])[1]


def test_every_show_if_example_parses() -> None:
    section = DOC.read_text().split("**show_if.**", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block is not None
    first, second = block.group(1).split("\n", 1)
    parse_condition(json.loads(first))
    parse_condition(json.loads(second))
