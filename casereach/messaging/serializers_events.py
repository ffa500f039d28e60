"""The CommCare messaging-event API's objects (``…/api/v0.5/messaging-event/``): one sub-event
with its messages, in HQ's shape and slugs, plus casereach's extra fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

from casereach.billing.queries import from_micros
from casereach.core.timeutil import as_utc
from casereach.messaging.errors import describe
from casereach.messaging.event_query import (
    CONTENT_TYPE_SLUGS,
    DIRECTION_SLUGS,
    RECIPIENT_SLUGS,
    SMS_STATUS_SLUGS,
    SOURCE_SLUGS,
    STATUS_SLUGS,
    SURVEY_COMPLETED,
    SURVEY_CONTENT_TYPE,
)
from casereach.messaging.models import Message, MessagingEvent, MessagingSubEvent
from casereach.messaging.serializers_chain import chain_fields


def _naive(value: dt.datetime) -> str:
    """``datetime.isoformat()`` of the naive UTC value: microseconds only when non-zero."""
    return as_utc(value).replace(tzinfo=None).isoformat()


def _naive_ms(value: dt.datetime) -> str:
    """What Django's JSON encoder makes of HQ's SMS ``date``: cut (never rounded) to ms."""
    text = _naive(value)
    return text[:23] if value.microsecond else text


def _sms_status(m: Message) -> str:
    if m.status == "failed":
        return "error"
    if m.direction == "in":
        return "received"
    return SMS_STATUS_SLUGS.get(m.status, "unknown")


def _serialize_message(m: Message, event_status: str, event_failed: bool) -> dict[str, Any]:
    if m.channel == "email":
        data: dict[str, Any] = {
            "message_id": m.pk,
            "date": _naive(m.created_on),
            "date_modified": _naive(m.updated_on),
            "type": "email",
            "direction": "outgoing",
            "content": m.text,
            "status": event_status,
            "backend": "email",
            "email_address": m.email_address or None,
        }
    else:
        data = {
            "message_id": m.pk,
            "date": _naive_ms(m.created_on),
            "date_modified": _naive(m.updated_on),
            "type": "sms",
            "direction": DIRECTION_SLUGS.get(m.direction, "unknown"),
            "content": m.text,
            # HQ: every message of a sub-event in error shows the event's status slug
            "status": event_status if event_failed else _sms_status(m),
            "backend": m.gateway_name or (str(m.gateway_id) if m.gateway_id else None),
            "phone_number": m.phone_number or None,
        }
    if m.status == "failed":
        info = describe(m.error_code)
        message = info.description if info else m.error_code
        if message:
            data["error_message"] = message
    if m.chain_id:  # casereach extension: one attempt of a fallback chain
        data.update(channel=m.channel, **chain_fields(m))
    # casereach's own extra fields (docs/costs.md): what the message cost.
    data["estimated_cost"] = from_micros(m.estimated_cost_micros)
    data["actual_cost"] = from_micros(m.actual_cost_micros)
    data["cost_currency"] = m.cost_currency or None
    return data


def serialize_event(sub: MessagingSubEvent, domain: str) -> dict[str, Any]:
    """The event object of reference 4.4; ``sub.event`` and ``sub.messages`` are prefetched
    (and a survey session's messages: ``event_query.with_survey_messages``)."""
    event: MessagingEvent = sub.event
    msgs = list(sub.messages.all())
    survey = bool(sub.survey_status) and sub.survey_session_id is not None
    content_type = (
        SURVEY_CONTENT_TYPE if survey else CONTENT_TYPE_SLUGS.get(event.content_type, "unknown")
    )
    status = STATUS_SLUGS.get(sub.status, "unknown")
    if survey and sub.status == "completed":  # HQ: the session's status
        status = sub.survey_status
    elif sub.status == "completed" and any(
        m.status == "failed" and m.moved_on_at is None for m in msgs
    ):  # (an attempt a fallback chain moved on from is not the event's outcome)
        status = "error"
    shown = getattr(sub, "session_messages", msgs) if survey else msgs
    messages = (
        [_serialize_message(m, status, sub.status == "error") for m in shown]
        if content_type in ("sms", "email", SURVEY_CONTENT_TYPE)
        else []
    )
    error = None
    if sub.error_code:
        info = describe(sub.error_code)
        detail = next((m.error_detail for m in msgs if m.status == "failed" and m.error_detail), "")
        error = {
            "code": sub.error_code,
            "message": info.description if info else None,
            "message_detail": detail or None,
        }
    return {
        "id": sub.pk,
        "content_type": content_type,
        "date": _naive(sub.created_on),
        "date_last_activity": _naive(sub.date_last_activity),
        "case_id": sub.contact_id if sub.contact_type == "case" else None,
        "domain": domain,
        "error": error,
        "form": _survey_form(sub) if survey else None,
        "messages": messages,
        "recipient": {
            "recipient_id": sub.contact_id,
            "type": RECIPIENT_SLUGS.get(sub.contact_type, "unknown"),
            "name": sub.recipient_name or "unknown",
        },
        "source": {
            "source_id": event.source_id or None,
            "type": SOURCE_SLUGS.get(event.source, "unknown"),
            # HQ names the keyword / broadcast / rule when it can, else the content type slug
            "name": event.source_name or content_type,
        },
        "status": status,
        # casereach extension: the survey session of an sms-survey event
        **({"survey_session_id": sub.survey_session_id} if survey else {}),
    }


def _survey_form(sub: MessagingSubEvent) -> dict[str, Any]:
    """HQ's ``form`` of a survey event: our survey stands for the form (no app); the
    submission is the session, once it completed."""
    form = sub.survey_form or {}
    done = sub.survey_status == SURVEY_COMPLETED
    return {
        "app_id": None,
        "form_definition_id": form.get("form_definition_id"),
        "form_name": form.get("form_name"),
        "form_submission_id": str(sub.survey_session_id) if done else None,
    }
