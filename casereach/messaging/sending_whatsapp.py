"""The checks of a WhatsApp send before it is queued (``sending.do_send_batch``'s WhatsApp
branch): a number, content, not opted out, a WhatsApp gateway, and the template's language
chosen for the contact (``messaging.whatsapp``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casereach.gateways.models import GatewayConfig
from casereach.messaging.log import MessageDraft
from casereach.messaging.sending_request import CHOSEN
from casereach.messaging.whatsapp import (
    fill_body,
    template_language,
    template_payload,
    whatsapp_gateway,
)
from casereach.projects.models import Project

if TYPE_CHECKING:
    from casereach.messaging.sending import ContactRow
    from casereach.messaging.sending import _Item as Item
    from casereach.messaging.sending import _Reads as Reads


def precheck_whatsapp(
    project: Project,
    msg: MessageDraft,
    contact: ContactRow | None,
    it: Item,
    text: str | None,
    reads: Reads,
) -> str | None:
    """The checks of a WhatsApp send before it is queued (``messaging.whatsapp``): a number,
    content, not opted out, a WhatsApp gateway; its template's language chosen now."""
    req, wa = it.req, it.req.whatsapp
    override = ""
    if contact is not None:
        entry = reads.entries.get(contact[0])
        if entry is None:
            return "NO_PHONE_NUMBER"
        msg.phone_number, override = entry
    msg.segments, msg.encoding = 1, ""
    if wa is None or wa.blank:
        return "MESSAGE_BLANK"
    number = msg.phone_number
    if not msg.allow_opted_out and reads.opted_whatsapp.in_project(number, project.pk):
        return "PHONE_NUMBER_OPTED_OUT"
    gw: GatewayConfig | None
    if it.chosen is not None:
        gw, source, error = it.chosen, CHOSEN, None
    else:
        gw, source, error = whatsapp_gateway(project.pk, reads.index, override)
    msg.gateway_source = source
    if gw is None:
        return error
    msg.gateway_name, msg.gateway_id = gw.name, gw.pk
    if not msg.allow_opted_out and reads.opted_whatsapp.refuses(number, None, gw.pk):
        return "PHONE_NUMBER_OPTED_OUT"
    if wa.template:
        languages = reads.template_languages(gw.pk, wa.template)
        s = reads.settings
        lang = template_language(
            languages,
            contact[4] if contact else None,
            project_languages=s.languages,
            fallback=s.language_fallback,
            alert_default=req.alert_default_language,
        )
        if lang is not None:
            msg.payload = template_payload(wa.template, lang, wa.params)
            if text is None:
                msg.text = fill_body(languages[lang][1], wa.params)
                msg.language = lang
    if req.payload and msg.payload is None and text is not None:
        msg.payload = dict(req.payload)  # an interactive part (a survey's buttons or list)
    if text is None and msg.payload is None:
        return "NO_MESSAGE"  # no text in the contact's language, no approved template either
    return None
