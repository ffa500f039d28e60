"""How a session's messages go out: always through messaging's own paths, as events of
source ``survey`` whose ``source_id`` is the session id.

- outside an inbound message (the first question, a re-ask, a queued session starting):
  ``messaging.actions.do_send`` to the session's contact through the session's gateway,
  with every pre-send check (inactive contact, opt-out for the project and the gateway);
- in reply to an inbound message: ``inbound_replies.queue_sms`` on the gateway that received
  it (the session's), in the message's own event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from casereach.core.errors import CasereachError
from casereach.gateways.queries import project_settings
from casereach.messaging.actions import SendRequest, do_send
from casereach.messaging.inbound_replies import Ctx, ensure_event, queue_sms
from casereach.projects.models import Project
from casereach.surveys.flow import render_text
from casereach.surveys.models import SurveySession
from casereach.surveys.session_queries import answers_of, live_case, step_context

SOURCE = "survey"


class SessionLike(Protocol):
    """What a session's send reads of it."""

    pk: int
    contact_id: str
    language: str
    triggered_by: str
    gateway_name: str


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


def question_request(
    project: Project, session: SessionLike, text: str, languages: Sequence[str] | None = None
) -> SendRequest:
    """The send of one message of a session (a row or a bulk start's draft) to its contact
    through its gateway (``languages``: the project's, when the caller read them already)."""
    return SendRequest(
        contact_id=session.contact_id,
        sms=texts_for(project, session.language, text, languages),
        source=SOURCE,
        source_id=str(session.pk),
        triggered_by=session.triggered_by or f"survey_session:{session.pk}",
        gateway=session.gateway_name,
    )


def send_question(project: Project, session: SurveySession, text: str) -> SendOutcome:
    """One message of the session to its contact through its gateway."""
    if not text:
        return SendOutcome(None, None)
    req = question_request(project, session, text)
    try:
        event, messages = do_send(project, req)
    except CasereachError as exc:  # the gateway is gone, the contact deleted
        return SendOutcome(None, exc.message[:64] if hasattr(exc, "message") else "ERROR")
    msg = messages[0]
    return SendOutcome(event.pk, msg.error_code if msg.status == "failed" else None)


def reply_in_inbound(ctx: Ctx, session: SurveySession, text: str) -> None:
    """The reply to an inbound answer, in that message's event (source ``survey``)."""
    if not text:
        return
    ensure_event(ctx, SOURCE, str(session.pk))
    queue_sms(ctx, {session.language: text, "*": text}, None, pinned=True)


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
        source=SOURCE,
        source_id=str(session.pk),
        triggered_by=f"survey_session:{session.pk}",
    )
    try:
        _, messages = do_send(project, req)
    except CasereachError as exc:
        return str(exc)
    msg = messages[0]
    return f"owner message failed: {msg.error_code}" if msg.status == "failed" else ""
