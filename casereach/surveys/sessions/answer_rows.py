"""The rows an answer writes, in raw SQL: the inbound hot path (an answer is applied inside
the inbound message's transaction, and the ORM's query building was most of its cost; see
docs/performance.md). Same rows, same locks, same constraints as the ORM calls they replace."""

from __future__ import annotations

from casereach.core import bulk, rows
from casereach.surveys.models import SurveyAnswer, SurveySession

_SESSION = rows.RawRows(SurveySession)
_SESSION_SQL = (
    f"SELECT {_SESSION.columns('ss')} FROM {SurveySession._meta.db_table} ss WHERE ss.id = %s"
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
    return _SESSION.build(row) if row is not None else None


def add_answer(answer: SurveyAnswer) -> None:
    """INSERT the answer (the unique (session, question) constraint still guards it)."""
    rows.insert_instance(answer)


def save_progress(session: SurveySession) -> None:
    rows.update(SurveySession, [session], fields=PROGRESS)
