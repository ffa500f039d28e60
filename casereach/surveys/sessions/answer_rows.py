"""The rows an answer writes, in raw SQL: the inbound hot path (an answer is applied inside
the inbound message's transaction, and the ORM's query building was most of its cost; see
docs/performance.md). Same rows, same locks, same constraints as the ORM calls they replace."""

from __future__ import annotations

import functools
import json
from typing import Any

from casereach.core import bulk, rows
from casereach.surveys.models import SurveyAnswer, SurveySession
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


def locked_session(session_id: int) -> SurveySession | None:
    """The session, its row locked (PostgreSQL; SQLite's write transaction serialises)."""
    row = rows.fetch_one(bulk.for_update(_SESSION_SQL), [session_id])
    if row is None:
        return None
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


def add_answer(answer: SurveyAnswer) -> None:
    """INSERT the answer (the unique (session, question) constraint still guards it)."""
    rows.insert_instance(answer)


def save_progress(session: SurveySession) -> None:
    rows.update(SurveySession, [session], fields=PROGRESS)
