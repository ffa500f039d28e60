"""Set-based sends: N requests recorded with a fixed number of statements, in one transaction.

``do_send_batch`` produces, for each request, exactly the rows a single send produces (one
event, one sub-event and one message; a pre-send refusal recorded as a failed message with its
error code and the event closed) with one statement set per batch:

    lock the project → read the gateways, contacts, their first phone entries, the opt-outs
    and the routes (once each) → decide every item in memory → INSERT the events, the
    sub-events (one tick of the project's clock) and the messages.

A request that is bad input (texts, a named gateway, the recipient) fails the whole batch
before anything is written, as ``ItemError`` naming its index; a single send (``do_send``)
is a batch of one and re-raises the item's own error.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.contacts.rules import ProjectRules, check_email, check_phone
from casereach.core import bulk
from casereach.core.errors import BadRequest, CasereachError, NotFound
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.models import GatewayConfig, GlobalRoutes
from casereach.gateways.queries import (
    GatewayIndex,
    email_gateway,
    gateway_index,
    global_routes,
    project_settings,
    route,
)
from casereach.messaging import chains
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.log import EventDraft, MessageDraft, SubEventDraft
from casereach.messaging.models import ERROR, FAILED, IN_PROGRESS, QUEUED
from casereach.messaging.optouts import OptedOut, opted_out_pairs
from casereach.messaging.sending_request import (
    CHOSEN,
    MAX_EMAIL_CHARS,
    MAX_SMS_CHARS,
    SendRequest,
    validate_texts,
)
from casereach.messaging.sending_whatsapp import precheck_whatsapp
from casereach.messaging.whatsapp import Approved, approved_templates, channel_of
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

# The most requests one batch takes (the API's and the CLI's batch size).
MAX_BATCH = 1000

Sent = tuple[EventDraft, list[MessageDraft]]


class ItemError(BadRequest):
    """Request ``index`` of a batch is bad input; ``cause`` is what a single send raises."""

    def __init__(self, index: int, cause: CasereachError) -> None:
        super().__init__(f"messages[{index}]: {cause.message}", cause.detail)
        self.index = index
        self.cause = cause


@dataclass
class _Item:
    """One request, validated: its texts, the gateway it names, its raw recipient."""

    req: SendRequest
    sms: dict[str, str]
    subject: dict[str, str]
    body: dict[str, str]
    number: str = ""
    email: str = ""
    chosen: GatewayConfig | None = None


# (contact_id, contact_type, name, active, lang_effective, email, email_status)
ContactRow = tuple[str, str, str, bool, str | None, str, str]


@dataclass
class _Reads:
    """What the checks of a batch read, once each."""

    settings: ProjectSettings
    index: GatewayIndex
    contacts: dict[str, ContactRow]
    entries: dict[str, tuple[str, str]]  # contact_id → (number, gateway) of its first entry
    opted: OptedOut
    opted_whatsapp: OptedOut  # WhatsApp's opt-outs (STOP over WhatsApp)
    routes: GlobalRoutes | None
    email_gateway: GatewayConfig | None
    # WhatsApp templates' APPROVED languages, read per (gateway, name) on first use
    approved: Approved | None = None

    def template_languages(self, gateway_id: int, name: str) -> dict[str, tuple[int, str]]:
        if self.approved is None:
            self.approved = {}
        key = (gateway_id, name)
        if key not in self.approved:
            self.approved.update(approved_templates([key]))
        return self.approved[key]


def do_send_batch(project: Project, reqs: Sequence[SendRequest]) -> list[Sent]:
    """Record and queue ``reqs`` (each one send to one contact or raw number/address) in one
    transaction under the project lock; (event, [message]) per request, in order.

    Raises ``ItemError`` (nothing stored) for the first request that is bad input."""
    if not reqs:
        return []
    items, errors = _validate(project, reqs)
    done = _send_items(project, items, errors, strict=True)
    return [r for r in done if not isinstance(r, CasereachError)]


def send_each(project: Project, reqs: Sequence[SendRequest]) -> list[Sent | CasereachError]:
    """Like ``do_send_batch`` for requests that passed ``bad_input``, but one naming a wrong
    gateway or contact gets its own error and the others are recorded (in one transaction):
    the group commit of single sends."""
    items, errors = _validate(project, reqs)
    return _send_items(project, items, errors, strict=False)


def bad_input(project: Project, req: SendRequest) -> bool:
    """Whether ``req`` fails the checks that need no database (texts, recipient)."""
    return bool(_validate(project, [req])[1])


def _send_items(
    project: Project, items: Sequence[_Item], errors: Errors, *, strict: bool
) -> list[Sent | CasereachError]:
    """Lock, read, decide and write ``items`` (``errors``: those of ``_validate``).
    ``strict``: the first bad one fails them all (``ItemError``); else each bad one gets
    its own error and the others are written."""
    stamp = now()
    with bulk.process_writer_turn(), transaction.atomic():
        locked = lock_project(project.pk)
        reads = _read(locked, items, errors)
        if errors and strict:
            first = min(errors)
            raise ItemError(first, errors[first][1])
        sent = [_decide(locked, it, reads, stamp) for i, it in enumerate(items) if i not in errors]
        if chains.chained(reads.settings):  # each to its chain's first channel
            chains.plan_sends(locked, sent)
        _write(locked, sent)
    out = iter(sent)
    return [errors[i][1] if i in errors else next(out) for i in range(len(items))]


def do_send_one(project: Project, req: SendRequest) -> Sent:
    """A batch of one: the same rows and statements; the request's own error when bad."""
    try:
        return do_send_batch(project, [req])[0]
    except ItemError as exc:
        raise exc.cause from None


# -- validation (no database) --------------------------------------------------------------------

# Which error a request answers with when it has several: the order a single send checks in.
_TEXTS, _GATEWAY, _RECIPIENT = 0, 1, 2
Errors = dict[int, tuple[int, CasereachError]]


def _note(errors: Errors, index: int, rank: int, exc: CasereachError) -> None:
    if index not in errors or rank < errors[index][0]:
        errors[index] = (rank, exc)


def _validate(project: Project, reqs: Sequence[SendRequest]) -> tuple[list[_Item], Errors]:
    items: list[_Item] = []
    errors: Errors = {}
    rules = ProjectRules(project_id=project.pk)
    for i, req in enumerate(reqs):
        limit = MAX_SMS_CHARS if req.channel == "sms" else MAX_EMAIL_CHARS
        try:
            item = _Item(
                req,
                validate_texts(
                    req.whatsapp.text if req.whatsapp is not None else req.sms,
                    "content.whatsapp" if req.whatsapp is not None else "content.sms",
                    limit,
                ),
                validate_texts(req.subject, "content.email.subject", 998),
                validate_texts(req.body, "content.email.body", limit),
            )
        except CasereachError as exc:
            _note(errors, i, _TEXTS, exc)
            item = _Item(req, {}, {}, {})
        items.append(item)
        if req.contact_id:
            continue
        try:
            if req.channel in ("sms", "whatsapp"):
                item.number = _raw_number(req.phone_number or "", rules)
            else:
                item.email = _raw_email(req.email_address)
        except CasereachError as exc:
            _note(errors, i, _RECIPIENT, exc)
    return items, errors


@functools.lru_cache(maxsize=4096)
def _raw_number(raw: str, rules: ProjectRules) -> str:
    check = check_phone(raw, rules)
    if check.number is None:
        raise BadRequest(f"phone_number is not a usable number ({check.reason})")
    return check.number


def _raw_email(raw: str | None) -> str:
    email, status = check_email(raw)
    if status != "ok":
        raise BadRequest("email_address is not a valid address")
    return email


# -- reads (a fixed number of statements per batch) ---------------------------------------------


def _read(project: Project, items: Sequence[_Item], errors: Errors) -> _Reads:
    """Read what the checks need; note the requests naming a wrong gateway or contact."""
    sms = [it for it in items if it.req.channel in ("sms", "whatsapp")]  # to phone numbers
    needs_index = bool(sms) or any(it.req.gateway is not None for it in items)
    index = gateway_index(project) if needs_index else {}
    for i, it in enumerate(items):
        if it.req.gateway is not None:
            try:
                it.chosen = _chosen_gateway(it.req, index)
            except CasereachError as exc:
                _note(errors, i, _GATEWAY, exc)
    contact_ids = sorted({it.req.contact_id for it in items if it.req.contact_id})
    contacts = _contacts(project, contact_ids)
    for i, it in enumerate(items):
        if it.req.contact_id and it.req.contact_id not in contacts:
            _note(errors, i, _RECIPIENT, NotFound(f"contact '{it.req.contact_id}' not found"))
    sms_contacts = sorted({it.req.contact_id for it in sms if it.req.contact_id in contacts})
    entries = first_entries(sms_contacts)
    numbers = [it.number for it in sms if it.number] + [n for n, _ in entries.values()]
    opted = opted_out_pairs(numbers, [project.pk]) if numbers else OptedOut()
    wa = numbers if any(it.req.channel == "whatsapp" for it in sms) else []
    opted_wa = opted_out_pairs(wa, [project.pk], channel="whatsapp") if wa else OptedOut()
    routed = any(it.chosen is None and it.req.channel == "sms" for it in sms)
    emailed = any(it.req.channel == "email" and it.chosen is None for it in items)
    return _Reads(
        settings=project_settings(project),  # validated once per generation
        index=index,
        contacts=contacts,
        entries=entries,
        opted=opted,
        opted_whatsapp=opted_wa,
        routes=global_routes() if routed else None,
        email_gateway=email_gateway(project) if emailed else None,
    )


def _chosen_gateway(req: SendRequest, index: GatewayIndex) -> GatewayConfig:
    """The gateway the request names: one the project may use (its own, shared with it, or
    global), active, and of the request's channel. A wrong name is bad input."""
    gw = index.get((req.gateway or "").strip().lower())
    if gw is None:
        raise BadRequest(f"gateway '{req.gateway}' not found (or not active) for this project")
    channel = channel_of(gw.type)
    if channel != req.channel:
        kind = {"email": "an email", "whatsapp": "a WhatsApp"}.get(channel, "an SMS")
        raise BadRequest(f"gateway '{gw.name}' is {kind} gateway; this send is {req.channel}")
    return gw


_CONTACT_FIELDS = (
    "contact_id",
    "contact_type",
    "name",
    "active",
    "lang_effective",
    "email",
    "email_status",
)


def _contacts(project: Project, ids: Sequence[str]) -> dict[str, ContactRow]:
    out: dict[str, ContactRow] = {}
    for chunk in bulk.in_chunks(ids):
        qs = Contact.objects.filter(bulk.is_in("contact_id", chunk), project=project)
        out.update((row[0], row) for row in qs.values_list(*_CONTACT_FIELDS))
    return out


def first_entries(ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each contact's first phone entry in send order: (number, gateway override)."""
    out: dict[str, tuple[str, str]] = {}
    for chunk in bulk.in_chunks(ids):
        qs = (
            PhoneEntry.objects.filter(bulk.is_in("contact_id", chunk))
            .order_by("contact_id", *send_order())
            .values_list("contact_id", "number", "gateway")
        )
        for contact_id, number, override in qs:
            out.setdefault(contact_id, (number, override))
    return out


# -- deciding one item (no database) -------------------------------------------------------------


def _decide(project: Project, it: _Item, reads: _Reads, stamp: dt.datetime) -> Sent:
    """The rows of one send, with the outcome of its pre-send checks."""
    req, s = it.req, reads.settings
    contact = reads.contacts.get(req.contact_id) if req.contact_id else None
    language = contact[4] if contact else None
    pick = it.sms if req.channel in ("sms", "whatsapp") else it.body
    text, used = pick_translation(
        pick,
        language,
        project_languages=s.languages,
        fallback=s.language_fallback,
        alert_default=req.alert_default_language,
    )
    subj = ""
    if req.channel == "email":
        subj = (
            pick_translation(
                it.subject, used or language, project_languages=s.languages, fallback="untranslated"
            )[0]
            or ""
        )
    msg = MessageDraft(
        project_id=project.pk,
        channel=req.channel,
        contact_id=contact[0] if contact else None,
        contact_type=contact[1] if contact else "",
        phone_number=it.number,
        email_address=it.email,
        subject=subj,
        text=text or "",
        language=used,
        allow_opted_out=req.allow_opted_out,
        status=QUEUED,
        error_code=None,
        created_on=stamp,
        updated_on=stamp,
        next_attempt_at=stamp,
    )
    if req.channel == "whatsapp":
        error = precheck_whatsapp(project, msg, contact, it, text, reads)
    else:
        error = _precheck(project, msg, contact, pick, text, it.chosen, reads)
    if req.channel == "sms" and msg.text:
        msg.segments, msg.encoding = _segments(msg.text)
    if error is not None:
        msg.status, msg.error_code, msg.failed_on = FAILED, error, stamp
        msg.next_attempt_at = None
    closed = ERROR if error is not None else IN_PROGRESS
    event = EventDraft(
        project_id=project.pk,
        source=req.source,
        source_id=req.source_id,
        source_name="",
        content_type=req.channel,
        status=closed,
        error_code=message_log.SUBEVENT_ERROR if error is not None else None,
        triggered_by=req.triggered_by,
        created_on=stamp,
    )
    event.sub = SubEventDraft(
        project_id=project.pk,
        contact_id=contact[0] if contact else None,
        contact_type=contact[1] if contact else "",
        recipient_name=contact[2] if contact else "",
        status=closed,
        error_code=error,
        created_on=stamp,
    )
    return event, [msg]


@functools.lru_cache(maxsize=4096)
def _segments(text: str) -> tuple[int, str]:
    info = analyse(text)
    return info.segments, info.encoding


def _blank(texts: Mapping[str, str]) -> bool:
    return not texts or all(not t.strip() for t in texts.values())


def _precheck(  # long: the checks of a single send, in its order, one branch per channel
    project: Project,
    msg: MessageDraft,
    contact: ContactRow | None,
    texts: Mapping[str, str],
    text: str | None,
    chosen: GatewayConfig | None,
    reads: _Reads,
) -> str | None:
    """The checks that can fail before a message is queued; None when it may be queued."""
    if contact is not None and not contact[3]:
        return "CONTACT_IS_INACTIVE"
    if msg.channel == "sms":
        override = ""
        if contact is not None:
            entry = reads.entries.get(contact[0])
            if entry is None:
                return "NO_PHONE_NUMBER"
            msg.phone_number, override = entry
        if _blank(texts):
            return "MESSAGE_BLANK"
        if text is None:
            return "NO_MESSAGE"
        number = msg.phone_number
        if not msg.allow_opted_out and reads.opted.in_project(number, project.pk):
            return "PHONE_NUMBER_OPTED_OUT"
        if chosen is not None:
            msg.gateway_name, msg.gateway_id, msg.gateway_source = chosen.name, chosen.pk, CHOSEN
        else:
            found = route(
                project,
                number,
                override,
                routes=reads.routes,
                index=reads.index,
                settings=reads.settings,
            )
            msg.gateway_source = found.source
            if found.gateway is None:
                msg.gateway_name = found.requested
                return found.error_code
            msg.gateway_name, msg.gateway_id = found.gateway.name, found.gateway.pk
        if not msg.allow_opted_out and reads.opted.refuses(number, None, msg.gateway_id):
            return "PHONE_NUMBER_OPTED_OUT"  # opted out for the gateway it would use
        return None
    if contact is not None:
        msg.email_address = contact[5]
        if contact[6] == "missing":
            return "NO_EMAIL_ADDRESS"
        if contact[6] == "invalid":
            return "ERROR_INVALID_EMAIL_ADDRESS"
    if _blank(texts):
        return "MESSAGE_BLANK"
    if text is None:
        return "NO_MESSAGE"
    gw = chosen or reads.email_gateway
    if gw is None:
        return "NO_SUITABLE_GATEWAY"
    msg.gateway_name, msg.gateway_id = gw.name, gw.pk
    msg.gateway_source = CHOSEN if chosen is not None else "email"
    return None


# -- writes (three INSERTs and the project's clock) ----------------------------------------------


def _write(project: Project, sent: Sequence[Sent]) -> None:
    events = [event for event, _ in sent]
    message_log.add_events(events)
    subs = []
    for event in events:
        sub = event.sub
        sub.event_id = event.pk
        subs.append(sub)
    message_log.add_subevents(project, subs)
    msgs = []
    for event, messages in sent:
        for msg in messages:
            msg.event_id, msg.subevent_id = event.pk, event.sub.pk
            msgs.append(msg)
    message_log.add_messages(msgs, project)


def as_json(sent: Sequence[Sent]) -> list[dict[str, Any]]:
    """The API's answer for each send: its event id and its messages."""
    return [
        {
            "event_id": event.pk,
            "messages": [
                {
                    "id": m.id,
                    "status": m.status,
                    "error_code": m.error_code,
                    "gateway": m.gateway_name or None,
                }
                for m in messages
            ],
        }
        for event, messages in sent
    ]
