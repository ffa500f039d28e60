"""Survey questions on WhatsApp (issue 21): a ``single_select`` question goes out as reply
buttons or a list, and a tap answers it. Pure: no database.

- **Sending** (:func:`interactive_payload`): a single-select question with up to
  :data:`MAX_BUTTONS` choices is sent as reply buttons, with up to :data:`MAX_ROWS` as a list;
  with more it stays plain text (``1 Yes 2 No …``), as every other question type does. The
  message's body is the question's text without the appended ``1 Yes 2 No`` (the buttons show
  the choices); each option's title is the choice's label in the session's language, cut to
  WhatsApp's limits by the gateway type (``gateways.types.whatsapp_common``). The message's
  ``text`` stays the SMS rendering, for the log and for a contact who types the answer.
- **Option ids** (:func:`option_id`): ``survey.<session id>.<question id>.<choice value>``:
  the session and the question it was asked for, and the choice.
- **A tap** (:func:`tapped`): the inbound message's reply id (``Message.payload["reply_id"]``)
  read against the session's current question: one of its options → that choice, whatever
  the title says; an id of this shape for another session (another project's, an ended one)
  or another question → refused, never read as a choice; any other id (a template's
  quick-reply payload) → not a survey tap: the text answers as typed text does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from casereach.surveys.answers import pick_text
from casereach.surveys.flow import choices_line
from casereach.surveys.spec import Question

MAX_BUTTONS = 3
MAX_ROWS = 10
PREFIX = "survey."
_ID = re.compile(r"^survey\.(\d{1,20})\.([A-Za-z_][A-Za-z0-9_]{0,63})\.([A-Za-z0-9_-]{1,64})$")


def is_interactive(question: Question | None) -> bool:
    """Whether ``question`` goes out as buttons or a list on WhatsApp."""
    return (
        question is not None
        and question.type == "single_select"
        and 2 <= len(question.choices) <= MAX_ROWS
    )


def option_id(session_id: int, question: Question, value: str) -> str:
    return f"{PREFIX}{session_id}.{question.id}.{value}"


def _body(question: Question, language: str, text: str) -> str:
    """``text`` without the ``1 Yes 2 No`` that ``flow`` appends (the options show them)."""
    line = choices_line(question, language)
    if text == line:
        return text
    if text.endswith(" " + line):
        return text[: -len(line) - 1]
    return text


def interactive_payload(
    session_id: int, question: Question | None, language: str, text: str
) -> dict[str, Any] | None:
    """The ``Message.payload`` of ``text`` asking ``question`` on WhatsApp (its prompt, retry
    prompt or a re-ask), or None when it goes as plain text."""
    if question is None or not text or not is_interactive(question):
        return None
    options = [
        [option_id(session_id, question, c.value), pick_text(c.label, language)]
        for c in question.choices
    ]
    kind = "buttons" if len(options) <= MAX_BUTTONS else "list"
    body = _body(question, language, text)
    return {"interactive": {"kind": kind, "body": body, "options": options, "button": ""}}


@dataclass(frozen=True)
class Tap:
    """What a reply id says for the current question: ``text`` to read as the reply (the
    choice's number), or ``refused`` (why it is not an answer)."""

    text: str = ""
    refused: str = ""


def tapped(payload: Mapping[str, Any] | None, session_id: int, question: Question) -> Tap | None:
    """The tap of an inbound message (see module); None when it is not a survey tap."""
    reply_id = payload.get("reply_id") if isinstance(payload, Mapping) else None
    if not isinstance(reply_id, str) or not reply_id.startswith(PREFIX):
        return None
    found = _ID.match(reply_id)
    if found is None or int(found.group(1)) != session_id:
        return Tap(refused="a button of another survey")
    if found.group(2) != question.id:
        return Tap(refused="a button of another question")
    for n, choice in enumerate(question.choices, start=1):
        if choice.value == found.group(3):
            return Tap(text=str(n))
    return Tap(refused="not a choice of this question")
