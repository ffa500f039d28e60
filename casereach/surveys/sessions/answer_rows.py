"""The rows an answer writes, in raw SQL: the inbound hot path (an answer is applied inside
the inbound message's transaction, and the ORM's query building was most of its cost; see
docs/performance.md). Same rows, same locks, same constraints as the ORM calls they replace."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from casereach.cases.models import Case
from casereach.core import bulk, rows
from casereach.surveys.answers import Answer
from casereach.surveys.models import SurveyAnswer, SurveySession
from casereach.surveys.session_queries import (
    ANSWER_CASE_COLUMNS,
    ANSWER_CASE_WIDTH,
    AnswerCase,
    answer_case_of,
    answers_from,
)
from casereach.surveys.session_steps import Step
from casereach.surveys.spec import SurveySpec, load_stored

_SESSION = rows.RawRows(
    SurveySession,
    *(f.attname for f in SurveySession._meta.concrete_fields if f.name != "definition"),
)
_SESSION_SQL = (
    f"SELECT {_SESSION.columns('ss')}, ss.definition FROM {SurveySession._meta.db_table} ss "
    "WHERE ss.id = %s"
)
# What answering a question of a session that goes on changes (``_apply``).
PROGRESS = (
    "current_question",
    "retries",
    "reask_count",
    "next_reask_at",
    "reply_due_at",
    "next_timer_at",
    "last_reply_on",
    "detail",
)


# SQLite (no row locks, its write transaction already serialises): the session, its case and
# names (``session_queries.answer_case``) and its answers so far (ids kept to order them), in
# one statement. PostgreSQL reads the case and answers after the row lock, as before.
_ANSWER_SQL = (
    f"SELECT {_SESSION.columns('ss')}, ss.definition, "
    + ANSWER_CASE_COLUMNS.replace("c_pid", "ss.project_id").replace("c_contact", "ss.contact_id")
    + ", (SELECT json_group_array(json_array(a.id, a.question_id, a.skipped, a.value, "
    f"a.display)) FROM {SurveyAnswer._meta.db_table} a WHERE a.session_id = ss.id) "
    f"FROM {SurveySession._meta.db_table} ss LEFT JOIN {Case._meta.db_table} c "
    "ON c.project_id = ss.project_id AND c.case_id = ss.case_id WHERE ss.id"
)


@dataclass
class ForAnswer:
    """The locked session an inbound message may answer, and what was read with it (None:
    to be read, ``session_queries.answer_case`` and ``answers_of``)."""

    session: SurveySession
    case: AnswerCase | None = None
    answers: dict[str, Answer | None] | None = None


def session_for_answer(session_id: int) -> ForAnswer | None:
    """``locked_session``, with the session's case, names and answers on SQLite."""
    if bulk.has_row_locks():
        session = locked_session(session_id)
        return ForAnswer(session) if session is not None else None
    row = rows.fetch_one(_ANSWER_SQL + " = %s", [session_id])
    return _for_answer(row) if row is not None else None


def sessions_for_answers(session_ids: Sequence[int]) -> dict[int, ForAnswer]:
    """``session_for_answer`` of each session (SQLite), in one statement."""
    marks = ", ".join(["%s"] * len(session_ids))
    found = rows.fetch_all(f"{_ANSWER_SQL} IN ({marks})", list(session_ids))
    return {read.session.pk: read for read in map(_for_answer, found)}


def _for_answer(row: Sequence[Any]) -> ForAnswer:
    end = len(_SESSION.fields) + 1
    session = _session_of(row[:end])
    found = json.loads(row[end + ANSWER_CASE_WIDTH])
    answers = answers_from(
        (qid, skipped, value, display)
        for _, qid, skipped, value, display in sorted(found, key=lambda a: int(a[0]))
    )
    return ForAnswer(session, answer_case_of(session, row[end:]), answers)


def locked_session(session_id: int) -> SurveySession | None:
    """The session, its row locked (PostgreSQL; SQLite's write transaction serialises)."""
    row = rows.fetch_one(bulk.for_update(_SESSION_SQL), [session_id])
    return _session_of(row) if row is not None else None


def _session_of(row: Sequence[Any]) -> SurveySession:
    """The session of ``_SESSION``'s columns and the definition, last."""
    session = _SESSION.build(row[:-1])
    raw = row[-1]
    if isinstance(raw, str):  # SQLite: the stored text, parsed once per distinct definition
        session.definition, spec = _parsed(raw)
        session._spec = spec  # type: ignore[attr-defined]  # what session_spec reads
    else:
        session.definition = raw
    return session


@functools.lru_cache(maxsize=64)
def _parsed(raw: str) -> tuple[Any, SurveySpec]:
    """A frozen definition and its spec, shared by every session holding the same text (a
    session never changes its definition: read-only)."""
    value = json.loads(raw)
    return value, load_stored(value)


def answer_values(
    step: Step, text: str, message_id: str, provider_id: str | None, at: dt.datetime
) -> dict[str, Any] | None:
    """The row (its session apart) of the answer ``step`` records (None: it records none)."""
    if step.recorded is None:
        return None
    qid, answer = step.recorded
    return {
        "question_id": qid,
        "raw_text": text,
        "value": answer.value if answer else "",
        "display": answer.display if answer else "",
        "skipped": answer is None,
        "message_id": message_id,
        "provider_id": provider_id,
        "received_on": at,
    }


def answer_of(
    session: SurveySession,
    step: Step,
    text: str,
    message_id: str,
    provider_id: str | None,
    at: dt.datetime,
) -> SurveyAnswer | None:
    """The answer ``step`` records (None: it records none)."""
    values = answer_values(step, text, message_id, provider_id, at)
    return SurveyAnswer(session=session, **values) if values is not None else None


def add_answer(answer: SurveyAnswer) -> None:
    """INSERT the answer (the unique (session, question) constraint still guards it)."""
    rows.insert_instance(answer)


def add_answers(answers: Sequence[Mapping[str, Any]]) -> None:
    """Answers (each its row's values by attname, ``answer_values`` and its ``session_id``)
    in one statement; the unique (session, question) constraint still guards each."""
    if answers:
        table = rows.table(SurveyAnswer)
        rows.insert_rows(SurveyAnswer, [table.row(values) for values in answers])


def earliest(session: SurveySession) -> dt.datetime | None:
    """The session's next timer: the earliest of its re-ask, expiry and reply deadline."""
    found = [t for t in (session.next_reask_at, session.expires_at, session.reply_due_at) if t]
    return min(found) if found else None


def advance(session: SurveySession, step: Step, spec: SurveySpec, at: dt.datetime) -> None:
    """What an answer that keeps the session going changes of it (``PROGRESS``)."""
    session.last_reply_on, session.reply_due_at = at, None
    session.current_question, session.retries = step.current, step.retries
    if step.new_question:
        session.reask_count = 0
    s = spec.settings
    more = session.reask_count < s.reask_max
    session.next_reask_at = at + dt.timedelta(minutes=s.reask_after_minutes) if more else None
    session.next_timer_at = earliest(session)


def save_progress(*sessions: SurveySession) -> None:
    rows.update(SurveySession, sessions, fields=PROGRESS)
