"""Playing a survey against a list of replies, with nothing stored: the API's preview (and,
later, the builder's). Pure: only the engine (``answers``, ``flow``).

The rules it follows are the ones sessions will follow:

* the first question shown (``flow.next_question``) is sent; each reply answers the
  current question (``answers.parse``);
* an invalid reply gets the retry text; the ``max_retries + 1``-th invalid reply in a row
  ends the survey as ``failed`` or, with ``on_max_retries: "skip"``, skips the question
  (no answer, nothing written) and goes on;
* after the last question the closing message (if any) is sent: ``completed``.

The properties reported are what would have been written to the case by the end of the
replies: every answer's property when ``completed``, or, with ``write_mode: "per_answer"``,
those of the answers accepted so far whatever the status; with ``write_mode: "end"`` a
survey that failed or still waits for a reply writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from casereach.alerts.templates import RenderContext
from casereach.surveys.answers import Answer, parse
from casereach.surveys.flow import (
    closing_text,
    next_question,
    properties_to_write,
    question_text,
    retry_text,
)
from casereach.surveys.spec import Question, SurveySpec

Status = Literal["completed", "failed", "waiting"]


@dataclass
class Transcript:
    """What happened: messages both ways, the answers, the status, what would be written."""

    status: Status = "waiting"
    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, Answer | None] = field(default_factory=dict)
    current_question: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    unused_replies: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "messages": self.messages,
            "answers": {
                qid: None if a is None else {"value": a.value, "display": a.display}
                for qid, a in self.answers.items()
            },
            "skipped": [qid for qid, a in self.answers.items() if a is None],
            "current_question": self.current_question,
            "properties": self.properties,
            "unused_replies": self.unused_replies,
        }


def play(
    spec: SurveySpec,
    replies: Sequence[str],
    *,
    language: str,
    ctx: RenderContext | None = None,
    case_properties: Mapping[str, str] | None = None,
    default_country: str | None = None,
) -> Transcript:
    """The survey played with ``replies`` in order (see the module docstring)."""
    ctx = ctx or RenderContext()
    props = dict(case_properties if case_properties is not None else ctx.case_properties)
    out = Transcript()

    def ask(question: Question | None, *, retry: bool = False) -> None:
        if question is None:
            out.status = "completed"
            out.current_question = None
            closing = closing_text(spec, language, ctx, out.answers)
            if closing:
                out.messages.append({"from": "survey", "text": closing, "question": None})
            return
        out.current_question = question.id
        text = (retry_text if retry else question_text)(question, language, ctx, out.answers)
        out.messages.append({"from": "survey", "text": text, "question": question.id})

    current = next_question(spec, out.answers, props)
    ask(current)
    failures = 0
    for n, reply in enumerate(replies):
        if current is None or out.status != "waiting":
            out.unused_replies = len(replies) - n
            break
        result = parse(current, reply, language, default_country=default_country)
        entry: dict[str, Any] = {"from": "contact", "text": reply, "question": current.id}
        out.messages.append(entry)
        if isinstance(result, Answer):
            entry.update(result="accepted", value=result.value)
            out.answers[current.id] = result
        else:
            failures += 1
            entry.update(result="invalid", reason=result.reason)
            if failures <= current.max_retries:
                ask(current, retry=True)
                continue
            if current.on_max_retries == "fail":
                out.status = "failed"
                out.unused_replies = len(replies) - n - 1
                break
            entry["result"] = "skipped"
            out.answers[current.id] = None
        failures = 0
        current = next_question(spec, out.answers, props, after=current.id)
        ask(current)
    if out.status == "completed" or spec.settings.write_mode == "per_answer":
        out.properties = properties_to_write(spec, out.answers)
    return out
