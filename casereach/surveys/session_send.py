"""How a session's messages go out: always through messaging's own paths, as events of
source ``survey`` whose ``source_id`` is the session id.

- outside an inbound message (the first question, a re-ask, a queued session starting):
  ``messaging.actions.do_send`` to the session's contact through the session's gateway,
  with every pre-send check (inactive contact, opt-out for the project and the gateway);
- in reply to an inbound message: ``inbound_replies.queue_sms`` on the gateway that received
  it (the session's), in the message's own event.

On a WhatsApp gateway the messages are WhatsApp messages (channel ``whatsapp``), and a
single-select question goes out as buttons or a list (``whatsapp_questions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from casereach.core.errors import CasereachError
from casereach.gateways.queries import project_settings
from casereach.messaging.actions import SendRequest, do_send
from casereach.messaging.event_query import (
    SURVEY_COMPLETED,
    SURVEY_IN_PROGRESS,
    SURVEY_NOT_FINISHED,
    SURVEY_PARTIAL,
)
from casereach.messaging.inbound_replies import Ctx, ensure_event, queue_sms
from casereach.messaging.log.surveys import add_to_survey, link_survey, touch_survey
from casereach.messaging.whatsapp import WhatsAppContent
from casereach.projects.models import Project
from casereach.surveys.flow import properties_to_write, render_text
from casereach.surveys.models import ACTIVE, QUEUED, SurveySession
from casereach.surveys.session_queries import (
    answers_of,
    gateway_is_whatsapp,
    live_case,
    session_spec,
    step_context,
)
from casereach.surveys.spec import Question
from casereach.surveys.whatsapp_questions import interactive_payload

SOURCE = "survey"
PART = "survey_part"  # a re-ask or an answer: part of the session's event (log.surveys)
OWNER = "survey_owner"  # the no-reply message to the case's owner: an event of its own
# What started a session → the source of its messaging event (HQ's source type, mapped in
# messaging.event_query.SOURCE_SLUGS). A start records its kind as the prefix of its
# ``triggered_by``: "keyword:<word>", "alert:<alert id>", "broadcast:<id>"; anything else
# (an API start: the key's user) is HQ's "other".
TRIGGER_SOURCES = {
    "keyword": "survey_keyword",
    "alert": "survey_alert",
    "broadcast": "survey_broadcast",
}


class SessionLike(Protocol):
    """What a session's send reads of it."""

    pk: int
    contact_id: str
    language: str
    triggered_by: str
    gateway_name: str
    survey_id: int | None
    survey_name: str


@dataclass(frozen=True)
class SendOutcome:
    event_id: int | None
    error_code: str | None  # None: queued for the dispatcher


def texts_for(
    project: Project, language: str, text: str, languages: Sequence[str] | None = None
) -> dict[str, str]:
    """The same text under every language a send could pick (it is already rendered in
    the session's language), so that the project's fallback setting cannot drop it."""
    if languages is None:
        languages = project_settings(project).languages
    return {**dict.fromkeys(languages, text), language: text, "*": text}


def event_source(triggered_by: str) -> str:
    """The messaging event source of a session started by ``triggered_by``."""
    kind, sep, _ = triggered_by.partition(":")
    return TRIGGER_SOURCES.get(kind, SOURCE) if sep else SOURCE


def survey_status(session: SurveySession) -> str:
    """The session's status as HQ's messaging-event API shows it: completed → completed,
    active / queued → in-progress, expired after answers were written to the case →
    partially_completed, any other end → not-finished."""
    if session.status == "completed":
        return SURVEY_COMPLETED
    if session.status in (ACTIVE, QUEUED):
        return SURVEY_IN_PROGRESS
    if session.status == "expired" and _wrote_answers(session):
        return SURVEY_PARTIAL
    return SURVEY_NOT_FINISHED


def _wrote_answers(session: SurveySession) -> bool:
    spec = session_spec(session)
    if spec.settings.write_mode != "per_answer" and not spec.settings.write_on_expiry:
        return False
    return bool(session.case_id) and bool(properties_to_write(spec, answers_of(session)))


def show_progress(session: SurveySession) -> None:
    """The session's event shows its current status and new activity (the caller holds the
    project lock)."""
    if session.event_id is not None:
        touch_survey(session.project_id, session.pk, survey_status(session))


def question_request(
    project: Project,
    session: SessionLike,
    text: str,
    languages: Sequence[str] | None = None,
    *,
    first: bool = False,
    whatsapp: bool = False,
    question: Question | None = None,
) -> SendRequest:
    """The send of one message of a session (a row or a bulk start's draft) to its contact
    through its gateway (``languages``: the project's, when the caller read them already);
    ``first``: the question that starts the session, whose event is the session's;
    ``whatsapp``: the gateway is a WhatsApp one (``question``: what the text asks, for its
    buttons or list)."""
    texts = texts_for(project, session.language, text, languages)
    req = SendRequest(
        contact_id=session.contact_id,
        sms=texts,
        source=event_source(session.triggered_by) if first else PART,
        source_id=str(session.pk),
        triggered_by=session.triggered_by or f"survey_session:{session.pk}",
        gateway=session.gateway_name,
    )
    if whatsapp:
        req.channel, req.sms, req.whatsapp = "whatsapp", {}, WhatsAppContent(text=texts)
        req.payload = interactive_payload(session.pk, question, session.language, text)
    return req


def survey_form(session: SessionLike) -> dict[str, str]:
    """The ``form`` of the session's event in CommCare's messaging-event API."""
    return {"form_definition_id": str(session.survey_id), "form_name": session.survey_name}


def send_question(
    project: Project,
    session: SurveySession,
    text: str,
    *,
    first: bool = False,
    question: Question | None = None,
) -> SendOutcome:
    """One message of the session to its contact through its gateway: ``first``, the
    session's event (the question that starts it), otherwise part of that event.
    ``question``: what ``text`` asks (its buttons or list on WhatsApp)."""
    if not text:
        return SendOutcome(None, None)
    whatsapp = gateway_is_whatsapp(session.gateway_id)
    req = question_request(
        project, session, text, first=first, whatsapp=whatsapp, question=question
    )
    try:
        event, messages = do_send(project, req)
    except CasereachError as exc:  # the gateway is gone, the contact deleted
        return SendOutcome(None, exc.message[:64] if hasattr(exc, "message") else "ERROR")
    if first:
        link_survey(project.pk, event.pk, session.pk, survey_form(session), SURVEY_IN_PROGRESS)
    else:
        add_to_survey(event.pk, session.pk)
    msg = messages[0]
    return SendOutcome(event.pk, msg.error_code if msg.status == "failed" else None)


def reply_in_inbound(
    ctx: Ctx, session: SurveySession, text: str, question: Question | None = None
) -> None:
    """An inbound answer (and its reply, if any) in an event that is part of the session's;
    ``question``: what ``text`` asks (its buttons or list when the reply goes on WhatsApp)."""
    if ctx.event is None:  # its one sub-event is written as part of the session
        ensure_event(ctx, PART, str(session.pk), survey_session_id=session.pk)
    else:
        add_to_survey(ctx.event.pk, session.pk)
    if text:
        payload: dict[str, Any] | None = None
        if ctx.msg.channel == "whatsapp":
            payload = interactive_payload(session.pk, question, session.language, text)
        texts = {session.language: text, "*": text}
        queue_sms(ctx, texts, None, pinned=True, defer=True, payload=payload)


def send_to_owner(project: Project, session: SurveySession, message: Mapping[str, str]) -> str:
    """The no-reply message to the case's owner (a mobile worker contact); the problem, if
    it could not be sent."""
    case = live_case(project.pk, session.case_id)
    if case is None or not case.owner_id:
        return "the case has no owner"
    context = step_context(project, session)
    answers = answers_of(session)
    texts = {
        lang: render_text({lang: text}, lang, context.render, answers)
        for lang, text in message.items()
    }
    req = SendRequest(
        contact_id=case.owner_id,
        sms=texts,
        source=OWNER,
        source_id=str(session.pk),
        triggered_by=f"survey_session:{session.pk}",
    )
    try:
        _, messages = do_send(project, req)
    except CasereachError as exc:
        return str(exc)
    msg = messages[0]
    return f"owner message failed: {msg.error_code}" if msg.status == "failed" else ""
