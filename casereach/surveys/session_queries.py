"""Reading survey sessions: the active one of a (gateway, number) pair (the inbound hot path,
one statement on the partial unique index), what a session's next step needs (its frozen
definition, its answers, the case), and the API's lists. Every API lookup is scoped to one
project: another project's session is not found."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Min, Q, QuerySet

from casereach.alerts.templates import RenderContext
from casereach.cases.models import Case
from casereach.cases.queries import parse_date_bound
from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.core import rows
from casereach.core.errors import BadRequest, NotFound
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import project_settings
from casereach.messaging.models import Message
from casereach.messaging.whatsapp import is_whatsapp
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings
from casereach.surveys.answers import Answer
from casereach.surveys.flow import properties_to_write
from casereach.surveys.models import ACTIVE, QUEUED, SESSION_STATUSES, SurveyAnswer, SurveySession
from casereach.surveys.queries import MAX_ID
from casereach.surveys.session_steps import Context
from casereach.surveys.spec import SurveySpec, load_stored

_ACTIVE_SQL = (
    f"SELECT ss.id FROM {SurveySession._meta.db_table} ss "
    "WHERE ss.gateway_id = %s AND ss.phone_number = %s AND ss.status = 'active'"
)
# The inbound conversation probe: read with the sender, in the same statement.
PROBE = ("survey", _ACTIVE_SQL)


def active_session_id(gateway_id: int, number: str) -> int | None:
    """The active session holding the pair, if any (the inbound hook's only statement when
    there is none)."""
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVE_SQL, [gateway_id, number])
        row = cursor.fetchone()
    return int(row[0]) if row else None


def session_spec(session: SurveySession) -> SurveySpec:
    """The session's frozen definition, parsed once per loaded row (ids are reused by
    rolled-back tests and restored databases, so no cache outlives the row)."""
    spec = getattr(session, "_spec", None)
    if not isinstance(spec, SurveySpec):
        spec = load_stored(session.definition)
        session._spec = spec  # type: ignore[attr-defined]
    return spec


# The inbound hot path reads these in raw SQL (the ORM's query building was most of an
# answer's cost; see docs/performance.md).
_ANSWERS_SQL = (
    f"SELECT question_id, skipped, value, display FROM {SurveyAnswer._meta.db_table} "
    "WHERE session_id = %s ORDER BY id"
)
_CASE = rows.RawRows(Case, "case_id", "project_id", "case_name", "owner_id", "properties")
_CASE_SQL = (
    f"SELECT {_CASE.columns('c')} FROM {Case._meta.db_table} c "
    "WHERE c.project_id = %s AND c.case_id = %s AND NOT c.deleted"
)
_NAMES_SQL = (
    f"SELECT contact_id, name FROM {Contact._meta.db_table} WHERE project_id = %s "
    "AND contact_id IN ({})"
)


def answers_of(session: SurveySession) -> dict[str, Answer | None]:
    """Question id → the answer given (None: skipped), in the order they were given."""
    return answers_from(rows.fetch_all(_ANSWERS_SQL, [session.pk]))


def answers_from(found: Iterable[Sequence[Any]]) -> dict[str, Answer | None]:
    """``answers_of`` from rows of (question id, skipped, value, display), in order."""
    return {
        qid: None if skipped else Answer(value, display) for qid, skipped, value, display in found
    }


def live_case(project_id: int, case_id: str | None) -> Case | None:
    """The case (its name, owner and properties loaded; the rest on first access)."""
    if not case_id:
        return None
    row = rows.fetch_one(_CASE_SQL, [project_id, case_id])
    return _CASE.build(row) if row is not None else None


def _names(project: Project, contact_ids: list[str]) -> dict[str, str]:
    """``contacts.queries.contact_names`` in one raw statement."""
    sql = _NAMES_SQL.format(", ".join(["%s"] * len(contact_ids)))
    return {str(k): str(v) for k, v in rows.fetch_all(sql, [project.pk, *contact_ids])}


def case_gone(session: SurveySession) -> str:
    """Why the session's case can no longer take answers ("the case was closed" /
    "... deleted"), or "" (a mobile worker's session has no case)."""
    if not session.case_id:
        return ""
    row = (
        Case.objects.filter(project_id=session.project_id, case_id=session.case_id)
        .values_list("closed", "deleted")
        .first()
    )
    if row is None or row[1]:
        return "the case was deleted"
    return "the case was closed" if row[0] else ""


# An answer's case in one statement: why it is gone (closed, deleted) and, for the next step's
# render, its name, owner and properties and the names of the session's contact and the owner
# (``case_gone`` + ``live_case`` + ``contact_names`` on the inbound hot path). ``{session}``:
# the session table's alias in a statement that reads the session too (``ss``), or none.
ANSWER_CASE_COLUMNS = (
    f"c.closed, c.deleted, {_CASE.columns('c')}, "
    f"(SELECT n.name FROM {Contact._meta.db_table} n WHERE n.project_id = c_pid "
    "AND n.contact_id = c_contact), "
    f"(SELECT o.name FROM {Contact._meta.db_table} o WHERE o.project_id = c_pid "
    "AND o.contact_id = c.owner_id)"
)
ANSWER_CASE_WIDTH = 4 + len(_CASE.fields)  # columns of ANSWER_CASE_COLUMNS
_ANSWER_CASE_SQL = (
    "SELECT "
    + ANSWER_CASE_COLUMNS.replace("c_pid", "%s").replace("c_contact", "%s")
    + f" FROM (SELECT 1 AS one) x LEFT JOIN {Case._meta.db_table} c "
    "ON c.project_id = %s AND c.case_id = %s"
)


@dataclass
class AnswerCase:
    """What ``case_gone`` and ``step_context`` read, read once for an answer."""

    gone: str
    case: Case | None  # the live case (None: no case, or deleted)
    recipient_name: str | None
    owner_name: str | None

    def context(
        self, project: Project, session: SurveySession, settings: ProjectSettings | None = None
    ) -> Context:
        """``step_context(project, session)`` from what was read (``settings``: the project's
        effective settings, when the caller has them)."""
        case = self.case
        props: Mapping[str, str] = case.properties if case is not None else {}
        owner = case.owner_id if case is not None else None
        render = RenderContext(
            case_name=case.case_name if case is not None else None,
            case_properties=props,
            owner_name=self.owner_name if owner else None,
            recipient_name=self.recipient_name,
        )
        country = (settings or project_settings(project)).default_country
        return Context(session.language, render, props, country)


def answer_case(session: SurveySession) -> AnswerCase:
    """``case_gone(session)`` and what ``step_context`` needs of the case and the names, in
    one statement (the session's project)."""
    pid = session.project_id
    row = rows.fetch_one(
        _ANSWER_CASE_SQL, [pid, session.contact_id, pid, pid, session.case_id or None]
    )
    assert row is not None  # one row, found or not
    return answer_case_of(session, row)


def answer_case_of(session: SurveySession, row: Sequence[Any]) -> AnswerCase:
    """``AnswerCase`` from the ``ANSWER_CASE_COLUMNS`` of a row."""
    closed, deleted = row[0], row[1]
    case_end = 2 + len(_CASE.fields)
    recipient, owner = row[case_end], row[case_end + 1]
    names = (None if recipient is None else str(recipient), None if owner is None else str(owner))
    if not session.case_id:
        return AnswerCase("", None, *names)
    if closed is None or deleted:
        return AnswerCase("the case was deleted", None, *names)
    case = _CASE.build(row[2:case_end])
    return AnswerCase("the case was closed" if closed else "", case, *names)


def retired_questions(survey_id: int, current: list[str]) -> list[str]:
    """Question ids answered in the survey's sessions that its current definition no longer
    has, in the order they were first answered (one query)."""
    rows = (
        SurveyAnswer.objects.filter(session__survey_id=survey_id)
        .exclude(question_id__in=current)
        .values("question_id")
        .annotate(first=Min("id"))
        .order_by("first")
    )
    return [r["question_id"] for r in rows]


def step_context(project: Project, session: SurveySession) -> Context:
    """The session's language, its case's properties and names, the project's country."""
    case = live_case(project.pk, session.case_id)
    props: Mapping[str, str] = case.properties if case is not None else {}
    owner = case.owner_id if case is not None else None
    names = _names(project, [session.contact_id, *([owner] if owner else [])])
    render = RenderContext(
        case_name=case.case_name if case is not None else None,
        case_properties=props,
        owner_name=names.get(owner) if owner else None,
        recipient_name=names.get(session.contact_id),
    )
    country = project_settings(project).default_country
    return Context(session.language, render, props, country)


def gateway_is_whatsapp(gateway_id: int | None) -> bool:
    """Whether the session's gateway sends WhatsApp messages (a gateway gone: no)."""
    if gateway_id is None:
        return False
    kind = GatewayConfig.objects.filter(pk=gateway_id).values_list("type", flat=True).first()
    return kind is not None and is_whatsapp(kind)


def first_entry(contact_id: str) -> tuple[str, str] | None:
    """The contact's number SMS go to and its gateway override (``send_order``)."""
    row = (
        PhoneEntry.objects.filter(contact_id=contact_id)
        .order_by(*send_order())
        .values_list("number", "gateway")
        .first()
    )
    return (row[0], row[1]) if row else None


def get_contact(project: Project, contact_id: object) -> Contact:
    if not isinstance(contact_id, str) or not contact_id.strip():
        raise BadRequest("contact_id: must be a contact's id")
    contact = Contact.objects.filter(project=project, contact_id=contact_id).first()
    if contact is None:
        raise NotFound(f"contact '{contact_id}' not found")
    return contact


def get_session(project: Project, session_id: int) -> SurveySession:
    """The project's session ``session_id``, or NotFound (also for another project's)."""
    found = None
    if 0 < session_id <= MAX_ID:
        found = SurveySession.objects.filter(project=project, pk=session_id).first()
    if found is None:
        raise NotFound(f"survey session {session_id} not found")
    return found


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be a whole number") from None
    if not 0 < value <= MAX_ID:
        raise BadRequest(f"{name}: out of range")
    return value


def filter_sessions(project: Project, params: Mapping[str, str]) -> QuerySet[SurveySession]:
    """Filters: ``survey`` (id), ``contact_id``, ``status``, ``started_from``/``started_to``
    (dates or datetimes; on ``created_on``, when the start was asked for)."""
    qs = SurveySession.objects.filter(project=project)
    survey = _int_param(params, "survey")
    if survey is not None:
        qs = qs.filter(survey_id=survey)
    if params.get("contact_id"):
        qs = qs.filter(contact_id=params["contact_id"])
    status = params.get("status")
    if status:
        if status not in SESSION_STATUSES:
            raise BadRequest(f"status: must be one of {', '.join(SESSION_STATUSES)}")
        qs = qs.filter(status=status)
    for name, qualifier in (("started_from", "gte"), ("started_to", "lte")):
        if params.get(name):
            lookup, when = parse_date_bound(params[name], qualifier)
            qs = qs.filter(**{f"created_on__{lookup}": when})
    return qs


def sessions_of_survey(project: Project, survey_id: int) -> QuerySet[SurveySession]:
    return SurveySession.objects.filter(project=project, survey_id=survey_id).order_by("id")


def answers_by_session(sessions: list[SurveySession]) -> dict[int, list[SurveyAnswer]]:
    out: dict[int, list[SurveyAnswer]] = {s.pk: [] for s in sessions}
    if sessions:
        for a in SurveyAnswer.objects.filter(session_id__in=list(out)).order_by("id"):
            out[a.session_id].append(a)
    return out


def due_session_ids(at: dt.datetime, limit: int) -> list[int]:
    """Active sessions whose earliest timer has passed, oldest first."""
    qs = SurveySession.objects.filter(status=ACTIVE, next_timer_at__lte=at)
    return list(qs.order_by("next_timer_at", "id").values_list("id", flat=True)[:limit])


def queued_ids(gateway_id: int, number: str) -> list[int]:
    """The pair's queued sessions, first asked first."""
    qs = SurveySession.objects.filter(gateway_id=gateway_id, phone_number=number, status="queued")
    return list(qs.order_by("id").values_list("id", flat=True))


# -- what the web UI shows ---------------------------------------------------------------------


def status_counts(project: Project, survey_id: int) -> dict[str, int]:
    """Status → how many of the survey's sessions have it (every status, zeros included)."""
    rows = (
        SurveySession.objects.filter(project=project, survey_id=survey_id)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    found = dict(rows)
    return {status: int(found.get(status, 0)) for status in SESSION_STATUSES}


def contact_sessions(project: Project, contact_id: str, limit: int = 50) -> list[SurveySession]:
    """The contact's sessions, the live ones (active, then queued) first, then newest first."""
    qs = SurveySession.objects.filter(project=project, contact_id=contact_id)
    live = list(qs.filter(status__in=(ACTIVE, QUEUED)).order_by("status", "id")[:limit])
    ended = qs.exclude(status__in=(ACTIVE, QUEUED)).order_by("-created_on", "-id")
    return live + list(ended[: max(0, limit - len(live))])


def queue_places(sessions: list[SurveySession]) -> dict[int, int]:
    """Queued session id → its place in its pair's queue (1: starts next), counting every
    project's sessions on the pair (a global gateway's queue is shared)."""
    queued = [s for s in sessions if s.status == QUEUED]
    if not queued:
        return {}
    pairs = Q()
    for s in queued:
        pairs |= Q(gateway_id=s.gateway_id, phone_number=s.phone_number)
    rows = SurveySession.objects.filter(pairs, status=QUEUED).order_by("id")
    seen: dict[tuple[int, str], int] = {}
    places: dict[int, int] = {}
    for pk, gw, number in rows.values_list("id", "gateway_id", "phone_number"):
        seen[(gw, number)] = seen.get((gw, number), 0) + 1
        places[pk] = seen[(gw, number)]
    return {s.pk: places[s.pk] for s in queued if s.pk in places}


def latest_on_number(project: Project, number: str, gateway_ids: list[int]) -> SurveySession | None:
    """The project's session on ``number`` through one of ``gateway_ids`` that the test
    phone shows: the active one, else the newest."""
    qs = SurveySession.objects.filter(
        project=project, phone_number=number, gateway_id__in=gateway_ids
    )
    return qs.filter(status=ACTIVE).first() or qs.order_by("-created_on", "-id").first()


def properties_written(session: SurveySession, answers: dict[str, Answer | None]) -> dict[str, str]:
    """The case properties the session has written (by its status and ``write_mode``): every
    answer's once it completed, those accepted so far with ``per_answer``, the answers given
    at expiry with ``write_on_expiry``; nothing when the case refused the write."""
    if not session.case_id or session.detail.startswith("case properties not written"):
        return {}
    spec = session_spec(session)
    settings = spec.settings
    if (
        session.status == "completed"
        or settings.write_mode == "per_answer"
        or (session.status == "expired" and settings.write_on_expiry)
    ):
        return properties_to_write(spec, answers)
    return {}


@dataclass(frozen=True)
class TranscriptLine:
    """One message of a session: sent (``direction`` out) or a reply (in) with what the
    session made of it: ``accepted``, ``invalid``, ``skipped``, ``help`` (or "")."""

    message: Message
    result: str
    answer: SurveyAnswer | None


def transcript(project: Project, session: SurveySession) -> list[TranscriptLine]:
    """Every message of the session in order: those of its messaging sub-events (each
    names the session: ``survey_session_id``) and the replies its answers came from."""
    answers = list(SurveyAnswer.objects.filter(session=session).order_by("id"))
    by_message = {a.message_id: a for a in answers if a.message_id}
    msgs = Message.objects.filter(
        Q(subevent__survey_session_id=session.pk) | Q(pk__in=list(by_message)), project=project
    ).order_by("created_on", "id")
    return [_line(m, by_message.get(m.pk)) for m in msgs]


def _line(m: Message, answer: SurveyAnswer | None) -> TranscriptLine:
    if m.direction != "in":
        return TranscriptLine(m, "", None)
    if answer is not None:
        return TranscriptLine(m, "skipped" if answer.skipped else "accepted", answer)
    if m.inbound_action == "survey_help":
        return TranscriptLine(m, "help", None)
    invalid = m.inbound_action.startswith("survey_")
    return TranscriptLine(m, "invalid" if invalid else "", None)
