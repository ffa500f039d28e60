"""The survey session of a sub-event (issue 20), as CommCare's messaging-event API shows it.

A session's conversation is several events here (the first question's, each re-ask's, each
answer's), but HQ shows a survey as **one** event. The first question's sub-event is that
event: ``link_survey`` marks it with the session id, the survey (``survey_form``) and the
session's status; ``add_to_survey`` marks the other sub-events of the conversation with the
session id only (they are not shown as events of their own: their messages are listed in the
session's event). ``touch_survey`` records a new session status and moves the session's
event's ``date_last_activity`` forward (commcare-export pages on it), under the project lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from casereach.core import bulk
from casereach.messaging.models import MessagingSubEvent
from casereach.projects.actions import lock_project, tick_clock
from casereach.projects.models import Project


def link_survey(
    project_id: int, event_id: int, session_id: int, form: Mapping[str, object], status: str
) -> None:
    """Make ``event_id``'s sub-event the event of survey session ``session_id``."""
    MessagingSubEvent.objects.filter(event_id=event_id).update(
        survey_session_id=session_id,
        survey_form=dict(form),
        survey_status=status,
        date_last_activity=tick_clock(lock_project(project_id)),
    )


def add_to_survey(event_id: int, session_id: int) -> None:
    """``event_id`` is part of session ``session_id``'s conversation (not an event of its own)."""
    MessagingSubEvent.objects.filter(event_id=event_id, survey_session_id__isnull=True).update(
        survey_session_id=session_id
    )


def touch_survey(project_id: int, session_id: int, status: str) -> None:
    """The session's status now, and new activity on its event."""
    MessagingSubEvent.objects.filter(project_id=project_id, survey_session_id=session_id).exclude(
        survey_status=""
    ).update(survey_status=status, date_last_activity=tick_clock(lock_project(project_id)))


_TOUCH_SQL = (
    f"UPDATE {MessagingSubEvent._meta.db_table} SET survey_status = %s,"
    " date_last_activity = %s WHERE project_id = %s AND survey_session_id = %s"
    " AND survey_status <> ''"
)


def touch_surveys(project: Project, touched: Sequence[tuple[int, str]]) -> None:
    """``touch_survey`` of each (session id, status) of ``project``, whose lock the caller
    holds (``project``: the copy its clock last ticked through): one clock tick for all and
    one statement set."""
    if not touched:
        return
    first = tick_clock(project, len(touched))
    step = dt.timedelta(microseconds=1)
    bulk.execute_many(  # writes: messaging.MessagingSubEvent
        _TOUCH_SQL,
        [
            (status, bulk.adapt_datetime(first + step * i), project.pk, session_id)
            for i, (session_id, status) in enumerate(touched)
        ],
    )
