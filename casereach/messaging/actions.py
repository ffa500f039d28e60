"""Sends and delivery reports: what to record, checked; ``messaging.log`` writes it.

``do_send`` creates the event, one sub-event per recipient and the messages in one
transaction. A send that fails a check before reaching a gateway is still recorded, with its
error code; one that passes is queued for the dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import transaction

from casereach.contacts.models import Contact, PhoneEntry
from casereach.contacts.queries import send_order
from casereach.contacts.rules import ProjectRules, check_email, check_phone
from casereach.core.errors import BadRequest, NotFound
from casereach.core.segments import analyse
from casereach.core.timeutil import now
from casereach.gateways.base import StatusUpdate
from casereach.gateways.models import GatewayConfig
from casereach.gateways.queries import email_gateway, find_gateway, route
from casereach.messaging import log as message_log
from casereach.messaging.content import pick_translation
from casereach.messaging.models import Message, MessagingEvent
from casereach.messaging.optouts import do_person_opt_out, gateway_scope, is_opted_out
from casereach.projects.actions import lock_project
from casereach.projects.models import Project
from casereach.projects.settings_schema import effective_settings

# ``Message.gateway_source`` of a message whose sender named its gateway.
CHOSEN = "chosen"

log = logging.getLogger(__name__)

MAX_SMS_CHARS = 1600
MAX_EMAIL_CHARS = 100_000


@dataclass
class SendRequest:
    """What to send to whom. ``sms``/``subject``/``body`` map language → text ("*" =
    untranslated)."""

    channel: Literal["sms", "email"] = "sms"
    contact_id: str | None = None
    phone_number: str | None = None
    email_address: str | None = None
    sms: dict[str, str] = field(default_factory=dict)
    subject: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] = field(default_factory=dict)
    source: str = "send"
    source_id: str = ""
    triggered_by: str = ""
    allow_opted_out: bool = False
    alert_default_language: str | None = None
    # A gateway named by the sender (a test send from the gateways page, or an API caller):
    # it replaces routing; every other check still applies.
    gateway: str | None = None


def _validate_texts(texts: Mapping[str, Any], what: str, limit: int) -> dict[str, str]:
    if not isinstance(texts, Mapping):
        raise BadRequest(f"{what} must be an object of language → text")
    out: dict[str, str] = {}
    for lang, text in texts.items():
        if not isinstance(text, str):
            raise BadRequest(f"{what}[{lang}] must be a string")
        if len(text) > limit:
            raise BadRequest(f"{what}[{lang}] is longer than {limit} characters")
        out[str(lang)] = text
    return out


def do_send(project: Project, req: SendRequest) -> tuple[MessagingEvent, list[Message]]:
    """Record and queue one send (to one contact or one raw number/address)."""
    limit = MAX_SMS_CHARS if req.channel == "sms" else MAX_EMAIL_CHARS
    sms = _validate_texts(req.sms, "content.sms", limit)
    subject = _validate_texts(req.subject, "content.email.subject", 998)
    body = _validate_texts(req.body, "content.email.body", limit)
    settings = effective_settings(project.settings)
    chosen = _chosen_gateway(project, req)
    stamp = now()
    with transaction.atomic():
        locked = lock_project(project.pk)
        contact: Contact | None = None
        if req.contact_id:
            contact = Contact.objects.filter(contact_id=req.contact_id, project=locked).first()
            if contact is None:
                raise NotFound(f"contact '{req.contact_id}' not found")
        number = ""
        email = ""
        if contact is None and req.channel == "sms":
            check = check_phone(req.phone_number or "", ProjectRules(project_id=locked.pk))
            if check.number is None:
                raise BadRequest(f"phone_number is not a usable number ({check.reason})")
            number = check.number
        if contact is None and req.channel == "email":
            email, status = check_email(req.email_address)
            if status != "ok":
                raise BadRequest("email_address is not a valid address")
        event = message_log.new_event(
            locked,
            source=req.source,
            source_id=req.source_id,
            content_type=req.channel,
            triggered_by=req.triggered_by,
            created_on=stamp,
        )
        sub = message_log.new_subevent(locked, event, contact, created_on=stamp)
        language = contact.lang_effective if contact else None
        pick = sms if req.channel == "sms" else body
        text, used = pick_translation(
            pick,
            language,
            project_languages=settings.languages,
            fallback=settings.language_fallback,
            alert_default=req.alert_default_language,
        )
        subj = ""
        if req.channel == "email":
            subj = (
                pick_translation(
                    subject,
                    used or language,
                    project_languages=settings.languages,
                    fallback="untranslated",
                )[0]
                or ""
            )
        msg = Message(
            project=locked,
            event=event,
            subevent=sub,
            channel=req.channel,
            contact_id=contact.contact_id if contact else None,
            contact_type=contact.contact_type if contact else "",
            phone_number=number,
            email_address=email,
            subject=subj,
            text=text or "",
            language=used,
            allow_opted_out=req.allow_opted_out,
            created_on=stamp,
            updated_on=stamp,
            next_attempt_at=stamp,
        )
        error = _precheck(locked, msg, contact, pick, text, chosen)
        if msg.channel == "sms" and msg.text:
            info = analyse(msg.text)
            msg.segments, msg.encoding = info.segments, info.encoding
        if error is not None:
            msg.status, msg.error_code, msg.failed_on = "failed", error, stamp
            msg.next_attempt_at = None
        message_log.add_message(msg)
        message_log.close_event(event, sub, [(msg.status, msg.error_code)])
    return event, [msg]


def _precheck(
    project: Project,
    msg: Message,
    contact: Contact | None,
    texts: Mapping[str, str],
    text: str | None,
    chosen: GatewayConfig | None = None,
) -> str | None:
    """The checks that can fail before a message is queued; None when it may be queued."""
    if contact is not None and not contact.active:
        return "CONTACT_IS_INACTIVE"
    if msg.channel == "sms":
        if contact is not None:
            entry = (
                PhoneEntry.objects.filter(contact_id=contact.contact_id)
                .order_by(*send_order())
                .first()
            )
            if entry is None:
                return "NO_PHONE_NUMBER"
            msg.phone_number = entry.number
            override = entry.gateway
        else:
            override = ""
        if not texts or all(not t.strip() for t in texts.values()):
            return "MESSAGE_BLANK"
        if text is None:
            return "NO_MESSAGE"
        if not msg.allow_opted_out and is_opted_out(msg.phone_number, project.pk):
            return "PHONE_NUMBER_OPTED_OUT"
        if chosen is not None:
            msg.gateway_name, msg.gateway_id, msg.gateway_source = chosen.name, chosen.pk, CHOSEN
        else:
            found = route(project, msg.phone_number, override)
            msg.gateway_source = found.source
            if found.gateway is None:
                msg.gateway_name = found.requested
                return found.error_code
            msg.gateway_name, msg.gateway_id = found.gateway.name, found.gateway.pk
        if not msg.allow_opted_out and is_opted_out(msg.phone_number, None, msg.gateway_id):
            return "PHONE_NUMBER_OPTED_OUT"  # opted out for the gateway it would use
        return None
    if contact is not None:
        msg.email_address = contact.email
        if contact.email_status == "missing":
            return "NO_EMAIL_ADDRESS"
        if contact.email_status == "invalid":
            return "ERROR_INVALID_EMAIL_ADDRESS"
    if not texts or all(not t.strip() for t in texts.values()):
        return "MESSAGE_BLANK"
    if text is None:
        return "NO_MESSAGE"
    gw = chosen or email_gateway(project)
    if gw is None:
        return "NO_SUITABLE_GATEWAY"
    msg.gateway_name, msg.gateway_id = gw.name, gw.pk
    msg.gateway_source = CHOSEN if chosen is not None else "email"
    return None


def _chosen_gateway(project: Project, req: SendRequest) -> GatewayConfig | None:
    """The gateway the request names, if any: one the project may use (its own, shared with
    it, or global), active, and of the request's channel. A wrong name is bad input."""
    if req.gateway is None:
        return None
    gw = find_gateway(project, req.gateway)
    if gw is None:
        raise BadRequest(f"gateway '{req.gateway}' not found (or not active) for this project")
    if (gw.type == "email") != (req.channel == "email"):
        kind = "an email" if gw.type == "email" else "an SMS"
        raise BadRequest(f"gateway '{gw.name}' is {kind} gateway; this send is {req.channel}")
    return gw


def do_apply_status(
    message_id: str, status: str, *, error_code: str | None = None, provider_code: str = ""
) -> bool:
    """Move a message forward to ``status``; never backwards. True when it changed."""
    return message_log.set_status(
        message_id, status, error_code=error_code, provider_code=provider_code
    )


def do_apply_status_update(gw: GatewayConfig, update: StatusUpdate) -> bool:
    """Apply one delivery report; False when no message matches (nothing is stored)."""
    qs = Message.objects.filter(gateway_id=gw.pk)
    msg = None
    if not update.is_our_id:
        msg = qs.filter(provider_id=update.provider_id).only("id", "phone_number").first()
    if msg is None:
        # Our own id: the type said so, or the provider gave no id of its own at send time.
        msg = qs.filter(id=update.provider_id).only("id", "phone_number").first()
    if msg is None:
        log.info("status callback for unknown message on gateway %s", gw.name)
        return False
    changed = do_apply_status(
        msg.id, update.status, error_code=update.error_code, provider_code=update.provider_code
    )
    if changed and update.error_code == "PHONE_NUMBER_OPTED_OUT" and msg.phone_number:
        with transaction.atomic():
            do_person_opt_out(msg.phone_number, gateway_scope(gw), source=f"gateway:{gw.name}")
    return changed
