"""What one event does to a session, decided without the database (``sessions`` writes it).

A session's state is its frozen definition, the answers so far, the current question and
the invalid replies to it. :func:`first_step` starts a session; :func:`reply_step` applies
one reply to the current question with the rules ``preview.play`` follows (an invalid reply
gets the retry text; the ``max_retries + 1``-th in a row fails the session or, with
``on_max_retries: "skip"``, skips the question; after the last question the closing message
goes out and the session is ``completed``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from casereach.alerts.templates import RenderContext
from casereach.surveys.answers import Answer, Invalid, parse
from casereach.surveys.flow import (
    Answers,
    closing_text,
    next_question,
    properties_to_write,
    question_text,
    retry_text,
)
from casereach.surveys.spec import Question, SurveySpec

StepStatus = Literal["active", "completed", "failed"]


@dataclass
class Step:
    """The outcome of one event: what to store, what to send, where the session now is."""

    status: StepStatus
    current: str | None
    retries: int
    send: str = ""  # the SMS to send ("" = none)
    # The answer to record: (question id, the answer or None when skipped).
    recorded: tuple[str, Answer | None] | None = None
    result: str = ""  # accepted | invalid | skipped | failed, for the inbound action
    reason: str = ""  # why a reply was refused
    # Case properties to write now (per_answer: this answer's; end: all, when completed).
    properties: dict[str, str] = field(default_factory=dict)
    new_question: bool = False  # a different question is now current (timers restart)


@dataclass(frozen=True)
class Context:
    """What rendering and parsing need: the session's language, the case, the country."""

    language: str
    render: RenderContext
    case_properties: Mapping[str, str]
    default_country: str | None = None


def _ask_next(
    spec: SurveySpec, answers: Answers, ctx: Context, after: str | None, step: Step
) -> Step:
    question = next_question(spec, answers, ctx.case_properties, after=after)
    if question is None:
        step.status, step.current, step.retries = "completed", None, 0
        step.send = closing_text(spec, ctx.language, ctx.render, answers)
        if spec.settings.write_mode == "end":
            step.properties = properties_to_write(spec, answers)
        return step
    step.status, step.current, step.retries = "active", question.id, 0
    step.send = question_text(question, ctx.language, ctx.render, answers)
    step.new_question = True
    return step


def first_step(spec: SurveySpec, ctx: Context) -> Step:
    """The first question shown (or, when none is, the survey over at once)."""
    return _ask_next(spec, {}, ctx, None, Step("active", None, 0))


def ask_again(spec: SurveySpec, current: str | None, answers: Answers, ctx: Context) -> str:
    """The current question's text (HELP, a re-ask); "" when there is none."""
    question = spec.question(current) if current else None
    if question is None:
        return ""
    return question_text(question, ctx.language, ctx.render, answers)


def reply_step(
    spec: SurveySpec,
    current: Question,
    retries: int,
    answers: Answers,
    text: str,
    ctx: Context,
    *,
    refused: str = "",
) -> Step:
    """``text`` as the reply to ``current`` (``retries`` invalid replies to it so far);
    ``refused``: the reply is invalid for that reason, whatever it says (a WhatsApp tap on
    another survey's button)."""
    result = (
        Invalid(refused)
        if refused
        else parse(current, text, ctx.language, default_country=ctx.default_country)
    )
    given = dict(answers)
    if isinstance(result, Answer):
        given[current.id] = result
        step = Step("active", current.id, 0, recorded=(current.id, result), result="accepted")
        if spec.settings.write_mode == "per_answer":
            step.properties = properties_to_write(spec, {current.id: result})
        return _ask_next(spec, given, ctx, current.id, step)
    retries += 1
    if retries <= current.max_retries:
        send = retry_text(current, ctx.language, ctx.render, answers)
        return Step("active", current.id, retries, send, result="invalid", reason=result.reason)
    if current.on_max_retries == "fail":
        return Step("failed", current.id, retries, result="failed", reason=result.reason)
    given[current.id] = None
    step = Step("active", current.id, 0, recorded=(current.id, None), result="skipped")
    step.reason = result.reason
    return _ask_next(spec, given, ctx, current.id, step)


def expiry_properties(spec: SurveySpec, answers: Answers) -> dict[str, str]:
    """What an expiring session writes when the survey says ``write_on_expiry`` (per_answer
    sessions wrote them already)."""
    if not spec.settings.write_on_expiry or spec.settings.write_mode == "per_answer":
        return {}
    return properties_to_write(spec, answers)


def timers(
    spec: SurveySpec, at: dt.datetime, started: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime, dt.datetime | None]:
    """(first re-ask, expiry, reply due) of a session that starts at ``at``."""
    s = spec.settings
    reask = at + dt.timedelta(minutes=s.reask_after_minutes) if s.reask_max > 0 else None
    expires = started + dt.timedelta(minutes=s.expire_after_minutes)
    due = (
        at + dt.timedelta(minutes=s.expect_reply_within_minutes)
        if s.expect_reply_within_minutes is not None
        else None
    )
    return reask, expires, due
