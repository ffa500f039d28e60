"""Survey content fired: the recipients a firing reaches get a survey session each instead of
a message (``content_hooks``: the surveys app's set-based starter).

The scheduler builds every recipient's message draft as for a message (``compose``: the
contact's own checks — no recipient, inactive, no number) and calls ``start_surveys`` with
them; each recipient still queued is then started, grouped per survey and alert (one call,
whatever the batch size). A recipient that gets no session — refused by a check here or by
the starter (no gateway, ...) — keeps its failed message in the alert's event, with the
reason, as a message alert logs it; a session's question 1 lives in the session's own event
(source ``survey``), so a started recipient's draft is not written.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from casereach.alerts.content_hooks import KnownContact, StartOutcome, survey_hooks
from casereach.core.errors import BadRequest
from casereach.messaging.log import EventDraft
from casereach.messaging.models import FAILED
from casereach.projects.models import Project

NOT_AVAILABLE = "SURVEY_NOT_AVAILABLE"
BROADCAST_SOURCES = frozenset({"broadcast", "immediate_broadcast", "scheduled_broadcast"})


def start_surveys(
    project: Project,
    surveys: Sequence[int | None],
    events: Sequence[EventDraft],
    messages: Sequence[Sequence[tuple[Any, Any]]],
    at: dt.datetime,
    gateways: Mapping[str, str] | None = None,
) -> dict[str, StartOutcome]:
    """Start the surveys of the survey firings among a batch's (``surveys[i]``: firing i's
    survey, or None for a message); message draft id → the outcome, for each recipient that
    got a session. A recipient that got none has its draft failed with the reason.

    ``gateways`` (contact id → its number's gateway override, as read with the numbers): the
    recipients' contacts are then handed to the starter as read (``KnownContact``)."""
    groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
    known: dict[str, KnownContact] = {}
    for survey_id, event, msgs in zip(surveys, events, messages, strict=True):
        if survey_id is None:
            continue
        key = (survey_id, _trigger(event))
        for target, msg in msgs:
            if msg.status != FAILED and msg.contact_id:
                groups[key].append(msg)
                contact = target.contact
                # The project's own contact, with the number its message goes to.
                if gateways is None or not contact or contact["project_id"] != project.pk:
                    continue
                if msg.phone_number:
                    cid = str(msg.contact_id)
                    known[cid] = KnownContact(
                        contact["contact_type"],
                        bool(contact["active"]),
                        contact["lang_effective"],
                        contact["name"],
                        msg.phone_number,
                        gateways.get(cid, ""),
                    )
    started: dict[str, StartOutcome] = {}
    for (survey_id, triggered_by), drafts in groups.items():
        for msg, outcome in zip(
            drafts, _start(project, survey_id, drafts, triggered_by, at, known), strict=True
        ):
            if outcome.session_id is not None:
                started[msg.id] = outcome
            if outcome.error_code is not None:
                _fail(msg, outcome, at)
    return started


def _trigger(event: EventDraft) -> str:
    """What started the sessions, as the survey's messaging event reads it: a broadcast's
    ``broadcast:<id>`` (HQ's broadcast source), a conditional alert's ``alert:<id>``."""
    if event.source in BROADCAST_SOURCES:
        return f"broadcast:{event.source_id}"
    return str(event.triggered_by)


def _start(
    project: Project,
    survey_id: int,
    drafts: Sequence[Any],
    triggered_by: str,
    at: dt.datetime,
    known: Mapping[str, KnownContact],
) -> list[StartOutcome]:
    ids = [str(msg.contact_id) for msg in drafts]
    try:
        starter = survey_hooks().start
    except BadRequest:
        return [StartOutcome(c, None, NOT_AVAILABLE) for c in ids]
    return starter(project, survey_id, ids, triggered_by=triggered_by, at=at, known=known)


REASONS = {
    "SURVEY_NOT_FOUND": "the survey no longer exists",
    "SURVEY_INACTIVE": "the survey is inactive",
    NOT_AVAILABLE: "surveys are not available",
}


def _fail(msg: Any, outcome: StartOutcome, at: dt.datetime) -> None:
    code = outcome.error_code or "ERROR"
    msg.status, msg.error_code, msg.failed_on, msg.next_attempt_at = FAILED, code, at, None
    if outcome.session_id is not None:
        why = f"survey session {outcome.session_id} ended at once: {outcome.detail}"
    else:
        why = f"survey not started: {REASONS.get(code, code)}"
    msg.error_detail = why[:500]
