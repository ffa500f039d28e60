"""What a send asks for (``SendRequest``) and the checks of its texts, shared by the single
send (``actions.do_send``) and the batch (``sending.do_send_batch``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from casereach.core.errors import BadRequest

if TYPE_CHECKING:
    from casereach.messaging.whatsapp import WhatsAppContent

# ``Message.gateway_source`` of a message whose sender named its gateway.
CHOSEN = "chosen"

MAX_SMS_CHARS = 1600
MAX_EMAIL_CHARS = 100_000


@dataclass
class SendRequest:
    """What to send to whom. ``sms``/``subject``/``body`` map language → text ("*" =
    untranslated)."""

    channel: Literal["sms", "email", "whatsapp"] = "sms"
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
    # channel "whatsapp": its texts and/or template (``messaging.whatsapp``)
    whatsapp: WhatsAppContent | None = None
    # channel "whatsapp", internal senders only: what the message carries besides its text,
    # kept in ``Message.payload`` (a survey question's ``{"interactive": …}``: its buttons or
    # list); a template chosen for the send takes its place.
    payload: dict[str, Any] | None = None


def validate_texts(texts: Mapping[str, Any], what: str, limit: int) -> dict[str, str]:
    """``texts`` (language → text) checked: strings, each at most ``limit`` characters."""
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
