"""The definition of an SMS survey (issue 20), validated in one place (pure: no database).

Stored whole in ``Survey.definition``. Shapes are checked by pydantic; everything that needs
the whole survey or the project (languages, templates, references to earlier questions,
constraints per type) by :func:`check_definition`. Every problem is reported with its path,
e.g. ``questions[2].choices[0].label[sw]: is blank``. See docs/surveys.md for the format.

Texts (prompts, retry prompts, choice labels, the closing message, the no-reply message) are
maps language → text. When saved, each must have a non-blank text for every project language
and no other language; a survey stored before the project gained a language still loads, and
the engine falls back as ``answers.pick_text`` says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from casereach.alerts.regexguard import regex_problem
from casereach.cases.changes import valid_xml_name
from casereach.core.errors import BadRequest
from casereach.surveys.conditions import Condition, ConditionError, compares, parse_condition
from casereach.surveys.textcheck import check_texts, fold

QuestionType = Literal[
    "text", "integer", "decimal", "date", "single_select", "multi_select", "phone"
]
SELECTS = ("single_select", "multi_select")
NUMBERS = ("integer", "decimal")
MAX_QUESTIONS = 100
MAX_CHOICES = 50
MAX_REGEX = 500
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CHOICE_VALUE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_NUMBER = re.compile(r"^-?\d{1,18}(\.\d{1,12})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBERED = re.compile(r"\(?\d+[.)]?")  # how a reply names a choice by its number

Texts = dict[str, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Choice(_Strict):
    """One option of a select: ``value`` is stored in the case property, ``label`` shown."""

    value: str
    label: Texts

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if not _CHOICE_VALUE.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '_' or '-' (no spaces: a multi_select stores "
                "its values separated by spaces)"
            )
        return value


class Constraints(_Strict):
    """``min``/``max``: numbers for integer/decimal, YYYY-MM-DD for date; ``regex`` for text
    (the whole reply must match)."""

    required: bool = True
    min: str | int | float | None = None
    max: str | int | float | None = None
    regex: str | None = None

    @field_validator("min", "max", mode="before")
    @classmethod
    def _bound_shape(cls, value: object) -> object:
        # One message rather than pydantic's one per member of the union.
        if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
            return value
        raise ValueError("must be a number, or a date as YYYY-MM-DD")


class Question(_Strict):
    id: str
    type: QuestionType
    prompt: Texts
    choices: list[Choice] = Field(default_factory=list, max_length=MAX_CHOICES)
    constraints: Constraints = Field(default_factory=Constraints)
    retry_prompt: Texts = Field(default_factory=dict)
    max_retries: int = Field(default=3, ge=0, le=10)
    on_max_retries: Literal["fail", "skip"] = "fail"
    case_property: str | None = None
    show_if: dict[str, Any] | None = None
    _condition: Condition | None = PrivateAttr(default=None)

    def condition(self) -> Condition | None:
        """``show_if`` parsed (once); ``None`` when the question is always shown. Raises
        ConditionError only for a definition that was never checked (``check_definition``)."""
        if self.show_if is None:
            return None
        if self._condition is None:
            self._condition = parse_condition(self.show_if)
        return self._condition

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value) or value.startswith("__"):
            raise ValueError(
                "must be an identifier: 1-64 letters, digits and '_', not starting with a "
                "digit or '__'"
            )
        return value

    @field_validator("case_property")
    @classmethod
    def _property(cls, value: str | None) -> str | None:
        if value is not None and (not valid_xml_name(value) or len(value) > 255):
            raise ValueError(f"{value!r} is not a valid case property name")
        return value


class NoReply(_Strict):
    """What happens when ``expect_reply_within_minutes`` passes with no reply (data only:
    sessions run it). ``set_property``: ``property`` = ``value`` on the case;
    ``message_owner``: ``message`` to the case owner; ``other_gateway``: the same survey again
    through ``gateway``."""

    action: Literal["set_property", "message_owner", "other_gateway"]
    property: str | None = None
    value: str | None = None
    message: Texts = Field(default_factory=dict)
    gateway: str | None = None


class Settings(_Strict):
    write_mode: Literal["end", "per_answer"] = "end"
    reask_after_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    reask_max: int = Field(default=2, ge=0, le=10)
    expire_after_minutes: int = Field(default=7 * 24 * 60, ge=1, le=30 * 24 * 60)
    write_on_expiry: bool = False
    expect_reply_within_minutes: int | None = Field(default=None, ge=1, le=30 * 24 * 60)
    no_reply: NoReply | None = None


class SurveySpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)
    closing: Texts = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)


# -- whole-survey checks ---------------------------------------------------------------------


def _check_choices(q: Question, where: str, languages: Sequence[str], out: list[str]) -> None:
    if q.type not in SELECTS:
        if q.choices:
            out.append(f"{where}.choices: only single_select and multi_select have choices")
        return
    if len(q.choices) < 2:
        out.append(f"{where}.choices: a {q.type} needs at least 2 choices")
    seen_values: set[str] = set()
    seen_labels: dict[tuple[str, str], int] = {}
    for i, choice in enumerate(q.choices):
        at = f"{where}.choices[{i}]"
        if choice.value in seen_values:
            out.append(f"{at}.value: {choice.value!r} repeats an earlier choice's value")
        seen_values.add(choice.value)
        out.extend(check_texts(choice.label, f"{at}.label", languages, answer_ids=None))
        for lang, label in choice.label.items():
            key = fold(label)
            if "{" in label or "}" in label:
                out.append(f"{at}.label[{lang}]: a label is plain text, without placeholders")
            elif _NUMBERED.fullmatch(key):
                out.append(f"{at}.label[{lang}]: {label!r} reads as a choice number")
            elif q.type == "multi_select" and ("," in label or ";" in label):
                out.append(
                    f"{at}.label[{lang}]: a multi_select label cannot contain ',' or ';' "
                    "(they separate the choices in a reply)"
                )
            elif (lang, key) in seen_labels:
                first = seen_labels[(lang, key)]
                out.append(f"{at}.label[{lang}]: {label!r} is also choice {first + 1}'s label")
            seen_labels.setdefault((lang, key), i)


def _bound(value: str | int | float, q: Question, where: str, out: list[str]) -> object:
    text = value if isinstance(value, str) else str(value)
    if q.type in NUMBERS:
        if isinstance(value, bool) or not _NUMBER.match(text.strip()):
            out.append(f"{where}: {value!r} is not a number")
            return None
        number = Decimal(text.strip())
        if q.type == "integer" and number != number.to_integral_value():
            out.append(f"{where}: an integer question's bound must be a whole number")
        return number
    if q.type == "date":
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            out.append(f"{where}: {value!r} is not a date: use YYYY-MM-DD")
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            out.append(f"{where}: {value!r} is not a date")
            return None
    out.append(f"{where}: only integer, decimal and date questions take min and max")
    return None


def _check_constraints(q: Question, where: str, out: list[str]) -> None:
    c = q.constraints
    low = _bound(c.min, q, f"{where}.constraints.min", out) if c.min is not None else None
    high = _bound(c.max, q, f"{where}.constraints.max", out) if c.max is not None else None
    if low is not None and high is not None and low > high:  # type: ignore[operator]  # both Decimal or both date
        out.append(f"{where}.constraints: min is above max")
    if c.regex is not None:
        at = f"{where}.constraints.regex"
        if q.type != "text":
            out.append(f"{at}: only text questions take a regex")
        elif not c.regex or len(c.regex) > MAX_REGEX:
            out.append(f"{at}: must be 1 to {MAX_REGEX} characters")
        else:
            try:
                re.compile(c.regex)
            except re.error as exc:
                out.append(f"{at}: invalid regex {c.regex!r}: {exc}")
                return
            problem = regex_problem(c.regex)
            if problem is not None:
                out.append(f"{at}: {problem}")


def _check_show_if(q: Question, where: str, earlier: set[str], out: list[str]) -> None:
    if q.show_if is None:
        return
    try:
        condition = parse_condition(q.show_if, f"{where}.show_if")
    except ConditionError as exc:
        out.append(str(exc))
        return
    for c in compares(condition):
        if c.scope == "case" and not valid_xml_name(c.name):
            out.append(f"{c.path}.ref: {c.name!r} is not a valid case property name")
        if c.scope == "answer" and c.name not in earlier:
            out.append(
                f"{c.path}.ref: answer.{c.name} is not an earlier question "
                "(show_if may only use the answers to questions before this one)"
            )


def _check_no_reply(s: Settings, languages: Sequence[str], out: list[str]) -> None:
    nr = s.no_reply
    if nr is None:
        return
    where = "settings.no_reply"
    if s.expect_reply_within_minutes is None:
        out.append(f"{where}: needs settings.expect_reply_within_minutes")
    if nr.action == "set_property":
        if not nr.property or not valid_xml_name(nr.property):
            out.append(f"{where}.property: set_property needs a valid case property name")
        if nr.value is None:
            out.append(f"{where}.value: set_property needs a value")
    elif nr.action == "message_owner":
        out.extend(check_texts(nr.message, f"{where}.message", languages, answer_ids=set()))
    elif not nr.gateway or not nr.gateway.strip():
        out.append(f"{where}.gateway: other_gateway needs the gateway's name")


def check_definition(spec: SurveySpec, languages: Sequence[str]) -> list[str]:
    """Every problem of a parsed survey, each as ``path: message``; ``[]`` when it is valid."""
    out: list[str] = []
    earlier: set[str] = set()
    properties: dict[str, int] = {}
    for i, q in enumerate(spec.questions):
        where = f"questions[{i}]"
        if q.id in earlier:
            out.append(f"{where}.id: {q.id!r} repeats an earlier question's id")
        out.extend(check_texts(q.prompt, f"{where}.prompt", languages, answer_ids=earlier))
        if q.retry_prompt:
            out.extend(
                check_texts(q.retry_prompt, f"{where}.retry_prompt", languages, answer_ids=earlier)
            )
        _check_choices(q, where, languages, out)
        _check_constraints(q, where, out)
        _check_show_if(q, where, earlier, out)
        if q.case_property is not None:
            first = properties.setdefault(q.case_property, i)
            if first != i:
                out.append(
                    f"{where}.case_property: {q.case_property!r} is also written by "
                    f"questions[{first}]"
                )
        earlier.add(q.id)
    if spec.closing:
        out.extend(check_texts(spec.closing, "closing", languages, answer_ids=earlier))
    _check_no_reply(spec.settings, languages, out)
    return out


def error_path(loc: Sequence[int | str]) -> str:
    """pydantic's ``("questions", 2, "choices", 0, "label")`` as ``questions[2].choices[0].label``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).startswith("function"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        where = error_path(err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


def survey_problems(data: object, languages: Sequence[str]) -> tuple[SurveySpec | None, list[str]]:
    """(the survey, []) or (None, every problem) for decoded JSON about to be saved."""
    if not isinstance(data, dict):
        return None, ["the survey must be a JSON object"]
    try:
        spec = SurveySpec.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_problems(exc)
    problems = check_definition(spec, languages)
    return (None, problems) if problems else (spec, [])


def validated_survey(data: object, languages: Sequence[str]) -> SurveySpec:
    """A request body as a survey to save, or BadRequest naming the first problems (all of
    them in ``detail``)."""
    spec, problems = survey_problems(data, languages)
    if spec is None:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BadRequest(f"invalid survey: {shown}{more}", {"problems": problems})
    return spec


def load_stored(data: Mapping[str, Any]) -> SurveySpec:
    """A definition read back from the database (shape only: it was fully checked when
    saved, and the project's languages may have changed since)."""
    return SurveySpec.model_validate(data)
