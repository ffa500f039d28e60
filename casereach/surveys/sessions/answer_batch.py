"""Survey answers received together (``messaging.inbound_batch``, decision 0015): the plain
answers of a batch of the SQLite webhook worker, each to a different active session, read and
written with a fixed number of statements.

``take`` reads the sessions (with their cases, names and answers: one statement) and decides
each answer's step as ``sessions.on_inbound`` does; an answer it would handle otherwise — its
session not active or another project's, the sender not the session's contact (a shared
phone), the case closed or deleted, a step that ends the session or writes the case, a reply
with no text — makes it answer None, and the batch goes one message at a time. ``record``
writes what ``sessions._apply`` writes for each: the answers, the sessions' progress and their
events' activity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from casereach.core.timeutil import now
from casereach.messaging.inbound_batch import Arrival, Taken
from casereach.messaging.log.surveys import touch_surveys
from casereach.surveys.models import ACTIVE, SurveySession
from casereach.surveys.session_queries import PROBE, session_spec
from casereach.surveys.session_send import PART, survey_status
from casereach.surveys.session_steps import Step, reply_step
from casereach.surveys.sessions.answer_rows import (
    add_answers,
    advance,
    answer_values,
    save_progress,
    sessions_for_answers,
)
from casereach.surveys.spec import SurveySpec


@dataclass
class _State:
    session: SurveySession
    step: Step
    spec: SurveySpec
    at: dt.datetime


class SurveyAnswers:
    """The batch conversation of SMS survey sessions."""

    def take(self, arrivals: Sequence[Arrival]) -> list[Taken] | None:
        ids = [int(a.held[PROBE[0]]) for a in arrivals]
        if len(set(ids)) != len(ids):
            return None
        read = sessions_for_answers(ids)
        taken = []
        for a, session_id in zip(arrivals, ids, strict=True):
            found = read.get(session_id)
            if found is None or found.case is None or found.answers is None:
                return None
            session = found.session
            if (
                session.status != ACTIVE
                or session.project_id != a.project.pk
                or session.contact_id != a.contact.contact_id
                or found.case.gone
            ):
                return None
            spec = session_spec(session)
            current = spec.question(session.current_question or "")
            if current is None:
                return None
            context = found.case.context(a.project, session, a.settings)
            step = reply_step(
                spec, current, session.retries, found.answers, a.inbound.text, context
            )
            if step.status != "active" or step.properties or not step.send:
                return None
            taken.append(
                Taken(
                    action="survey_" + step.result,
                    texts={session.language: step.send, "*": step.send},
                    source=PART,
                    source_id=str(session.pk),
                    survey_session_id=session.pk,
                    state=_State(session, step, spec, now()),
                )
            )
        return taken

    def record(self, arrivals: Sequence[Arrival], taken: Sequence[Taken]) -> None:
        states: list[_State] = [t.state for t in taken]
        add_answers(
            [
                {"session_id": s.session.id, **values}
                for a, s in zip(arrivals, states, strict=True)
                if (
                    values := answer_values(
                        s.step, a.inbound.text, a.message_id, a.inbound.provider_id or None, s.at
                    )
                )
                is not None
            ]
        )
        for s in states:
            advance(s.session, s.step, s.spec, s.at)
        save_progress(*(s.session for s in states))
        touched: dict[int, list[tuple[int, str]]] = {}
        projects = {a.project.pk: a.project for a in arrivals}
        for s in states:
            if s.session.event_id is not None:
                touched.setdefault(s.session.project_id, []).append(
                    (s.session.pk, survey_status(s.session))
                )
        for project_id, of_project in touched.items():
            touch_surveys(projects[project_id], of_project)
