"""A session whose latest message failed for good ends (``messaging.failure_hooks``): its
question — the first, a re-ask, the next one after an answer — could not reach the person (the
number refused, retries exhausted, a WhatsApp number outside its window with no template), so
waiting for an answer would only hold the pair until the session expires. It ends ``failed``
(``opted_out`` when the provider said the number opted out) with the reason in ``detail``, and
the pair's next queued session starts. A failure of an older message, after which the session
sent another, changes nothing."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.db import transaction

from casereach.core import rows
from casereach.gateways.base import PHONE_NUMBER_OPTED_OUT
from casereach.messaging.models import Message, MessagingSubEvent
from casereach.projects.actions import lock_project
from casereach.surveys.models import ACTIVE, SurveySession
from casereach.surveys.sessions import _end, _start_next

_M = Message._meta.db_table
_S = MessagingSubEvent._meta.db_table
log = logging.getLogger(__name__)
_SESSIONS_SQL = (
    f"SELECT ss.id, m.error_code FROM {_M} m JOIN {_S} se ON se.id = m.subevent_id "
    f"JOIN {SurveySession._meta.db_table} ss ON ss.id = se.survey_session_id "
    "WHERE m.id IN ({}) AND m.status = 'failed' AND ss.status = 'active' AND NOT EXISTS ("
    f"SELECT 1 FROM {_M} later JOIN {_S} se2 ON se2.id = later.subevent_id "
    "WHERE se2.survey_session_id = ss.id AND later.direction = 'out' "
    "AND later.id <> m.id AND later.created_on >= m.created_on)"
)


def on_failed(failures: Sequence[tuple[str, str | None]], at: dt.datetime) -> None:
    """End the active sessions whose latest message is among ``failures`` (one statement to
    find them; the rest only for those found)."""
    ids = [message_id for message_id, _ in failures]
    found = rows.fetch_all(_SESSIONS_SQL.format(", ".join(["%s"] * len(ids))), ids)
    for session_id, code in found:
        try:
            # A savepoint of its own: a session that cannot be ended (or whose next queued
            # one cannot start) must not undo the dispatcher's outcomes around it.
            with transaction.atomic():
                _end_failed(session_id, code, at)
        except Exception:
            log.exception("survey session %s: could not end it after a failed send", session_id)


def _end_failed(session_id: int, code: str | None, at: dt.datetime) -> None:
    # The project's lock first, then the session's, in the order the inbound path takes them.
    project_id = (
        SurveySession.objects.filter(pk=session_id).values_list("project_id", flat=True).first()
    )
    if project_id is None:
        return
    project = lock_project(project_id)
    session = SurveySession.objects.select_for_update().filter(pk=session_id).first()
    if session is None or session.status != ACTIVE:
        return
    status = "opted_out" if code == PHONE_NUMBER_OPTED_OUT else "failed"
    _end(session, status, at, f"the survey's message could not be sent: {code or 'failed'}")
    _start_next(project, session.gateway_id, session.phone_number, at)
