"""Survey sessions (issue 20): the only writer of ``SurveySession`` and ``SurveyAnswer`` (this
package: its modules split the writer by concern).

- **Starting** (``do_start_survey``): the contact's number and the gateway it would be sent
  through (or the one asked for) make the pair; a pair that already has an active session
  gets the new one queued behind it (first asked, first started). Question 1 goes out
  through the normal send path (``messaging.actions.do_send``: contact active, opt-out,
  routing checks) as a messaging event of source ``survey`` whose ``source_id`` is the
  session id.
- **Answering** (``on_inbound``, a ``messaging.inbound_conversations`` hook): inside the
  inbound message's transaction, so an answer is applied once (a re-delivered provider id
  never reaches the hook) and a crash loses nothing; the session row is locked, so two
  answers of one session are applied one after the other.
- **Ending**: completed, failed, expired, no_reply, opted_out, cancelled; the pair's next
  queued session then starts.
- **Timers** (``run_due_sessions``): re-ask, expiry and the reply deadline, each fired once
  (a guarded update claims it).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import IntegrityError, transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.models import Contact

# Not ``core.bulk`` by name: the package's own ``bulk`` module (the bulk start) takes it.
from casereach.core.bulk import process_writer_turn
from casereach.core.errors import BadRequest, CasereachError
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import find_gateway, project_settings, route
from casereach.messaging.inbound_replies import Ctx
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.surveys.models import ACTIVE, QUEUED, Survey, SurveySession
from casereach.surveys.session_queries import (
    PROBE,
    active_session_id,
    answer_case,
    answers_of,
    case_gone,
    due_session_ids,
    first_entry,
    queued_ids,
    session_spec,
    step_context,
)
from casereach.surveys.session_send import (
    reply_in_inbound,
    send_question,
    send_to_owner,
    show_progress,
)
from casereach.surveys.session_steps import (
    Step,
    ask_again,
    expiry_properties,
    first_step,
    reply_step,
    timers,
)
from casereach.surveys.sessions.answer_rows import (
    add_answer,
    advance,
    answer_of,
    earliest,
    save_progress,
    session_for_answer,
)
from casereach.surveys.spec import NoReply
from casereach.surveys.whatsapp_questions import tapped

log = logging.getLogger(__name__)
DUE_BATCH = 100
MISSING = object()  # ctx.held without the probe: the message did not come through do_receive


# -- starting ------------------------------------------------------------------------------------


def _gateway_for(project: Project, number: str, override: str, asked: str | None) -> GatewayConfig:
    if asked is not None:
        if not isinstance(asked, str) or not asked.strip():
            raise BadRequest("gateway: must be a gateway's name")
        gw = find_gateway(project, asked)
        if gw is None:
            raise BadRequest(f"gateway '{asked}' not found (or not active) for this project")
        if gw.type == "email":
            raise BadRequest(f"gateway '{gw.name}' is an email gateway")
        return gw
    chosen = route(project, number, override)
    if chosen.gateway is None:
        raise BadRequest(f"no gateway for {number}: {chosen.error_code}")
    return chosen.gateway


def do_start_survey(
    project: Project,
    survey: Survey,
    contact: Contact,
    gateway: str | None = None,
    *,
    triggered_by: str = "",
    at: dt.datetime | None = None,
) -> SurveySession:
    """A new session for ``contact``: started now, or queued behind the pair's active one.
    BadRequest (nothing stored) for an inactive survey or contact, a contact without a
    number, or no usable gateway. A first question that cannot be sent (the number opted
    out) ends the session at once (``opted_out`` / ``failed``, the reason in ``detail``)."""
    at = at or now()
    if not survey.active:
        raise BadRequest(f"survey {survey.pk} is inactive")
    if not contact.active:
        raise BadRequest(f"contact '{contact.contact_id}' is inactive")
    entry = first_entry(contact.contact_id)
    if entry is None:
        raise BadRequest(f"contact '{contact.contact_id}' has no phone number")
    number, override = entry
    gw = _gateway_for(project, number, override, gateway)
    with process_writer_turn(), transaction.atomic():
        lock_project(project.pk)
        session = SurveySession.objects.create(
            project=project,
            survey=survey,
            survey_name=survey.name,
            survey_version=survey.version,
            definition=survey.definition,
            contact_id=contact.contact_id,
            case_id=contact.contact_id if contact.contact_type == Contact.CASE else None,
            gateway_id=gw.pk,
            gateway_name=gw.name,
            phone_number=number,
            language=contact.lang_effective or project.languages[0],
            status=QUEUED,
            created_on=at,
            triggered_by=triggered_by[:150],
        )
        if active_session_id(gw.pk, number) is None:  # the pair is free: the oldest starts
            _start_next(project, gw.pk, number, at)
    session.refresh_from_db()
    return session


def _activate(project: Project, session: SurveySession, at: dt.datetime) -> None:
    """Make a queued session the pair's active one and send its first question (a pair
    taken meanwhile leaves it queued)."""
    spec = session_spec(session)
    step = first_step(spec, step_context(project, session))
    if step.status == "completed":
        _end(session, "completed", at, "no question is shown for this case")
        return
    reask, expires, due = timers(spec, at, at)
    session.status, session.started_on = ACTIVE, at
    session.current_question, session.retries, session.reask_count = step.current, 0, 0
    session.next_reask_at, session.expires_at, session.reply_due_at = reask, expires, due
    session.next_timer_at = earliest(session)
    try:
        with transaction.atomic():
            session.save()
    except IntegrityError:  # another start took the pair first: wait behind it
        session.status, session.started_on = QUEUED, None
        return
    question = spec.question(step.current or "")
    outcome = send_question(project, session, step.send, first=True, question=question)
    if outcome.event_id is not None:
        session.event_id = outcome.event_id
        SurveySession.objects.filter(pk=session.pk).update(event_id=outcome.event_id)
    if outcome.error_code is not None:
        status = "opted_out" if outcome.error_code == "PHONE_NUMBER_OPTED_OUT" else "failed"
        _end(session, status, at, f"the first question was not sent: {outcome.error_code}")


def _start_next(project: Project | None, gateway_id: int, number: str, at: dt.datetime) -> None:
    """Start the pair's queued sessions in order until one is active (or none is left)."""
    for session_id in queued_ids(gateway_id, number):
        session = SurveySession.objects.select_for_update().filter(pk=session_id).first()
        if session is None or session.status != QUEUED:
            continue
        owner = project if project is not None and project.pk == session.project_id else None
        owner = owner or Project.objects.get(pk=session.project_id)
        lock_project(owner.pk)
        _activate(owner, session, at)
        if session.status == ACTIVE:
            return


# -- ending ----------------------------------------------------------------------------------


def _end(session: SurveySession, status: str, at: dt.datetime, detail: str = "") -> None:
    session.status, session.ended_on = status, at
    session.next_reask_at = session.expires_at = session.reply_due_at = None
    session.next_timer_at = None
    if detail:
        session.detail = detail[:500]
    session.save(
        update_fields=[
            "status",
            "ended_on",
            "next_reask_at",
            "expires_at",
            "reply_due_at",
            "next_timer_at",
            "detail",
        ]
    )
    show_progress(session)


def _write_case(project: Project, session: SurveySession, properties: dict[str, str]) -> str:
    """Write ``properties`` to the session's case through the case path (stale guard,
    CommCare write-back); the problem, if it was refused."""
    if not properties or not session.case_id:
        return ""
    change = CaseChange(op="update", case_id=session.case_id, properties=properties)
    try:
        do_apply_case_changes(project, [change], single=True, write_back=True)
    except CasereachError as exc:
        log.info("survey session %s: case write refused: %s", session.pk, exc)
        return f"case properties not written: {exc}"
    return ""


# -- answering (the inbound hook) ---------------------------------------------------------------


def on_inbound(ctx: Ctx, happening: str) -> str | None:
    """The conversation hook: the pair's active session takes the message (see module)."""
    number = ctx.msg.phone_number
    # The test phone acts as its project's own gateway: on a global test gateway it must
    # neither answer nor stop another project's session of the same number.
    scope = ctx.as_project
    probed = ctx.held.get(PROBE[0], MISSING)
    session_id = active_session_id(ctx.gw.pk, number) if probed is MISSING else probed
    if happening == "stop":
        if session_id is not None or queued_ids(ctx.gw.pk, number):
            _stop_pair(ctx.gw.pk, number, now(), scope)
        return None
    if session_id is None:
        return None
    read = session_for_answer(session_id)
    if read is None or read.session.status != ACTIVE:
        return None
    session = read.session
    if scope is not None and session.project_id != scope:
        return None
    case = read.case or answer_case(session)
    if _cancel_if_case_gone(session, now(), case.gone):
        return None  # not an answer: the message is handled as any other
    locked = ctx.project is not None and ctx.project.pk == session.project_id
    project = _take_over(ctx, session)
    at = now()
    spec = session_spec(session)
    # Read under the project lock: taken only now when the sender's project was another.
    context = case.context(project, session) if locked else step_context(project, session)
    answers = read.answers if read.answers is not None else answers_of(session)
    if happening == "help":
        text = ask_again(spec, session.current_question, answers, context)
        reply_in_inbound(ctx, session, text, spec.question(session.current_question or ""))
        return "survey_help"
    current = spec.question(session.current_question or "")
    if current is None:  # cannot happen with a frozen definition; end it rather than loop
        _end(session, "failed", at, "the current question is not in the survey")
        _start_next(project, session.gateway_id, number, at)
        return None
    # A WhatsApp tap answers by its reply id, whatever its title says (``whatsapp_questions``).
    tap = tapped(ctx.msg.payload, session.pk, current)
    text = tap.text if tap is not None and tap.text else ctx.msg.text
    refused = tap.refused if tap is not None else ""
    step = reply_step(spec, current, session.retries, answers, text, context, refused=refused)
    _apply(ctx, project, session, step, at)
    return "survey_" + ("completed" if step.status == "completed" else step.result)


def _cancel_if_case_gone(session: SurveySession, at: dt.datetime, gone: str | None = None) -> bool:
    """A session whose case was closed or deleted ends ``cancelled`` (SPEC 3.7: a closed
    case's schedules stop too); the answers given so far stay, nothing more is written.
    ``gone``: ``case_gone(session)`` when the caller read it already."""
    gone = case_gone(session) if gone is None else gone
    if not gone:
        return False
    project = lock_project(session.project_id)
    _end(session, "cancelled", at, gone)
    _start_next(project, session.gateway_id, session.phone_number, at)
    return True


def _take_over(ctx: Ctx, session: SurveySession) -> Project:
    """The session's project and contact for this message: the session's contact is the one
    it was started for, whoever holds the number (a shared phone)."""
    project = ctx.project
    if project is None or project.pk != session.project_id:
        project = lock_project(session.project_id)
        ctx.project = ctx.msg.project = project
        ctx.settings = project_settings(project)
    if ctx.contact is None or ctx.contact.contact_id != session.contact_id:
        contact = Contact.objects.filter(contact_id=session.contact_id).first()
        if contact is not None:
            ctx.contact = contact
            ctx.msg.contact_id, ctx.msg.contact_type = contact.contact_id, contact.contact_type
    return project


def _apply(ctx: Ctx, project: Project, session: SurveySession, step: Step, at: dt.datetime) -> None:
    answer = answer_of(session, step, ctx.msg.text, ctx.msg.id, ctx.msg.provider_id, at)
    if answer is not None:
        add_answer(answer)
    problem = _write_case(project, session, step.properties)
    if problem:
        ctx.notes.append(problem)
        session.detail = problem[:500]
    if step.send:
        asks = (
            session_spec(session).question(step.current or "") if step.status == "active" else None
        )
        reply_in_inbound(ctx, session, step.send, asks)
    if step.status != "active":
        session.last_reply_on, session.reply_due_at = at, None
        _end(session, step.status, at, step.reason if step.status == "failed" else "")
        SurveySession.objects.filter(pk=session.pk).update(last_reply_on=at)
        _start_next(project, session.gateway_id, session.phone_number, at)
        return
    advance(session, step, session_spec(session), at)
    save_progress(session)
    show_progress(session)


def _stop_pair(
    gateway_id: int, number: str, at: dt.datetime, project_id: int | None = None
) -> None:
    """STOP: the pair's active session ends ``opted_out``, its queued ones are cancelled
    (only ``project_id``'s: the test phone's STOP; another project's queue then moves on)."""
    pair = SurveySession.objects.filter(gateway_id=gateway_id, phone_number=number)
    if project_id is not None:
        pair = pair.filter(project_id=project_id)
    ended = False
    for session in pair.select_for_update().filter(status=ACTIVE):
        _end(session, "opted_out", at, "the number opted out (STOP)")
        ended = True
    pair.filter(status=QUEUED).update(
        status="cancelled", ended_on=at, detail="the number opted out (STOP)"
    )
    if ended and project_id is not None:
        _start_next(None, gateway_id, number, at)


# -- timers ----------------------------------------------------------------------------------


def run_due_sessions(at: dt.datetime | None = None, limit: int = DUE_BATCH) -> int:
    """Fire the due timers of up to ``limit`` sessions (re-ask, expiry, reply deadline);
    how many sessions were handled. Each session in its own transaction."""
    at = at or now()
    handled = 0
    for session_id in due_session_ids(at, limit):
        try:
            with process_writer_turn(), transaction.atomic():
                handled += _fire(session_id, at)
        except Exception:  # one session's failure does not stop the others
            log.exception("survey session %s: timer failed", session_id)
    return handled


def _fire(session_id: int, at: dt.datetime) -> int:
    session = SurveySession.objects.filter(pk=session_id, status=ACTIVE).first()
    if session is None or session.next_timer_at is None or session.next_timer_at > at:
        return 0
    # The claim: a second scheduler (or a late retry) finds the timer already moved.
    claimed = SurveySession.objects.filter(
        pk=session_id, status=ACTIVE, next_timer_at=session.next_timer_at
    ).update(next_timer_at=None)
    if not claimed:
        return 0
    if _cancel_if_case_gone(session, at):
        return 1
    project = lock_project(session.project_id)
    spec = session_spec(session)
    if session.expires_at is not None and session.expires_at <= at:
        problem = _write_case(project, session, expiry_properties(spec, answers_of(session)))
        _end(session, "expired", at, problem)
    elif session.reply_due_at is not None and session.reply_due_at <= at:
        _end(session, "no_reply", at)
        _no_reply(project, session, spec.settings.no_reply, at)
    elif session.next_reask_at is not None and session.next_reask_at <= at:
        _reask(project, session, at)
        return 1
    else:
        session.next_timer_at = earliest(session)
        session.save(update_fields=["next_timer_at"])
        return 1
    _start_next(project, session.gateway_id, session.phone_number, at)
    return 1


def _reask(project: Project, session: SurveySession, at: dt.datetime) -> None:
    spec = session_spec(session)
    s = spec.settings
    session.reask_count += 1
    more = session.reask_count < s.reask_max
    session.next_reask_at = at + dt.timedelta(minutes=s.reask_after_minutes) if more else None
    session.next_timer_at = earliest(session)
    session.save(update_fields=["reask_count", "next_reask_at", "next_timer_at"])
    context = step_context(project, session)
    text = ask_again(spec, session.current_question, answers_of(session), context)
    question = spec.question(session.current_question or "")
    outcome = send_question(project, session, text, question=question)
    show_progress(session)
    if outcome.error_code is not None:
        log.info("survey session %s: re-ask not sent: %s", session.pk, outcome.error_code)


def _no_reply(
    project: Project, session: SurveySession, action: NoReply | None, at: dt.datetime
) -> None:
    """The survey's no-reply action, its problem (if any) kept in the session's detail."""
    if action is None:
        return
    problem = ""
    if action.action == "set_property" and action.property and action.value is not None:
        problem = _write_case(project, session, {action.property: action.value})
    elif action.action == "message_owner":
        problem = send_to_owner(project, session, action.message)
    elif action.action == "other_gateway":
        problem = _restart_elsewhere(project, session, action.gateway or "", at)
    detail = f"no reply: {action.action}" + (f" ({problem})" if problem else "")
    SurveySession.objects.filter(pk=session.pk).update(detail=detail[:500])


def _restart_elsewhere(
    project: Project, session: SurveySession, gateway: str, at: dt.datetime
) -> str:
    if session.survey_id is None:
        return "the survey no longer exists"
    survey = Survey.objects.filter(pk=session.survey_id, project=project).first()
    contact = Contact.objects.filter(project=project, contact_id=session.contact_id).first()
    if survey is None or contact is None:
        return "the survey or the contact no longer exists"
    try:
        started = do_start_survey(
            project, survey, contact, gateway, triggered_by=f"survey_session:{session.pk}", at=at
        )
    except CasereachError as exc:
        return str(exc)
    return f"session {started.pk} on {started.gateway_name}"
