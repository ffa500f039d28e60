"""Inbound SMS (SPEC 6): the writer that stores a received message and acts on it.

One transaction per message, in this order, the first that applies taking it:

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

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from casereach.cases.actions import do_apply_case_changes
from casereach.cases.changes import CaseChange
from casereach.contacts.models import Contact, PhoneEntry
from casereach.core import bulk
from casereach.core.errors import BadRequest, CasereachError, Conflict, NotFound
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.base import InboundMessage
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import route
from casereach.messaging.actions import _activity_stamp
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
    Keyword,
    Message,
    MessagingEvent,
    MessagingSubEvent,
    OptOut,
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

    @property
    def language(self) -> str | None:
        return self.contact.lang_effective if self.contact else None


def _scope(gw: GatewayConfig) -> set[int] | None:
    """Projects whose contacts may be matched: None = every project (a global gateway)."""
    if gw.project_id is None:
        return None
    return {gw.project_id, *gw.shared_with.values_list("pk", flat=True)}


def holder_entry(number: str, gw: GatewayConfig) -> PhoneEntry | None:
    entry = PhoneEntry.objects.filter(number=number, holder=True).first()
    if entry is None:
        return None
    scope = _scope(gw)
    if scope is not None and entry.project_id not in scope:
        return None
    return entry


def do_receive(gw: GatewayConfig, inbound: InboundMessage) -> InboundResult:
    """Store one inbound SMS once and act on it; re-deliveries return ``duplicate``."""
    stamp = now()
    with transaction.atomic():
        entry = holder_entry(inbound.sender, gw)
        project_id = entry.project_id if entry is not None else gw.project_id
        project = lock_project(project_id) if project_id is not None else None
        contact = Contact.objects.filter(contact_id=entry.contact_id).first() if entry else None
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
            provider_id=inbound.provider_id or None,
            status="received",
            created_on=stamp,
            updated_on=stamp,
            next_attempt_at=None,
        )
        if inbound.text:
            info = analyse(inbound.text)
            msg.segments, msg.encoding = info.segments, info.encoding
        try:
            with transaction.atomic():
                msg.save(force_insert=True)
        except IntegrityError:
            first = Message.objects.filter(
                gateway_id=gw.pk, direction="in", provider_id=inbound.provider_id
            ).first()
            return InboundResult(
                message_id=first.id if first else "",
                duplicate=True,
                action=first.inbound_action if first else "",
                project=project.name if project else None,
            )
        settings = effective_settings(project.settings) if project else ProjectSettings()
        ctx = _Ctx(gw, msg, project, settings, entry, contact)
        action = _handle(ctx)
        # Every message a project sees is in its messaging-event log, replied to or not.
        _ensure_event(ctx, "keyword" if "keyword" in action else "unrecognized", "")
        msg.inbound_action = action
        msg.error_detail = "; ".join(ctx.notes)[:500]
        msg.event = ctx.event
        msg.subevent = ctx.subevent
        msg.save(update_fields=["inbound_action", "error_detail", "event", "subevent"])
        if ctx.event is not None:
            _close_event(ctx)
    return InboundResult(
        message_id=msg.id,
        action=action,
        project=project.name if project else None,
        contact_id=contact.contact_id if contact else None,
        replies=ctx.replies,
        detail=msg.error_detail,
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
    if word == "opt_out":
        _set_opt_out(number, True, source=f"keyword:{ctx.gw.name}"[:30], can_opt_in=False)
        _reply(ctx, "opt_out", s.opt_out_reply, DEFAULT_OPT_OUT_REPLY, allow_opted_out=True)
        return "opt_out"
    if word == "opt_in":
        _set_opt_out(number, False, source=f"keyword:{ctx.gw.name}"[:30])
        _reply(ctx, "opt_in", s.opt_in_reply, DEFAULT_OPT_IN_REPLY)
        return "opt_in"
    if word == "help":
        _reply(ctx, "help", s.help_text, DEFAULT_HELP_REPLY, allow_opted_out=True)
        return "help"
    prefix = ""
    if word == "opt_in_silent":
        if _set_opt_out(number, False, source=f"keyword:{ctx.gw.name}"[:30]):
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
        kw = Keyword.objects.filter(project=ctx.project, keyword=keyword).first()
        if kw is not None:
            return prefix + _run_keyword(ctx, kw, rest)
    if ctx.project is not None and any(t.strip() for t in s.default_inbound_response.values()):
        _reply(ctx, "default_response", s.default_inbound_response, None)
        return prefix + "default_response"
    if entry is None:
        ctx.notes.append("no contact holds this number for two-way SMS")
    return prefix + "unhandled"


def _set_opt_out(number: str, opted_out: bool, *, source: str, can_opt_in: bool = True) -> bool:
    """True when the number's state changed."""
    row = OptOut.objects.select_for_update().filter(phone_number=number).first()
    if row is None:
        if not opted_out:
            return False
        OptOut.objects.create(
            phone_number=number,
            opted_out=True,
            can_opt_in=can_opt_in,
            changed_on=now(),
            source=source,
        )
        return True
    if row.opted_out == opted_out:
        return False
    row.opted_out, row.changed_on, row.source = opted_out, now(), source
    if opted_out:
        row.can_opt_in = can_opt_in
    row.save(update_fields=["opted_out", "changed_on", "source", "can_opt_in"])
    return True


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
    if any(t.strip() for t in kw.reply.values()):
        _reply(ctx, "keyword", kw.reply, None, source_id=name)
    return f"keyword:{name}"


def _self_register(ctx: _Ctx, rest: str) -> bool:
    target_name = rest.strip().lower()
    target = Project.objects.filter(name=target_name).first() if target_name else None
    if target is None:
        ctx.notes.append(f"JOIN: no project named {rest.strip()[:50]!r}")
        return False
    scope = _scope(ctx.gw)
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
        if ctx.contact is not None:
            ctx.msg.contact_id, ctx.msg.contact_type = ctx.contact.contact_id, "case"
            ctx.msg.save(update_fields=["project", "contact_id", "contact_type"])
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
        event = MessagingEvent.objects.create(
            project=locked,
            source="verification",
            content_type="sms",
            triggered_by="verification",
            created_on=now(),
        )
        sub = _subevent(locked, event, contact)
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


def _subevent(
    project: Project, event: MessagingEvent, contact: Contact | None
) -> MessagingSubEvent:
    return MessagingSubEvent.objects.create(
        event=event,
        project=project,
        contact_id=contact.contact_id if contact else None,
        contact_type=contact.contact_type if contact else "",
        recipient_name=contact.name if contact else "",
        created_on=now(),
        date_last_activity=_activity_stamp(project),
    )


def _ensure_event(ctx: _Ctx, source: str, source_id: str) -> None:
    if ctx.event is not None or ctx.project is None:
        return
    ctx.event = MessagingEvent.objects.create(
        project=ctx.project,
        source=source,
        source_id=source_id,
        content_type="sms",
        triggered_by=f"sms:{ctx.msg.phone_number}",
        created_on=now(),
    )
    ctx.subevent = _subevent(ctx.project, ctx.event, ctx.contact)


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
        repeats = Message.objects.filter(
            phone_number=number,
            direction="out",
            gateway_source="inbound",
            text=text,
            created_on__gte=since,
        ).count()
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
        and OptOut.objects.filter(phone_number=number, opted_out=True).exists()
    ):
        msg.status, msg.error_code, msg.failed_on = "failed", "PHONE_NUMBER_OPTED_OUT", stamp
        msg.next_attempt_at = None
    msg.save(force_insert=True)
    ctx.replies.append(msg.id)


def _close_event(ctx: _Ctx) -> None:
    """An event whose replies all failed at once is closed now (the dispatcher closes the
    rest when their messages reach a final state)."""
    event, sub = ctx.event, ctx.subevent
    if event is None or sub is None:
        return
    statuses = list(
        Message.objects.filter(event=event, direction="out").values_list("status", "error_code")
    )
    if not statuses:
        MessagingSubEvent.objects.filter(pk=sub.pk).update(status="completed")
        MessagingEvent.objects.filter(pk=event.pk).update(status="completed")
    elif all(st == "failed" for st, _ in statuses):
        MessagingSubEvent.objects.filter(pk=sub.pk).update(
            status="error", error_code=statuses[0][1]
        )
        MessagingEvent.objects.filter(pk=event.pk).update(
            status="error", error_code="SUBEVENT_ERROR"
        )


# -- admin operations ---------------------------------------------------------------------------


def do_admin_set_opt_out(number: str, opted_out: bool, *, by: str) -> OptOut:
    """An admin opts a number out (it may opt back in), or back in — only when allowed."""
    with transaction.atomic():
        row = OptOut.objects.select_for_update().filter(phone_number=number).first()
        if not opted_out:
            if row is None or not row.opted_out:
                if row is None:
                    raise NotFound("this number is not on the opt-out list")
                return row
            if not row.can_opt_in:
                raise Conflict(
                    "this number opted out itself (by replying STOP or through the provider); "
                    "only the person can opt back in, by replying START"
                )
        if row is None:
            row = OptOut.objects.create(
                phone_number=number,
                opted_out=True,
                can_opt_in=True,
                changed_on=now(),
                source=f"admin:{by}"[:30],
            )
            return row
        row.opted_out, row.changed_on, row.source = opted_out, now(), f"admin:{by}"[:30]
        if opted_out:
            row.can_opt_in = True
        row.save(update_fields=["opted_out", "changed_on", "source", "can_opt_in"])
        return row


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
