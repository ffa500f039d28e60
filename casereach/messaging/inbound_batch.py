"""Receiving the SQLite webhook worker's batch set-based, when every message in it is a plain
answer to a conversation (decision 0015).

The worker (``inbound_worker.SqliteWorker``) already receives the messages that wait for it in
one transaction. When each of them is from a different number, is no copy of another, is from a
two-way holder of the project the conversation runs in, says no reserved word, and is
taken by the same registered batch conversation (an SMS survey's answer), the batch is read and
written with a fixed number of statements: the senders in one, the conversation's rows in
one, the replies' loop guard and opt-outs in one, then the events, sub-events, messages and the
conversation's own rows each in one statement set — instead of about a dozen per message.
The rows written are those ``inbound.do_receive`` writes for each message in turn.

Anything else — a reserved word, a keyword, a duplicate, a second message from one number, an
answer that ends its session or writes the case, a reply the loop guard or an opt-out stops —
makes ``receive_together`` answer None before it writes anything, and the batch is received
one message at a time as before. A clash found only when writing (a provider id stored
meanwhile) raises ``Clash``: the worker rolls the transaction back and receives each message
on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import connection

from casereach.contacts.models import Contact, PhoneEntry
from casereach.core.ids import time_ordered_id
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.inbound import InboundResult, Sender, read_senders, received_values
from casereach.messaging.inbound_conversations import holder
from casereach.messaging.inbound_replies import recent_replies, reply_values
from casereach.messaging.keywords import all_words, reserved_word
from casereach.messaging.log import EventDraft, MessageDraft, SubEventDraft
from casereach.messaging.models import IN_PROGRESS
from casereach.messaging.whatsapp import is_whatsapp
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings


@dataclass
class Arrival:
    """One message of the batch, from a two-way holder of ``project``."""

    gw: GatewayConfig
    inbound: InboundMessage
    entry: PhoneEntry
    contact: Contact
    # The project's row: one copy for all the batch's messages of that project, whose clock
    # every write of the batch ticks through.
    project: Project
    settings: ProjectSettings
    held: Mapping[str, Any]  # the conversation probes' values
    stamp: dt.datetime  # when it was handled
    # The inbound message's id, taken with its stamp (ids are time-ordered: before its reply's)
    message_id: str = field(default_factory=time_ordered_id)


@dataclass
class Taken:
    """What a conversation does with one message: its action, the reply it queues
    (``texts`` by language, as ``inbound_replies.queue_sms`` takes them) in an event of its
    own, and what the conversation keeps to write its rows after the messages (``state``)."""

    action: str
    texts: Mapping[str, str]
    source: str
    source_id: str
    survey_session_id: int | None = None
    state: Any = None
    reply_id: str = field(default="")


class BatchConversation(Protocol):
    def take(self, arrivals: Sequence[Arrival]) -> list[Taken] | None:
        """Each arrival's outcome, reading in a fixed number of statements and writing
        nothing; None when one of them is not a plain answer."""

    def record(self, arrivals: Sequence[Arrival], taken: Sequence[Taken]) -> None:
        """The conversation's own rows, after the messages were written (their ids set)."""


BATCH_CONVERSATIONS: dict[str, BatchConversation] = {}


def register_batch_conversation(probe: str, conversation: BatchConversation) -> None:
    """``conversation`` takes the batches whose every message its probe ``probe`` holds."""
    BATCH_CONVERSATIONS[probe] = conversation


class Clash(Exception):
    """A message of the batch was stored meanwhile: roll back, receive one by one."""


def receive_together(
    items: Sequence[tuple[GatewayConfig, InboundMessage]],
) -> list[InboundResult] | None:
    """Receive ``items`` set-based inside the caller's write transaction (SQLite), or None,
    with nothing written, when they are not all plain answers of one conversation."""
    if not items or connection.vendor != "sqlite" or not BATCH_CONVERSATIONS:
        return None
    if not _independent(items):
        return None
    arrivals = _arrivals(items, read_senders(items))
    if arrivals is None:
        return None
    names = {holder(a.held) for a in arrivals}
    conversation = BATCH_CONVERSATIONS.get(next(iter(names)) or "") if len(names) == 1 else None
    if conversation is None:
        return None
    taken = conversation.take(arrivals)
    if taken is None:
        return None
    replies = _replies(arrivals, taken)
    if replies is None:
        return None
    _write(arrivals, taken, replies)
    conversation.record(arrivals, taken)
    return [
        InboundResult(
            message_id=a.message_id,
            action=t.action,
            project=a.project.name,
            contact_id=a.contact.contact_id,
            replies=[t.reply_id],
        )
        for a, t in zip(arrivals, taken, strict=True)
    ]


def _independent(items: Sequence[tuple[GatewayConfig, InboundMessage]]) -> bool:
    """No message of the batch can see another's effects: one per number, no copies, SMS
    text only (a WhatsApp message's window and taps are the single path's)."""
    numbers = {m.sender for _, m in items}
    copies = {(gw.pk, m.provider_id) for gw, m in items if m.provider_id}
    with_ids = sum(1 for _, m in items if m.provider_id)
    return (
        len(numbers) == len(items)
        and len(copies) == with_ids
        and all(m.text.strip() and not is_whatsapp(gw.type) for gw, m in items)
    )


def _arrivals(
    items: Sequence[tuple[GatewayConfig, InboundMessage]], senders: Sequence[Sender]
) -> list[Arrival] | None:
    projects: dict[int, tuple[Project, ProjectSettings]] = {}
    words: dict[int, tuple[set[str], set[str], set[str]]] = {}  # reserved, per project
    arrivals = []
    for (gw, inbound), sender in zip(items, senders, strict=True):
        entry, contact = sender.entry, sender.contact
        if (
            sender.earlier_id is not None
            or entry is None
            or entry.pending
            or contact is None
            or sender.project is None
        ):
            return None
        project, settings = projects.setdefault(entry.project_id, sender.project)
        if entry.project_id not in words:
            words[entry.project_id] = (
                all_words(settings.opt_out_keywords),
                all_words(settings.opt_in_keywords),
                all_words(settings.help_keywords),
            )
        opt_out, opt_in, help_words = words[entry.project_id]
        if reserved_word(inbound.text, opt_out=opt_out, opt_in=opt_in, help_words=help_words):
            return None
        arrivals.append(Arrival(gw, inbound, entry, contact, project, settings, sender.held, now()))
    return arrivals


def _replies(arrivals: Sequence[Arrival], taken: Sequence[Taken]) -> list[MessageDraft] | None:
    """Each message's pinned reply, as ``queue_sms`` queues it; None when one has no text,
    or when the loop guard or an opt-out would stop one (the single path notes those)."""
    replies, asked = [], []
    for a, t in zip(arrivals, taken, strict=True):
        text, language = pick_translation(
            t.texts,
            a.contact.lang_effective,
            project_languages=a.settings.languages,
            fallback="untranslated",
        )
        if text is None:
            return None
        stamp = now()
        draft = MessageDraft(
            project_id=a.project.pk,
            gateway_id=a.gw.pk,
            gateway_name=a.gw.name,
            gateway_source="inbound",
            **reply_values("sms", a.contact, a.inbound.sender, text, language, stamp),
        )
        replies.append(draft)
        since = stamp - dt.timedelta(minutes=a.settings.reply_loop_minutes)
        asked.append((a.inbound.sender, text, since, ("sms", a.project.pk, a.gw.pk)))
    for a, (repeats, opted_out) in zip(arrivals, recent_replies(asked), strict=True):
        if opted_out or repeats >= a.settings.reply_loop_limit:
            return None
    return replies


def _write(
    arrivals: Sequence[Arrival], taken: Sequence[Taken], replies: Sequence[MessageDraft]
) -> None:
    """The events, sub-events and messages of the batch, a statement set each (per project
    for the clock)."""
    events = [
        EventDraft(
            project_id=a.project.pk,
            source=t.source,
            source_id=t.source_id,
            source_name="",
            content_type="sms",
            status=IN_PROGRESS,
            triggered_by=f"sms:{a.inbound.sender}",
            created_on=now(),
        )
        for a, t in zip(arrivals, taken, strict=True)
    ]
    message_log.add_events(events)
    subs = [
        SubEventDraft(
            event_id=e.pk,
            project_id=a.project.pk,
            contact_id=a.contact.contact_id,
            contact_type=a.contact.contact_type,
            recipient_name=a.contact.name,
            status=IN_PROGRESS,
            created_on=now(),
            survey_session_id=t.survey_session_id,
        )
        for a, t, e in zip(arrivals, taken, events, strict=True)
    ]
    for project, of_project in _by_project(arrivals, subs).items():
        message_log.add_subevents(project, of_project)
    inbound = []
    for a, t, e, sub, reply in zip(arrivals, taken, events, subs, replies, strict=True):
        reply.event_id, reply.subevent_id = e.pk, sub.pk
        t.reply_id = reply.id
        info = analyse(a.inbound.text)
        msg = MessageDraft(
            id=a.message_id,
            **received_values(a.gw, a.inbound, a.project.pk, a.contact, a.stamp),
            segments=info.segments,
            encoding=info.encoding,
            inbound_action=t.action,
            error_detail="",
            event_id=e.pk,
            subevent_id=sub.pk,
        )
        inbound.append(msg)
    for project, of_project in _by_project(
        arrivals, list(zip(inbound, replies, strict=True))
    ).items():
        if not message_log.add_received(
            [m for m, _ in of_project], [r for _, r in of_project], project
        ):
            raise Clash("an inbound message of the batch was stored meanwhile")


def _by_project(arrivals: Sequence[Arrival], values: Sequence[Any]) -> dict[Project, list[Any]]:
    grouped: dict[Project, list[Any]] = {}
    for a, value in zip(arrivals, values, strict=True):
        grouped.setdefault(a.project, []).append(value)
    return grouped
