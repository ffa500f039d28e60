"""Starting one survey for many contacts at once (an alert's survey content): the rows that as
many ``do_start_survey`` calls would write, with a fixed number of statements per batch.

Per batch of up to ``BATCH`` contacts, under the project lock, in one transaction:

    read the contacts, their first phone entries, the gateways and routes, the pairs that
    already have an active or queued session, the cases and names the first question shows
    (once each) → decide every session in memory → take the sessions' ids → question 1 of
    each session that starts, through messaging's set-based writer (``bulk_send``: the very
    rows and checks of a single send, one event of source ``survey`` per session) → INSERT
    the sessions, each with its event id, or ended when its question could not be sent.

The contacts and cases are read by id alone (the project's kept in Python), and on PostgreSQL
the session table is analysed again once it has grown past what its statistics say: both keep
each batch's reads probing indexes instead of walking the project or the gateway.

A contact that a single start refuses (inactive, no number, no gateway) gets no session and
its reason (``CONTACT_IS_INACTIVE``, ``NO_PHONE_NUMBER``, the route's error code). A pair that
is busy — an active session, or an earlier contact of the same batch on the same phone — gets
the new session queued behind it, first asked first started.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from casereach.alerts.content_hooks import KnownContact, StartOutcome
from casereach.alerts.templates import RenderContext
from casereach.cases.models import Case
from casereach.contacts.models import Contact
from casereach.core import bulk, rows
from casereach.core.errors import BadRequest, CasereachError
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import gateway_index, global_routes, project_settings, route
from casereach.messaging.sending import first_entries
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.surveys.models import ACTIVE, QUEUED, Survey, SurveySession
from casereach.surveys.queries import MAX_ID
from casereach.surveys.session_steps import Context, Step, first_step, timers
from casereach.surveys.sessions import _start_next, do_start_survey
from casereach.surveys.sessions.bulk_send import Recipient, send_first_questions
from casereach.surveys.spec import SurveySpec, load_stored

BATCH = 1000  # messaging's batch size (``sending.MAX_BATCH``)
NOTHING_SHOWN = "no question is shown for this case"


class SessionDraft(rows.Draft):
    """A session row; its ``definition`` is given encoded once per batch (``encoded``)."""

    model = SurveySession

    def row(self) -> list[Any]:
        row = super().row()
        row[_DEFINITION] = self.__dict__["encoded"]
        return row


_DEFINITION = SessionDraft._table.attnames.index("definition")
_TABLE = SurveySession._meta.db_table
_CASES = Case._meta.db_table
_CONTACTS = Contact._meta.db_table


@dataclass
class _Planned:
    """One contact of a batch: its session draft (None: refused, ``code`` says why)."""

    contact_id: str
    draft: Any = None
    code: str | None = None
    step: Step | None = None
    contact: ContactRow | None = None


def check_survey(project: Project, survey_id: int) -> str:
    """The survey's name: it exists in ``project`` (another project's id is not found) and
    is active; else BadRequest."""
    survey = _survey(project, survey_id)
    if survey is None:
        raise BadRequest(f"survey {survey_id} not found")
    if not survey.active:
        raise BadRequest(f"survey {survey_id} ('{survey.name}') is inactive")
    return survey.name


def describe_survey(project: Project, survey_id: int) -> tuple[str, bool] | None:
    """(name, active) of the project's survey; None when it has no such survey."""
    survey = _survey(project, survey_id)
    return None if survey is None else (survey.name, survey.active)


def _survey(project: Project, survey_id: int) -> Survey | None:
    if not isinstance(survey_id, int) or not 0 < survey_id <= MAX_ID:
        return None
    return Survey.objects.filter(project=project, pk=survey_id).first()


def start_surveys(
    project: Project,
    survey_id: int,
    contact_ids: Sequence[str],
    *,
    triggered_by: str,
    at: dt.datetime,
    known: Mapping[str, KnownContact] | None = None,
) -> list[StartOutcome]:
    """One session of survey ``survey_id`` per contact id (an id given twice gets two, the
    second queued), in batches; one outcome per id, in order (see the module). ``known``:
    contacts the caller has read (the scheduler's recipients), not read again."""
    survey = _survey(project, survey_id)
    if survey is None or not survey.active:
        code = "SURVEY_NOT_FOUND" if survey is None else "SURVEY_INACTIVE"
        return [StartOutcome(c, None, code) for c in contact_ids]
    spec = load_stored(survey.definition)
    out: list[StartOutcome] = []
    for start in range(0, len(contact_ids), BATCH):
        chunk = contact_ids[start : start + BATCH]
        # A broadcast's batches fill the session table faster than autovacuum analyses it;
        # planned as nearly empty, each batch's busy-pair read walked every active session
        # of the gateway on PostgreSQL (18 ms a batch at 20,000, growing with each batch).
        bulk.refresh_stale_statistics(_TABLE)
        with bulk.process_writer_turn(), transaction.atomic():
            locked = lock_project(project.pk)
            out.extend(_start_batch(locked, survey, spec, chunk, triggered_by[:150], at, known))
    return out


def _start_batch(
    project: Project,
    survey: Survey,
    spec: SurveySpec,
    contact_ids: Sequence[str],
    triggered_by: str,
    at: dt.datetime,
    known: Mapping[str, KnownContact] | None,
) -> list[StartOutcome]:
    planned, stale = _plan(project, survey, contact_ids, triggered_by, at, known or {})
    with_session = [p for p in planned if p.draft is not None]
    drafts = [p.draft for p in with_session]
    _first_steps(project, spec, with_session, at)
    try:
        with transaction.atomic():
            # The sessions' ids are taken first: question 1's event names its session, and
            # each session is then written once, with its event (or its end) already in it.
            for d, new_id in zip(drafts, bulk.reserve_ids(_TABLE, len(drafts)), strict=True):
                d.pk = d.id = new_id
            ended = _send_first(project, with_session, at)
            t = SessionDraft._table
            bulk.insert(  # writes: surveys.SurveySession
                _TABLE, ["id", *t.columns], [[d.pk, *d.row()] for d in drafts]
            )
    except IntegrityError:  # a pair taken meanwhile (another project's start on a shared
        # gateway): start them one at a time, each queued behind whatever holds its pair
        return _one_by_one(project, survey, contact_ids, triggered_by, at)
    _move_on(project, ended, with_session, at)
    for gateway_id, number in stale:  # a queue with nothing active: its oldest starts
        _start_next(project, gateway_id, number, at)
    return [_outcome(p) for p in planned]


# -- deciding (reads once per batch, then memory) -------------------------------------------------


def _plan(
    project: Project,
    survey: Survey,
    contact_ids: Sequence[str],
    triggered_by: str,
    at: dt.datetime,
    known: Mapping[str, KnownContact],
) -> tuple[list[_Planned], list[tuple[int, str]]]:
    """Each contact's session draft (status queued or active) or the reason it gets none;
    and the pairs that had queued sessions but none active (left over: started after)."""
    contacts, entries = _contact_reads(project, contact_ids, known)
    routed = _routes(project, entries)
    busy = _busy_pairs(set(routed.values()))
    first_language = project.languages[0] if project.languages else "en"
    encoded = bulk.adapt_json(survey.definition)
    planned: list[_Planned] = []
    for contact_id in contact_ids:
        row = contacts.get(contact_id)
        p = _Planned(contact_id, contact=row)
        planned.append(p)
        found = routed.get(contact_id)
        if row is None:
            p.code = "NO_RECIPIENT"
        elif not row[2]:
            p.code = "CONTACT_IS_INACTIVE"
        elif contact_id not in entries:
            p.code = "NO_PHONE_NUMBER"
        elif isinstance(found, str):
            p.code = found
        if p.code is not None or row is None or not isinstance(found, tuple):
            continue
        gw, number = found
        pair = (gw.pk, number)
        p.draft = SessionDraft(
            encoded=encoded,
            project_id=project.pk,
            survey_id=survey.pk,
            survey_name=survey.name,
            survey_version=survey.version,
            contact_id=contact_id,
            case_id=contact_id if row[1] == Contact.CASE else None,
            gateway_id=gw.pk,
            gateway_name=gw.name,
            phone_number=number,
            language=row[3] or first_language,
            status=QUEUED if pair in busy else ACTIVE,
            created_on=at,
            triggered_by=triggered_by,
        )
        busy.setdefault(pair, ACTIVE)
    stale = [pair for pair, status in busy.items() if status == QUEUED]
    return planned, stale


# (contact id, type, active, language as stored, name)
ContactRow = tuple[str, str, bool, str | None, str]


def _contact_reads(
    project: Project, ids: Sequence[str], known: Mapping[str, KnownContact]
) -> tuple[dict[str, ContactRow], dict[str, tuple[str, str]]]:
    """The batch's contacts and the first phone entries (number, gateway override) of the
    active ones: as the caller read them (``known``), the others read here."""
    contacts: dict[str, ContactRow] = {}
    entries: dict[str, tuple[str, str]] = {}
    for contact_id in ids:
        k = known.get(contact_id)
        if k is not None:
            contacts[contact_id] = (contact_id, k.contact_type, k.active, k.language, k.name)
            if k.active:
                entries[contact_id] = (k.number, k.gateway)
    missing = [c for c in ids if c not in contacts]
    if missing:
        read = _contacts(project, missing)
        contacts.update(read)
        entries.update(first_entries(sorted(c for c, row in read.items() if row[2])))
    return contacts, entries


# The batch reads below look rows up by primary key alone and keep the project's in Python:
# with ``project_id = %s`` in the WHERE clause SQLite (no statistics) walks the project's
# index — every contact or case of the project, once per batch — instead of probing the key.


def _contacts(project: Project, ids: Iterable[str]) -> dict[str, ContactRow]:
    """contact id → its row, for this project's contacts."""
    out: dict[str, ContactRow] = {}
    for chunk in bulk.in_chunks(sorted(set(ids))):
        where, params = bulk.in_sql("contact_id", chunk)
        for row in rows.fetch_all(
            "SELECT contact_id, contact_type, active, lang_effective, name, project_id "
            f"FROM {_CONTACTS} WHERE {where}",
            params,
        ):
            if row[5] == project.pk:
                out[row[0]] = (row[0], row[1], bool(row[2]), row[3], row[4])
    return out


Routed = tuple[GatewayConfig, str]  # the gateway and the number of a contact's pair


def _routes(project: Project, entries: dict[str, tuple[str, str]]) -> dict[str, Routed | str]:
    """Each contact's pair as a single start routes it, or the route's error code."""
    settings = project_settings(project)
    index, routes = gateway_index(project), global_routes()
    out: dict[str, Routed | str] = {}
    for contact_id, (number, override) in entries.items():
        found = route(project, number, override, routes=routes, index=index, settings=settings)
        gw = found.gateway
        out[contact_id] = (gw, number) if gw is not None else (found.error_code or "NO_ROUTE")
    return out


def _busy_pairs(pairs: Iterable[Routed | str]) -> dict[tuple[int, str], str]:
    """Those of ``pairs`` with an active or a queued session (→ ``active`` when one is
    active): a new session there waits behind them. Per gateway and status, on the partial
    indexes (the status is written out: SQLite only uses a partial index for a literal)."""
    numbers: dict[int, set[str]] = {}
    for pair in pairs:
        if isinstance(pair, tuple):
            numbers.setdefault(pair[0].pk, set()).add(pair[1])
    busy: dict[tuple[int, str], str] = {}
    for status in (QUEUED, ACTIVE):  # active last: it wins
        for gateway_id, wanted in numbers.items():
            for chunk in bulk.in_chunks(sorted(wanted)):
                where, params = bulk.in_sql("phone_number", chunk)
                found = rows.fetch_all(
                    f"SELECT phone_number FROM {_TABLE} WHERE gateway_id = %s AND {where} "
                    f"AND status = '{status}'",
                    [gateway_id, *params],
                )
                busy.update(((gateway_id, number), status) for (number,) in found)
    return busy


def _first_steps(
    project: Project, spec: SurveySpec, planned: list[_Planned], at: dt.datetime
) -> None:
    """Question 1 of every session that starts (rendered with its case); one shown no
    question ends ``completed`` at once, as a single start does."""
    starting = [p for p in planned if p.draft.status == ACTIVE]
    cases = _cases(
        project, [p.draft.case_id for p in starting if p.draft.case_id], _reads_properties(spec)
    )
    names = _names(project, [c[2] for c in cases.values() if c[2]])
    country = project_settings(project).default_country
    reask, expires, due = timers(spec, at, at)  # every session of the batch starts at ``at``
    found = [t for t in (reask, expires, due) if t]
    next_timer = min(found) if found else None
    for p in starting:
        d = p.draft
        name, props, owner = cases.get(d.case_id or "", (None, {}, None))
        render = RenderContext(
            case_name=name,
            case_properties=props,
            owner_name=names.get(owner) if owner else None,
            recipient_name=p.contact[4] if p.contact else None,
        )
        step = first_step(spec, Context(d.language, render, props, country))
        if step.status == "completed":
            d.status, d.ended_on, d.detail = "completed", at, NOTHING_SHOWN
            continue
        d.started_on, d.current_question = at, step.current
        d.next_reask_at, d.expires_at, d.reply_due_at = reask, expires, due
        d.next_timer_at = next_timer
        p.step = step


# A reference to a case property other than the name and the owner's name.
_PROPERTY_REF = re.compile(r"case\.(?!name\b|owner\.name\b)")


def _reads_properties(spec: SurveySpec) -> bool:
    """Whether any text or condition of the survey reads a case property (else the first
    question needs only the case's name and owner: its properties are not read)."""
    return bool(_PROPERTY_REF.search(spec.model_dump_json()))


def _cases(
    project: Project, case_ids: Sequence[str], properties: bool
) -> dict[str, tuple[str | None, dict[str, str], str | None]]:
    """case id → (name, properties — ``{}`` unless ``properties`` —, owner id) of the live
    cases."""
    out: dict[str, tuple[str | None, dict[str, str], str | None]] = {}
    for chunk in bulk.in_chunks(sorted(set(case_ids))):
        if properties:
            qs = Case.objects.filter(bulk.is_in("case_id", chunk))
            found: Iterable[Sequence[Any]] = qs.values_list(
                "case_id", "case_name", "properties", "owner_id", "project_id", "deleted"
            )
        else:  # raw: the ORM's rows cost more here
            where, params = bulk.in_sql("case_id", chunk)
            found = rows.fetch_all(
                f"SELECT case_id, case_name, NULL, owner_id, project_id, deleted FROM {_CASES} "
                f"WHERE {where}",
                params,
            )
        for case_id, name, props, owner, project_id, deleted in found:
            if project_id == project.pk and not deleted:
                out[case_id] = (name, props or {}, owner)
    return out


def _names(project: Project, ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in bulk.in_chunks(sorted(set(ids))):
        qs = Contact.objects.filter(bulk.is_in("contact_id", chunk))
        out.update(
            (contact_id, name)
            for contact_id, name, project_id in qs.values_list("contact_id", "name", "project_id")
            if project_id == project.pk
        )
    return out


# -- sending question 1 ------------------------------------------------------------------------


def _send_first(project: Project, planned: list[_Planned], at: dt.datetime) -> list[Any]:
    """Question 1 of each started session in one set-based send; each session's draft then
    holds its event id, or its end (``opted_out`` / ``failed``) when its question was not
    sent. The drafts that ended."""
    sending = [p for p in planned if p.step is not None and p.step.send]
    texts = [p.step.send for p in sending if p.step is not None]
    who = [Recipient(p.contact[1], p.contact[4], p.contact[3]) for p in sending if p.contact]
    results = send_first_questions(project, [p.draft for p in sending], texts, who)
    ended: list[Any] = []
    for p, result in zip(sending, results, strict=True):
        d = p.draft
        d.event_id, code = result.event_id, result.error_code
        if code is not None:
            d.status = "opted_out" if code == "PHONE_NUMBER_OPTED_OUT" else "failed"
            d.ended_on, d.detail = at, f"the first question was not sent: {code}"[:500]
            d.next_reask_at = d.expires_at = d.reply_due_at = d.next_timer_at = None
            p.code = code
            ended.append(d)
    return ended


def _move_on(project: Project, ended: list[Any], planned: list[_Planned], at: dt.datetime) -> None:
    """A pair whose new session ended at once (or showed no question) starts its next
    queued one, as after a single start (rare: a shared phone in the same batch)."""
    done = ended + [p.draft for p in planned if p.draft.status == "completed"]
    queued = {
        (p.draft.gateway_id, p.draft.phone_number) for p in planned if p.draft.status == QUEUED
    }
    for pair in dict.fromkeys((d.gateway_id, d.phone_number) for d in done):
        if pair in queued:
            _start_next(project, pair[0], pair[1], at)


def _outcome(p: _Planned) -> StartOutcome:
    if p.draft is None:
        return StartOutcome(p.contact_id, None, p.code)
    return StartOutcome(p.contact_id, int(p.draft.pk), p.code, str(p.draft.detail or ""))


def _one_by_one(
    project: Project,
    survey: Survey,
    contact_ids: Sequence[str],
    triggered_by: str,
    at: dt.datetime,
) -> list[StartOutcome]:
    """The fallback after a conflict: the single start for each contact."""
    out: list[StartOutcome] = []
    for contact_id in contact_ids:
        contact = Contact.objects.filter(project=project, contact_id=contact_id).first()
        if contact is None:
            out.append(StartOutcome(contact_id, None, "NO_RECIPIENT"))
            continue
        try:
            s = do_start_survey(project, survey, contact, triggered_by=triggered_by, at=at)
        except CasereachError as exc:
            out.append(StartOutcome(contact_id, None, _refusal_code(exc.message)))
            continue
        ended = s.status not in (ACTIVE, QUEUED, "completed")
        code = s.detail.rsplit(": ", 1)[-1][:64] if ended else None
        out.append(StartOutcome(contact_id, s.pk, code, s.detail))
    return out


def _refusal_code(message: str) -> str:
    if "inactive" in message:
        return "CONTACT_IS_INACTIVE"
    if "no phone number" in message:
        return "NO_PHONE_NUMBER"
    return "NO_SUITABLE_GATEWAY"
