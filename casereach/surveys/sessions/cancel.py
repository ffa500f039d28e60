"""Cancelling a session by hand (the web UI's *Cancel*, the API's ``…/cancel``): an active
session ends ``cancelled`` and its pair's next queued session starts; a queued one leaves the
queue. An ended session cannot be cancelled."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from casereach.core import bulk
from casereach.core.errors import Conflict
from casereach.core.timeutil import now
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.surveys.models import ACTIVE, QUEUED, SurveySession
from casereach.surveys.session_queries import get_session
from casereach.surveys.sessions import _end, _start_next


def do_cancel_session(
    project: Project, session_id: int, *, by: str = "", at: dt.datetime | None = None
) -> SurveySession:
    """Cancel the project's session ``session_id`` (NotFound for another project's);
    Conflict, nothing changed, when it has already ended."""
    at = at or now()
    get_session(project, session_id)
    with bulk.process_writer_turn(), transaction.atomic():
        lock_project(project.pk)
        session = SurveySession.objects.select_for_update().get(pk=session_id)
        if session.status not in (ACTIVE, QUEUED):
            raise Conflict(f"survey session {session_id} has already ended ({session.status})")
        was_active = session.status == ACTIVE
        _end(session, "cancelled", at, f"cancelled by {by}" if by else "cancelled")
        if was_active:
            _start_next(project, session.gateway_id, session.phone_number, at)
    session.refresh_from_db()
    return session
