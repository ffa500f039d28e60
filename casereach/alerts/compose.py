"""The message an alert sends one recipient, and why it would fail.

The scheduler writes what ``message_for`` builds; the dry run, a preview and a contact's
upcoming sends build the same message without writing it and ask ``send_errors`` whether it
would go — the alert's own checks, then the dispatcher's pre-send checks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from casereach.alerts.criteria import CaseView
from casereach.alerts.engine import parse_time_value
from casereach.alerts.evaluation import time_property
from casereach.alerts.recipients import Addresses, Target
from casereach.alerts.spec import AlertSpec
from casereach.alerts.templates import RenderContext, parse_template, render
from casereach.contacts.rules import check_email
from casereach.core.segments import analyse
from casereach.messaging.content import pick_translation
from casereach.messaging.log import MessageDraft
from casereach.messaging.models import FAILED
from casereach.messaging.presend import PresendContext, check
from casereach.projects.models import Project
from casereach.projects.settings_schema import ProjectSettings

log = logging.getLogger(__name__)

_PARSED: dict[str, list[Any]] = {}


def _render(template: str, ctx: RenderContext) -> str:
    parsed = _PARSED.get(template)
    if parsed is None:
        if len(_PARSED) > 5000:
            _PARSED.clear()
        parsed = _PARSED[template] = parse_template(template)
    return render(parsed, ctx)


def message_for(
    project: Project,
    settings: ProjectSettings,
    spec: AlertSpec,
    view: CaseView | None,
    target: Target,
    addresses: Addresses,
    at: dt.datetime,
) -> Any:
    """The message for one recipient (a draft row): queued, or failed with the reason."""
    contact = target.contact
    msg = MessageDraft(
        project_id=project.pk,
        channel=spec.channel,
        contact_id=contact["contact_id"] if contact else None,
        contact_type=contact["contact_type"] if contact else "",
        created_on=at,
        updated_on=at,
        next_attempt_at=at,
    )
    error = target.error
    if error is None and contact is not None and not contact["active"]:
        error = "CONTACT_IS_INACTIVE"
    if spec.channel in ("sms", "whatsapp"):
        error = _phone(msg, target, addresses, error)
    else:
        error = _email(msg, target, error)
    if spec.content.is_survey:  # its first question is the survey's to build: a label
        msg.text = f"(survey {spec.content.survey_id})"
    else:
        error = _content(msg, settings, spec, view, target, addresses, error)
    if spec.channel == "sms" and msg.text and not spec.content.is_survey:
        info = analyse(msg.text)
        msg.segments, msg.encoding = info.segments, info.encoding
    if error is not None:
        msg.status, msg.error_code, msg.failed_on, msg.next_attempt_at = FAILED, error, at, None
    return msg


def _phone(msg: Any, target: Target, addresses: Addresses, error: str | None) -> str | None:
    """An SMS goes to the contact's first number in send order."""
    if error is not None:
        return error
    number = addresses.phones.get(target.contact["contact_id"]) if target.contact else None
    if number is None:
        return "NO_PHONE_NUMBER"
    msg.phone_number = number
    return None


def _email(msg: Any, target: Target, error: str | None) -> str | None:
    """An email goes to the contact's address, or to one read from a case property."""
    if error is not None:
        return error
    contact = target.contact
    if contact is not None:
        msg.email_address = contact["email"]
        if contact["email_status"] == "missing":
            return "NO_EMAIL_ADDRESS"
        if contact["email_status"] == "invalid":
            return "ERROR_INVALID_EMAIL_ADDRESS"
        return None
    address, status = check_email(target.email)
    msg.email_address = address or target.email[:320]
    return "ERROR_INVALID_EMAIL_ADDRESS" if status != "ok" else None


def _content(
    msg: Any,
    settings: ProjectSettings,
    spec: AlertSpec,
    view: CaseView | None,
    target: Target,
    addresses: Addresses,
    error: str | None,
) -> str | None:
    """The text (and an email's subject) in the recipient's language, rendered."""
    contact = target.contact
    language = contact["lang_effective"] if contact else None
    if spec.channel == "whatsapp":
        ctx = _render_context(view, target, addresses)
        return _whatsapp(msg, settings, spec, ctx, error, language)
    if spec.channel == "sms":
        texts = spec.content.sms
    else:
        assert spec.content.email is not None
        texts = spec.content.email.body
    template, used = pick_translation(
        texts,
        language,
        project_languages=settings.languages,
        fallback=settings.language_fallback,
        alert_default=spec.default_language,
    )
    if template is None:
        return error or "NO_MESSAGE"
    ctx = _render_context(view, target, addresses)
    try:
        msg.text = _render(template, ctx)
        if spec.channel == "email" and spec.content.email is not None:
            subject, _ = pick_translation(
                spec.content.email.subject,
                used if used != "*" else language,
                project_languages=settings.languages,
                fallback="untranslated",
            )
            msg.subject = _render(subject, ctx)[:998] if subject else ""
    except Exception:  # a template that passed validation must render; log if not
        log.exception("alert template failed to render")
        error = error or "CANNOT_RENDER_MESSAGE"
    msg.language = "" if used == "*" else used
    return error


def _render_context(view: CaseView | None, target: Target, addresses: Addresses) -> RenderContext:
    contact = target.contact
    parent = view.parent if view is not None else None
    return RenderContext(
        case_name=view.name if view else None,
        case_properties=view.properties if view else {},
        owner_name=addresses.names.get(view.owner_id) if view and view.owner_id else None,
        parent_name=parent.name if parent else None,
        parent_properties=parent.properties if parent else None,
        recipient_name=contact["name"] if contact else None,
    )


def _whatsapp(
    msg: Any,
    settings: ProjectSettings,
    spec: AlertSpec,
    ctx: RenderContext,
    error: str | None,
    contact_language: str | None,
) -> str | None:
    """A WhatsApp message: its free text in the recipient's language (rendered), and its
    template with the params rendered now; the template's language is chosen at send time
    among the gateway's APPROVED versions (``messaging.presend``), with these fallbacks."""
    wa = spec.content.whatsapp
    assert wa is not None
    text, used = pick_translation(
        wa.text,
        contact_language,
        project_languages=settings.languages,
        fallback=settings.language_fallback,
        alert_default=spec.default_language,
    )
    msg.segments, msg.encoding = 1, ""
    try:
        if text is not None:
            msg.text = _render(text, ctx)
            msg.language = "" if used == "*" else used
        if wa.template:
            params = [_render(p, ctx) for p in wa.params]
            msg.payload = {
                "template": {
                    "name": wa.template,
                    "language": "",  # chosen at send time
                    "params": params,
                    "default_language": spec.default_language or "",
                },
                "template_only": text is None,
            }
            if text is None:
                msg.text = f"(WhatsApp template {wa.template}: {', '.join(params)})"[:4096]
    except Exception:  # a template that passed validation must render; log if not
        log.exception("alert WhatsApp content failed to render")
        return error or "CANNOT_RENDER_MESSAGE"
    if text is None and not wa.template:
        return error or "NO_MESSAGE"
    return error


def send_errors(project: Project, msgs: Sequence[Any], at: dt.datetime) -> list[str | None]:
    """Why each message built by ``message_for`` would fail, or None: its own error (no
    number, no translation, ...), else the dispatcher's pre-send checks (``presend.check``,
    the very function sending runs: opted out, inactive contact, gateway not found, no
    suitable gateway, ...). A postponement (a window, the daily limit) is not a failure."""
    rows = [
        {
            "project_id": project.pk,
            "contact_id": msg.contact_id,
            "channel": msg.channel,
            "phone_number": msg.phone_number,
            "allow_opted_out": False,
            "gateway_source": "",
            "gateway_id": None,
            "created_on": at,
            "text": msg.text,
            "payload": getattr(msg, "payload", None),
        }
        for msg in msgs
    ]
    pending = [row for row, msg in zip(rows, msgs, strict=True) if msg.error_code is None]
    ctx = PresendContext.load(pending) if pending else None
    out: list[str | None] = []
    for row, msg in zip(rows, msgs, strict=True):
        if msg.error_code is not None or ctx is None:
            out.append(msg.error_code)
            continue
        verdict = check(ctx, row, at)
        out.append(verdict.error_code if verdict.action == "fail" else None)
    return out


TIME_DEFAULT_TEXT = (
    "reached at 12:00 local time: the case property {prop} holds no time (H:MM or HH:MM)"
)


def time_default(spec: AlertSpec, time_value: str) -> bool:
    """Whether the alert reads its time from a case property that holds none, so that it
    sends at 12:00 local (CommCare's default)."""
    return time_property(spec) is not None and parse_time_value(time_value) is None
