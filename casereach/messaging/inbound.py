"""Inbound SMS (SPEC 6): the writer that stores a received message and acts on it.

One transaction per message (or per batch of messages received together by the SQLite webhook
worker, see ``batched``), in this order, the first that applies taking it:

1. the reserved words — opt-out, opt-in, help — for every gateway and every sender;
   ``YES`` opts in silently and lets the message go on;
2. a pending worker verification completed by a reply containing ``123``;
3. ``JOIN <project>`` self-registration from a number no contact holds;
4. a project keyword (first word) from an active two-way holder;
5. the project's default response.

Replies go out through the gateway that received the message (``gateway_source="inbound"``
pins it) and are written to the outbox like every other send; an automatic reply repeated too
often to one number within a few minutes is suppressed (a loop with another bot).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core.errors import BadRequest, CasereachError, Conflict, NotFound
from casereach.core.rows import RawRows
from casereach.core.segments import SegmentInfo, analyse
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import route, serving_projects
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.keywords import (
    DEFAULT_HELP_REPLY,
    DEFAULT_JOIN_REPLY,
    DEFAULT_OPT_IN_REPLY,
    DEFAULT_OPT_OUT_REPLY,
    DEFAULT_VERIFY_DONE,
    DEFAULT_VERIFY_REQUEST,
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    SILENT_OPT_IN_WORDS,
    StructuredError,
    all_words,
    first_word,
    parse_field_specs,
    parse_structured,
    reserved_word,
)
from casereach.messaging.models import (
    COMPLETED,
    IN_PROGRESS,
    EventStatus,
    Keyword,
    Message,
    MessagingEvent,
    MessagingSubEvent,
)
from casereach.messaging.optouts import (
    do_person_opt_in,
    do_person_opt_out,
    gateway_scope,
    is_opted_out,
)
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings
from casereach.workers.models import MobileWorker

log = logging.getLogger(__name__)

JOIN_WORD = "JOIN"
VERIFY_CODE = "123"


@dataclass
class InboundResult:
    message_id: str
    duplicate: bool = False
    action: str = ""
    project: str | None = None
    contact_id: str | None = None
    replies: list[str] = field(default_factory=list)
    detail: str = ""


_NOT_LOADED: Any = object()  # _Ctx.keyword: the keyword was not looked up in advance


@dataclass
class _Ctx:
    """What one inbound message is being handled with."""

    gw: GatewayConfig
    msg: Message
    project: Project | None
    settings: ProjectSettings
    entry: PhoneEntry | None  # the sender's two-way holder entry (maybe pending)
    contact: Contact | None
    event: MessagingEvent | None = None
    subevent: MessagingSubEvent | None = None
    replies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # (status, error_code) of each reply queued in this event, to close it without a query.
    reply_states: list[tuple[str, str | None]] = field(default_factory=list)
    # The project keyword named by the first word, looked up with the sender (None: there is
    # none); _NOT_LOADED when it was not.
    keyword: Keyword | None = _NOT_LOADED
    # The test phone's project: the gateway then acts as that project's own (see do_receive).
    as_project: int | None = None

    @property
    def language(self) -> str | None:
        return self.contact.lang_effective if self.contact else None


# -- the sender, the project, the settings --------------------------------------------------------

_ENTRY = RawRows(
    PhoneEntry, "id", "number", "contact_id", "project_id", "gateway", "holder", "pending"
)
_CONTACT = RawRows(
    Contact, "contact_id", "contact_type", "project_id", "name", "active", "lang_effective"
)
_KEYWORD = RawRows(Keyword)
_PROJECT = RawRows(Project)
_SETTINGS_COLUMN = _PROJECT.attnames.index("settings")


@functools.cache
def _sender_sql(with_project: bool) -> str:
    """The sender's two-way holder entry, its contact, the project keyword named by the first
    word, an earlier copy of this message and (``with_project``) the entry's project, in one
    statement: one row, found or not (one holder per number, one keyword per word and
    project)."""
    project = f", {_PROJECT.columns('p')}" if with_project else ""
    join = " LEFT JOIN projects_project p ON p.id = pe.project_id" if with_project else ""
    return (
        "SELECT (SELECT m.id FROM messaging_message m WHERE m.gateway_id = %s"
        " AND m.provider_id = %s AND m.direction = 'in' LIMIT 1), "
        f"{_ENTRY.columns('pe')}, {_CONTACT.columns('c')}, {_KEYWORD.columns('k')}{project} "
        "FROM (SELECT 1 AS one) AS x "
        "LEFT JOIN contacts_phoneentry pe ON pe.number = %s AND pe.holder "
        "LEFT JOIN contacts_contact c ON c.contact_id = pe.contact_id "
        f"LEFT JOIN messaging_keyword k ON k.project_id = pe.project_id AND k.keyword = %s{join}"
    )


@dataclass
class _Sender:
    entry: PhoneEntry | None
    contact: Contact | None
    keyword: Keyword | None
    earlier_id: str | None  # an inbound message already stored with this provider id
    # The entry's project and its settings, when read with it.
    project: tuple[Project, ProjectSettings] | None = None


def _find_sender(
    number: str, gw: GatewayConfig, provider_id: str | None, word: str, as_project: int | None
) -> _Sender:
    """Inside the message's transaction. SQLite reads the project row here too: its write
    transaction already excludes every other writer, as the row lock does on PostgreSQL
    (which takes it in ``_lock_project``)."""
    with_project = not bulk.has_row_locks()
    with connection.cursor() as cursor:
        cursor.execute(_sender_sql(with_project), [gw.pk, provider_id, number, word])
        row = cursor.fetchone()
    assert row is not None
    earlier_id = row[0]
    e_end = 1 + len(_ENTRY.fields)
    c_end = e_end + len(_CONTACT.fields)
    k_end = c_end + len(_KEYWORD.fields)
    if row[1] is None:
        return _Sender(None, None, None, earlier_id)
    entry = _ENTRY.build(row[1:e_end])
    if not _in_scope(gw, entry.project_id, as_project):
        return _Sender(None, None, None, earlier_id)
    contact = _CONTACT.build(row[e_end:c_end]) if row[e_end] is not None else None
    keyword = _KEYWORD.build(row[c_end:k_end]) if row[c_end] is not None else None
    project = _project_of(row[k_end:]) if with_project and row[k_end] is not None else None
    return _Sender(entry, contact, keyword, earlier_id, project)


def _in_scope(gw: GatewayConfig, project_id: int, as_project: int | None) -> bool:
    """Whether the gateway may match contacts of ``project_id`` (see ``_scope``)."""
    if as_project is not None:
        return project_id == as_project
    if gw.project_id is None or gw.project_id == project_id:
        return True
    scope = _scope(gw, None)
    return scope is None or project_id in scope


def _lock_project(project_id: int) -> tuple[Project, ProjectSettings]:
    """``lock_project`` and the project's effective settings."""
    sql = bulk.for_update(f"SELECT {_PROJECT.columns('p')} FROM projects_project p WHERE p.id = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [project_id])
        row = cursor.fetchone()
    if row is None:
        raise Project.DoesNotExist("Project matching query does not exist.")
    return _project_of(row)


def _project_of(row: Sequence[Any]) -> tuple[Project, ProjectSettings]:
    raw = row[_SETTINGS_COLUMN]
    project = _PROJECT.build(row)
    if isinstance(raw, str):
        return project, _settings_of(raw)
    return project, effective_settings(project.settings)


@functools.lru_cache(maxsize=256)
def _settings_of(raw: str) -> ProjectSettings:
    """Parsed once per distinct stored value (read-only: shared by every request)."""
    value = json.loads(raw)
    return effective_settings(value if isinstance(value, dict) else {})


def _no_project_settings() -> ProjectSettings:
    return _settings_of("{}")


def _scope(gw: GatewayConfig, as_project: int | None) -> set[int] | None:
    """Projects whose contacts may be matched: the owner and the projects that accepted the
    gateway; None = every project (a global gateway); the test phone's project only."""
    if as_project is not None:
        return {as_project}
    return serving_projects(gw)


class _Duplicate(Exception):
    """The message was stored already (raised: roll back whatever this delivery did)."""

    def __init__(self, project_id: int | None) -> None:
        super().__init__(project_id)
        self.project_id = project_id


_batch = threading.local()


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """One transaction for every message received inside, without a savepoint each (one
    commit for all). A failure in one leaves the whole transaction to roll back
    (``connection.needs_rollback``): the caller then receives each message again on its own."""
    with bulk.process_writer_turn(), transaction.atomic():
        _batch.on = True
        try:
            yield
        finally:
            _batch.on = False


def _in_batch() -> bool:
    return bool(getattr(_batch, "on", False)) and connection.in_atomic_block


def do_receive(
    gw: GatewayConfig, inbound: InboundMessage, *, as_project: Project | None = None
) -> InboundResult:
    """Store one inbound SMS once and act on it; re-deliveries return ``duplicate``.

    ``as_project``: the test phone of that project, which acts as the project's own gateway
    whatever gateway carries it: only its contacts are matched, its STOP applies to it only.

    One transaction: the sender, its contact, the keyword and an earlier copy of the message
    in one statement, then the project row lock, the handler, and the writes (the message
    last, so it is written once with its outcome). A re-delivery is found before anything is
    done; concurrent ones are serialised on their provider id (PostgreSQL: an advisory lock;
    SQLite: the write transaction), and the unique constraint is the last guard."""
    stamp = now()
    provider_id = inbound.provider_id or None
    word, _ = first_word(inbound.text)
    info = analyse(inbound.text) if inbound.text else None
    try:
        with bulk.process_writer_turn(), transaction.atomic(savepoint=not _in_batch()):
            outcome = _receive(
                gw, inbound, stamp, provider_id, word, info, as_project.pk if as_project else None
            )
    except _Duplicate as late:  # everything this delivery did is rolled back
        outcome = late
    if isinstance(outcome, _Duplicate):
        return _duplicate(gw, provider_id, outcome.project_id)
    return outcome


def _receive(
    gw: GatewayConfig,
    inbound: InboundMessage,
    stamp: dt.datetime,
    provider_id: str | None,
    word: str,
    info: SegmentInfo | None,
    as_project: int | None = None,
) -> InboundResult | _Duplicate:
    """``do_receive`` inside its transaction: the result, or the earlier copy found (nothing
    written)."""
    if provider_id is not None:
        bulk.lock_keys("inbound", [f"{gw.pk}:{provider_id}"])
    sender = _find_sender(inbound.sender, gw, provider_id, word, as_project)
    entry, contact = sender.entry, sender.contact
    owner = as_project if as_project is not None else gw.project_id
    project_id = entry.project_id if entry is not None else owner
    if sender.earlier_id is not None:
        return _Duplicate(project_id)
    if project_id is None:
        project, settings = None, _no_project_settings()
    elif entry is not None and sender.project is not None:
        project, settings = sender.project
    else:
        project, settings = _lock_project(project_id)
    msg = Message(
        project=project,
        direction="in",
        channel="sms",
        contact_id=contact.contact_id if contact else None,
        contact_type=contact.contact_type if contact else "",
        phone_number=inbound.sender,
        sender=inbound.to,
        text=inbound.text,
        language=(contact.lang_effective or "") if contact else "",
        gateway_id=gw.pk,
        gateway_name=gw.name,
        gateway_source="inbound",
        provider_id=provider_id,
        status="received",
        created_on=stamp,
        updated_on=stamp,
        next_attempt_at=None,
    )
    if info is not None:
        msg.segments, msg.encoding = info.segments, info.encoding
    ctx = _Ctx(
        gw, msg, project, settings, entry, contact, keyword=sender.keyword, as_project=as_project
    )
    action = _handle(ctx)
    # Every message a project sees is in its messaging-event log, replied to or not.
    # An event created only now has no replies: it is complete as it is written.
    closed = ctx.event is None
    _ensure_event(ctx, "keyword" if "keyword" in action else "unrecognized", "", closed)
    msg.inbound_action = action
    msg.error_detail = "; ".join(ctx.notes)[:500]
    msg.event = ctx.event
    msg.subevent = ctx.subevent
    if not message_log.add_message(msg, inbound_once=provider_id is not None):
        raise _Duplicate(project_id)
    if not closed:
        _close_event(ctx)
    return InboundResult(
        message_id=msg.id,
        action=action,
        # The handlers may have found them (self-registration creates the contact).
        project=ctx.project.name if ctx.project else None,
        contact_id=ctx.contact.contact_id if ctx.contact else None,
        replies=ctx.replies,
        detail=msg.error_detail,
    )


def _duplicate(gw: GatewayConfig, provider_id: str | None, project_id: int | None) -> InboundResult:
    first = (
        Message.objects.filter(gateway_id=gw.pk, direction="in", provider_id=provider_id)
        .only("id", "inbound_action")
        .first()
    )
    name = (
        Project.objects.filter(pk=project_id).values_list("name", flat=True).first()
        if project_id is not None
        else None
    )
    return InboundResult(
        message_id=first.id if first else "",
        duplicate=True,
        action=first.inbound_action if first else "",
        project=name,
    )


# -- the handlers, in SPEC 6 order --------------------------------------------------------------


def _handle(ctx: _Ctx) -> str:
    s = ctx.settings
    text = ctx.msg.text
    word = reserved_word(
        text,
        opt_out=all_words(s.opt_out_keywords),
        opt_in=all_words(s.opt_in_keywords),
        help_words=all_words(s.help_keywords),
    )
    number = ctx.msg.phone_number
    source = f"keyword:{ctx.gw.name}"
    if word == "opt_out":
        do_person_opt_out(number, gateway_scope(ctx.gw, ctx.as_project), source=source)
        _reply(ctx, "opt_out", s.opt_out_reply, DEFAULT_OPT_OUT_REPLY, allow_opted_out=True)
        return "opt_out"
    if word == "opt_in":
        do_person_opt_in(number, gateway_scope(ctx.gw, ctx.as_project), source=source)
        _reply(ctx, "opt_in", s.opt_in_reply, DEFAULT_OPT_IN_REPLY)
        return "opt_in"
    if word == "help":
        _reply(ctx, "help", s.help_text, DEFAULT_HELP_REPLY, allow_opted_out=True)
        return "help"
    prefix = ""
    if word == "opt_in_silent":
        if do_person_opt_in(number, gateway_scope(ctx.gw, ctx.as_project), source=source):
            ctx.notes.append("opted in by YES")
        prefix = "opt_in_silent+"
    entry = ctx.entry
    if entry is not None and entry.pending:
        if VERIFY_CODE in text:
            _complete_verification(ctx)
            return prefix + "verification"
        ctx.notes.append("verification pending: the reply did not contain 123")
    keyword, rest = first_word(text)
    if keyword == JOIN_WORD and entry is None:
        done = _self_register(ctx, rest)
        if done:
            return prefix + "self_registration"
    if (
        entry is not None
        and not entry.pending
        and ctx.contact is not None
        and ctx.contact.active
        and ctx.project is not None
        and keyword
    ):
        if ctx.keyword is not _NOT_LOADED and ctx.project.pk == entry.project_id:
            kw = ctx.keyword  # looked up with the sender
        else:
            kw = Keyword.objects.filter(project=ctx.project, keyword=keyword).first()
        if kw is not None:
            return prefix + _run_keyword(ctx, kw, rest)
    if ctx.project is not None and any(t.strip() for t in s.default_inbound_response.values()):
        _reply(ctx, "default_response", s.default_inbound_response, None)
        return prefix + "default_response"
    if entry is None:
        ctx.notes.append("no contact holds this number for two-way SMS")
    return prefix + "unhandled"


def _run_keyword(ctx: _Ctx, kw: Keyword, rest: str) -> str:
    assert ctx.project is not None and ctx.contact is not None
    name = kw.keyword
    fields = parse_field_specs(kw.fields)
    if fields:
        try:
            props = parse_structured(rest, fields)
            if ctx.contact.contact_type != Contact.CASE:
                raise StructuredError(f"{name} updates a case; this number belongs to a worker")
            if props:
                do_apply_case_changes(
                    ctx.project,
                    [
                        CaseChange(
                            op="update",
                            case_id=ctx.contact.contact_id,
                            properties=props,
                            user=f"sms:{ctx.msg.phone_number}",
                        )
                    ],
                    single=True,
                )
                ctx.notes.append("updated " + ", ".join(sorted(props)))
        except (StructuredError, CasereachError) as exc:
            problem = exc.message if isinstance(exc, CasereachError) else str(exc)
            ctx.notes.append(f"structured SMS refused: {problem}")
            prefix = _translated(ctx, kw.error_reply) or "Error:"
            _reply(ctx, "keyword", {"*": f"{prefix} {problem}"}, None, source_id=name)
            return f"keyword_error:{name}"
    if any(isinstance(t, str) and t.strip() for t in kw.reply.values()):  # stored: may be bad
        _reply(ctx, "keyword", kw.reply, None, source_id=name)
    return f"keyword:{name}"


def _self_register(ctx: _Ctx, rest: str) -> bool:
    target_name = rest.strip().lower()
    target = Project.objects.filter(name=target_name).first() if target_name else None
    if target is None:
        ctx.notes.append(f"JOIN: no project named {rest.strip()[:50]!r}")
        return False
    scope = _scope(ctx.gw, ctx.as_project)
    if scope is not None and target.pk not in scope:
        ctx.notes.append("JOIN: this gateway does not serve that project")
        return False
    s = effective_settings(target.settings)
    reg = s.self_registration
    if not reg.enabled:
        ctx.notes.append("JOIN: the project does not allow self-registration")
        return False
    number = ctx.msg.phone_number
    result = do_apply_case_changes(
        target,
        [
            CaseChange(
                op="create",
                case_type=reg.case_type,
                case_name=f"+{number}",
                owner_id=reg.owner_id or "",
                properties={
                    "contact_phone_number": number,
                    "contact_phone_number_is_verified": "yes",
                },
                user=f"sms:{number}",
            )
        ],
        single=True,
    )
    case = result.cases[0] if result.cases else None
    ctx.project = lock_project(target.pk)
    ctx.settings = s
    ctx.msg.project = ctx.project
    if case is not None:
        ctx.contact = Contact.objects.filter(contact_id=case.case_id).first()
        if ctx.contact is not None:  # the message is written at the end, with these
            ctx.msg.contact_id, ctx.msg.contact_type = ctx.contact.contact_id, "case"
    _reply(ctx, "self_registration", reg.welcome_text, DEFAULT_JOIN_REPLY)
    return True


# -- worker verification (SPEC 3.8) -------------------------------------------------------------


def do_start_verification(
    project: Project, worker_id: str, number: str | None = None
) -> tuple[str, str]:
    """(result, number): ``started``, ``resent_pending``, ``already_verified`` or
    ``already_in_use``. Starting reserves the number (a pending holder) and texts it."""
    with transaction.atomic():
        locked = lock_project(project.pk)
        worker = MobileWorker.objects.filter(project=locked, id=worker_id).first()
        if worker is None:
            raise NotFound(f"worker '{worker_id}' not found")
        if not worker.is_active:
            raise BadRequest("the worker is deactivated")
        entries = list(PhoneEntry.objects.filter(contact_id=worker.id).order_by("position", "id"))
        if not entries:
            raise BadRequest("the worker has no usable phone number")
        if number:
            wanted = number.strip().removeprefix("+")
            chosen = next((e for e in entries if e.number == wanted), None)
            if chosen is None:
                raise BadRequest(f"{number!r} is not one of the worker's usable numbers")
        else:
            chosen = entries[0]
        bulk.lock_keys("phone", [chosen.number])
        current = PhoneEntry.objects.filter(number=chosen.number, holder=True).first()
        if current is not None and current.pk == chosen.pk:
            if not current.pending:
                return "already_verified", chosen.number
            result = "resent_pending"
        elif current is not None:
            return "already_in_use", chosen.number
        else:
            PhoneEntry.objects.filter(pk=chosen.pk).update(holder=True, pending=True)
            result = "started"
        contact = Contact.objects.filter(contact_id=worker.id).first()
        s = effective_settings(locked.settings)
        event = message_log.new_event(
            locked, source="verification", content_type="sms", triggered_by="verification"
        )
        sub = message_log.new_subevent(locked, event, contact)
        ctx = _Ctx(
            gw=GatewayConfig(),
            msg=Message(phone_number=chosen.number),
            project=locked,
            settings=s,
            entry=chosen,
            contact=contact,
            event=event,
            subevent=sub,
        )
        _queue(ctx, s.verification_text, DEFAULT_VERIFY_REQUEST, pinned=False)
        _close_event(ctx)
    return result, chosen.number


def _complete_verification(ctx: _Ctx) -> None:
    entry = ctx.entry
    assert entry is not None and ctx.project is not None
    PhoneEntry.objects.filter(pk=entry.pk).update(
        pending=False, verified_requested=True, requested_on=now()
    )
    worker = MobileWorker.objects.filter(id=entry.contact_id).first()
    if worker is not None:
        known = {n.removeprefix("+") for n in worker.verified_numbers}
        if entry.number not in known:
            worker.verified_numbers = [*worker.verified_numbers, entry.number]
            worker.save(update_fields=["verified_numbers"])
    _reply(ctx, "verification", ctx.settings.verification_done_text, DEFAULT_VERIFY_DONE)


# -- replies -----------------------------------------------------------------------------------


def _translated(ctx: _Ctx, texts: Mapping[str, str]) -> str | None:
    text, _ = pick_translation(
        texts,
        ctx.language,
        project_languages=ctx.settings.languages,
        fallback="untranslated",
    )
    return text


def _ensure_event(ctx: _Ctx, source: str, source_id: str, completed: bool = False) -> None:
    """The event and sub-event of this message (``completed``: it has no replies and gets
    none, so it is written closed)."""
    if ctx.event is not None or ctx.project is None:
        return
    status: EventStatus = COMPLETED if completed else IN_PROGRESS
    ctx.event = message_log.new_event(
        ctx.project,
        source=source,
        source_id=source_id,
        source_name=source_id if source == "keyword" else "",  # the keyword itself
        content_type="sms",
        status=status,
        triggered_by=f"sms:{ctx.msg.phone_number}",
    )
    ctx.subevent = message_log.new_subevent(ctx.project, ctx.event, ctx.contact, status=status)


def _reply(
    ctx: _Ctx,
    source: str,
    texts: Mapping[str, str],
    default: str | None,
    *,
    allow_opted_out: bool = False,
    source_id: str = "",
) -> None:
    _ensure_event(ctx, source, source_id)
    _queue(ctx, texts, default, pinned=True, allow_opted_out=allow_opted_out)


def _queue(
    ctx: _Ctx,
    texts: Mapping[str, str],
    default: str | None,
    *,
    pinned: bool,
    allow_opted_out: bool = False,
) -> None:
    """Queue one SMS to the sender's number (or fail it at once with the reason)."""
    text, language = pick_translation(
        texts,
        ctx.language,
        project_languages=ctx.settings.languages,
        fallback="untranslated",
    )
    if text is None:
        if default is None:
            ctx.notes.append("no reply text in any language")
            return
        text, language = default, "*"
    number = ctx.msg.phone_number
    stamp = now()
    s = ctx.settings
    since = stamp - dt.timedelta(minutes=s.reply_loop_minutes)
    if pinned:
        repeats = _recent_replies(number, text, since)
        if repeats >= s.reply_loop_limit:
            ctx.notes.append(
                f"reply suppressed: {repeats} identical replies to this number in the last "
                f"{s.reply_loop_minutes} minutes (a loop with another automatic sender?)"
            )
            return
    info = analyse(text)
    msg = Message(
        project=ctx.project,
        event=ctx.event,
        subevent=ctx.subevent,
        channel="sms",
        contact_id=ctx.contact.contact_id if ctx.contact else None,
        contact_type=ctx.contact.contact_type if ctx.contact else "",
        phone_number=number,
        text=text,
        language="" if language == "*" else language,
        segments=info.segments,
        encoding=info.encoding,
        allow_opted_out=allow_opted_out,
        created_on=stamp,
        updated_on=stamp,
        next_attempt_at=stamp,
    )
    if pinned:
        msg.gateway_id, msg.gateway_name, msg.gateway_source = (
            ctx.gw.pk,
            ctx.gw.name,
            "inbound",
        )
    elif ctx.project is not None:
        override = ctx.entry.gateway if ctx.entry else ""
        chosen = route(ctx.project, number, override)
        msg.gateway_source = chosen.source
        if chosen.gateway is None:
            msg.status, msg.error_code, msg.failed_on = "failed", chosen.error_code, stamp
            msg.gateway_name, msg.next_attempt_at = chosen.requested, None
        else:
            msg.gateway_id, msg.gateway_name = chosen.gateway.pk, chosen.gateway.name
    if (
        msg.status == "queued"
        and not allow_opted_out
        and is_opted_out(number, ctx.project.pk if ctx.project else None, msg.gateway_id)
    ):
        msg.status, msg.error_code, msg.failed_on = "failed", "PHONE_NUMBER_OPTED_OUT", stamp
        msg.next_attempt_at = None
    message_log.add_message(msg)
    ctx.replies.append(msg.id)
    ctx.reply_states.append((msg.status, msg.error_code))


_CREATED_ON = Message._meta.get_field("created_on")


def _recent_replies(number: str, text: str, since: dt.datetime) -> int:
    """Automatic replies of this text to this number since ``since``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM messaging_message WHERE phone_number = %s"
            " AND direction = 'out' AND gateway_source = 'inbound' AND text = %s"
            " AND created_on >= %s",
            [number, text, _CREATED_ON.get_db_prep_value(since, connection)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _close_event(ctx: _Ctx) -> None:
    """An event whose replies all failed at once (or that has none) is closed now (the
    dispatcher closes the rest when their messages reach a final state)."""
    message_log.close_event(ctx.event, ctx.subevent, ctx.reply_states)


# -- keywords ------------------------------------------------------------------------------------

KEYWORD_FIELDS = frozenset({"keyword", "description", "reply", "fields", "error_reply"})
MAX_REPLY_CHARS = 1600


def _texts(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object of language → text")
    out: dict[str, str] = {}
    for lang, text in value.items():
        if not isinstance(text, str):
            raise BadRequest(f"{what}[{lang}] must be a string")
        if len(text) > MAX_REPLY_CHARS:
            raise BadRequest(f"{what}[{lang}] is longer than {MAX_REPLY_CHARS} characters")
        out[str(lang)] = text
    return out


def _reserved_for(project: Project) -> set[str]:
    s = effective_settings(project.settings)
    return {
        *OPT_OUT_WORDS,
        *OPT_IN_WORDS,
        *SILENT_OPT_IN_WORDS,
        *HELP_WORDS,
        JOIN_WORD,
        *all_words(s.opt_out_keywords),
        *all_words(s.opt_in_keywords),
        *all_words(s.help_keywords),
    }


def _apply_keyword(project: Project, kw: Keyword, data: object, *, creating: bool) -> None:
    if not isinstance(data, dict):
        raise BadRequest("Payload must be a single JSON object")
    unknown = sorted(set(data) - KEYWORD_FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    if creating or "keyword" in data:
        word = data.get("keyword")
        if not isinstance(word, str) or not word.strip() or len(word.split()) != 1:
            raise BadRequest("keyword must be one word")
        word = word.strip().upper()
        if len(word) > 64:
            raise BadRequest("keyword is longer than 64 characters")
        if word in _reserved_for(project):
            raise BadRequest(f"{word} is reserved (opt-out, opt-in, help or JOIN)")
        kw.keyword = word
    if "description" in data:
        desc = data["description"]
        if not isinstance(desc, str) or len(desc) > 500:
            raise BadRequest("description must be a string of at most 500 characters")
        kw.description = desc
    if "reply" in data:
        kw.reply = _texts(data["reply"], "reply")
    if "error_reply" in data:
        kw.error_reply = _texts(data["error_reply"], "error_reply")
    if "fields" in data:
        try:
            specs = parse_field_specs(data["fields"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        kw.fields = [
            {
                "property": f.prop,
                "type": f.type,
                "choices": list(f.choices),
                "required": f.required,
                "label": f.label,
            }
            for f in specs
        ]
    if not kw.fields and not any(t.strip() for t in kw.reply.values()):
        raise BadRequest("a keyword needs a reply, fields to update, or both")


def do_save_keyword(project: Project, data: object, keyword_id: int | None = None) -> Keyword:
    with transaction.atomic():
        if keyword_id is None:
            kw = Keyword(project=project, created_on=now())
        else:
            found = Keyword.objects.select_for_update().filter(project=project, pk=keyword_id)
            kw_or_none = found.first()
            if kw_or_none is None:
                raise NotFound(f"keyword {keyword_id} not found")
            kw = kw_or_none
        _apply_keyword(project, kw, data, creating=keyword_id is None)
        clash = Keyword.objects.filter(project=project, keyword=kw.keyword)
        if kw.pk is not None:
            clash = clash.exclude(pk=kw.pk)
        if clash.exists():
            raise Conflict(f"the keyword {kw.keyword} already exists")
        kw.updated_on = now()
        kw.save()
    return kw


def do_delete_keyword(project: Project, keyword_id: int) -> None:
    deleted, _ = Keyword.objects.filter(project=project, pk=keyword_id).delete()
    if not deleted:
        raise NotFound(f"keyword {keyword_id} not found")
