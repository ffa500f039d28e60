"""Receiving an inbound SMS (SPEC 6): the webhook's message stored once and acted on.

One transaction per message (or per batch of messages received together by the SQLite webhook
worker, see ``batched``), in this order, the first that applies taking it:

1. the reserved words — opt-out, opt-in, help — for every gateway and every sender;
   ``YES`` opts in silently and lets the message go on (``inbound_optouts``);
2. a pending worker verification completed by a reply containing ``123``
   (``inbound_verification``);
2b. a conversation holding the pair, such as an SMS survey (``inbound_conversations``);
3. ``JOIN <project>`` self-registration from a number no contact holds;
4. a project keyword (first word) from an active two-way holder (``inbound_keywords``);
5. the project's default response.

Replies and the event log are written by ``inbound_replies`` through ``messaging.log``.
Inbound SMS is the hot webhook: building ORM queries costs more than running them, so the few
statements of the common path are written once as SQL and read through ``core.rows``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core.rows import RawRows
from casereach.core.segments import SegmentInfo, analyse
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging import log as message_log
from casereach.messaging.inbound_conversations import active_probes, run_conversations
from casereach.messaging.inbound_keywords import (
    JOIN_WORD,
    do_delete_keyword,
    do_save_keyword,
    find_keyword,
    run_keyword,
    self_register,
)
from casereach.messaging.inbound_optouts import handle_reserved
from casereach.messaging.inbound_replies import Ctx, close_event, ensure_event, in_scope, reply
from casereach.messaging.inbound_verification import (
    VERIFY_CODE,
    complete_verification,
    do_start_verification,
)
from casereach.messaging.keywords import first_word
from casereach.messaging.models import Keyword, Message
from casereach.messaging.whatsapp import is_whatsapp
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings, effective_settings

log = logging.getLogger(__name__)

# Re-exported for importers owned elsewhere (messaging/api_inbound.py, cli/demo.py) until they
# import from the modules that define them; new code imports from there.
__all__ = [
    "InboundResult",
    "batched",
    "do_delete_keyword",
    "do_receive",
    "do_save_keyword",
    "do_start_verification",
]


@dataclass
class InboundResult:
    message_id: str
    duplicate: bool = False
    action: str = ""
    project: str | None = None
    contact_id: str | None = None
    replies: list[str] = field(default_factory=list)
    detail: str = ""


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
def _sender_sql(with_project: bool, probes: tuple[tuple[str, str], ...] = ()) -> str:
    """The sender's two-way holder entry, its contact, the project keyword named by the first
    word, an earlier copy of this message, the conversation probes and (``with_project``) the
    entry's project, in one statement: one row, found or not (one holder per number, one
    keyword per word and project)."""
    project = f", {_PROJECT.columns('p')}" if with_project else ""
    join = " LEFT JOIN projects_project p ON p.id = pe.project_id" if with_project else ""
    held = "".join(f"({sql}), " for _, sql in probes)
    return (
        "SELECT (SELECT m.id FROM messaging_message m WHERE m.gateway_id = %s"
        " AND m.provider_id = %s AND m.direction = 'in' LIMIT 1), "
        f"{held}{_ENTRY.columns('pe')}, {_CONTACT.columns('c')}, {_KEYWORD.columns('k')}{project} "
        "FROM (SELECT 1 AS one) AS x "
        "LEFT JOIN contacts_phoneentry pe ON pe.number = %s AND pe.holder "
        "LEFT JOIN contacts_contact c ON c.contact_id = pe.contact_id "
        f"LEFT JOIN messaging_keyword k ON k.project_id = pe.project_id AND k.keyword = %s{join}"
    )


@dataclass
class Sender:
    entry: PhoneEntry | None
    contact: Contact | None
    keyword: Keyword | None
    earlier_id: str | None  # an inbound message already stored with this provider id
    # The entry's project and its settings, when read with it.
    project: tuple[Project, ProjectSettings] | None = None
    held: dict[str, Any] = field(default_factory=dict)  # the conversation probes' values


def _find_sender(
    number: str, gw: GatewayConfig, provider_id: str | None, word: str, as_project: int | None
) -> Sender:
    """Inside the message's transaction. SQLite reads the project row here too: its write
    transaction already excludes every other writer, as the row lock does on PostgreSQL
    (which takes it in ``_lock_project``)."""
    with_project = not bulk.has_row_locks()
    probes = active_probes()
    with connection.cursor() as cursor:
        cursor.execute(
            _sender_sql(with_project, probes),
            _sender_params(number, gw, provider_id, word, probes),
        )
        row = cursor.fetchone()
    assert row is not None
    return _sender_of(row, gw, as_project, with_project, probes)


def read_senders(
    items: Sequence[tuple[GatewayConfig, InboundMessage]],
) -> list[Sender]:
    """``_find_sender`` of each (gateway, message), SQLite only (the project read with it), in
    one statement: the single statement once per item, numbered, joined by ``UNION ALL``."""
    probes = active_probes()
    one = _sender_sql(True, probes)
    sql = " UNION ALL ".join(f"SELECT {i} AS i, * FROM ({one})" for i in range(len(items)))
    params: list[Any] = []
    for gw, inbound in items:
        word, _ = first_word(inbound.text)
        params += _sender_params(inbound.sender, gw, inbound.provider_id or None, word, probes)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ORDER BY i", params)
        found = cursor.fetchall()
    projects: dict[Any, tuple[Project, ProjectSettings]] = {}  # one copy of each project
    return [
        _sender_of(row[1:], gw, None, True, probes, projects)
        for (gw, _), row in zip(items, found, strict=True)
    ]


def _sender_params(
    number: str,
    gw: GatewayConfig,
    provider_id: str | None,
    word: str,
    probes: tuple[tuple[str, str], ...],
) -> list[Any]:
    params: list[Any] = [gw.pk, provider_id]
    for _ in probes:
        params += [gw.pk, number]
    return [*params, number, word]


def _sender_of(
    row: Sequence[Any],
    gw: GatewayConfig,
    as_project: int | None,
    with_project: bool,
    probes: tuple[tuple[str, str], ...],
    projects: dict[Any, tuple[Project, ProjectSettings]] | None = None,
) -> Sender:
    """``projects``: the projects built so far (keyed by id), reused for the same id."""
    earlier_id = row[0]
    held = {name: row[1 + i] for i, (name, _) in enumerate(probes)}
    e_start = 1 + len(probes)
    e_end = e_start + len(_ENTRY.fields)
    c_end = e_end + len(_CONTACT.fields)
    k_end = c_end + len(_KEYWORD.fields)
    if row[e_start] is None:
        return Sender(None, None, None, earlier_id, held=held)
    entry = _ENTRY.build(row[e_start:e_end])
    if not in_scope(gw, entry.project_id, as_project):
        return Sender(None, None, None, earlier_id, held=held)
    contact = _CONTACT.build(row[e_end:c_end]) if row[e_end] is not None else None
    keyword = _KEYWORD.build(row[c_end:k_end]) if row[c_end] is not None else None
    project = None
    if with_project and row[k_end] is not None:
        known = projects.get(row[k_end]) if projects is not None else None
        project = known or _project_of(row[k_end:])
        if projects is not None:
            projects[row[k_end]] = project
    return Sender(entry, contact, keyword, earlier_id, project, held)


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
    provider_id = inbound.provider_id or None
    word, _ = first_word(inbound.text)
    info = analyse(inbound.text) if inbound.text else None
    try:
        with bulk.process_writer_turn(), transaction.atomic(savepoint=not _in_batch()):
            outcome = _receive(
                gw, inbound, provider_id, word, info, as_project.pk if as_project else None
            )
    except _Duplicate as late:  # everything this delivery did is rolled back
        outcome = late
    if isinstance(outcome, _Duplicate):
        return _duplicate(gw, provider_id, outcome.project_id)
    return outcome


# long: one inbound message's handlers in their order of precedence
def _receive(
    gw: GatewayConfig,
    inbound: InboundMessage,
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
    stamp = now()  # under the project lock: the log's order is the order of handling
    msg = Message(**received_values(gw, inbound, project_id, contact, stamp))
    msg.project = project
    if info is not None:
        msg.segments, msg.encoding = info.segments, info.encoding
    ctx = Ctx(
        gw,
        msg,
        project,
        settings,
        entry,
        contact,
        keyword=sender.keyword,
        as_project=as_project,
        held=sender.held,
        deferred=[],
    )
    action = _handle(ctx)
    # Every message a project sees is in its messaging-event log, replied to or not.
    # An event created only now has no replies: it is complete as it is written.
    closed = ctx.event is None
    ensure_event(ctx, "keyword" if "keyword" in action else "unrecognized", "", closed)
    msg.inbound_action = action
    msg.error_detail = "; ".join(ctx.notes)[:500]
    msg.event = ctx.event
    msg.subevent = ctx.subevent
    if not message_log.add_inbound(msg, ctx.deferred or [], once=provider_id is not None):
        raise _Duplicate(project_id)
    if not closed:
        close_event(ctx)
    return InboundResult(
        message_id=msg.id,
        action=action,
        # The handlers may have found them (self-registration creates the contact).
        project=ctx.project.name if ctx.project else None,
        contact_id=ctx.contact.contact_id if ctx.contact else None,
        replies=ctx.replies,
        detail=msg.error_detail,
    )


def received_values(
    gw: GatewayConfig,
    inbound: InboundMessage,
    project_id: int | None,
    contact: Contact | None,
    stamp: dt.datetime,
) -> dict[str, Any]:
    """The inbound message's row (its segments and handling apart), as attnames."""
    return {
        "project_id": project_id,
        "direction": "in",
        "channel": "whatsapp" if is_whatsapp(gw.type) else "sms",
        "contact_id": contact.contact_id if contact else None,
        "contact_type": contact.contact_type if contact else "",
        "phone_number": inbound.sender,
        "sender": inbound.to,
        "text": inbound.text,
        "language": (contact.lang_effective or "") if contact else "",
        "gateway_id": gw.pk,
        "gateway_name": gw.name,
        "gateway_source": "inbound",
        "provider_id": inbound.provider_id or None,
        "status": "received",
        "created_on": stamp,
        "updated_on": stamp,
        "next_attempt_at": None,
        # a WhatsApp tap
        "payload": {"reply_id": inbound.reply_id} if inbound.reply_id else None,
    }


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


def _handle(ctx: Ctx) -> str:
    action, prefix = handle_reserved(ctx)
    if action is not None:
        return action
    text = ctx.msg.text
    entry = ctx.entry
    if entry is not None and entry.pending:
        if VERIFY_CODE in text:
            complete_verification(ctx)
            return prefix + "verification"
        ctx.notes.append("verification pending: the reply did not contain 123")
    action = run_conversations(ctx, "message")
    if action:
        return prefix + action
    keyword, rest = first_word(text)
    if keyword == JOIN_WORD and entry is None:
        done = self_register(ctx, rest)
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
        kw = find_keyword(ctx, keyword)
        if kw is not None:
            return prefix + run_keyword(ctx, kw, rest)
    s = ctx.settings
    if ctx.project is not None and any(t.strip() for t in s.default_inbound_response.values()):
        reply(ctx, "default_response", s.default_inbound_response, None)
        return prefix + "default_response"
    if entry is None:
        ctx.notes.append("no contact holds this number for two-way SMS")
    return prefix + "unhandled"
