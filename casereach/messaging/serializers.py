"""What the messaging APIs and the web pages show of messages, opt-outs, keywords and messaging
events: the response schemas (OpenAPI only: the views answer JsonResponse or CSV, which ninja
passes through untouched, so these never filter a field out; every one allows more fields) and
the functions that turn rows into those objects and CSV lines."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from pydantic import Field

from casereach.billing.queries import from_micros
from casereach.core.openapi import DATE_TIME, OpenSchema
from casereach.core.timeutil import as_utc, iso
from casereach.messaging.chains import REASONS
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
from casereach.messaging.models import Keyword, Message, MessagingEvent, MessagingSubEvent, OptOut
from casereach.messaging.models import SendAttempt as SendAttemptRow
from casereach.messaging.serializers_chain import ChainAttempt, chain_fields

# -- messages ------------------------------------------------------------------------------------


class SentMessage(OpenSchema):
    id: str
    status: str
    error_code: str | None = Field(description="why the message was not sent, when it was not")
    gateway: str | None


class SendOut(OpenSchema):
    event_id: int
    messages: list[SentMessage]


class SendBatchOut(OpenSchema):
    """One ``SendOut`` per item of a batch send, in item order."""

    objects: list[SendOut]


class BatchError(OpenSchema):
    """A batch refused because of one item: ``index`` names it (from 0)."""

    error: str
    detail: Any = None
    index: int | None = None


class MessageOut(OpenSchema):
    """One message of the log."""

    id: str
    event_id: int | None
    direction: str = Field(json_schema_extra={"enum": ["in", "out"]})
    channel: str = Field(json_schema_extra={"enum": ["sms", "email", "whatsapp"]})
    status: str
    error_code: str | None
    error_description: str | None
    error_hint: str | None
    phone_number: str | None
    email_address: str | None
    gateway: str | None
    contact_id: str | None
    text: str
    segments: int
    attempts: int
    created_on: str | None = Field(json_schema_extra=DATE_TIME)
    sent_on: str | None = Field(json_schema_extra=DATE_TIME)
    delivered_on: str | None = Field(json_schema_extra=DATE_TIME)
    read_on: str | None = Field(
        default=None, json_schema_extra=DATE_TIME, description="WhatsApp: when it was read"
    )
    failed_on: str | None = Field(json_schema_extra=DATE_TIME)
    # A fallback chain's attempt (``messaging.chains``, docs/channels.md).
    chain_id: str | None = Field(None, description="The chain's first attempt's id")
    chain_step: int | None = Field(None, description="This attempt's step, from 1")
    fallback_reason: str | None = Field(None, json_schema_extra={"enum": [*REASONS, None]})
    moved_on: bool = Field(False, description="The chain moved on from this attempt")
    moved_on_at: str | None = Field(None, json_schema_extra=DATE_TIME)
    template: dict[str, Any] | None = Field(
        default=None,
        description="WhatsApp: the template sent or to send outside the 24-hour window "
        "({name, language, params})",
    )
    estimated_cost: str | None = Field(
        None, description="from the fee table when queued, in cost_currency (a decimal string)"
    )
    actual_cost: str | None = Field(None, description="as the provider reported it, converted")
    cost_currency: str | None = None
    cost_source: str | None = Field(
        None, description="where the actual cost came from: provider or fee_table"
    )


class CostTotals(OpenSchema):
    currency: str
    estimated: str
    actual: str
    cost: str = Field(description="actual where known, else estimated")
    messages_with_actual_cost: int


class CostsOut(OpenSchema):
    """What messages cost (docs/costs.md): decimal strings in the project's currency."""

    currency: str
    total: CostTotals
    per_day: list[dict[str, Any]]
    per_gateway: list[dict[str, Any]]
    budget: dict[str, Any] | None = Field(
        description="amount, currency, spent, percent, warning (80%), reached; null = none"
    )


class MessagePageMeta(OpenSchema):
    limit: int
    offset: int
    total_count: int
    next: str | None


class MessageList(OpenSchema):
    objects: list[MessageOut]
    meta: MessagePageMeta


class SendAttempt(OpenSchema):
    number: int
    outcome: str
    error_code: str | None
    duration_ms: int | None
    at: str | None = Field(json_schema_extra=DATE_TIME)


class MessageDetail(MessageOut):
    attempt_log: list[SendAttempt]
    chain: list[ChainAttempt] = Field(
        default_factory=list,
        description="Every attempt of the message's fallback chain in order (empty outside one)",
    )


class ErrorCodeOut(OpenSchema):
    code: str
    description: str
    hint: str


class ErrorCodeList(OpenSchema):
    objects: list[ErrorCodeOut]


CSV_COLUMNS = (
    "id",
    "event_id",
    "direction",
    "status",
    "error_code",
    "phone_number",
    "email_address",
    "gateway",
    "contact_id",
    "text",
    "segments",
    "encoding",
    "attempts",
    "created_on",
    "sent_on",
    "delivered_on",
    "channel",
    "read_on",
    "chain_id",
    "chain_step",
    "fallback_reason",
    "moved_on",
    "estimated_cost",
    "actual_cost",
    "cost_currency",
    "cost_source",
)


def serialize_message(m: Message) -> dict[str, Any]:
    info = describe(m.error_code)
    return {
        "id": m.id,
        "event_id": m.event_id,
        "direction": m.direction,
        "channel": m.channel,
        "status": m.status,
        "error_code": m.error_code,
        "error_description": info.description if info else None,
        "error_hint": info.hint if info else None,
        "provider_code": m.provider_code or None,
        "phone_number": m.phone_number or None,
        "email_address": m.email_address or None,
        "gateway": m.gateway_name or None,
        "gateway_source": m.gateway_source or None,
        "contact_id": m.contact_id,
        "text": m.text,
        "subject": m.subject or None,
        "language": m.language or None,
        "segments": m.segments,
        "encoding": m.encoding or None,
        "attempts": m.attempts,
        "unknown_outcomes": m.unknown_outcomes,
        "next_attempt_at": iso(m.next_attempt_at) if m.status == "queued" else None,
        "created_on": iso(m.created_on),
        "sent_on": iso(m.sent_on),
        "delivered_on": iso(m.delivered_on),
        "read_on": iso(m.read_on),
        "failed_on": iso(m.failed_on),
        "template": (m.payload or {}).get("template"),
        "inbound_action": m.inbound_action or None,
        "detail": m.error_detail or None,
        **chain_fields(m),
        # What it cost (docs/costs.md): decimal strings in cost_currency, or null.
        "estimated_cost": from_micros(m.estimated_cost_micros),
        "actual_cost": from_micros(m.actual_cost_micros),
        "cost_currency": m.cost_currency or None,
        "cost_source": m.cost_source or None,
    }


def serialize_attempt(a: SendAttemptRow) -> dict[str, Any]:
    """One entry of a message's ``attempt_log``."""
    return {
        "number": a.number,
        "outcome": a.outcome,
        "error_code": a.error_code,
        "provider_code": a.provider_code or None,
        "detail": a.detail,
        "request": a.request,
        "response": a.response,
        "duration_ms": a.duration_ms,
        "at": iso(a.created_on),
    }


def message_csv_rows(qs: QuerySet[Message]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for m in qs.iterator(chunk_size=2000):
        buf.seek(0)
        buf.truncate()
        data = serialize_message(m)
        data["gateway"] = m.gateway_name
        writer.writerow([_cell(data.get(c)) for c in CSV_COLUMNS])
        yield buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # spreadsheets must not run a message as a formula
    return "" if value is None else value


# -- test phone, opt-outs, keywords, verification -------------------------------------------------


class ConversationMessage(OpenSchema):
    """A message as in the message log."""

    id: str
    direction: str = Field(json_schema_extra={"enum": ["in", "out"]})
    status: str
    phone_number: str | None
    text: str
    created_on: str | None = Field(json_schema_extra={"format": "date-time"})


class TestPhoneOut(OpenSchema):
    message_id: str = Field(description="the inbound message stored")
    action: str = Field(description="what the inbound message did (e.g. keyword, opt_out)")
    contact_id: str | None
    detail: str | None
    gateway: str = Field(description="the test gateway it came in through")
    replies: list[ConversationMessage]


class ConversationOut(OpenSchema):
    number: str
    objects: list[ConversationMessage]


class OptOutOut(OpenSchema):
    """One number in the project's own scope (SPEC 2: opt-outs are per number and scope)."""

    phone_number: str
    scope: str = Field(json_schema_extra={"enum": ["project"]})
    project: str
    channel: str = Field("sms", json_schema_extra={"enum": ["sms", "whatsapp"]})
    opted_out: bool
    can_opt_in: bool
    changed_on: str | None = Field(json_schema_extra={"format": "date-time"})
    source: str


class OptOutMeta(OpenSchema):
    total_count: int
    limit: int
    offset: int


class OptOutList(OpenSchema):
    meta: OptOutMeta
    objects: list[OptOutOut]


class KeywordOut(OpenSchema):
    id: int
    keyword: str
    description: str
    reply: dict[str, str]
    fields: list[dict[str, Any]]
    error_reply: dict[str, str]
    action: str = Field(json_schema_extra={"enum": ["reply", "survey"]})
    survey_id: int | None
    created_on: str | None = Field(json_schema_extra={"format": "date-time"})
    updated_on: str | None = Field(json_schema_extra={"format": "date-time"})


class KeywordList(OpenSchema):
    objects: list[KeywordOut]


class VerifyOut(OpenSchema):
    result: str = Field(
        json_schema_extra={
            "enum": ["started", "resent_pending", "already_verified", "already_in_use"]
        }
    )
    phone_number: str


def serialize_opt_out(row: OptOut, project: str) -> dict[str, Any]:
    return {
        "phone_number": row.phone_number,
        "scope": "project",
        "project": project,
        "channel": row.channel,
        "opted_out": row.opted_out,
        "can_opt_in": row.can_opt_in,
        "changed_on": iso(row.changed_on),
        "source": row.source,
    }


OPT_OUT_CSV_COLUMNS = [
    "phone_number",
    "opted_out",
    "can_opt_in",
    "changed_on",
    "source",
    "channel",
]


def opt_out_csv_rows(qs: QuerySet[OptOut], project: str) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(OPT_OUT_CSV_COLUMNS)
    for row in qs.iterator(chunk_size=2000):
        data = serialize_opt_out(row, project)
        writer.writerow([data[k] for k in OPT_OUT_CSV_COLUMNS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def serialize_keyword(kw: Keyword) -> dict[str, Any]:
    return {
        "id": kw.pk,
        "keyword": kw.keyword,
        "description": kw.description,
        "reply": kw.reply,
        "fields": kw.fields,
        "error_reply": kw.error_reply,
        "action": kw.action,
        "survey_id": kw.survey_id,
        "created_on": iso(kw.created_on),
        "updated_on": iso(kw.updated_on),
    }


# -- messaging events (CommCare's messaging-event API) ------------------------------------------


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
