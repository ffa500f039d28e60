"""Replying to an inbound SMS: what a handler works with (``Ctx``) and how it answers.

Replies go out through the gateway that received the message (``gateway_source="inbound"``
pins it) and are written to the outbox like every other send, through ``messaging.log``; an
automatic reply repeated too often to one number within a few minutes is suppressed (a loop
with another bot). The handlers (opt-out words, verification, keywords, self-registration) and
the receiving module share these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from casereach.contacts.models import Contact, PhoneEntry
from casereach.core.bulk import adapt_datetime
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import route, serving_projects
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.models import (
    COMPLETED,
    IN_PROGRESS,
    EventStatus,
    Keyword,
    Message,
    MessagingEvent,
    MessagingSubEvent,
)
from casereach.messaging.optouts import OPTED_OUT_SQL, is_opted_out
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

NOT_LOADED: Any = object()  # Ctx.keyword: the keyword was not looked up in advance


@dataclass
class Ctx:
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
    # none); NOT_LOADED when it was not.
    keyword: Keyword | None = NOT_LOADED
    # The test phone's project: the gateway then acts as that project's own (see do_receive).
    as_project: int | None = None
    # Conversation probes read with the sender: name → value (``inbound_conversations``).
    held: dict[str, Any] = field(default_factory=dict)
    # Replies queued with ``defer`` wait here while this is a list, to be written with the
    # inbound message in one statement (``do_receive``); None: written at once.
    deferred: list[Message] | None = None

    @property
    def language(self) -> str | None:
        return self.contact.lang_effective if self.contact else None


def scope(gw: GatewayConfig, as_project: int | None) -> set[int] | None:
    """Projects whose contacts may be matched: the owner and the projects that accepted the
    gateway; None = every project (a global gateway); the test phone's project only."""
    if as_project is not None:
        return {as_project}
    return serving_projects(gw)


def in_scope(gw: GatewayConfig, project_id: int, as_project: int | None) -> bool:
    """Whether the gateway may match contacts of ``project_id`` (see ``scope``)."""
    if as_project is not None:
        return project_id == as_project
    if gw.project_id is None or gw.project_id == project_id:
        return True
    served = scope(gw, None)
    return served is None or project_id in served


def translated(ctx: Ctx, texts: Mapping[str, str]) -> str | None:
    text, _ = pick_translation(
        texts,
        ctx.language,
        project_languages=ctx.settings.languages,
        fallback="untranslated",
    )
    return text


def ensure_event(
    ctx: Ctx,
    source: str,
    source_id: str,
    completed: bool = False,
    *,
    survey_session_id: int | None = None,
) -> None:
    """The event and sub-event of this message (``completed``: it has no replies and gets
    none, so it is written closed; ``survey_session_id``: the sub-event is part of that
    survey session's conversation, ``messaging.log.surveys.add_to_survey``)."""
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
    ctx.subevent = message_log.new_subevent(
        ctx.project, ctx.event, ctx.contact, status=status, survey_session_id=survey_session_id
    )


def reply(
    ctx: Ctx,
    source: str,
    texts: Mapping[str, str],
    default: str | None,
    *,
    allow_opted_out: bool = False,
    source_id: str = "",
) -> None:
    ensure_event(ctx, source, source_id)
    queue_sms(ctx, texts, default, pinned=True, allow_opted_out=allow_opted_out)


# long: one reply's steps in order: text, loop guard, message, route, opt-out
def queue_sms(
    ctx: Ctx,
    texts: Mapping[str, str],
    default: str | None,
    *,
    pinned: bool,
    allow_opted_out: bool = False,
    defer: bool = False,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Queue one SMS to the sender's number (or fail it at once with the reason).
    ``defer``: written with the inbound message when the context defers (``Ctx.deferred``;
    nothing handling this message reads it back before). ``payload``: a WhatsApp reply's
    ``Message.payload`` (its interactive part), kept only when the reply goes back on WhatsApp."""
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
    project_id = ctx.project.pk if ctx.project else None
    opted_out: bool | None = None  # read with the loop guard's count when pinned
    if pinned:
        looping, opted_out = _loop_guard(ctx, text, stamp, allow_opted_out)
        if looping:
            return
    msg = Message(
        project=ctx.project,
        event=ctx.event,
        subevent=ctx.subevent,
        **reply_values(
            # a reply to a WhatsApp message goes back on WhatsApp (inside its 24-hour window)
            ctx.msg.channel if pinned else "sms",
            ctx.contact,
            number,
            text,
            language,
            stamp,
            allow_opted_out=allow_opted_out,
            payload=payload if pinned and ctx.msg.channel == "whatsapp" else None,
        ),
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
    channel = "whatsapp" if msg.channel == "whatsapp" else "sms"  # STOP is per channel
    if (
        msg.status == "queued"
        and not allow_opted_out
        and (
            opted_out
            if opted_out is not None
            else is_opted_out(number, project_id, msg.gateway_id, channel)
        )
    ):
        msg.status, msg.error_code, msg.failed_on = "failed", "PHONE_NUMBER_OPTED_OUT", stamp
        msg.next_attempt_at = None
    if defer and pinned and ctx.deferred is not None:
        ctx.deferred.append(msg)
    else:
        message_log.add_message(msg)
    ctx.replies.append(msg.id)
    ctx.reply_states.append((msg.status, msg.error_code))


def reply_values(
    channel: str,
    contact: Contact | None,
    number: str,
    text: str,
    language: str,
    stamp: dt.datetime,
    *,
    allow_opted_out: bool = False,
    payload: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A reply's row (its project, event and gateway apart), as attnames; ``language`` "*":
    the text is in no language of its own."""
    info = analyse(text)
    return {
        "channel": channel,
        "contact_id": contact.contact_id if contact else None,
        "contact_type": contact.contact_type if contact else "",
        "phone_number": number,
        "text": text,
        "language": "" if language == "*" else language,
        "segments": info.segments,
        "encoding": info.encoding,
        "allow_opted_out": allow_opted_out,
        "created_on": stamp,
        "updated_on": stamp,
        "next_attempt_at": stamp,
        "payload": dict(payload) if payload else None,
    }


def _loop_guard(
    ctx: Ctx, text: str, stamp: dt.datetime, allow_opted_out: bool
) -> tuple[bool, bool | None]:
    """Whether a pinned reply of ``text`` repeats too often (noted in ``ctx``), and whether
    the number opted out (None with ``allow_opted_out``), in one statement."""
    s, number = ctx.settings, ctx.msg.phone_number
    since = stamp - dt.timedelta(minutes=s.reply_loop_minutes)
    project_id = ctx.project.pk if ctx.project else None
    channel = "whatsapp" if ctx.msg.channel == "whatsapp" else "sms"  # STOP is per channel
    repeats, opted_out = _recent_replies(
        number, text, since, None if allow_opted_out else (channel, project_id, ctx.gw.pk)
    )
    # Replies of this message not written yet: pinned, to this number, stamped now.
    repeats += sum(1 for m in ctx.deferred or () if m.text == text)
    if repeats >= s.reply_loop_limit:
        ctx.notes.append(
            f"reply suppressed: {repeats} identical replies to this number in the last "
            f"{s.reply_loop_minutes} minutes (a loop with another automatic sender?)"
        )
        return True, opted_out
    return False, opted_out


def _recent_replies(
    number: str, text: str, since: dt.datetime, opt_out: tuple[str, int | None, int] | None
) -> tuple[int, bool | None]:
    """Automatic replies of this text to this number since ``since`` and, with ``opt_out``
    = (channel, project id, gateway id), ``is_opted_out`` of the number for them (else None): one
    statement."""
    sql, params = _recent_sql(number, text, since, opt_out)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    return int(row[0]), (None if opt_out is None else row[1] is not None)


def recent_replies(
    asked: Sequence[tuple[str, str, dt.datetime, tuple[str, int | None, int]]],
) -> list[tuple[int, bool]]:
    """``_recent_replies`` of each (number, text, since, opt-out scope), in one statement."""
    parts, params = [], []
    for i, (number, text, since, opt_out) in enumerate(asked):
        sql, more = _recent_sql(number, text, since, opt_out)
        parts.append(f"SELECT {i} AS i, * FROM ({sql})")
        params += more
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts) + " ORDER BY i", params)
        found = cursor.fetchall()
    return [(int(row[1]), row[2] is not None) for row in found]


def _recent_sql(
    number: str, text: str, since: dt.datetime, opt_out: tuple[str, int | None, int] | None
) -> tuple[str, list[Any]]:
    params: list[Any] = [number, text, adapt_datetime(since)]
    sql = (
        "SELECT (SELECT COUNT(*) FROM messaging_message WHERE phone_number = %s"
        " AND direction = 'out' AND gateway_source = 'inbound' AND text = %s"
        " AND created_on >= %s)"
    )
    if opt_out is not None:
        sql += f", ({OPTED_OUT_SQL})"
        params += [number, *opt_out]
    return sql, params


def close_event(ctx: Ctx) -> None:
    """An event whose replies all failed at once (or that has none) is closed now (the
    dispatcher closes the rest when their messages reach a final state)."""
    message_log.close_event(ctx.event, ctx.subevent, ctx.reply_states)
