"""Starting a survey from a project keyword (``"action": "survey"``, issue 20): the
``messaging.keyword_actions`` action registered by ``SurveysConfig.ready``.

- **Saving** a keyword naming a survey (``validate``): the survey must be one of the
  project's (another project's id reads as missing) and active. Its row is locked, as
  ``do_delete_survey`` locks it before looking for keywords naming it, so the two cannot
  cross: a survey a keyword names is never deleted (409 naming the keyword).
- **Receiving** the keyword (``start``): inside the inbound message's transaction, the
  survey is started for the sender's contact on the gateway and number the SMS came in on,
  through ``sessions.do_start_survey`` (queued behind an active session of the pair, first
  question sent through the normal send path). A re-delivered provider id never gets here,
  and a failure rolls the session back with the message. A survey that is inactive (or
  gone), or a start that is refused, gets the sender a clear reply and the reason in the
  inbound message's ``detail``; nothing is started.

An SMS received while the pair has an active session answers it before any keyword (the
conversation hook comes first), so the keyword then is an answer, not a start.
"""

from __future__ import annotations

import logging

from casereach.contacts.models import Contact
from casereach.core.errors import CasereachError
from casereach.gateways.queries import find_gateway
from casereach.messaging.inbound_replies import Ctx, reply, translated
from casereach.messaging.models import Keyword
from casereach.projects.models import Project
from casereach.surveys.models import Survey
from casereach.surveys.session_queries import first_entry
from casereach.surveys.sessions import do_start_survey

log = logging.getLogger(__name__)
ACTION = "survey"
DEFAULT_PREFIX = "Sorry:"
NOT_AVAILABLE = "this survey is not available at the moment."


def validate_survey(project: Project, survey_id: int) -> str | None:
    """Why ``survey_id`` cannot be started by a keyword of ``project``, or None."""
    found = Survey.objects.select_for_update().filter(project=project, pk=survey_id).first()
    if found is None:
        return f"survey {survey_id} not found in this project"
    if not found.active:
        return f"survey {survey_id} is inactive"
    return None


def keywords_naming(survey: Survey) -> list[str]:
    """The project's keywords that start ``survey``, by name."""
    rows = Keyword.objects.filter(project_id=survey.project_id, action=ACTION, survey_id=survey.pk)
    return sorted(rows.values_list("keyword", flat=True))


def start(ctx: Ctx, kw: Keyword, rest: str) -> str:
    """The keyword's survey started for the sender (see module); the inbound action."""
    assert ctx.project is not None and ctx.contact is not None
    name = kw.keyword
    survey = Survey.objects.filter(project=ctx.project, pk=kw.survey_id or 0).first()  # 0: none
    if survey is None or not survey.active:
        state = "no longer exists" if survey is None else "is inactive"
        return _refused(ctx, kw, f"survey {kw.survey_id} {state}", NOT_AVAILABLE)
    problem = _other_pair(ctx, ctx.project, ctx.contact)
    if problem:
        return _refused(ctx, kw, problem, "this survey cannot be started from this number.")
    try:
        session = do_start_survey(
            ctx.project, survey, ctx.contact, gateway=ctx.gw.name, triggered_by=f"keyword:{name}"
        )
    except CasereachError as exc:
        return _refused(ctx, kw, exc.message, NOT_AVAILABLE)
    ctx.notes.append(f"survey session {session.pk} {session.status}")
    return f"keyword_survey:{name}"


def _other_pair(ctx: Ctx, project: Project, contact: Contact) -> str:
    """Why the session would not run on the pair the SMS came in on ('' when it would): a
    worker's SMS go to its first two-way number, and a gateway name may name another."""
    entry = first_entry(contact.contact_id)
    if entry is None or entry[0] != ctx.msg.phone_number:
        return "the contact's SMS go to another of its numbers"
    gw = find_gateway(project, ctx.gw.name)
    if gw is None or gw.pk != ctx.gw.pk:
        return f"the gateway {ctx.gw.name} cannot send for this project"
    return ""


def _refused(ctx: Ctx, kw: Keyword, problem: str, told: str) -> str:
    """Nothing started: the reason in the message's detail, ``told`` to the sender after the
    keyword's ``error_reply`` (default ``Sorry:``)."""
    log.info("keyword %s: survey not started: %s", kw.keyword, problem)
    ctx.notes.append(f"survey not started: {problem}")
    prefix = translated(ctx, kw.error_reply) or DEFAULT_PREFIX
    reply(ctx, "keyword", {"*": f"{prefix} {told}"}, None, source_id=kw.keyword)
    return f"keyword_error:{kw.keyword}"
