"""What the messaging APIs and the web pages show of messages, opt-outs and keywords
(messaging events: ``serializers_events``): the response schemas (OpenAPI only: the views answer JsonResponse or CSV, which ninja
passes through untouched, so these never filter a field out; every one allows more fields) and
the functions that turn rows into those objects and CSV lines."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from pydantic import Field

from casereach.billing.queries import from_micros
from casereach.core.openapi import DATE_TIME, OpenSchema
from casereach.core.timeutil import iso
from casereach.messaging.chains import REASONS
from casereach.messaging.errors import describe
from casereach.messaging.models import Keyword, Message, OptOut
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
