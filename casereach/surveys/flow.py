"""Which question comes next, and what each message says (pure: no Django, no database).

This is what sessions build on: they hold the answers given so far and call
:func:`next_question`, :func:`question_text`, :func:`retry_text` and :func:`closing_text`;
:func:`properties_to_write` says what goes to the case.

Rendering uses the alert template grammar (``alerts.templates``: ``{case.name}``,
``{case.<property>}``, ``{case.owner.name}``, ``{case.parent.<property>}``,
``{recipient.name}``) plus ``{answer.<id>}``: the display form of an earlier answer (the
choice's label in the contact's language, a date as YYYY-MM-DD, a phone number with ``+``),
``(?)`` when that question was not answered.

Choices: a select question's prompt gets its choices appended as ``1 Yes 2 No`` (number,
space, label in the contact's language; a space between choices), after one space, unless
the rendered prompt already shows every choice's label as whole words (compared with
``textcheck.fold``), so a prompt that lists them itself in another style is sent as written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TypeAlias

from casereach.alerts.templates import UNKNOWN, Placeholder, RenderContext, parse_template, render
from casereach.surveys.answers import Answer, pick_text
from casereach.surveys.conditions import evaluate
from casereach.surveys.spec import Question, SurveySpec
from casereach.surveys.textcheck import ANSWER_PREFIX, fold

# Question id → the answer given, or None when the question was skipped (after too many
# invalid replies, with on_max_retries "skip"). Questions hidden by show_if are absent.
Answers: TypeAlias = Mapping[str, Answer | None]


def _given(answers: Answers) -> dict[str, str]:
    """The stored values of the questions answered (not skipped, not blank)."""
    return {qid: a.value for qid, a in answers.items() if a is not None and a.value != ""}


def is_shown(
    spec: SurveySpec, question: Question, answers: Answers, case_properties: Mapping[str, str]
) -> bool:
    """Whether ``question``'s show_if holds (a question without one is always shown)."""
    condition = question.condition()
    if condition is None:
        return True
    multi = frozenset(q.id for q in spec.questions if q.type == "multi_select")
    return evaluate(condition, _given(answers), case_properties, multi)


def next_question(
    spec: SurveySpec,
    answers: Answers,
    case_properties: Mapping[str, str],
    *,
    after: str | None = None,
) -> Question | None:
    """The next question to ask, or ``None`` when the survey is over.

    The first question that comes after ``after`` (a question id; when not given, the last
    question in ``answers``, or the start when ``answers`` is empty), is not already in
    ``answers``, and whose show_if holds on the answers so far and ``case_properties`` (the
    case's current properties; ``case.name`` is not one).
    """
    ids = [q.id for q in spec.questions]
    if after is None and answers:
        after = max(answers, key=lambda qid: ids.index(qid) if qid in ids else -1)
    start = ids.index(after) + 1 if after in ids else 0
    for question in spec.questions[start:]:
        if question.id in answers:
            continue
        if is_shown(spec, question, answers, case_properties):
            return question
    return None


@functools.lru_cache(maxsize=1024)
def _names_answers(text: str) -> bool:
    """Whether ``text`` has a placeholder that only an answer fills (``{answer.…}``, or a
    name the alert templates do not know)."""
    return any(isinstance(p, Placeholder) and p.scope == "unknown" for p in parse_template(text))


def _render(text: str, ctx: RenderContext, answers: Answers) -> str:
    if not _names_answers(text):  # the alert templates' own rendering, in one call
        return render(text, ctx)
    out: list[str] = []
    for part in parse_template(text):
        if isinstance(part, Placeholder) and part.scope == "unknown":
            name = part.name
            answer = (
                answers.get(name[len(ANSWER_PREFIX) :]) if name.startswith(ANSWER_PREFIX) else None
            )
            out.append(answer.display if answer is not None and answer.display.strip() else UNKNOWN)
        else:
            out.append(render([part], ctx))
    return "".join(out)


def render_text(
    texts: Mapping[str, str], language: str, ctx: RenderContext, answers: Answers
) -> str:
    """One of the survey's texts in ``language`` (see ``answers.pick_text`` for the fallback)
    with its placeholders filled."""
    return _render(pick_text(texts, language), ctx, answers)


def choices_line(question: Question, language: str) -> str:
    """``1 Yes 2 No``: the choices as they are appended to a prompt."""
    return _numbered(tuple(pick_text(c.label, language) for c in question.choices))


@functools.lru_cache(maxsize=1024)
def _label_pattern(label: str) -> re.Pattern[str]:
    """``label`` folded, as whole words ("no" is not in "now"): compiled once per label (a
    bulk start asks thousands of contacts the same question)."""
    return re.compile(rf"(?<!\w){re.escape(fold(label))}(?!\w)")


@functools.lru_cache(maxsize=1024)
def _numbered(labels: tuple[str, ...]) -> str:
    return " ".join(f"{n} {label}" for n, label in enumerate(labels, start=1))


def _with_choices(question: Question, text: str, language: str) -> str:
    if not question.choices:
        return text
    labels = tuple(pick_text(c.label, language) for c in question.choices)
    shown = fold(text)
    if all(_label_pattern(label).search(shown) is not None for label in labels):
        return text
    line = _numbered(labels)  # ``choices_line``, joined once per set of labels
    return f"{text} {line}" if text else line


def question_text(question: Question, language: str, ctx: RenderContext, answers: Answers) -> str:
    """The SMS that asks ``question``: its prompt rendered, choices appended when needed."""
    return _with_choices(question, render_text(question.prompt, language, ctx, answers), language)


def retry_text(question: Question, language: str, ctx: RenderContext, answers: Answers) -> str:
    """The SMS after an invalid reply: the retry prompt (choices appended as for the
    prompt), or the question again when the question has no retry prompt."""
    if not question.retry_prompt:
        return question_text(question, language, ctx, answers)
    text = render_text(question.retry_prompt, language, ctx, answers)
    return _with_choices(question, text, language)


def closing_text(spec: SurveySpec, language: str, ctx: RenderContext, answers: Answers) -> str:
    """The closing message ("" when the survey has none)."""
    return render_text(spec.closing, language, ctx, answers) if spec.closing else ""


def properties_to_write(spec: SurveySpec, answers: Answers) -> dict[str, str]:
    """Case property → value for every answered question that names one, in question order
    (skipped, hidden and blank answers write nothing)."""
    given = _given(answers)
    return {
        q.case_property: given[q.id]
        for q in spec.questions
        if q.case_property is not None and q.id in given
    }
