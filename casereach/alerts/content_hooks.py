"""Alert content that a higher layer provides: a survey started for each recipient.

``alerts`` sits below ``surveys`` (import-linter), so it cannot read a survey or start a
session itself; ``surveys`` registers its functions here in ``SurveysConfig.ready()``:

- ``check(project, survey_id)``: the survey's name when it exists in ``project`` and is active,
  else ``BadRequest`` (a missing id and another project's id give the same answer);
- ``describe(project, survey_id)``: (name, active), or None when the project has no such survey;
- ``start(project, survey_id, contact_ids, triggered_by=…, at=…, known=…)``: one session per
  contact, set-based (``surveys.sessions.bulk``); one ``StartOutcome`` per contact id, in
  order (``known``: contacts the caller has read, by id, not read again).

Without a registration (the surveys app not installed) survey content is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from casereach.alerts.spec import AlertSpec
from casereach.core.errors import BadRequest
from casereach.projects.models import Project


@dataclass(frozen=True)
class StartOutcome:
    """What starting the survey did for one contact: a session (``session_id``), which may
    have ended at once (``error_code`` set: its first question could not be sent), or nothing
    (``session_id`` None, ``error_code`` the reason)."""

    contact_id: str
    session_id: int | None
    error_code: str | None = None
    detail: str = ""


class KnownContact(NamedTuple):  # a tuple: one per recipient of a broadcast
    """What the caller already read of a contact of ``project`` that it starts a survey for
    (the scheduler: its recipient): the starter does not read it again. ``language`` as
    stored (None: the project's), ``gateway`` the override of its number's entry ("")."""

    contact_type: str
    active: bool
    language: str | None
    name: str
    number: str
    gateway: str


class SurveyCheck(Protocol):
    def __call__(self, project: Project, survey_id: int) -> str: ...


class SurveyStarter(Protocol):
    def __call__(
        self,
        project: Project,
        survey_id: int,
        contact_ids: Sequence[str],
        *,
        triggered_by: str,
        at: dt.datetime,
        known: Mapping[str, KnownContact] | None = None,
    ) -> list[StartOutcome]: ...


class SurveyDescribe(Protocol):
    def __call__(self, project: Project, survey_id: int) -> tuple[str, bool] | None: ...


@dataclass(frozen=True)
class SurveyHooks:
    check: SurveyCheck
    start: SurveyStarter
    describe: SurveyDescribe  # (name, active) of the project's survey, None: not found


_hooks: SurveyHooks | None = None


def register_survey_hooks(hooks: SurveyHooks | None) -> None:
    global _hooks
    _hooks = hooks


def survey_hooks() -> SurveyHooks:
    if _hooks is None:
        raise BadRequest("survey content is not available (the surveys app is not installed)")
    return _hooks


def check_survey(project: Project, survey_id: int) -> str:
    """The survey's name, or BadRequest: it must exist in this project and be active."""
    return survey_hooks().check(project, survey_id)


def describe_survey(project: Project, survey_id: int) -> dict[str, Any] | None:
    """``{"id", "name", "active"}`` of the project's survey; None when it does not exist (or
    surveys are not available)."""
    if _hooks is None:
        return None
    found = _hooks.describe(project, survey_id)
    if found is None:
        return None
    return {"id": survey_id, "name": found[0], "active": found[1]}


def check_content(project: Project, spec: AlertSpec) -> None:
    """Survey content names a survey of ``project`` that is active (checked when an alert is
    saved and again when it is activated): BadRequest otherwise, naming ``content.survey_id``."""
    if spec.content.is_survey and spec.content.survey_id is not None:
        try:
            check_survey(project, spec.content.survey_id)
        except BadRequest as exc:
            raise BadRequest(f"invalid alert: content.survey_id: {exc.message}") from None
