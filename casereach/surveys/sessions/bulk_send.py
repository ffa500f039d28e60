"""Question 1 of a bulk start's sessions, written through the message log's set-based writer
(``messaging.log``: the path a broadcast's plain SMS take) with the rows and checks a single
send makes (``messaging.sending``): one event of source ``survey`` per session (``source_id``
the session id), one sub-event and one message, the message pinned to the session's gateway
(``gateway_source`` ``chosen``) and failed at once when the number opted out.

The bulk start has already read and checked what a single send would read again (the contact
is active and has that number, the gateway is usable), so only the opt-outs are read here. A
batch holding a question too long for one send goes through ``sending.send_each`` instead,
which answers it with the single send's own error.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from casereach.core import bulk
from casereach.core.errors import CasereachError
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.queries import project_settings
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.event_query import SURVEY_IN_PROGRESS, SURVEY_NOT_FINISHED
from casereach.messaging.log import EventDraft, MessageDraft, SubEventDraft
from casereach.messaging.models import ERROR, FAILED, IN_PROGRESS, QUEUED
from casereach.messaging.optouts import OptedOut, opted_out_pairs
from casereach.messaging.sending import send_each
from casereach.messaging.sending_request import CHOSEN, MAX_SMS_CHARS, SendRequest
from casereach.projects.models import Project
from casereach.surveys.session_send import (
    SessionLike,
    event_source,
    question_request,
    survey_form,
    texts_for,
)


class Pinned(SessionLike, Protocol):
    """A session with the pair its messages go to."""

    phone_number: str
    gateway_id: int


@dataclass(frozen=True)
class Recipient:
    """What a question-1 message reads of its contact (``language``: as stored, or None)."""

    contact_type: str
    name: str
    language: str | None


class _SubEvent(SubEventDraft):
    """A question-1 sub-event whose ``survey_form`` is given encoded (``form``): every session
    of a batch shows the same survey, encoded once per batch instead of once per row."""

    def row(self) -> list[Any]:
        row = super().row()
        row[_FORM] = self.__dict__["form"]
        return row


_FORM = SubEventDraft._table.attnames.index("survey_form")


@dataclass(frozen=True)
class Sent:
    event_id: int | None
    error_code: str | None  # None: queued for the dispatcher


def send_first_questions(
    project: Project,
    sessions: Sequence[Pinned],
    texts: Sequence[str],
    recipients: Sequence[Recipient],
) -> list[Sent]:
    """Question 1 (``texts[i]``) of each session, in one statement set; per session its
    event id and the error code when the message failed at once."""
    settings = project_settings(project)
    if any(len(t) > MAX_SMS_CHARS for t in texts):
        reqs = [
            question_request(project, s, t, settings.languages, first=True)
            for s, t in zip(sessions, texts, strict=True)
        ]
        return _through_send_each(project, reqs)
    stamp = now()
    opted = opted_out_pairs({s.phone_number for s in sessions}, [project.pk])
    # The text is the same under every key (``session_send.texts_for``): which language a
    # send records depends only on the session's and the contact's languages.
    chosen: dict[tuple[str, str | None], tuple[bool, str]] = {}
    forms: dict[tuple[int | None, str], str] = {}
    drafts: list[tuple[EventDraft, MessageDraft]] = []
    for session, text, who in zip(sessions, texts, recipients, strict=True):
        key = (session.language, who.language)
        if key not in chosen:
            keys = texts_for(project, session.language, "-", settings.languages)
            found, used = pick_translation(
                keys,
                who.language,
                project_languages=settings.languages,
                fallback=settings.language_fallback,
            )
            chosen[key] = (found is not None, used)
        has_text, used = chosen[key]
        msg = MessageDraft(
            project_id=project.pk,
            channel="sms",
            contact_id=session.contact_id,
            contact_type=who.contact_type,
            phone_number=session.phone_number,
            email_address="",
            subject="",
            text=text if has_text else "",
            language=used,
            allow_opted_out=False,
            status=QUEUED,
            error_code=None,
            created_on=stamp,
            updated_on=stamp,
            next_attempt_at=stamp,
        )
        error = "NO_MESSAGE" if not has_text else _check(msg, session, opted, project.pk)
        if msg.text:
            msg.segments, msg.encoding = _segments(msg.text)
        if error is not None:
            msg.status, msg.error_code, msg.failed_on = FAILED, error, stamp
            msg.next_attempt_at = None
        form = (session.survey_id, session.survey_name)
        if form not in forms:
            forms[form] = bulk.adapt_json(survey_form(session))
        drafts.append((_event(project, who, session, error, stamp, forms[form]), msg))
    _write(project, drafts)
    return [Sent(event.pk, msg.error_code) for event, msg in drafts]


def _check(msg: MessageDraft, session: Pinned, opted: OptedOut, project_id: int) -> str | None:
    """The single send's checks that remain (``sending._precheck``, a chosen gateway)."""
    if opted.in_project(session.phone_number, project_id):
        return "PHONE_NUMBER_OPTED_OUT"
    msg.gateway_name, msg.gateway_id, msg.gateway_source = (
        session.gateway_name,
        session.gateway_id,
        CHOSEN,
    )
    if opted.refuses(session.phone_number, None, session.gateway_id):
        return "PHONE_NUMBER_OPTED_OUT"  # opted out for the gateway it would use
    return None


def _event(
    project: Project,
    who: Recipient,
    session: Pinned,
    error: str | None,
    stamp: dt.datetime,
    form: str,
) -> EventDraft:
    """The session's event and sub-event, as ``sending._decide`` makes them."""
    closed = ERROR if error is not None else IN_PROGRESS
    event = EventDraft(
        project_id=project.pk,
        source=event_source(session.triggered_by),
        source_id=str(session.pk),
        source_name="",
        content_type="sms",
        status=closed,
        error_code=message_log.SUBEVENT_ERROR if error is not None else None,
        triggered_by=session.triggered_by or f"survey_session:{session.pk}",
        created_on=stamp,
    )
    event.sub = _SubEvent(
        project_id=project.pk,
        contact_id=session.contact_id,
        contact_type=who.contact_type,
        recipient_name=who.name,
        status=closed,
        error_code=error,
        created_on=stamp,
        # The session's event in CommCare's messaging-event API (``messaging.log.surveys``);
        # a question 1 that failed ends the session at once: not finished.
        survey_session_id=session.pk,
        form=form,  # ``survey_form(session)``, encoded
        survey_status=SURVEY_NOT_FINISHED if error is not None else SURVEY_IN_PROGRESS,
    )
    return event


def _write(project: Project, drafts: Sequence[tuple[EventDraft, MessageDraft]]) -> None:
    """Three INSERTs and the project's clock, as ``sending`` writes a batch."""
    events = [event for event, _ in drafts]
    message_log.add_events(events)
    for event in events:
        event.sub.event_id = event.pk
    message_log.add_subevents(project, [event.sub for event in events])
    for event, msg in drafts:
        msg.event_id, msg.subevent_id = event.pk, event.sub.pk
    message_log.add_messages([msg for _, msg in drafts], project)


@functools.lru_cache(maxsize=4096)
def _segments(text: str) -> tuple[int, str]:
    info = analyse(text)
    return info.segments, info.encoding


def _through_send_each(project: Project, reqs: Sequence[SendRequest]) -> list[Sent]:
    out: list[Sent] = []
    for result in send_each(project, reqs):
        if isinstance(result, CasereachError):
            out.append(Sent(None, result.message[:64] if result.message else "ERROR"))
            continue
        event, messages = result
        failed = messages[0].status == FAILED
        out.append(Sent(event.pk, messages[0].error_code if failed else None))
    return out
