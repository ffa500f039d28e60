"""The survey-session API's documents: the session JSON, the start body, the answers CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field

from casereach.core.openapi import OpenSchema
from casereach.core.timeutil import iso
from casereach.surveys.models import SESSION_STATUSES, SurveyAnswer, SurveySession

START_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["contact_id"],
                    "properties": {
                        "contact_id": {"type": "string"},
                        "gateway": {
                            "type": "string",
                            "description": "default: the gateway the contact's SMS route to",
                        },
                    },
                },
                "examples": {"start": {"summary": "Start", "value": {"contact_id": "c-1"}}},
            }
        },
    }
}
ANSWERS_CSV: dict[str, Any] = {
    "responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
}


class SessionOut(OpenSchema):
    """A survey session: who, through which pair, where it is, and (one session) its
    answers."""

    id: int
    survey_id: int | None
    survey_name: str
    survey_version: int
    contact_id: str
    case_id: str | None
    gateway: str
    phone_number: str
    language: str
    status: str = Field(json_schema_extra={"enum": list(SESSION_STATUSES)})
    detail: str
    current_question: str | None
    retries: int
    reask_count: int
    created_on: str = Field(json_schema_extra={"format": "date-time"})
    started_on: str | None
    ended_on: str | None


class SessionList(OpenSchema):
    objects: list[SessionOut]
    meta: dict[str, Any]


def serialize_answer(a: SurveyAnswer) -> dict[str, Any]:
    return {
        "question_id": a.question_id,
        "text": a.raw_text,
        "value": None if a.skipped else a.value,
        "display": None if a.skipped else a.display,
        "skipped": a.skipped,
        "message_id": a.message_id,
        "received_on": iso(a.received_on),
    }


def serialize_session(
    s: SurveySession, answers: Sequence[SurveyAnswer] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.pk,
        "survey_id": s.survey_id,
        "survey_name": s.survey_name,
        "survey_version": s.survey_version,
        "contact_id": s.contact_id,
        "case_id": s.case_id,
        "gateway": s.gateway_name,
        "phone_number": s.phone_number,
        "language": s.language,
        "status": s.status,
        "detail": s.detail,
        "current_question": s.current_question if s.status in ("active", "queued") else None,
        "retries": s.retries,
        "reask_count": s.reask_count,
        "event_id": s.event_id,
        "created_on": iso(s.created_on),
        "started_on": iso(s.started_on),
        "ended_on": iso(s.ended_on),
        "last_reply_on": iso(s.last_reply_on),
        "next_reask_at": iso(s.next_reask_at),
        "expires_at": iso(s.expires_at),
        "reply_due_at": iso(s.reply_due_at),
    }
    if answers is not None:
        out["answers"] = [serialize_answer(a) for a in answers]
    return out


_FIXED = ["session_id", "contact_id", "case_id", "phone_number", "language", "status"]
_TIMES = ["created_on", "started_on", "ended_on"]


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # spreadsheets must not run an answer as a formula
    return "" if value is None else value


def answers_csv_rows(
    question_ids: Sequence[str], pages: Iterator[tuple[SurveySession, list[SurveyAnswer]]]
) -> Iterator[str]:
    """One row per session, one column per question (the stored value; ``(skipped)`` for a
    skipped one, empty when not asked)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*_FIXED, *_TIMES, *question_ids])
    yield buf.getvalue()
    for s, answers in pages:
        buf.seek(0)
        buf.truncate()
        given = {a.question_id: "(skipped)" if a.skipped else a.value for a in answers}
        fixed = [s.pk, s.contact_id, s.case_id, s.phone_number, s.language, s.status]
        times = [iso(s.created_on), iso(s.started_on), iso(s.ended_on)]
        writer.writerow([_cell(v) for v in (*fixed, *times, *(given.get(q) for q in question_ids))])
        yield buf.getvalue()
